"""Test support for the spend workflow: an in-memory chain behind ``ChainSpender``, a clock, a world.

``InMemoryChain`` is a small but real chain: transactions hash over their unsigned content,
each institution's key is derived from its shares and passphrase and checked, signatures are
HMACs over the transaction hash, broadcast refuses a transaction without the quorum of valid
signatures or one already sent, and blocks give confirmations. It counts every send that reached
the network, and can "crash" (raise ``SimulatedCrash``) around a send, so tests can kill the
process between persisted steps and check that a restart never sends twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from treasury import ledger, migrate
from treasury.api import create_app
from treasury.db import make_engine, session_factory
from treasury.ledger import AccountType, AssetSpec
from treasury.officers import (
    Founding,
    Officer,
    Role,
    RosterActor,
    add_institution,
    add_officer,
    issue_token,
)
from treasury.policy import (
    LegalBasis,
    ReconciliationOutcome,
    add_legal_basis,
    approve_destination,
    current_policy,
    record_reconciliation,
    request_destination,
    set_policy,
)
from treasury.proposals import (
    LedgerSpendHook,
    PreparedTx,
    SealedTx,
    SpendAccounts,
    SpendRequest,
    Workflow,
)

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
BTC_HOLDINGS, BTC_PAYMENTS, BTC_FEES, BTC_EQUITY = (
    "vault:btc",
    "payments:btc",
    "fees:btc",
    "equity:btc",
)
OPENING_BALANCE_SATS = 50 * 100_000_000
DESTINATION = "bcrt1qdestination0000000000000000000000000"
UNLISTED = "bcrt1qunlisted000000000000000000000000000"
DECREE = "DECREE-2026-17"
CHAIN_FEE_SATS = 1_000

POLICY: dict[str, Any] = {
    "quorum": {"institutions": ["MOF", "CB", "PARL"], "required": 2},
    "assets": {
        "BTC": {
            "per_tx_limit": 10 * 100_000_000,
            "daily_limit": 15 * 100_000_000,
            "veto_threshold": 5 * 100_000_000,
        }
    },
    "veto_window_seconds": 24 * 3600,
    "allowlist": {"required": 2, "delay_seconds": 48 * 3600},
    "reconciliation_max_age_seconds": 6 * 3600,
    "proposal_ttl_seconds": 7 * 24 * 3600,
}
DECREE_CEILING_SATS = 20 * 100_000_000


class SimulatedCrash(BaseException):
    """The process died here (a BaseException, so no ``except Exception`` swallows it)."""


class SteppingClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class InstitutionKey:
    """An institution's signing key, recoverable from any ``threshold`` of ``shares``."""

    shares: frozenset[str]
    threshold: int
    passphrase: str

    def key(self) -> bytes:
        return hashlib.sha256(("|".join(sorted(self.shares)) + self.passphrase).encode()).digest()


@dataclass
class InMemoryChain:
    """A ``ChainSpender`` over a toy chain with real checks (see the module docstring)."""

    keys: Mapping[str, InstitutionKey]
    required_signatures: int
    fee: int = CHAIN_FEE_SATS
    mempool: set[str] = field(default_factory=set)
    blocks: list[set[str]] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)
    broadcasts: int = 0
    """Sends that reached the network."""
    crash_before_send: bool = False
    crash_after_send: bool = False
    crash_after_sign: bool = False

    def build(self, request: SpendRequest) -> PreparedTx:
        unsigned = {
            "proposal_id": request.proposal_id,
            "asset": request.asset,
            "amount": str(request.amount),
            "destination": request.destination,
            "fee": str(self.fee),
        }
        payload = json.dumps({"unsigned": unsigned, "signatures": {}})
        return PreparedTx(_digest(unsigned), unsigned, payload, self.fee)

    def _parse(self, prepared: PreparedTx) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(prepared.payload)
        if _digest(body["unsigned"]) != prepared.tx_hash:
            raise ValueError("The payload does not hash to the transaction hash being signed.")
        return body

    def sign(
        self, prepared: PreparedTx, institution: str, shares: Sequence[str], passphrase: str
    ) -> PreparedTx:
        body = self._parse(prepared)
        key = self.keys[institution]
        given = frozenset(shares)
        if len(given) < key.threshold or not given <= key.shares or passphrase != key.passphrase:
            raise ValueError(f"The shares given do not recover {institution}'s key.")
        signature = hmac.new(key.key(), prepared.tx_hash.encode(), "sha256").hexdigest()
        body["signatures"][institution] = signature
        signed = PreparedTx(prepared.tx_hash, prepared.summary, json.dumps(body), prepared.fee)
        if self.crash_after_sign:
            self.crash_after_sign = False
            raise SimulatedCrash("after the signer returned, before the signature was stored")
        return signed

    def _txid(self, prepared: PreparedTx) -> str:
        body = self._parse(prepared)
        valid = {
            name
            for name, signature in body["signatures"].items()
            if hmac.compare_digest(
                signature,
                hmac.new(self.keys[name].key(), prepared.tx_hash.encode(), "sha256").hexdigest(),
            )
        }
        if len(valid) < self.required_signatures:
            raise ValueError(
                f"The transaction carries {len(valid)} valid signatures; {self.required_signatures} are needed."
            )
        return _digest(body)

    def _known(self, txid: str) -> bool:
        return txid in self.mempool or any(txid in block for block in self.blocks)

    def seal(self, prepared: PreparedTx) -> SealedTx:
        txid = self._txid(prepared)
        return SealedTx(txid, prepared.payload)

    def send(self, prepared: PreparedTx, sealed: SealedTx) -> str:
        txid = self._txid(prepared)
        if txid != sealed.txid:
            raise ValueError(f"The sealed transaction {sealed.txid} is not {txid}.")
        if self.crash_before_send:
            self.crash_before_send = False
            raise SimulatedCrash("after the signed transaction was recorded, before sending")
        if self._known(txid):
            raise ValueError(f"Transaction {txid} is already known (txn-already-known).")
        self.mempool.add(txid)
        self.broadcasts += 1
        if self.crash_after_send:
            self.crash_after_send = False
            raise SimulatedCrash("after sending, before the send was recorded")
        return txid

    def find_broadcast(self, prepared: PreparedTx, sealed: SealedTx | None) -> str | None:
        txid = self._txid(prepared)
        return txid if self._known(txid) else None

    def confirmations(self, txid: str) -> int:
        if txid in self.failed:
            return -1
        if txid in self.mempool:
            return 0
        for height, block in enumerate(self.blocks):
            if txid in block:
                return len(self.blocks) - height
        raise ValueError(f"Transaction {txid} is unknown to the chain.")

    def mine(self, count: int = 1) -> None:
        for _ in range(count):
            self.blocks.append(set(self.mempool))
            self.mempool.clear()


SHARES = {
    code: InstitutionKey(
        frozenset(f"{code.lower()}-share-{i}" for i in range(3)), 2, f"{code}-pass"
    )
    for code in ("MOF", "CB", "PARL")
}
"""Each institution's key is 2-of-3 shares plus a passphrase (test material, no real keys)."""


def shares_of(institution: str) -> tuple[list[str], str]:
    """Two of the institution's shares and its passphrase, as share holders would submit them."""
    key = SHARES[institution]
    return sorted(key.shares)[:2], key.passphrase


@dataclass
class World:
    """A migrated database with institutions, officers, policy, decree, allowlist and ledger."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    clock: SteppingClock
    officers: dict[str, Officer]
    tokens: dict[str, str]
    chain: InMemoryChain

    def workflow(self) -> Workflow:
        return Workflow(self.sessions, ledger_hook(self.clock), clock=self.clock)

    def restart(self) -> Workflow:
        """A new engine and workflow on the same database: what a restarted process has."""
        self.engine.dispose()
        self.engine = make_engine(self.url)
        self.sessions = session_factory(self.engine)
        return self.workflow()

    def api(self, **client_options: Any) -> TestClient:
        """A client of the whole API app on this world: its workflow, its in-memory BTC chain as
        the spender and its stepping clock (``client_options`` go to ``TestClient``)."""
        app = create_app(
            self.workflow(), self.sessions, spenders={"BTC": self.chain}, clock=self.clock
        )
        return TestClient(app, **client_options)

    def bearer(self, officer: str) -> dict[str, str]:
        """The ``Authorization`` header of ``officer``'s API token."""
        return {"Authorization": f"Bearer {self.tokens[officer]}"}

    def reconcile(self, outcome: ReconciliationOutcome = ReconciliationOutcome.MATCHED) -> None:
        with self.sessions.begin() as session:
            record_reconciliation(session, "BTC", outcome, checked_at=self.clock())


def proposal_body(**fields: str) -> dict[str, str]:
    """The JSON of ``POST /proposals`` for 1 BTC to the allowlisted destination under the
    decree; ``fields`` replace any of it."""
    return {
        "asset": "BTC",
        "amount": str(100_000_000),
        "destination": DESTINATION,
        "purpose": "Pay the contractor",
        "legal_basis": DECREE,
        **fields,
    }


def ledger_hook(clock: SteppingClock) -> LedgerSpendHook:
    return LedgerSpendHook(
        {"BTC": SpendAccounts(holdings=BTC_HOLDINGS, payments=BTC_PAYMENTS, fees=BTC_FEES)},
        clock=clock,
    )


OFFICERS: dict[str, tuple[str, tuple[Role, ...]]] = {
    "admin": ("MOF", (Role.ADMIN,)),
    "proposer": ("MOF", (Role.PROPOSER,)),
    "mof_approver": ("MOF", (Role.APPROVER,)),
    "mof_approver_2": ("MOF", (Role.APPROVER,)),
    "cb_approver": ("CB", (Role.APPROVER,)),
    "parl_approver": ("PARL", (Role.APPROVER,)),
    "oversight": ("PARL", (Role.OVERSIGHT,)),
    "auditor": ("PARL", (Role.AUDITOR,)),
    "cb_admin": ("CB", (Role.ADMIN,)),
}
"""Who the tests act as; each admin administers only its own institution (added last, so the
officers before keep their ids and seeded tokens)."""


FOUNDING = Founding("setup")
"""The setup script founds each institution's roster; once it has an admin, that admin acts."""


def _roster_actor(people: Mapping[str, Officer], institution: str) -> RosterActor:
    """The first admin of ``institution`` among ``people``, or founding while it has none."""
    admins = [
        p for p in people.values() if p.institution_code == institution and Role.ADMIN in p.roles
    ]
    return admins[0] if admins else FOUNDING


def build_world(url: str) -> World:
    """Migrate ``url`` and set up the reserve's governance as the tests expect it."""
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    clock = SteppingClock()
    people: dict[str, Officer] = {}
    tokens: dict[str, str] = {}
    counter = iter(range(1, 10_000))

    def seeded_bytes(count: int) -> bytes:
        return hashlib.sha256(str(next(counter)).encode()).digest()[:count]

    with sessions.begin() as session:
        for code, name in (
            ("MOF", "Ministry of Finance"),
            ("CB", "Central Bank"),
            ("PARL", "Parliament"),
        ):
            add_institution(session, code, name, actor=FOUNDING, now=clock())
        for name, (institution, roles) in OFFICERS.items():
            actor = _roster_actor(people, institution)
            people[name] = add_officer(session, institution, name, roles, actor=actor, now=clock())
            tokens[name] = issue_token(
                session,
                people[name].id,
                actor=_roster_actor(people, institution),
                now=clock(),
                random_bytes=seeded_bytes,
            )
        set_policy(session, people["admin"], POLICY, now=clock())
        add_legal_basis(
            session,
            people["admin"],
            LegalBasis(
                DECREE,
                "Reserve rebalancing decree",
                START + timedelta(days=30),
                {"BTC": DECREE_CEILING_SATS},
            ),
            now=clock(),
        )
        entry = request_destination(
            session, people["proposer"], "BTC", DESTINATION, "Payee", now=clock()
        )
        policy = current_policy(session)
        approve_destination(session, people["cb_approver"], entry.id, policy, now=clock())
        approve_destination(session, people["parl_approver"], entry.id, policy, now=clock())
        ledger.register_asset(
            session, AssetSpec("BTC", "bitcoin", "sat", 8), actor="setup", clock=clock
        )
        for code, kind, no_overdraft in (
            (BTC_HOLDINGS, AccountType.ASSET, True),
            (BTC_PAYMENTS, AccountType.EXPENSE, False),
            (BTC_FEES, AccountType.EXPENSE, False),
            (BTC_EQUITY, AccountType.EQUITY, False),
        ):
            ledger.open_account(
                session, code, name=code, account_type=kind, asset_code="BTC",
                no_overdraft=no_overdraft, actor="setup", clock=clock,
            )  # fmt: skip
        ledger.record_entry(
            session,
            "opening:btc",
            [
                ledger.Leg.debit(BTC_HOLDINGS, OPENING_BALANCE_SATS),
                ledger.Leg.credit(BTC_EQUITY, OPENING_BALANCE_SATS),
            ],
            description="Opening balance",
            clock=clock,
        )
    clock.advance(hours=49)  # the allowlisted destination becomes active
    chain = InMemoryChain(SHARES, required_signatures=2)
    world = World(url, engine, sessions, clock, people, tokens, chain)
    world.reconcile()
    return world
