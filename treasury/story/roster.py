"""The story's signed roster: a genesis anchored in the ceremonies, the officers, the policy, the
allowlist and the decree.

What the institutions do once the treasury knows its officers (see ``treasury.authority.genesis``
and ``treasury.authority.changes`` for the same steps as CLI commands):

1. each institution's share holders derive its ceremony public key from their shares;
2. the genesis lists the institutions, their ceremony keys, and each one's first admin with the
   admin's officer key; each institution's share quorum signs it with the ceremony key, and it is
   committed;
3. each admin signs in its own institution's officers and their keys (``OFFICER_ADDED``);
4. admins of two institutions sign the treasury's policy in force into the chain (``POLICY_SET``),
   so the policy hash the approvals name is the one the signers find in the roster;
5. the same admins sign in the destinations the spends pay (``ALLOWLIST_ADDED``) and the decree
   they cite (``DECREE_ADDED``): the signers pay only chain-listed destinations, under a chain
   decree, whatever the treasury's own tables say.

Every change after the genesis is drafted, signed with the admins' key files and committed
through ``treasury.authority.changes``, exactly as `treasury roster draft/sign/commit` does; the
custody signers replay these records before they sign anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from custody.authority import RosterRecord
from custody.clock import Clock
from treasury.authority import changes
from treasury.authority.genesis import build_genesis, ceremony_key_of, commit_genesis, sign_genesis
from treasury.authority.store import require_roster_state
from treasury.officers import Officer
from treasury.policy import current_policy, legal_basis_by_reference
from treasury.story.officer_keys import OfficerKeyring

__all__ = ["AllowlistItem", "RosterSummary", "found_roster"]

SharesOf = Callable[[str], tuple[list[str], str]]
"""Institution code -> what a quorum of its share holders brings: their words and passphrase."""


@dataclass(frozen=True)
class AllowlistItem:
    """A destination the story's spends pay: asset, address, and who it is."""

    asset: str
    address: str
    label: str


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
    """Institution codes whose admins signed the policy, allowlist and decree into the chain."""
    allowlist: int = 0
    """Destinations signed into the chain."""
    decree: str | None = None
    """The decree signed into the chain, by reference."""


@dataclass(frozen=True)
class _Founders:
    sessions: sessionmaker[Session]
    officers: Mapping[str, Officer]
    keys: OfficerKeyring
    admins: Mapping[str, str]
    clock: Clock

    def change(self, draft: Callable[[Session], RosterRecord], signers: Sequence[str]) -> None:
        """Draft the next record, have each named officer sign it with their key file, commit."""
        with self.sessions() as session:
            record = draft(session)
            for name in signers:
                key = self.keys[name]
                passphrase = key.passphrase_file.read_text(encoding="utf-8")
                record = changes.sign_record(session, record, key.key_file, passphrase)
        with self.sessions.begin() as session:
            changes.commit_record(session, record, clock=self.clock)


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


def _decree_draft(reference: str, clock: Clock) -> Callable[[Session], RosterRecord]:
    """Draft the treasury's registered decree ``reference`` as a chain decree.

    Its expiry is rounded down to whole seconds (the chain's precision; never later than the
    treasury's own).
    """

    def draft(session: Session) -> RosterRecord:
        _row_id, basis = legal_basis_by_reference(session, reference)
        expires_at = basis.expires_at
        if expires_at.tzinfo is None:  # SQLite returns UTC times without their zone
            expires_at = expires_at.replace(tzinfo=UTC)
        return changes.draft_decree_added(
            session,
            basis.reference,
            basis.title,
            expires_at.replace(microsecond=0),
            dict(basis.ceilings),
            clock=clock,
        )

    return draft


def found_roster(
    sessions: sessionmaker[Session],
    officers: Mapping[str, Officer],
    keys: OfficerKeyring,
    *,
    admins: Mapping[str, str],
    shares_of: SharesOf,
    policy_signers: Sequence[str],
    clock: Clock,
    allowlist: Sequence[AllowlistItem] = (),
    decree: str | None = None,
) -> RosterSummary:
    """Found the signed roster of every officer in ``keys``; sign the policy in force, the
    ``allowlist`` destinations and the treasury's ``decree`` into it.

    ``admins`` maps each institution with a ceremony to its admin's officer name (the genesis
    admin); every other officer holding a key is signed in by its own institution's admin;
    ``policy_signers`` are the institutions whose admins sign the policy, allowlist and decree.
    """
    founders = _Founders(sessions, officers, keys, admins, clock)
    genesis = _genesis(founders, shares_of)
    for name, officer in officers.items():
        if name not in keys or name in admins.values():
            continue
        founders.change(
            partial(
                changes.draft_officer_added,
                officer_id=officer.id,
                keys=[keys[name].public],
                clock=clock,
            ),
            [admins[officer.institution_code]],
        )
    shared_signers = [admins[code] for code in policy_signers]
    with sessions() as session:
        version = current_policy(session).version
    founders.change(lambda session: changes.draft_policy_set(session, version), shared_signers)
    for item in allowlist:
        founders.change(
            partial(
                changes.draft_allowlist_added,
                asset=item.asset,
                address=item.address,
                label=item.label,
            ),
            shared_signers,
        )
    if decree is not None:
        founders.change(_decree_draft(decree, clock), shared_signers)
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
        allowlist=len(state.allowlist),
        decree=decree,
    )
