"""Errors of the reconciliation scheduler.

The tree::

    TreasuryError
    └── ReconcileError              the reconciler refused or could not finish an operation
        ├── NodeUnavailableError    a node did not answer (the run is recorded as failed)
        ├── ChainMovedError         the chain reorganised while a vault was being read
        ├── ReconcileConfigError    a setting or a vault name cannot be used (ValueError)
        ├── UnknownAlarmError       no alarm has that id (LookupError)
        └── AcknowledgementError    this officer may not acknowledge this alarm (now)
"""

from __future__ import annotations

from treasury.exceptions import TreasuryError


class ReconcileError(TreasuryError):
    """Root of the reconciler's errors."""


class NodeUnavailableError(ReconcileError):
    """A node did not answer; nothing of the vault being read was booked."""


class ChainMovedError(ReconcileError):
    """The confirmed block changed while a vault was read; the next run reads it again."""


class ReconcileConfigError(ReconcileError, ValueError):
    """A setting, a vault name or a token cannot be used (the message names the field)."""


class UnknownAlarmError(ReconcileError, LookupError):
    """An alarm id names no alarm."""


class AcknowledgementError(ReconcileError):
    """The officer may not acknowledge the alarm (role, revoked, already acknowledged)."""
