"""The approval statement: exactly what one officer approves or vetoes, in bytes a key signs.

Today an approval is a database row, so whoever can write the database can re-point it. A
statement instead names everything the signer can check against the transaction it decodes --
chain, vault, asset, amount, destination, the transaction's own hash, the Safe nonce or the
maximum fee -- plus the policy in force, the legal basis, an expiry and who signs. The officer
signs ``digest()``; the signer recomputes it from the fields and compares the fields with the
transaction. Nothing is left for a server to fill in later.

The encoding is versioned (``format``) and the digest is domain-separated (``DOMAIN_TAG``), so a
statement signature can never be replayed as a roster record, a Safe transaction or a Bitcoin
message, and a future version cannot be confused with this one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum

from custody.authority import canonical
from custody.authority.errors import EncodingError

__all__ = [
    "BITCOIN_CHAIN_PREFIX",
    "DOMAIN_TAG",
    "EVM_CHAIN_PREFIX",
    "STATEMENT_FORMAT",
    "ApprovalStatement",
    "StatementKind",
]

STATEMENT_FORMAT = "national-reserve/approval/1"
"""The ``format`` field of every statement of this version."""
DOMAIN_TAG = b"national-reserve/approval-statement/v1\x00"
"""Prefixed to the encoding before hashing, so the digest means 'approval statement v1' only."""
BITCOIN_CHAIN_PREFIX = "bitcoin:"
"""Bitcoin chains are named ``bitcoin:<network>`` (``bitcoin:regtest``, ``bitcoin:main``)."""
EVM_CHAIN_PREFIX = "eip155:"
"""EVM chains are named by CAIP-2 ``eip155:<chain id>`` (``eip155:31337``)."""

_CHAIN_PATTERN = re.compile(r"(bitcoin:[a-z0-9]+|eip155:[1-9][0-9]*)")
_BITCOIN_TX_HASH = re.compile(r"[0-9a-f]{64}")
_EVM_TX_HASH = re.compile(r"0x[0-9a-f]{64}")
_POLICY_HASH = re.compile(r"[0-9a-f]{64}")
_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class StatementKind(StrEnum):
    """Whether the officer approves the spend or vetoes its proposal."""

    APPROVE = "approve"
    VETO = "veto"


@dataclass(frozen=True)
class ApprovalStatement:
    """One officer's signed word on one spend: every field is checked by the signer."""

    kind: StatementKind
    proposal_id: str
    chain: str
    """``bitcoin:<network>`` or ``eip155:<chain id>``."""
    vault: str
    """The vault's name, shown to people; ``vault_id`` is what is compared."""
    vault_id: str
    """Bitcoin: the vault's descriptor with checksum (or its SHA-256); EVM: the Safe's address."""
    asset: str
    amount: int
    """In the asset's base units (sats, wei, token units); encoded as a decimal string."""
    destination: str
    tx_hash: str
    """Bitcoin: the unsigned transaction's txid (64 hex); EVM: the SafeTx hash (0x + 64 hex)."""
    safe_nonce: int | None
    """The Safe nonce the SafeTx uses (EVM only)."""
    max_fee: int | None
    """The most fee the spend may pay, in sats (Bitcoin only)."""
    policy_hash: str
    """SHA-256 (hex) of the policy document in force, as the roster chain records it."""
    legal_basis: str
    expires_at: datetime
    """After this moment (UTC, whole seconds) the statement counts for nothing."""
    officer_id: str
    institution: str
    format: str = STATEMENT_FORMAT

    def __post_init__(self) -> None:
        if self.format != STATEMENT_FORMAT:
            raise EncodingError(f"Unknown statement format {self.format!r}.")
        if not isinstance(self.kind, StatementKind):
            raise EncodingError("The field kind must be a StatementKind.")
        for name in (
            "proposal_id",
            "vault",
            "vault_id",
            "asset",
            "destination",
            "legal_basis",
            "officer_id",
            "institution",
        ):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or value != value.strip():
                raise EncodingError(
                    f"The field {name} must be a non-empty string without surrounding spaces."
                )
        if not _CHAIN_PATTERN.fullmatch(self.chain):
            raise EncodingError(
                f"The field chain must be bitcoin:<network> or eip155:<id>, got {self.chain!r}."
            )
        canonical.encode_uint(self.amount, "amount")
        if self.amount == 0:
            raise EncodingError("The field amount must be positive.")
        if not _POLICY_HASH.fullmatch(self.policy_hash):
            raise EncodingError("The field policy_hash must be 64 lowercase hex characters.")
        canonical.encode_utc(self.expires_at, "expires_at")
        if self.is_bitcoin:
            self._check_bitcoin()
        else:
            self._check_evm()

    def _check_bitcoin(self) -> None:
        if not _BITCOIN_TX_HASH.fullmatch(self.tx_hash):
            raise EncodingError("The field tx_hash must be a txid of 64 lowercase hex characters.")
        if self.safe_nonce is not None:
            raise EncodingError("The field safe_nonce must be null on a Bitcoin chain.")
        if self.max_fee is None:
            raise EncodingError("The field max_fee is required on a Bitcoin chain.")
        canonical.encode_uint(self.max_fee, "max_fee")

    def _check_evm(self) -> None:
        if not _EVM_TX_HASH.fullmatch(self.tx_hash):
            raise EncodingError("The field tx_hash must be a SafeTx hash, 0x + 64 lowercase hex.")
        if not _EVM_ADDRESS.fullmatch(self.vault_id):
            raise EncodingError("The field vault_id must be the Safe's 0x address on EVM chains.")
        if self.max_fee is not None:
            raise EncodingError("The field max_fee must be null on an EVM chain.")
        if self.safe_nonce is None:
            raise EncodingError("The field safe_nonce is required on an EVM chain.")
        canonical.encode_uint(self.safe_nonce, "safe_nonce")

    @property
    def is_bitcoin(self) -> bool:
        return self.chain.startswith(BITCOIN_CHAIN_PREFIX)

    def to_json(self) -> dict[str, str | None]:
        """The statement as the JSON object that is encoded (every value a string or null)."""
        return {
            "format": self.format,
            "kind": self.kind.value,
            "proposal_id": self.proposal_id,
            "chain": self.chain,
            "vault": self.vault,
            "vault_id": self.vault_id,
            "asset": self.asset,
            "amount": canonical.encode_uint(self.amount, "amount"),
            "destination": self.destination,
            "tx_hash": self.tx_hash,
            "safe_nonce": None
            if self.safe_nonce is None
            else canonical.encode_uint(self.safe_nonce, "safe_nonce"),
            "max_fee": None
            if self.max_fee is None
            else canonical.encode_uint(self.max_fee, "max_fee"),
            "policy_hash": self.policy_hash,
            "legal_basis": self.legal_basis,
            "expires_at": canonical.encode_utc(self.expires_at, "expires_at"),
            "officer_id": self.officer_id,
            "institution": self.institution,
        }

    def encode(self) -> bytes:
        """The canonical bytes of this statement (sorted keys, no spaces, UTF-8, no numbers)."""
        return canonical.encode(self.to_json())

    def digest(self) -> bytes:
        """SHA-256(``DOMAIN_TAG`` || ``encode()``): the 32 bytes an officer's key signs."""
        return hashlib.sha256(DOMAIN_TAG + self.encode()).digest()

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> ApprovalStatement:
        """Build from the decoded JSON object, refusing unknown, missing or mistyped fields."""
        if not isinstance(obj, dict):
            raise EncodingError("A statement must be a JSON object.")
        expected = {f.name for f in fields(cls)}
        if set(obj) != expected:
            missing = sorted(expected - set(obj))
            unknown = sorted(set(obj) - expected)
            raise EncodingError(f"Statement fields: missing {missing}, unknown {unknown}.")
        for name in expected - {"safe_nonce", "max_fee"}:
            if not isinstance(obj[name], str):
                raise EncodingError(f"The field {name} must be a string.")
        try:
            kind = StatementKind(obj["kind"])
        except ValueError as exc:
            raise EncodingError(f"Unknown statement kind {obj['kind']!r}.") from exc
        return cls(
            format=obj["format"],
            kind=kind,
            proposal_id=obj["proposal_id"],
            chain=obj["chain"],
            vault=obj["vault"],
            vault_id=obj["vault_id"],
            asset=obj["asset"],
            amount=canonical.decode_uint(obj["amount"], "amount"),
            destination=obj["destination"],
            tx_hash=obj["tx_hash"],
            safe_nonce=_optional_uint(obj["safe_nonce"], "safe_nonce"),
            max_fee=_optional_uint(obj["max_fee"], "max_fee"),
            policy_hash=obj["policy_hash"],
            legal_basis=obj["legal_basis"],
            expires_at=canonical.decode_utc(obj["expires_at"], "expires_at"),
            officer_id=obj["officer_id"],
            institution=obj["institution"],
        )

    @classmethod
    def parse(cls, data: bytes) -> ApprovalStatement:
        """Decode canonical bytes strictly: any other encoding of a statement is refused."""
        statement = cls.from_json(canonical.parse(data))
        if statement.encode() != data:
            raise EncodingError("The statement bytes are not its canonical encoding.")
        return statement


def _optional_uint(value: canonical.JsonValue, field: str) -> int | None:
    return None if value is None else canonical.decode_uint(value, field)
