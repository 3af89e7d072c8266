"""Every error the treasury package raises.

The tree::

    TreasuryError
    └── DatabaseConfigError   the database setting is unusable

Later modules add their branches here; messages are full sentences naming the field at fault.
"""

from __future__ import annotations


class TreasuryError(Exception):
    """Root of every error raised by the treasury package."""


class DatabaseConfigError(TreasuryError, ValueError):
    """``TREASURY_DATABASE_URL`` is malformed or names an unsupported database."""
