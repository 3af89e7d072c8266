"""Every error the officers' authority checks raise; each failure has its own class.

A signer that refuses must say exactly why (a mismatched amount is a different incident from an
expired statement or a forged genesis), so the tree is fine-grained. All of it hangs under
``custody.exceptions.CustodyError`` through ``AuthorityError``::

    AuthorityError
    ├── EncodingError                  a statement or record that is not in its canonical form
    ├── OfficerKeyError                officer keys and key files
    │   ├── KeyFileError               missing, unreadable or malformed key file
    │   │   └── KeyFileExistsError     refusing to overwrite an existing key file
    │   └── WrongPassphraseError       the key file's passphrase is wrong
    ├── SignatureError                 a signature that does not verify
    │   ├── MalformedSignatureError    wrong length, out-of-range r/s or recovery id
    │   ├── HighSSignatureError        a malleable (high-S) secp256k1 signature
    │   ├── SignatureMismatchError     valid form, but not by this key over this digest
    │   └── WebAuthnAssertionError     challenge, origin, RP id, user presence or credential wrong
    ├── RosterError                    the signed roster and policy chain
    │   ├── BrokenChainError           a sequence gap, a wrong link, a record edited after signing
    │   ├── GenesisError               a genesis that is malformed or not where it must be
    │   │   └── CeremonySignatureError the genesis lacks a valid signature by a ceremony key
    │   ├── UnauthorizedChangeError    a change not signed by an active admin of the institution
    │   ├── ChangeQuorumError          a policy/allowlist/decree change signed by too few institutions
    │   └── InvalidChangeError         a change that makes no sense (unknown officer, reused key...)
    └── AuthorizationError             the quorum of approval statements for one spend
        ├── UnknownSignerError         officer or key not active in the roster
        ├── MissingRoleError           the officer lacks the approver (or veto) role
        ├── StatementMismatchError     a statement names another spend (any field)
        │   └── FeeAboveMaximumError   the fee exceeds the approved maximum
        ├── PolicyMismatchError        a statement names another policy than the one in force
        ├── ExpiredStatementError      a statement past its expiry
        ├── VetoedError                a valid veto was presented for the proposal
        ├── InsufficientApprovalsError too few distinct institutions approved
        ├── DestinationNotAllowlistedError the destination is not in the chain's allowlist
        └── LegalBasisError            the cited decree does not authorise this spend
            ├── UnknownLegalBasisError     no decree of that reference in the chain
            ├── LegalBasisExpiredError     the decree has expired
            └── AboveDecreeCeilingError    the amount exceeds the decree's ceiling for the asset

Messages are full sentences naming the field at fault; they never carry key material.
"""

from __future__ import annotations

from custody.exceptions import CustodyError

__all__ = [
    "AboveDecreeCeilingError",
    "AuthorityError",
    "AuthorizationError",
    "BrokenChainError",
    "CeremonySignatureError",
    "ChangeQuorumError",
    "DestinationNotAllowlistedError",
    "EncodingError",
    "ExpiredStatementError",
    "FeeAboveMaximumError",
    "GenesisError",
    "HighSSignatureError",
    "InsufficientApprovalsError",
    "InvalidChangeError",
    "KeyFileError",
    "KeyFileExistsError",
    "LegalBasisError",
    "LegalBasisExpiredError",
    "MalformedSignatureError",
    "MissingRoleError",
    "OfficerKeyError",
    "PolicyMismatchError",
    "RosterError",
    "SignatureError",
    "SignatureMismatchError",
    "StatementMismatchError",
    "UnauthorizedChangeError",
    "UnknownLegalBasisError",
    "UnknownSignerError",
    "VetoedError",
    "WebAuthnAssertionError",
    "WrongPassphraseError",
]


class AuthorityError(CustodyError):
    """Root of the errors about officers' signed authority (statements, keys, roster, quorum)."""


class EncodingError(AuthorityError, ValueError):
    """Bytes that are not the one canonical encoding of a statement or record: refused unread."""


class OfficerKeyError(AuthorityError, ValueError):
    """An officer key or key file cannot be used."""


class KeyFileError(OfficerKeyError, ValueError):
    """The key file is missing, unreadable, or not an officer key file."""


class KeyFileExistsError(KeyFileError):
    """A key file already exists at that path; it is never overwritten (it may be the only copy)."""


class WrongPassphraseError(OfficerKeyError, ValueError):
    """The passphrase does not open the key file."""


class SignatureError(AuthorityError, ValueError):
    """A signature that does not verify."""


class MalformedSignatureError(SignatureError):
    """A signature of the wrong length, with r or s out of range, or a bad recovery id."""


class HighSSignatureError(SignatureError):
    """A secp256k1 signature with s above n/2: malleable, so refused (BIP-62/BIP-146 style)."""


class SignatureMismatchError(SignatureError):
    """A well-formed signature that is not by this key over this digest."""


class WebAuthnAssertionError(SignatureError):
    """A WebAuthn assertion whose challenge, origin, RP id, user presence, credential or
    signature is wrong."""


class RosterError(AuthorityError):
    """The signed roster and policy chain does not replay."""


class BrokenChainError(RosterError):
    """A record's sequence, link or hash is wrong: the chain was cut, reordered or edited."""


class GenesisError(RosterError):
    """The genesis record is malformed, missing, or appears where it must not."""


class CeremonySignatureError(GenesisError):
    """The genesis lacks a valid signature by an institution's ceremony key, or does not carry
    the ceremony key of the seed that was just recombined."""


class UnauthorizedChangeError(RosterError):
    """A change to an institution's officers not signed by an active admin of that institution."""


class ChangeQuorumError(RosterError):
    """A policy, allowlist or decree change signed by admins of too few distinct institutions."""


class InvalidChangeError(RosterError, ValueError):
    """A change that does not apply: an unknown or duplicate officer, a reused key, a bad hash."""


class AuthorizationError(AuthorityError):
    """The approval statements do not authorise this spend."""


class UnknownSignerError(AuthorizationError):
    """The statement's officer, or the key that signed it, is not active in the roster."""


class MissingRoleError(AuthorizationError):
    """The officer does not hold the role the statement needs (approver, or approver/oversight
    for a veto)."""


class StatementMismatchError(AuthorizationError):
    """A statement names another spend than the transaction under review (the field is named)."""


class FeeAboveMaximumError(StatementMismatchError):
    """The transaction's fee exceeds the maximum fee a statement approved."""


class PolicyMismatchError(AuthorizationError):
    """A statement names another policy hash than the one in force in the roster chain."""


class ExpiredStatementError(AuthorizationError):
    """A statement is past its expiry."""


class VetoedError(AuthorizationError):
    """A valid veto by an officer was presented for this proposal: nothing is signed."""


class InsufficientApprovalsError(AuthorizationError):
    """Valid approvals come from fewer distinct institutions than the rules require."""


class DestinationNotAllowlistedError(AuthorizationError):
    """The spend pays a destination that no signed ALLOWLIST_ADDED record of the chain lists for
    its asset (whatever the treasury's allowlist table says)."""


class LegalBasisError(AuthorizationError):
    """The legal basis a statement cites does not authorise this spend under the chain's decrees."""


class UnknownLegalBasisError(LegalBasisError):
    """A statement cites a legal basis that no signed DECREE_ADDED record of the chain holds."""


class LegalBasisExpiredError(LegalBasisError):
    """The decree a statement cites has expired by the signer's clock."""


class AboveDecreeCeilingError(LegalBasisError):
    """The spend's amount exceeds the cited decree's ceiling for its asset (or the decree sets
    no ceiling for that asset at all)."""
