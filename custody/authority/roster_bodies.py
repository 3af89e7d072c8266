"""The body of each kind of roster record, as typed values and their canonical JSON.

Bodies are plain facts (who, which key, which role, which policy text); the rule for who must
sign each kind lives in ``roster``. Each body class has ``to_json``/``from_json`` and refuses
unknown or missing fields, so a body means one thing only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from custody.authority import canonical
from custody.authority.errors import EncodingError
from custody.authority.officer_key import OfficerPublicKey
from custody.authority.roster_record import RecordKind

__all__ = [
    "GENESIS_FORMAT",
    "AllowlistAdded",
    "DecreeAdded",
    "Genesis",
    "InstitutionEntry",
    "KeyRotated",
    "OfficerAdded",
    "OfficerEntry",
    "OfficerRemoved",
    "OfficerRole",
    "PolicySet",
    "RecordBody",
    "RoleChanged",
    "RosterRules",
    "body_class",
    "parse_body",
]

GENESIS_FORMAT = "national-reserve/roster-genesis/1"
_FINGERPRINT = re.compile(r"[0-9a-f]{8}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class OfficerRole(StrEnum):
    """What an officer may sign (the same names as the treasury's roles)."""

    PROPOSER = "proposer"
    APPROVER = "approver"
    """Signs approval statements (and may veto)."""
    OVERSIGHT = "oversight"
    """May veto a spend."""
    AUDITOR = "auditor"
    ADMIN = "admin"
    """Signs changes to its own institution's officers, and cross-institution policy changes."""


def _obj(obj: canonical.JsonValue, names: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or set(obj) != names:
        raise EncodingError(f"A {what} has exactly the fields {sorted(names)}.")
    return obj


def _text(obj: dict[str, Any], name: str) -> str:
    value = obj[name]
    if not isinstance(value, str) or not value or value != value.strip():
        raise EncodingError(f"The field {name} must be a non-empty string without outer spaces.")
    return value


def _list(obj: dict[str, Any], name: str) -> list[Any]:
    if not isinstance(obj[name], list):
        raise EncodingError(f"The field {name} must be a list.")
    return list(obj[name])


@dataclass(frozen=True)
class InstitutionEntry:
    """A cosigning institution and the ceremony key its share holders' quorum controls."""

    code: str
    name: str
    ceremony_fingerprint: str
    """The cosigner seed's BIP-32 master fingerprint (8 hex), as the ceremony transcript records."""
    ceremony_public_key: bytes
    """The compressed secp256k1 key at ``ceremony_key.CEREMONY_KEY_PATH`` of that seed."""

    def to_json(self) -> dict[str, str]:
        return {
            "code": self.code,
            "name": self.name,
            "ceremony_fingerprint": self.ceremony_fingerprint,
            "ceremony_public_key": self.ceremony_public_key.hex(),
        }

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> InstitutionEntry:
        o = _obj(
            obj, {"code", "name", "ceremony_fingerprint", "ceremony_public_key"}, "institution"
        )
        fingerprint = _text(o, "ceremony_fingerprint")
        if not _FINGERPRINT.fullmatch(fingerprint):
            raise EncodingError("The ceremony fingerprint is 8 lowercase hex characters.")
        return cls(
            _text(o, "code"),
            _text(o, "name"),
            fingerprint,
            canonical.decode_hex(o["ceremony_public_key"], "ceremony_public_key", 33),
        )


@dataclass(frozen=True)
class OfficerEntry:
    """An officer as a record introduces them: identity, institution, roles and public keys."""

    officer_id: str
    name: str
    institution: str
    roles: frozenset[OfficerRole]
    keys: tuple[OfficerPublicKey, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "officer_id": self.officer_id,
            "name": self.name,
            "institution": self.institution,
            "roles": sorted(role.value for role in self.roles),
            "keys": [key.to_json() for key in self.keys],
        }

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> OfficerEntry:
        o = _obj(obj, {"officer_id", "name", "institution", "roles", "keys"}, "officer")
        raw_roles = _list(o, "roles")
        if raw_roles != sorted(set(raw_roles)):
            raise EncodingError("An officer's roles are listed sorted and without repeats.")
        try:
            roles = frozenset(OfficerRole(role) for role in raw_roles)
        except ValueError as exc:
            raise EncodingError(f"Unknown role in {raw_roles!r}.") from exc
        return cls(
            _text(o, "officer_id"),
            _text(o, "name"),
            _text(o, "institution"),
            roles,
            tuple(OfficerPublicKey.from_json(key) for key in _list(o, "keys")),
        )


@dataclass(frozen=True)
class RosterRules:
    """How many distinct institutions must sign: policy-type changes, and spend approvals."""

    change_institutions: int = 2
    """Admins of at least this many institutions sign a policy, allowlist or decree record."""
    approval_institutions: int = 2
    """Approvers of at least this many institutions approve a spend."""

    def to_json(self) -> dict[str, str]:
        return {
            "change_institutions": canonical.encode_uint(self.change_institutions, "rules"),
            "approval_institutions": canonical.encode_uint(self.approval_institutions, "rules"),
        }

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> RosterRules:
        o = _obj(obj, {"change_institutions", "approval_institutions"}, "rules object")
        return cls(
            canonical.decode_uint(o["change_institutions"], "change_institutions"),
            canonical.decode_uint(o["approval_institutions"], "approval_institutions"),
        )


@dataclass(frozen=True)
class Genesis:
    """The first record: the institutions, their first admins, and the rules."""

    name: str
    """Names this roster (e.g. the deployment), so two rosters never share a genesis hash."""
    institutions: tuple[InstitutionEntry, ...]
    admins: tuple[OfficerEntry, ...]
    rules: RosterRules = field(default_factory=RosterRules)

    def to_json(self) -> dict[str, object]:
        return {
            "format": GENESIS_FORMAT,
            "name": self.name,
            "institutions": [i.to_json() for i in self.institutions],
            "admins": [a.to_json() for a in self.admins],
            "rules": self.rules.to_json(),
        }

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> Genesis:
        o = _obj(obj, {"format", "name", "institutions", "admins", "rules"}, "genesis")
        if o["format"] != GENESIS_FORMAT:
            raise EncodingError(f"Unknown genesis format {o['format']!r}.")
        return cls(
            _text(o, "name"),
            tuple(InstitutionEntry.from_json(i) for i in _list(o, "institutions")),
            tuple(OfficerEntry.from_json(a) for a in _list(o, "admins")),
            RosterRules.from_json(o["rules"]),
        )


@dataclass(frozen=True)
class OfficerAdded:
    officer: OfficerEntry

    def to_json(self) -> dict[str, object]:
        return {"officer": self.officer.to_json()}

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> OfficerAdded:
        return cls(OfficerEntry.from_json(_obj(obj, {"officer"}, "officer_added")["officer"]))


@dataclass(frozen=True)
class OfficerRemoved:
    officer_id: str

    def to_json(self) -> dict[str, object]:
        return {"officer_id": self.officer_id}

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> OfficerRemoved:
        return cls(_text(_obj(obj, {"officer_id"}, "officer_removed"), "officer_id"))


@dataclass(frozen=True)
class KeyRotated:
    """Keys added to and key ids revoked from one officer; a revoked key id never returns."""

    officer_id: str
    added: tuple[OfficerPublicKey, ...]
    revoked: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "officer_id": self.officer_id,
            "added": [key.to_json() for key in self.added],
            "revoked": list(self.revoked),
        }

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> KeyRotated:
        o = _obj(obj, {"officer_id", "added", "revoked"}, "key_rotated")
        revoked = _list(o, "revoked")
        if not all(isinstance(key_id, str) for key_id in revoked):
            raise EncodingError("Revoked key ids are strings.")
        return cls(
            _text(o, "officer_id"),
            tuple(OfficerPublicKey.from_json(key) for key in _list(o, "added")),
            tuple(revoked),
        )


@dataclass(frozen=True)
class RoleChanged:
    """The body of both ROLE_GRANTED and ROLE_REVOKED."""

    officer_id: str
    role: OfficerRole

    def to_json(self) -> dict[str, object]:
        return {"officer_id": self.officer_id, "role": self.role.value}

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> RoleChanged:
        o = _obj(obj, {"officer_id", "role"}, "role change")
        try:
            return cls(_text(o, "officer_id"), OfficerRole(o["role"]))
        except ValueError as exc:
            raise EncodingError(f"Unknown role {o['role']!r}.") from exc


@dataclass(frozen=True)
class PolicySet:
    """A policy version: its document (the treasury's text) and SHA-256 of its UTF-8 bytes."""

    policy_hash: str
    document: str

    def to_json(self) -> dict[str, object]:
        return {"policy_hash": self.policy_hash, "document": self.document}

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> PolicySet:
        o = _obj(obj, {"policy_hash", "document"}, "policy_set")
        if not isinstance(o["document"], str) or not _SHA256_HEX.fullmatch(str(o["policy_hash"])):
            raise EncodingError("A policy_set has a document string and a 64-hex policy_hash.")
        return cls(o["policy_hash"], o["document"])


@dataclass(frozen=True)
class AllowlistAdded:
    """A destination that spends of ``asset`` may pay."""

    asset: str
    address: str
    label: str

    def to_json(self) -> dict[str, object]:
        return {"asset": self.asset, "address": self.address, "label": self.label}

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> AllowlistAdded:
        o = _obj(obj, {"asset", "address", "label"}, "allowlist_added")
        return cls(_text(o, "asset"), _text(o, "address"), _text(o, "label"))


@dataclass(frozen=True)
class DecreeAdded:
    """A legal basis: spends citing it may commit up to each ceiling until it expires."""

    reference: str
    title: str
    expires_at: datetime
    ceilings: Mapping[str, int]
    """Asset code to base units."""

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "title": self.title,
            "expires_at": canonical.encode_utc(self.expires_at, "expires_at"),
            "ceilings": {
                asset: canonical.encode_uint(amount, "ceiling")
                for asset, amount in self.ceilings.items()
            },
        }

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> DecreeAdded:
        o = _obj(obj, {"reference", "title", "expires_at", "ceilings"}, "decree_added")
        if not isinstance(o["ceilings"], dict):
            raise EncodingError("A decree's ceilings are an object of asset to amount.")
        return cls(
            _text(o, "reference"),
            _text(o, "title"),
            canonical.decode_utc(o["expires_at"], "expires_at"),
            {k: canonical.decode_uint(v, "ceiling") for k, v in o["ceilings"].items()},
        )


class RecordBody(Protocol):
    """What every body class offers."""

    def to_json(self) -> Any: ...


_PARSERS: dict[RecordKind, Callable[[canonical.JsonValue], RecordBody]] = {
    RecordKind.GENESIS: Genesis.from_json,
    RecordKind.OFFICER_ADDED: OfficerAdded.from_json,
    RecordKind.OFFICER_REMOVED: OfficerRemoved.from_json,
    RecordKind.KEY_ROTATED: KeyRotated.from_json,
    RecordKind.ROLE_GRANTED: RoleChanged.from_json,
    RecordKind.ROLE_REVOKED: RoleChanged.from_json,
    RecordKind.POLICY_SET: PolicySet.from_json,
    RecordKind.ALLOWLIST_ADDED: AllowlistAdded.from_json,
    RecordKind.DECREE_ADDED: DecreeAdded.from_json,
}


def body_class(kind: RecordKind) -> Callable[[canonical.JsonValue], RecordBody]:
    """The parser of ``kind``'s body."""
    return _PARSERS[kind]


def parse_body(kind: RecordKind, body: bytes) -> RecordBody:
    """Parse a record body of ``kind`` from its canonical bytes."""
    parsed = _PARSERS[kind](canonical.parse(body))
    if canonical.encode(parsed.to_json()) != body:
        raise EncodingError(f"The {kind.value} body is not in its canonical form.")
    return parsed
