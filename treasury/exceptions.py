"""Every error the treasury package raises.

The tree::

    TreasuryError
    ├── DatabaseConfigError        the database setting is unusable
    ├── LedgerError                the state ledger refused an operation (nothing was written)
    │   ├── InvalidAmountError     an amount is not a positive int below 10**78 (ValueError)
    │   ├── InvalidEntryError      a malformed request: key, legs, codes, text (ValueError)
    │   │   └── UnbalancedEntryError   debits differ from credits for an asset
    │   ├── UnknownAccountError    no such account code (LookupError)
    │   ├── UnknownAssetError      no such asset code (LookupError)
    │   ├── UnknownEntryError      no such entry id (LookupError)
    │   ├── IdempotencyConflictError   a key or code reused with a different payload
    │   ├── IllegalTransitionError a pending entry posted/voided twice, or a non-pending one
    │   ├── OverdraftError         a no-overdraft account would go negative
    │   └── ImmutableRecordError   an attempt to change or delete a ledger, audit, policy or approval record
    └── AuditError                 the audit log refused an operation or failed verification
        ├── InvalidAuditEventError an event with a bad actor, refs or payload (ValueError)
        └── AuditChainBrokenError  the hash chain is broken (edited, deleted or reordered);
                                   defined in treasury.audit beside the ChainBreak it carries

Messages are full sentences naming the field at fault; a refused operation changes nothing.
"""

from __future__ import annotations


class TreasuryError(Exception):
    """Root of every error raised by the treasury package."""


class DatabaseConfigError(TreasuryError, ValueError):
    """``TREASURY_DATABASE_URL`` is malformed or names an unsupported database."""


class LedgerError(TreasuryError):
    """The ledger refused an operation; the caller's transaction holds no partial write of it."""


class InvalidAmountError(LedgerError, ValueError):
    """An amount is a float, Decimal, bool, negative, zero, or does not fit ``Numeric(78, 0)``."""


class InvalidEntryError(LedgerError, ValueError):
    """An entry, account or asset request is malformed (the message names the field)."""


class UnbalancedEntryError(InvalidEntryError):
    """The debits of an entry differ from its credits for at least one asset."""


class UnknownAccountError(LedgerError, LookupError):
    """An account code names no account."""


class UnknownAssetError(LedgerError, LookupError):
    """An asset code names no registered asset."""


class UnknownEntryError(LedgerError, LookupError):
    """An entry id names no journal entry."""


class IdempotencyConflictError(LedgerError):
    """An idempotency key (or an asset/account code) was reused with a different payload."""


class IllegalTransitionError(LedgerError):
    """A two-phase or reversal step that the entry's state does not allow."""


class OverdraftError(LedgerError):
    """A posting would take a no-overdraft account's available balance below zero."""


class ImmutableRecordError(LedgerError):
    """Ledger, audit, policy and approval records are never updated or deleted; corrections are
    new records."""


class AuditError(TreasuryError):
    """The audit log refused an operation or found its chain broken."""


class InvalidAuditEventError(AuditError, ValueError):
    """An audit event has an empty actor, non-string refs, or a payload that is not canonical JSON."""
