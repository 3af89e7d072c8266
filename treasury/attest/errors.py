"""Errors of producing an attestation (``treasury attest``).

The tree::

    TreasuryError
    └── AttestError                  an attestation could not be produced (nothing was anchored)
        ├── RoleKeyError             a treasury or audit-office key file is missing or unsafe
        ├── SnapshotError            the chains cannot give a consistent snapshot
        └── LiabilityInputError      the ledger or the liabilities CSV is unusable (ValueError)

Messages are full sentences naming the field or file at fault; they never carry key material.
"""

from __future__ import annotations

from treasury.exceptions import TreasuryError


class AttestError(TreasuryError):
    """An attestation could not be produced; nothing was anchored or recorded."""


class RoleKeyError(AttestError, ValueError):
    """A signing key file is missing, malformed, or readable by others than its owner."""


class SnapshotError(AttestError):
    """The vaults' coins or balances cannot be read consistently at the snapshot block."""


class LiabilityInputError(AttestError, ValueError):
    """A ledger fund balance or a row of the liabilities CSV cannot be attested."""
