"""One link of the roster and policy chain: a signed, hash-linked record of one change.

Every change to who may sign (officers, keys, roles) and to what they sign under (policy,
allowlist, decrees) is a record. Its hash covers the format, sequence, previous record's hash,
kind and body -- everything but the signatures, which are over that hash. Editing, dropping,
reordering or inserting a record therefore breaks either a signature or the next link, and
``roster.replay`` names which.

The hash is domain-separated (``RECORD_DOMAIN_TAG``) from approval statements, so a signature on
one can never be presented as the other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from custody.authority import canonical
from custody.authority.errors import EncodingError
from custody.authority.signature import OfficerSignature, signature_from_json

__all__ = [
    "CEREMONY_KEY_ID",
    "GENESIS_PREV_HASH",
    "RECORD_DOMAIN_TAG",
    "RECORD_FORMAT",
    "RecordKind",
    "RecordSignature",
    "RosterRecord",
]

RECORD_FORMAT = "national-reserve/roster-record/1"
RECORD_DOMAIN_TAG = b"national-reserve/roster-record/v1\x00"
"""Prefixed to the record's canonical header before hashing."""
GENESIS_PREV_HASH = bytes(32)
"""The genesis record links to 32 zero bytes."""
CEREMONY_KEY_ID = "ceremony"
"""The ``key_id`` of a genesis signature by an institution's ceremony key (signer: its code)."""
HASH_BYTES = 32


class RecordKind(StrEnum):
    """What a record changes; each kind has its own body and signature rule (see ``roster``)."""

    GENESIS = "genesis"
    OFFICER_ADDED = "officer_added"
    OFFICER_REMOVED = "officer_removed"
    KEY_ROTATED = "key_rotated"
    ROLE_GRANTED = "role_granted"
    ROLE_REVOKED = "role_revoked"
    POLICY_SET = "policy_set"
    ALLOWLIST_ADDED = "allowlist_added"
    DECREE_ADDED = "decree_added"


@dataclass(frozen=True)
class RecordSignature:
    """One signature over a record's hash.

    ``signer`` is an officer id, or for the genesis an institution code with ``key_id`` equal to
    ``CEREMONY_KEY_ID`` (a signature by that institution's ceremony key).
    """

    signer: str
    key_id: str
    signature: OfficerSignature

    def to_json(self) -> dict[str, object]:
        return {"signer": self.signer, "key_id": self.key_id, "signature": self.signature.to_json()}

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> RecordSignature:
        if not isinstance(obj, dict) or set(obj) != {"signer", "key_id", "signature"}:
            raise EncodingError("A record signature has exactly signer, key_id, signature.")
        if not isinstance(obj["signer"], str) or not isinstance(obj["key_id"], str):
            raise EncodingError("A record signature's signer and key_id are strings.")
        return cls(obj["signer"], obj["key_id"], signature_from_json(obj["signature"]))


@dataclass(frozen=True)
class RosterRecord:
    """A change to the roster or policy, linked to the previous record and signed."""

    sequence: int
    prev_hash: bytes
    kind: RecordKind
    body: bytes
    """The change's canonical JSON (``roster_bodies``); parsed strictly on construction."""
    signatures: tuple[RecordSignature, ...] = ()

    def __post_init__(self) -> None:
        canonical.encode_uint(self.sequence, "sequence")
        if len(self.prev_hash) != HASH_BYTES:
            raise EncodingError("A record's prev_hash is 32 bytes.")
        if not isinstance(self.kind, RecordKind):
            raise EncodingError("A record's kind must be a RecordKind.")
        canonical.parse(self.body)

    def header(self) -> bytes:
        """The canonical bytes that are hashed: everything except the signatures."""
        return canonical.encode(
            {
                "format": RECORD_FORMAT,
                "sequence": canonical.encode_uint(self.sequence, "sequence"),
                "prev_hash": self.prev_hash.hex(),
                "kind": self.kind.value,
                "body": canonical.parse(self.body),
            }
        )

    def record_hash(self) -> bytes:
        """SHA-256(``RECORD_DOMAIN_TAG`` || header): what signers sign and the next record links."""
        return hashlib.sha256(RECORD_DOMAIN_TAG + self.header()).digest()

    def with_signature(self, signature: RecordSignature) -> RosterRecord:
        """A copy with one more signature (signatures are not part of the hash)."""
        return RosterRecord(
            self.sequence, self.prev_hash, self.kind, self.body, (*self.signatures, signature)
        )

    def to_json(self) -> dict[str, object]:
        """The whole record, for storage or transport (body as its canonical text)."""
        return {
            "format": RECORD_FORMAT,
            "sequence": canonical.encode_uint(self.sequence, "sequence"),
            "prev_hash": self.prev_hash.hex(),
            "kind": self.kind.value,
            "body": self.body.decode("utf-8"),
            "signatures": [s.to_json() for s in self.signatures],
        }

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> RosterRecord:
        """Rebuild a record from ``to_json()``'s object, strictly."""
        expected = {"format", "sequence", "prev_hash", "kind", "body", "signatures"}
        if not isinstance(obj, dict) or set(obj) != expected:
            raise EncodingError(f"A roster record has exactly the fields {sorted(expected)}.")
        if obj["format"] != RECORD_FORMAT:
            raise EncodingError(f"Unknown roster record format {obj['format']!r}.")
        try:
            kind = RecordKind(obj["kind"])
        except ValueError as exc:
            raise EncodingError(f"Unknown roster record kind {obj['kind']!r}.") from exc
        if not isinstance(obj["body"], str) or not isinstance(obj["signatures"], list):
            raise EncodingError("A record's body is a string and its signatures a list.")
        return cls(
            sequence=canonical.decode_uint(obj["sequence"], "sequence"),
            prev_hash=canonical.decode_hex(obj["prev_hash"], "prev_hash", HASH_BYTES),
            kind=kind,
            body=obj["body"].encode("utf-8"),
            signatures=tuple(RecordSignature.from_json(s) for s in obj["signatures"]),
        )
