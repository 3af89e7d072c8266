"""The state a replayed roster chain yields, and the builder that applies one change at a time.

``roster.replay`` decides whether a record is signed well enough; this module decides whether
the change itself makes sense (no unknown officer, no reused key id, no second copy of an
allowlist entry, a policy whose hash is its document's) and records it. The result is frozen:
the signer reads officers, keys, policy, allowlist and decrees from it and from nothing else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from custody.authority import roster_bodies as rb
from custody.authority.errors import InvalidChangeError
from custody.authority.officer_key import OfficerPublicKey
from custody.authority.roster_record import RecordKind

__all__ = ["OfficerState", "RosterState", "StateBuilder", "same_address"]

_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def same_address(listed: str, paid: str) -> bool:
    """Whether two spellings name one destination: EVM hex addresses compare without case (the
    EIP-55 checksum is only a spelling of the same 20 bytes); every other address exactly."""
    if _EVM_ADDRESS.fullmatch(listed) and _EVM_ADDRESS.fullmatch(paid):
        return listed.lower() == paid.lower()
    return listed == paid


@dataclass(frozen=True)
class OfficerState:
    """An officer as the chain says now: roles, active keys, and whether still in office."""

    officer_id: str
    name: str
    institution: str
    roles: frozenset[rb.OfficerRole]
    keys: Mapping[str, OfficerPublicKey]
    """Active keys by key id; revoked keys are gone."""
    active: bool = True


@dataclass(frozen=True)
class RosterState:
    """Everything the signer trusts about people and rules, derived only from signed records."""

    name: str
    institutions: Mapping[str, rb.InstitutionEntry]
    rules: rb.RosterRules
    officers: Mapping[str, OfficerState]
    policy_hash: str | None
    """SHA-256 hex of the policy in force (the last POLICY_SET), or ``None`` before the first."""
    policy_document: str | None
    allowlist: tuple[rb.AllowlistAdded, ...]
    decrees: Mapping[str, rb.DecreeAdded]
    head_hash: bytes
    """The last record's hash: a signer can print it, and an auditor compare it."""

    def allows_destination(self, asset: str, address: str) -> bool:
        """Whether a signed allowlist record lists ``address`` for ``asset``."""
        return any(e.asset == asset and same_address(e.address, address) for e in self.allowlist)


class StateBuilder:
    """The mutable state during replay; ``freeze`` makes the ``RosterState``."""

    def __init__(self, genesis: rb.Genesis) -> None:
        self.name = genesis.name
        self.institutions = {i.code: i for i in genesis.institutions}
        self.rules = genesis.rules
        self.officers: dict[str, OfficerState] = {}
        self.used_key_ids: set[str] = set()
        self.policy_hash: str | None = None
        self.policy_document: str | None = None
        self.allowlist: list[rb.AllowlistAdded] = []
        self.decrees: dict[str, rb.DecreeAdded] = {}

    def freeze(self, head_hash: bytes) -> RosterState:
        return RosterState(
            name=self.name,
            institutions=MappingProxyType(dict(self.institutions)),
            rules=self.rules,
            officers=MappingProxyType(dict(self.officers)),
            policy_hash=self.policy_hash,
            policy_document=self.policy_document,
            allowlist=tuple(self.allowlist),
            decrees=MappingProxyType(dict(self.decrees)),
            head_hash=head_hash,
        )

    def _new_keys(self, keys: tuple[OfficerPublicKey, ...]) -> dict[str, OfficerPublicKey]:
        fresh: dict[str, OfficerPublicKey] = {}
        for key in keys:
            if key.key_id in self.used_key_ids or key.key_id in fresh:
                raise InvalidChangeError(
                    f"The key {key.key_id} is already registered (or was revoked); a key id is "
                    "never reused."
                )
            fresh[key.key_id] = key
        return fresh

    def add_officer(self, entry: rb.OfficerEntry) -> None:
        if entry.institution not in self.institutions:
            raise InvalidChangeError(
                f"The officer {entry.officer_id} names unknown institution {entry.institution}."
            )
        if entry.officer_id in self.officers:
            raise InvalidChangeError(
                f"The officer id {entry.officer_id} is already used; ids are never reused."
            )
        keys = self._new_keys(entry.keys)
        self.used_key_ids.update(keys)
        self.officers[entry.officer_id] = OfficerState(
            entry.officer_id,
            entry.name,
            entry.institution,
            entry.roles,
            MappingProxyType(keys),
        )

    def officer(self, officer_id: str) -> OfficerState:
        officer = self.officers.get(officer_id)
        if officer is None or not officer.active:
            raise InvalidChangeError(f"No active officer {officer_id} in the roster.")
        return officer

    def institution_of(self, body: rb.RecordBody) -> str:
        """The institution an officer-scoped change touches (whose admin must sign it)."""
        if isinstance(body, rb.OfficerAdded):
            return body.officer.institution
        if isinstance(body, rb.OfficerRemoved | rb.KeyRotated | rb.RoleChanged):
            return self.officer(body.officer_id).institution
        raise InvalidChangeError(f"{type(body).__name__} is not an officer change.")

    def apply_officer_change(self, kind: RecordKind, body: rb.RecordBody) -> None:
        if isinstance(body, rb.OfficerAdded):
            self.add_officer(body.officer)
        elif isinstance(body, rb.OfficerRemoved):
            officer = self.officer(body.officer_id)
            self.officers[officer.officer_id] = replace(
                officer, active=False, keys=MappingProxyType({})
            )
        elif isinstance(body, rb.KeyRotated):
            self._rotate(body)
        elif isinstance(body, rb.RoleChanged):
            officer = self.officer(body.officer_id)
            granting = kind is RecordKind.ROLE_GRANTED
            if (body.role in officer.roles) == granting:
                state = "already holds" if granting else "does not hold"
                raise InvalidChangeError(f"The officer {officer.officer_id} {state} {body.role}.")
            roles = officer.roles | {body.role} if granting else officer.roles - {body.role}
            self.officers[officer.officer_id] = replace(officer, roles=frozenset(roles))
        else:
            raise InvalidChangeError(f"{kind.value} is not an officer change.")

    def _rotate(self, body: rb.KeyRotated) -> None:
        officer = self.officer(body.officer_id)
        if not body.added and not body.revoked:
            raise InvalidChangeError("A key rotation must add or revoke at least one key.")
        keys = dict(officer.keys)
        for key_id in body.revoked:
            if key_id not in keys:
                raise InvalidChangeError(
                    f"The key {key_id} is not an active key of officer {officer.officer_id}."
                )
            del keys[key_id]
        added = self._new_keys(body.added)
        self.used_key_ids.update(added)
        keys.update(added)
        self.officers[officer.officer_id] = replace(officer, keys=MappingProxyType(keys))

    def require_admins(self) -> None:
        """Refuse a state where an institution has no active admin with an active key."""
        for code in self.institutions:
            if not any(
                o.active and o.institution == code and rb.OfficerRole.ADMIN in o.roles and o.keys
                for o in self.officers.values()
            ):
                raise InvalidChangeError(
                    f"The institution {code} would have no active admin with a key: nobody could "
                    "sign its changes any more."
                )

    def apply_shared(self, sequence: int, body: rb.RecordBody) -> None:
        """Apply a cross-institution change (policy, allowlist, decree)."""
        if isinstance(body, rb.PolicySet):
            actual = hashlib.sha256(body.document.encode("utf-8")).hexdigest()
            if actual != body.policy_hash:
                raise InvalidChangeError(
                    f"Record {sequence}'s policy_hash is not SHA-256 of its document."
                )
            self.policy_hash, self.policy_document = body.policy_hash, body.document
        elif isinstance(body, rb.AllowlistAdded):
            if any(
                e.asset == body.asset and same_address(e.address, body.address)
                for e in self.allowlist
            ):
                raise InvalidChangeError(
                    f"{body.address} is already allowlisted for {body.asset} (record {sequence})."
                )
            self.allowlist.append(body)
        elif isinstance(body, rb.DecreeAdded):
            if body.reference in self.decrees:
                raise InvalidChangeError(f"The decree {body.reference} is already recorded.")
            self.decrees[body.reference] = body
        else:
            raise InvalidChangeError(f"{type(body).__name__} is not a cross-institution change.")
