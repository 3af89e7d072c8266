"""The officers' authority, verified where keys are used: statements, keys, roster, quorum.

A national reserve must not move money on the word of a server or a database row. Officers sign
canonical approval statements with their own keys (a CLI key file or a WebAuthn passkey); who may
sign what comes from a hash-linked roster chain whose genesis each institution's ceremony key
signed; and the signer, after recombining its seed, replays that chain and checks a quorum of
statements against the transaction it decoded itself (``verify_authorization``).

Pure logic: no database, no network, no clock of its own. Custody layer: nothing here imports
``treasury`` or ``reporting``.
"""

from __future__ import annotations

from custody.authority.ceremony_key import (
    CEREMONY_KEY_PATH,
    ceremony_public_key,
    sign_with_ceremony_key,
)
from custody.authority.errors import (
    AuthorityError,
    AuthorizationError,
    BrokenChainError,
    CeremonySignatureError,
    ChangeQuorumError,
    EncodingError,
    ExpiredStatementError,
    FeeAboveMaximumError,
    GenesisError,
    HighSSignatureError,
    InsufficientApprovalsError,
    InvalidChangeError,
    KeyFileError,
    KeyFileExistsError,
    MalformedSignatureError,
    MissingRoleError,
    OfficerKeyError,
    PolicyMismatchError,
    RosterError,
    SignatureError,
    SignatureMismatchError,
    StatementMismatchError,
    UnauthorizedChangeError,
    UnknownSignerError,
    VetoedError,
    WebAuthnAssertionError,
    WrongPassphraseError,
)
from custody.authority.gate import AuthorityEvidence, approvers_line, check_before_signing
from custody.authority.key_file import create_key_file, load_public_key, sign_digest
from custody.authority.officer_key import OfficerKeyKind, OfficerPublicKey
from custody.authority.quorum import (
    SignedStatement,
    SpendUnderReview,
    VerifiedApprover,
    VerifiedAuthorization,
    verify_authorization,
    verify_signer,
)
from custody.authority.roster import (
    active_key,
    next_record,
    policy_hash_of,
    replay,
    verify_genesis_for,
)
from custody.authority.roster_bodies import (
    AllowlistAdded,
    DecreeAdded,
    Genesis,
    InstitutionEntry,
    KeyRotated,
    OfficerAdded,
    OfficerEntry,
    OfficerRemoved,
    OfficerRole,
    PolicySet,
    RoleChanged,
    RosterRules,
)
from custody.authority.roster_record import (
    CEREMONY_KEY_ID,
    RecordKind,
    RecordSignature,
    RosterRecord,
)
from custody.authority.roster_state import OfficerState, RosterState
from custody.authority.signature import (
    OfficerSignature,
    Secp256k1Signature,
    WebAuthnSignature,
    signature_from_json,
    verify_signature,
)
from custody.authority.statement import (
    DOMAIN_TAG,
    STATEMENT_FORMAT,
    ApprovalStatement,
    StatementKind,
)

__all__ = [
    "CEREMONY_KEY_ID",
    "CEREMONY_KEY_PATH",
    "DOMAIN_TAG",
    "STATEMENT_FORMAT",
    "AllowlistAdded",
    "ApprovalStatement",
    "AuthorityError",
    "AuthorityEvidence",
    "AuthorizationError",
    "BrokenChainError",
    "CeremonySignatureError",
    "ChangeQuorumError",
    "DecreeAdded",
    "EncodingError",
    "ExpiredStatementError",
    "FeeAboveMaximumError",
    "Genesis",
    "GenesisError",
    "HighSSignatureError",
    "InstitutionEntry",
    "InsufficientApprovalsError",
    "InvalidChangeError",
    "KeyFileError",
    "KeyFileExistsError",
    "KeyRotated",
    "MalformedSignatureError",
    "MissingRoleError",
    "OfficerAdded",
    "OfficerEntry",
    "OfficerKeyError",
    "OfficerKeyKind",
    "OfficerPublicKey",
    "OfficerRemoved",
    "OfficerRole",
    "OfficerSignature",
    "OfficerState",
    "PolicyMismatchError",
    "PolicySet",
    "RecordKind",
    "RecordSignature",
    "RoleChanged",
    "RosterError",
    "RosterRecord",
    "RosterRules",
    "RosterState",
    "Secp256k1Signature",
    "SignatureError",
    "SignatureMismatchError",
    "SignedStatement",
    "SpendUnderReview",
    "StatementKind",
    "StatementMismatchError",
    "UnauthorizedChangeError",
    "UnknownSignerError",
    "VerifiedApprover",
    "VerifiedAuthorization",
    "VetoedError",
    "WebAuthnAssertionError",
    "WebAuthnSignature",
    "WrongPassphraseError",
    "active_key",
    "approvers_line",
    "ceremony_public_key",
    "check_before_signing",
    "create_key_file",
    "load_public_key",
    "next_record",
    "policy_hash_of",
    "replay",
    "sign_digest",
    "sign_with_ceremony_key",
    "signature_from_json",
    "verify_authorization",
    "verify_genesis_for",
    "verify_signature",
    "verify_signer",
]
