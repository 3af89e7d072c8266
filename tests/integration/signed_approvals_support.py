"""Test support for signed approvals: a founded roster over the workflow tests' world, officer keys.

``found_roster`` stores, through ``treasury.authority.store``, a roster chain built with the
custody library the way the institutions would: a genesis that each institution's ceremony key
signs (MOF, CB and PARL, with the world's admins; PARL's admin is its oversight officer), the
approvers each added by their own institution's admin, and the policy in force signed by admins
of two institutions. Roster officer ids are the treasury's officer ids as text. ``StatementChain``
is the in-memory chain whose prepared summaries name the chain facts a statement needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from authority_support import ceremony_root, k1_public, k1_sign, private_key
from sqlalchemy import select
from workflow_support import (
    DECREE,
    DECREE_CEILING_SATS,
    DESTINATION,
    START,
    InMemoryChain,
    World,
)

from custody.authority import (
    CEREMONY_KEY_ID,
    AllowlistAdded,
    ApprovalStatement,
    DecreeAdded,
    Genesis,
    InstitutionEntry,
    OfficerAdded,
    OfficerEntry,
    OfficerPublicKey,
    OfficerRole,
    PolicySet,
    RecordKind,
    RecordSignature,
    RosterRecord,
    RosterRules,
    Secp256k1Signature,
    SignedStatement,
    StatementKind,
    ceremony_public_key,
    next_record,
    policy_hash_of,
    sign_with_ceremony_key,
)
from custody.authority.roster_bodies import RecordBody
from treasury.authority.store import append_record
from treasury.policy.tables import PolicyVersionRow
from treasury.proposals import PreparedTx, SpendRequest

VAULT_NAME = "reserve-btc"
VAULT_ID = (
    "wsh(sortedmulti(2,[aaaaaaaa/48h/1h/0h/2h]tpubA/0/*,[bbbbbbbb/48h/1h/0h/2h]tpubB/0/*))#abcdefgh"
)
MAX_FEE_SATS = 5_000

GENESIS_ADMINS = {"MOF": "admin", "CB": "cb_admin", "PARL": "oversight"}
"""Each institution's first roster admin, by the world's officer names."""
ROSTER_OFFICERS = {
    "mof_approver": ("MOF", OfficerRole.APPROVER),
    "mof_approver_2": ("MOF", OfficerRole.APPROVER),
    "cb_approver": ("CB", OfficerRole.APPROVER),
    "parl_approver": ("PARL", OfficerRole.APPROVER),
}


@dataclass
class StatementChain(InMemoryChain):
    """The in-memory chain, whose summaries record what a statement names about the chain."""

    def build(self, request: SpendRequest) -> PreparedTx:
        built = super().build(request)
        summary = {
            **built.summary,
            "chain": "bitcoin:regtest",
            "vault": VAULT_NAME,
            "vault_id": VAULT_ID,
            "asset": "BTC",
            "max_fee_sats": str(MAX_FEE_SATS),
        }
        return PreparedTx(built.tx_hash, summary, built.payload, built.fee)


@dataclass
class Roster:
    """The founded roster's officer keys, by the world's officer names."""

    world: World
    secrets: dict[str, bytes] = field(default_factory=dict)
    public_keys: dict[str, OfficerPublicKey] = field(default_factory=dict)
    """Officers whose key is held elsewhere (a key file): their registered public key."""
    records: list[RosterRecord] = field(default_factory=list)

    def officer_id(self, name: str) -> str:
        return str(self.world.officers[name].id)

    def key(self, name: str) -> OfficerPublicKey:
        if name in self.public_keys:
            return self.public_keys[name]
        return k1_public(self.secrets[name])

    def sign(self, name: str, statement: ApprovalStatement) -> SignedStatement:
        """``statement`` signed with the key of the world's officer ``name``."""
        return SignedStatement(
            statement, self.key(name).key_id, k1_sign(self.secrets[name], statement.digest())
        )

    def _entry(self, name: str, institution: str, roles: set[OfficerRole]) -> OfficerEntry:
        if name not in self.public_keys:
            self.secrets[name] = private_key(f"officer key of {name}")
        return OfficerEntry(
            self.officer_id(name), name, institution, frozenset(roles), (self.key(name),)
        )

    def append(self, kind: RecordKind, body: RecordBody, signers: list[str]) -> None:
        record = next_record(self.records[-1], kind, body)
        for name in signers:
            record = record.with_signature(
                RecordSignature(
                    self.officer_id(name),
                    self.key(name).key_id,
                    k1_sign(self.secrets[name], record.record_hash()),
                )
            )
        self._store(record)

    def allow(self, asset: str, address: str, label: str = "Payee") -> None:
        """Sign ``address`` into the chain's allowlist for ``asset`` (admins of MOF and CB)."""
        self.append(
            RecordKind.ALLOWLIST_ADDED,
            AllowlistAdded(asset, address, label),
            [GENESIS_ADMINS["MOF"], GENESIS_ADMINS["CB"]],
        )

    def _store(self, record: RosterRecord) -> None:
        with self.world.sessions.begin() as session:
            append_record(session, record, clock=self.world.clock)
        self.records.append(record)


def found_roster(
    world: World,
    *,
    with_policy: bool = True,
    public_keys: dict[str, OfficerPublicKey] | None = None,
) -> Roster:
    """Store a signed roster genesis, the approvers and (by default) the policy in force.

    ``public_keys`` registers keys held elsewhere (an approver's key file) instead of test keys.
    """
    roster = Roster(world, public_keys=dict(public_keys or {}))
    roots = {code: ceremony_root(f"treasury {code}") for code in GENESIS_ADMINS}
    institutions = tuple(
        InstitutionEntry(
            code, code, roots[code].my_fingerprint.hex(), ceremony_public_key(roots[code])
        )
        for code in GENESIS_ADMINS
    )
    admins = tuple(
        roster._entry(
            name,
            code,
            {OfficerRole.ADMIN, OfficerRole.OVERSIGHT} if code == "PARL" else {OfficerRole.ADMIN},
        )
        for code, name in GENESIS_ADMINS.items()
    )
    genesis = next_record(
        None, RecordKind.GENESIS, Genesis("test-treasury", institutions, admins, RosterRules())
    )
    for code, root in roots.items():
        signature = sign_with_ceremony_key(root, genesis.record_hash())
        genesis = genesis.with_signature(
            RecordSignature(code, CEREMONY_KEY_ID, Secp256k1Signature(signature))
        )
    roster._store(genesis)
    for name, (code, role) in ROSTER_OFFICERS.items():
        roster.append(
            RecordKind.OFFICER_ADDED,
            OfficerAdded(roster._entry(name, code, {role})),
            [GENESIS_ADMINS[code]],
        )
    if with_policy:
        with world.sessions() as session:
            document = session.scalars(
                select(PolicyVersionRow.document).order_by(PolicyVersionRow.version.desc())
            ).first()
        assert document is not None
        roster.append(
            RecordKind.POLICY_SET,
            PolicySet(policy_hash_of(document), document),
            [GENESIS_ADMINS["MOF"], GENESIS_ADMINS["CB"]],
        )
        # The signers check the decree and the payee against the chain, not the treasury's rows.
        roster.append(
            RecordKind.DECREE_ADDED,
            DecreeAdded(
                DECREE,
                "Reserve rebalancing decree",
                START + timedelta(days=30),
                {"BTC": DECREE_CEILING_SATS},
            ),
            [GENESIS_ADMINS["MOF"], GENESIS_ADMINS["CB"]],
        )
        roster.allow("BTC", DESTINATION)
    return roster


__all__ = [
    "MAX_FEE_SATS",
    "VAULT_ID",
    "VAULT_NAME",
    "Roster",
    "StatementChain",
    "StatementKind",
    "found_roster",
]
