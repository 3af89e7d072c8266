"""The story's signed roster: a genesis anchored in the ceremonies, the officers, the policy.

What the institutions do once the treasury knows its officers (see ``treasury.authority.genesis``
for the same steps as CLI commands):

1. each institution's share holders derive its ceremony public key from their shares;
2. the genesis lists the institutions, their ceremony keys, and each one's first admin with the
   admin's officer key; each institution's share quorum signs it with the ceremony key, and it is
   committed;
3. each admin signs in its own institution's officers and their keys (``OFFICER_ADDED``);
4. admins of two institutions sign the treasury's policy in force into the chain (``POLICY_SET``),
   so the policy hash the approvals name is the one the signers find in the roster.

The custody signers replay exactly these records before they sign anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from custody.authority import (
    OfficerAdded,
    OfficerEntry,
    OfficerRole,
    PolicySet,
    RecordKind,
    RecordSignature,
    RosterRecord,
    next_record,
    policy_hash_of,
)
from custody.authority.roster_bodies import RecordBody
from custody.clock import Clock
from treasury.authority.errors import RosterInputError
from treasury.authority.genesis import build_genesis, ceremony_key_of, commit_genesis, sign_genesis
from treasury.authority.store import append_record, load_records, require_roster_state
from treasury.officers import Officer
from treasury.policy import current_policy
from treasury.policy.tables import PolicyVersionRow
from treasury.story.officer_keys import OfficerKeyring

__all__ = ["RosterSummary", "found_roster"]

SharesOf = Callable[[str], tuple[list[str], str]]
"""Institution code -> what a quorum of its share holders brings: their words and passphrase."""


@dataclass(frozen=True)
class RosterSummary:
    """What the founded roster holds, for the story to print."""

    genesis_hash: str
    ceremony_signers: tuple[str, ...]
    """Institution codes whose ceremony keys signed the genesis, in signing order."""
    officers: int
    keys: int
    genesis_admins: int
    """Officers the genesis lists (each institution's first admin); the rest were signed in."""
    policy_version: int
    policy_signers: tuple[str, ...]
    """Institution codes whose admins signed the policy into the chain."""


@dataclass(frozen=True)
class _Founders:
    sessions: sessionmaker[Session]
    officers: Mapping[str, Officer]
    keys: OfficerKeyring
    admins: Mapping[str, str]
    clock: Clock

    def signed(self, record: RosterRecord, signers: Sequence[str]) -> RosterRecord:
        """``record`` with the signatures of the named officers, each made with their key file."""
        for name in signers:
            key = self.keys[name]
            record = record.with_signature(
                RecordSignature(
                    str(self.officers[name].id), key.public.key_id, key.sign(record.record_hash())
                )
            )
        return record

    def append(self, kind: RecordKind, body: RecordBody, signers: Sequence[str]) -> None:
        """Sign the next record and store it (the store replays the chain with it first)."""
        with self.sessions() as session:
            previous = load_records(session)[-1]
        record = self.signed(next_record(previous, kind, body), signers)
        with self.sessions.begin() as session:
            append_record(session, record, clock=self.clock)


def _genesis(founders: _Founders, shares_of: SharesOf) -> RosterRecord:
    codes = list(founders.admins)
    with founders.sessions() as session:
        ceremony_keys = {
            code: ceremony_key_of(session, code, *shares_of(code))[1] for code in codes
        }
        admin_keys = {code: founders.keys[founders.admins[code]].public for code in codes}
        genesis = build_genesis(session, admin_keys, ceremony_keys, clock=founders.clock)
        for code in codes:
            genesis = sign_genesis(session, genesis, code, *shares_of(code))
    with founders.sessions.begin() as session:
        commit_genesis(session, genesis, clock=founders.clock)
    return genesis


def _policy_document(session: Session) -> tuple[int, str]:
    """The version and exact stored text of the treasury's policy in force."""
    policy = current_policy(session)
    row = session.get(PolicyVersionRow, policy.version)
    if row is None or policy_hash_of(row.document) != policy.content_hash:
        raise RosterInputError(
            f"Policy version {policy.version}'s stored document does not hash to its recorded "
            "hash; it cannot be signed into the roster."
        )
    return policy.version, row.document


def found_roster(
    sessions: sessionmaker[Session],
    officers: Mapping[str, Officer],
    keys: OfficerKeyring,
    *,
    admins: Mapping[str, str],
    shares_of: SharesOf,
    policy_signers: Sequence[str],
    clock: Clock,
) -> RosterSummary:
    """Found the signed roster of every officer in ``keys`` and sign the policy in force into it.

    ``admins`` maps each institution with a ceremony to its admin's officer name (the genesis
    admin); every other officer holding a key is signed in by its own institution's admin;
    ``policy_signers`` are the institutions whose admins sign the policy.
    """
    founders = _Founders(sessions, officers, keys, admins, clock)
    genesis = _genesis(founders, shares_of)
    for name, officer in officers.items():
        if name not in keys or name in admins.values():
            continue
        entry = OfficerEntry(
            str(officer.id),
            officer.name,
            officer.institution_code,
            frozenset(OfficerRole(role.value) for role in officer.roles),
            (keys[name].public,),
        )
        founders.append(
            RecordKind.OFFICER_ADDED, OfficerAdded(entry), [admins[officer.institution_code]]
        )
    with sessions() as session:
        version, document = _policy_document(session)
    founders.append(
        RecordKind.POLICY_SET,
        PolicySet(policy_hash_of(document), document),
        [admins[code] for code in policy_signers],
    )
    with sessions() as session:
        state = require_roster_state(session)
    return RosterSummary(
        genesis_hash=genesis.record_hash().hex(),
        ceremony_signers=tuple(s.signer for s in genesis.signatures),
        officers=sum(1 for o in state.officers.values() if o.active),
        keys=sum(len(o.keys) for o in state.officers.values() if o.active),
        genesis_admins=len(admins),
        policy_version=version,
        policy_signers=tuple(policy_signers),
    )
