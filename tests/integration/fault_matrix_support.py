"""Test support for the fault-injection matrix: one reserve per database, a process that dies at a
chosen persisted step of a spend, and the recoveries a restarted process runs.

A real spend on the session's devnets cannot be copied per test the way ``attacker_support``
copies its reserve: the copies would share the vaults' coins and the Safe's nonce, and each copy's
reconciler would see the others' spends as outflows nobody approved. So one reserve is built per
database kind per module and the cells run on it one after another, each with its own proposal;
what a cell asserts is measured from a ``Baseline`` taken when it starts (transactions paying the
payee, ledger entries touching the vault, balances), and every cell also requires the whole
reserve to be sound (books equal to the chain, no open alarm), so a cell cannot pass on a reserve
an earlier cell spoiled.

A "process" is a copy of the reserve with its own engine, sessions and Safe store, as a restarted
``treasury`` process would open them; the crashed one is thrown away (its engine disposed) before
the next starts. The process dies as a ``SimulatedCrash`` (a ``BaseException``, so no
``except Exception`` in the code under test can swallow it) raised by a SQLAlchemy session event
right after the commit of the step that appended the named audit event (``DieAtCommit``), or
inside that commit before it happens (``before_confirmation``), or by the chain spender right
after the node accepted the transaction or the custody signer signed (``DyingSpender``). The
database-cut variant disposes the engine mid-step, terminates the database's server connections
(PostgreSQL) and refuses new ones, so the next write of the step fails as it would with the
database gone.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner
from workflow_support import SimulatedCrash

from custody.bitcoin.rpc import BitcoinRPC, btc_to_sats
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import EthChain, SafeVaults
from custody.ethereum.events import EXECUTION_SUCCESS_TOPIC
from treasury import audit, ledger, migrate
from treasury.audit import AuditEvent
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV, make_engine, session_factory
from treasury.exceptions import TreasuryError
from treasury.ledger import JournalEntry
from treasury.policy import PolicyRefusedError
from treasury.proposals import (
    PreparedTx,
    ProposalState,
    ProposalView,
    SealedTx,
    SpendPosting,
    SpendRequest,
    Workflow,
)
from treasury.reconcile import btc_scope, eth_scope, holdings_account, list_alarms
from treasury.reconcile.retries import reconcile_with_retries
from treasury.spenders import BitcoinSpender, SafeSpender
from treasury.story import SAFE_VAULT, SATS_PER_BTC, WEI_PER_ETH, Reserve
from treasury.story.cast import APPROVERS, DECREE, PROPOSER
from treasury.story.officer_keys import OfficerKeyring
from treasury.story.reserve import OFFICER_KEYS_FOLDER
from treasury.workflow_exceptions import ProposalTransitionError, WorkflowInputError

log = logging.getLogger("tests.fault_matrix")

TEST_SCRYPT_N = 2**10
"""Cheap scrypt for the officers' key files (tests only; the story uses 2^15)."""
BTC_DEPOSITS_SATS = (SATS_PER_BTC // 2, SATS_PER_BTC // 4, SATS_PER_BTC // 4)
ETH_DEPOSIT_WEI = 10 * WEI_PER_ETH
TOKEN_DEPOSIT = 10**21
AMOUNTS = {"BTC": SATS_PER_BTC // 100, "ETH": WEI_PER_ETH // 10}
"""One cell's payment: far below the per-transaction and veto limits, and all cells together
(under 30 per chain and database) stay below the decree's ceiling (1 BTC, 10 ETH)."""
APPROVER_CODES = tuple(APPROVERS)
"""The two institutions whose approvers approve and whose share holders sign (NBKR, ACH)."""


class CrashPoint(Enum):
    """Where the process dies, named after the persisted step it follows."""

    AFTER_PREPARE = "after_prepare"
    AFTER_APPROVAL_1 = "after_approval_1"
    AFTER_APPROVAL_2 = "after_approval_2"
    SIGNER_UNRECORDED = "signer_signed_unrecorded"
    """The first institution's custody signer signed; the workflow never recorded it."""
    AFTER_SIGNATURE_1 = "after_signature_1"
    AFTER_SIGNATURE_2 = "after_signature_2"
    BEFORE_BROADCAST = "before_broadcast"
    """The broadcast intent is committed; the transaction is not yet sealed."""
    AFTER_SEAL = "after_seal"
    """The signed transaction, its txid and the ledger hold are committed; nothing was sent."""
    AFTER_SEND = "after_send"
    """The node accepted the transaction; nothing of the send is recorded (custody's too)."""
    AFTER_SEND_DB_CUT = "after_send_db_cut"
    """The node accepted the transaction; then the database connections are cut, so the
    record fails (an ``OperationalError``, not a crash)."""
    AFTER_RECORD = "after_record"
    BEFORE_CONFIRMATION = "before_confirmation"
    """Mined and its depth read; the process dies inside the confirming commit (rolled back)."""
    AFTER_CONFIRMATION = "after_confirmation"


class Recovery(Enum):
    """What the restarted side runs first.

    The scheduler's job (``treasury.scheduler.reconcile_job``) is the reconciler run through
    ``reconcile_with_retries``; ``RECONCILE_FIRST`` runs exactly that body (with the story's
    clock and settings instead of the environment's), so it also stands for "scheduler first".
    """

    RETRY_FIRST = "retry_first"
    RECONCILE_FIRST = "reconcile_first"


SENT_POINTS = frozenset(
    {CrashPoint.AFTER_SEND, CrashPoint.AFTER_SEND_DB_CUT, CrashPoint.AFTER_RECORD}
)
"""Points at which the transaction is on its way but unmined (on Bitcoin) when the process dies."""

AUDIT_EVENT_OF: dict[CrashPoint, str] = {
    CrashPoint.AFTER_PREPARE: "transaction_prepared",
    CrashPoint.AFTER_APPROVAL_1: "approved",
    CrashPoint.AFTER_APPROVAL_2: "approved",
    CrashPoint.AFTER_SIGNATURE_1: "signed",
    CrashPoint.AFTER_SIGNATURE_2: "signed",
    CrashPoint.BEFORE_BROADCAST: "broadcast_started",
    CrashPoint.AFTER_SEAL: "sealed",
    CrashPoint.AFTER_RECORD: "broadcast",
    CrashPoint.BEFORE_CONFIRMATION: "confirmed",
    CrashPoint.AFTER_CONFIRMATION: "confirmed",
}
"""The audit event each committing step appends: the crash switch recognises the step by it."""


# --- the reserve ----------------------------------------------------------------------------------


@dataclass
class _ReserveOn(Reserve):
    """The story's reserve on a database the test chooses, with cheap officer key files."""

    url: str = ""

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = self.url
        migrate.upgrade(self.database_url)
        self.engine = make_engine(self.database_url)
        self.sessions = session_factory(self.engine)
        self.chain = EthChain(self.evm.rpc)
        self.safes = SafeVaults(self.chain, self.sessions)
        self.officer_keys = OfficerKeyring(
            self.workdir / OFFICER_KEYS_FOLDER, scrypt_n=TEST_SCRYPT_N
        )


@dataclass
class MatrixReserve:
    """The module's reserve on one database, and the server it lives on (PostgreSQL)."""

    kind: str
    reserve: Reserve
    server_url: str | None

    @property
    def url(self) -> str:
        return self.reserve.database_url


def build_reserve(
    kind: str, folder: Path, bitcoin: BitcoinNode, evm: EvmNode, server_url: str | None
) -> MatrixReserve:
    """A governed reserve with funded vaults on both chains, on a new database of ``kind``."""
    if server_url is None:
        url = f"sqlite:///{folder / 'treasury.sqlite3'}"
    else:
        name = f"fault_matrix_{uuid.uuid4().hex[:12]}"
        _admin_run(server_url, f'CREATE DATABASE "{name}"')
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    reserve = _ReserveOn(folder, bitcoin, evm, btc_vault=f"faults-{uuid.uuid4().hex[:8]}", url=url)
    reserve.hold_ceremonies(log.info)
    reserve.open_vaults(log.info)
    reserve.deposit(log.info, BTC_DEPOSITS_SATS, ETH_DEPOSIT_WEI, TOKEN_DEPOSIT)
    evm.rpc.call("evm_mine")
    reserve.reconcile(log.info)
    payees = {
        "BTC": str(bitcoin.rpc.wallet("miner").call("getnewaddress", "payee", "bech32")),
        "ETH": str(Account.create().address),
    }
    reserve.govern(log.info, payees)
    reserve.reconcile(log.info)
    return MatrixReserve(kind, reserve, server_url)


def drop_reserve(built: MatrixReserve) -> None:
    built.reserve.engine.dispose()
    if built.server_url is not None:
        database = make_url(built.url).database
        _admin_run(built.server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


class MatrixReserves:
    """The module's reserves, one per database kind, each built on its first cell."""

    def __init__(self, bitcoin: BitcoinNode, evm: EvmNode, folder: Path) -> None:
        self._bitcoin = bitcoin
        self._evm = evm
        self._folder = folder
        self._built: dict[str, MatrixReserve] = {}

    def get(self, kind: str, server_url: str | None) -> MatrixReserve:
        found = self._built.get(kind)
        if found is None:
            folder = self._folder / kind
            folder.mkdir(parents=True, exist_ok=True)
            found = build_reserve(kind, folder, self._bitcoin, self._evm, server_url)
            self._built[kind] = found
        return found

    def close(self) -> None:
        for built in self._built.values():
            drop_reserve(built)


def _admin_run(server_url: str, statement: str, **params: Any) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(statement), params)
    finally:
        admin.dispose()


# --- processes ----------------------------------------------------------------------------------


def start_process(built: MatrixReserve) -> Reserve:
    """The reserve as a freshly started process sees it: its own engine, sessions and Safe store
    (nothing kept in memory from an earlier process but the story's clock and names)."""
    process = copy.copy(built.reserve)
    process.engine = make_engine(built.url)
    process.sessions = session_factory(process.engine)
    process.safes = SafeVaults(process.chain, process.sessions)
    process.verifications = []
    return process


def end_process(process: Reserve) -> None:
    """The process is gone: its connections close (a killed process's close with it)."""
    process.engine.dispose()


_SEEN_KEY = "fault_matrix.step_seen"


class DieAtCommit:
    """Kills the process at the commit of the step that appends audit event ``event_name``:
    right after it (``before=False``) or inside it, before it happens (rolled back)."""

    def __init__(
        self, sessions: sessionmaker[Session], event_name: str, *, before: bool = False
    ) -> None:
        self.event_name = event_name
        self.fired = False
        event.listen(sessions, "after_flush", self._saw)
        event.listen(sessions, "before_commit" if before else "after_commit", self._die)
        event.listen(sessions, "after_rollback", self._forget)

    def _saw(self, session: Session, _flush_context: object) -> None:
        for obj in session.new:
            if isinstance(obj, AuditEvent) and json.loads(obj.payload).get("event") == (
                self.event_name
            ):
                session.info[_SEEN_KEY] = True

    def _forget(self, session: Session) -> None:
        session.info.pop(_SEEN_KEY, None)

    def _die(self, session: Session) -> None:
        if session.info.pop(_SEEN_KEY, False) and not self.fired:
            self.fired = True
            raise SimulatedCrash(f"the process died at the commit of {self.event_name!r}")


def cut_database(process: Reserve, server_url: str | None) -> None:
    """Cut the process's database connections mid-step: its pool is disposed, the server ends
    every connection to the database (PostgreSQL), and new connections are refused."""
    process.engine.dispose()
    if server_url is not None:
        _admin_run(
            server_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()",
            name=make_url(process.database_url).database,
        )

    def refuse(dialect: Any, *_args: object) -> None:
        raise dialect.loaded_dbapi.OperationalError("the database connection was cut (test)")

    event.listen(process.engine, "do_connect", refuse)


def send_raw(process: Reserve, chain: str, sealed: SealedTx) -> None:
    """Hand the sealed transaction to the node, as ``send`` would, recording nothing (on
    Ethereum the devnet mines it at once)."""
    if chain == "BTC":
        process.bitcoin.rpc.call("sendrawtransaction", sealed.raw)
    else:
        process.evm.rpc.call("eth_sendRawTransaction", json.loads(sealed.raw)["raw"])
        process.chain.wait_for_receipt(sealed.txid)


class DyingSpender:
    """The process's chain spender, which dies at ``point`` and otherwise is the real one.

    ``SIGNER_UNRECORDED``: custody's signer signs (and custody keeps the signature), then the
    process dies before the workflow records it. ``AFTER_SEND``: the node accepts the sealed
    transaction, then the process dies before anything of the send is recorded, custody's record
    included. ``AFTER_SEND_DB_CUT``: custody's send completes, then the database connections are
    cut before the workflow records it.
    """

    def __init__(
        self, process: Reserve, chain: str, point: CrashPoint, server_url: str | None
    ) -> None:
        self._process = process
        self._chain = chain
        self._inner = process.spenders()[chain]
        self._point = point
        self._server_url = server_url
        self.sent: list[str] = []

    def build(self, request: SpendRequest) -> PreparedTx:
        return self._inner.build(request)

    def sign(
        self, prepared: PreparedTx, institution: str, shares: Sequence[str], passphrase: str
    ) -> PreparedTx:
        signed = self._inner.sign(prepared, institution, shares, passphrase)
        if self._point is CrashPoint.SIGNER_UNRECORDED:
            raise SimulatedCrash("the process died after the signer signed, before the record")
        return signed

    def seal(self, prepared: PreparedTx) -> SealedTx:
        return self._inner.seal(prepared)

    def send(self, prepared: PreparedTx, sealed: SealedTx) -> str:
        if self._point is CrashPoint.AFTER_SEND_DB_CUT:
            txid = self._inner.send(prepared, sealed)
            self.sent.append(txid)
            cut_database(self._process, self._server_url)
            return txid
        if self._point is CrashPoint.AFTER_SEND:
            send_raw(self._process, self._chain, sealed)
            self.sent.append(sealed.txid)
            raise SimulatedCrash("the process died after the node accepted the transaction")
        return self._inner.send(prepared, sealed)

    def find_broadcast(self, prepared: PreparedTx, sealed: SealedTx | None) -> str | None:
        return self._inner.find_broadcast(prepared, sealed)

    def confirmations(self, txid: str) -> int:
        return self._inner.confirmations(txid)


# --- the spend's steps ----------------------------------------------------------------------------


def spender_of(process: Reserve, chain: str) -> BitcoinSpender | SafeSpender:
    return process.spenders()[chain]


def propose(process: Reserve, chain: str) -> int:
    """A proposal to the allowlisted payee under the decree (committed before any crash point)."""
    view = process.workflow().propose(
        process.officers[PROPOSER],
        asset=chain,
        amount=AMOUNTS[chain],
        destination=process.payees[chain],
        purpose="Fault-injection matrix",
        legal_basis=DECREE,
    )
    return view.id


def prepare(process: Reserve, wf: Workflow, proposal_id: int, chain: str) -> ProposalView:
    return wf.prepare(process.officers[PROPOSER], proposal_id, spender_of(process, chain))


def approve(process: Reserve, wf: Workflow, proposal_id: int, code: str) -> ProposalView:
    """Institution ``code``'s approver signs the statement of the proposal as it stands, and
    approves with it (what ``treasury spend approve`` does)."""
    officer = process.officers[APPROVERS[code]]
    signed = process.officer_keys[APPROVERS[code]].sign_statement(
        wf.statement(officer, proposal_id)
    )
    tx_hash = wf.view(proposal_id).tx_hash
    assert tx_hash is not None, f"proposal {proposal_id} names no transaction to approve"
    return wf.approve(officer, proposal_id, tx_hash, signed=signed)


def sign(
    process: Reserve,
    wf: Workflow,
    proposal_id: int,
    code: str,
    spender: BitcoinSpender | SafeSpender | DyingSpender,
) -> ProposalView:
    """Institution ``code``'s share holders sign through the spender (``treasury spend sign``)."""
    words, passphrase = process.shares_of(code)
    return wf.sign(process.officers[APPROVERS[code]], proposal_id, spender, words, passphrase)


@functools.cache
def _wallet(rpc: BitcoinRPC, name: str) -> BitcoinRPC:
    """One client per wallet for the module (each new client builds an SSL context: ~40 ms)."""
    return rpc.wallet(name)


def mine_if_unconfirmed(process: Reserve, chain: str, txid: str | None) -> None:
    """Let a block come if the spend is not yet in one (Ethereum's devnet mines at each send)."""
    if chain == "BTC" and txid is not None:
        found = _wallet(process.bitcoin.rpc, f"vault-{process.btc_vault}").call(
            "gettransaction", txid, True
        )
        if int(found["confirmations"]) < 1:
            process.bitcoin.mine(1)


@dataclass(frozen=True)
class Crashed:
    """What the dead process left: the proposal, and what its spender handed to the node."""

    proposal_id: int
    sent: tuple[str, ...]


def run_until_crash(built: MatrixReserve, chain: str, point: CrashPoint) -> Crashed:
    """Run a spend in a fresh process until it dies at ``point``: the fatal step must raise
    ``SimulatedCrash`` (or, with the database cut, the driver's ``OperationalError``)."""
    process = start_process(built)
    try:
        wf = process.workflow()
        proposal_id = propose(process, chain)
        cut = point is CrashPoint.AFTER_SEND_DB_CUT
        spender = DyingSpender(process, chain, point, built.server_url)
        event_name = AUDIT_EVENT_OF.get(point)
        steps: list[tuple[tuple[CrashPoint, ...], Callable[[], object]]] = [
            ((CrashPoint.AFTER_PREPARE,), lambda: prepare(process, wf, proposal_id, chain)),
            ((CrashPoint.AFTER_APPROVAL_1,), lambda: approve(process, wf, proposal_id, "NBKR")),
            ((CrashPoint.AFTER_APPROVAL_2,), lambda: approve(process, wf, proposal_id, "ACH")),
            (
                (CrashPoint.SIGNER_UNRECORDED, CrashPoint.AFTER_SIGNATURE_1),
                lambda: sign(process, wf, proposal_id, "NBKR", spender),
            ),
            (
                (CrashPoint.AFTER_SIGNATURE_2,),
                lambda: sign(process, wf, proposal_id, "ACH", spender),
            ),
            (
                (
                    CrashPoint.BEFORE_BROADCAST,
                    CrashPoint.AFTER_SEAL,
                    CrashPoint.AFTER_SEND,
                    CrashPoint.AFTER_SEND_DB_CUT,
                    CrashPoint.AFTER_RECORD,
                ),
                lambda: wf.broadcast(proposal_id, spender),
            ),
            ((), lambda: mine_if_unconfirmed(process, chain, wf.view(proposal_id).txid)),
            (
                (CrashPoint.BEFORE_CONFIRMATION, CrashPoint.AFTER_CONFIRMATION),
                lambda: wf.refresh(proposal_id, spender),
            ),
        ]
        for points, step in steps:
            if point not in points:
                step()
                continue
            switch = None
            if event_name is not None:
                switch = DieAtCommit(
                    process.sessions,
                    event_name,
                    before=point is CrashPoint.BEFORE_CONFIRMATION,
                )
            fatal: type[BaseException] = OperationalError if cut else SimulatedCrash
            with pytest.raises(fatal):
                step()
            assert switch is None or switch.fired, f"the step never reached {point.value}"
            log.info("process died at %s (proposal %d)", point.value, proposal_id)
            return Crashed(proposal_id, tuple(spender.sent))
        raise AssertionError(f"no step of the spend is followed by {point.value}")
    finally:
        end_process(process)


def reconcile_as_scheduled(process: Reserve) -> None:
    """The scheduler's job body: one locked reconciliation run, retried while a node is down."""
    reconcile_with_retries(lambda: process.reconcile(log.info), echo=log.info)


REFUSED_RETRIES: dict[CrashPoint, type[TreasuryError]] = {
    CrashPoint.AFTER_APPROVAL_1: PolicyRefusedError,
    CrashPoint.AFTER_APPROVAL_2: ProposalTransitionError,
    CrashPoint.AFTER_SIGNATURE_1: WorkflowInputError,
    CrashPoint.AFTER_SIGNATURE_2: ProposalTransitionError,
}
"""A recorded approval or signature, run again, is refused with these typed errors ("already
approved", "no longer proposed", "already signed", "no longer approved"): never recorded twice.
Every other interrupted command (prepare, a signature the workflow never recorded, broadcast,
refresh) must simply succeed again."""


def retry(process: Reserve, wf: Workflow, proposal_id: int, chain: str, point: CrashPoint) -> None:
    """The interrupted command run again, as an operator would after the restart.

    An approval or signature that had been recorded must be refused (``REFUSED_RETRIES``);
    prepare, broadcast and refresh must succeed.
    """
    spender = spender_of(process, chain)
    calls: dict[CrashPoint, Callable[[], object]] = {
        CrashPoint.AFTER_PREPARE: lambda: prepare(process, wf, proposal_id, chain),
        CrashPoint.AFTER_APPROVAL_1: lambda: approve(process, wf, proposal_id, "NBKR"),
        CrashPoint.AFTER_APPROVAL_2: lambda: approve(process, wf, proposal_id, "ACH"),
        CrashPoint.SIGNER_UNRECORDED: lambda: sign(process, wf, proposal_id, "NBKR", spender),
        CrashPoint.AFTER_SIGNATURE_1: lambda: sign(process, wf, proposal_id, "NBKR", spender),
        CrashPoint.AFTER_SIGNATURE_2: lambda: sign(process, wf, proposal_id, "ACH", spender),
        CrashPoint.BEFORE_BROADCAST: lambda: wf.broadcast(proposal_id, spender),
        CrashPoint.AFTER_SEAL: lambda: wf.broadcast(proposal_id, spender),
        CrashPoint.AFTER_SEND: lambda: wf.broadcast(proposal_id, spender),
        CrashPoint.AFTER_SEND_DB_CUT: lambda: wf.broadcast(proposal_id, spender),
        CrashPoint.AFTER_RECORD: lambda: wf.broadcast(proposal_id, spender),
        CrashPoint.BEFORE_CONFIRMATION: lambda: wf.refresh(proposal_id, spender),
        CrashPoint.AFTER_CONFIRMATION: lambda: wf.refresh(proposal_id, spender),
    }
    refusal = REFUSED_RETRIES.get(point)
    if refusal is None:
        calls[point]()
        return
    with pytest.raises(refusal) as refused:
        calls[point]()
    log.info("retry of %s refused: %s", point.value, refused.value)


def finish(process: Reserve, wf: Workflow, proposal_id: int, chain: str) -> ProposalView:
    """Whatever the proposal still needs, in order: approvals, signatures, the broadcast, a
    block, and ``refresh`` (which also completes a broadcast that began and was not recorded)."""
    spender = spender_of(process, chain)
    view = wf.view(proposal_id)
    if view.state is ProposalState.PROPOSED:
        standing = {
            a.institution
            for a in view.approvals
            if a.voided_at is None and a.tx_hash == view.tx_hash
        }
        for code in APPROVER_CODES:
            if code not in standing:
                view = approve(process, wf, proposal_id, code)
    if view.state is ProposalState.APPROVED:
        for code in APPROVER_CODES:
            if code not in view.signed_by:
                view = sign(process, wf, proposal_id, code, spender)
    if view.state is ProposalState.SIGNED and view.txid is None:
        view = wf.broadcast(proposal_id, spender)
    mine_if_unconfirmed(process, chain, view.txid)
    return wf.refresh(proposal_id, spender)


def recover(
    built: MatrixReserve, chain: str, point: CrashPoint, order: Recovery, proposal_id: int
) -> ProposalView:
    """A restarted process recovers in ``order``; then one more restart reconciles and
    refreshes again (finding nothing left to do). Returns the proposal as it ends."""
    if chain == "BTC" and point in SENT_POINTS:
        built.reserve.bitcoin.mine(1)  # the chain moves on while the process is down
    process = start_process(built)
    try:
        wf = process.workflow()
        if order is Recovery.RETRY_FIRST:
            retry(process, wf, proposal_id, chain, point)
            finish(process, wf, proposal_id, chain)
            reconcile_as_scheduled(process)
        else:
            reconcile_as_scheduled(process)
            retry(process, wf, proposal_id, chain, point)
            finish(process, wf, proposal_id, chain)
    finally:
        end_process(process)
    later = start_process(built)
    try:
        reconcile_as_scheduled(later)
        return later.workflow().refresh(proposal_id, spender_of(later, chain))
    finally:
        end_process(later)


# --- what each cell measures ---------------------------------------------------------------------


def holdings(reserve: Reserve, chain: str) -> str:
    """The ledger account of the vault of ``chain``."""
    scope = (
        btc_scope(reserve.btc_vault)
        if chain == "BTC"
        else eth_scope(reserve.chain.chain_id, SAFE_VAULT)
    )
    return holdings_account(scope, chain)


def vault_balance(reserve: Reserve, chain: str) -> int:
    """What the vault holds on its chain (confirmed, for Bitcoin)."""
    if chain == "BTC":
        wallet = _wallet(reserve.bitcoin.rpc, f"vault-{reserve.btc_vault}")
        return btc_to_sats(wallet.call("getbalances")["mine"]["trusted"])
    return reserve.chain.balance(reserve.safes.vault(SAFE_VAULT).address)


def payee_transactions(reserve: Reserve, chain: str, from_block: int) -> list[str]:
    """Every chain transaction that paid the payee: Bitcoin, any the miner's wallet received at
    the payee's address (mempool included); Ethereum, every Safe execution since ``from_block``."""
    if chain == "BTC":
        found = _wallet(reserve.bitcoin.rpc, "miner").call(
            "listreceivedbyaddress", 0, True, False, reserve.payees["BTC"]
        )
        return sorted(str(t) for entry in found for t in entry["txids"])
    logs: list[dict[str, Any]] = reserve.evm.rpc.call(
        "eth_getLogs",
        {
            "fromBlock": hex(from_block),
            "toBlock": "latest",
            "address": reserve.safes.vault(SAFE_VAULT).address,
            "topics": ["0x" + EXECUTION_SUCCESS_TOPIC.hex()],
        },
    )
    return sorted(str(entry["transactionHash"]) for entry in logs if not entry.get("removed"))


def payee_received(reserve: Reserve, chain: str) -> int:
    """What the payee has received, confirmed."""
    payee = reserve.payees[chain]
    if chain == "BTC":
        received = _wallet(reserve.bitcoin.rpc, "miner").call("getreceivedbyaddress", payee, 1)
        return btc_to_sats(received)
    return reserve.chain.balance(payee)


@dataclass(frozen=True)
class Baseline:
    """The reserve as a cell finds it."""

    block: int
    """Ethereum's next block: Safe executions from here on are the cell's."""
    payee_txs: tuple[str, ...]
    received: int
    vault: int
    holdings_posted: int
    last_entry_id: int


def baseline(reserve: Reserve, chain: str) -> Baseline:
    with reserve.sessions() as session:
        last_entry_id = session.scalar(select(func.max(JournalEntry.id))) or 0
        posted = ledger.balance(session, holdings(reserve, chain)).posted
    block = reserve.evm.rpc.block_number() + 1
    return Baseline(
        block=block,
        payee_txs=tuple(payee_transactions(reserve, chain, block)) if chain == "BTC" else (),
        received=payee_received(reserve, chain),
        vault=vault_balance(reserve, chain),
        holdings_posted=posted,
        last_entry_id=last_entry_id,
    )


def new_payee_transactions(reserve: Reserve, chain: str, before: Baseline) -> list[str]:
    """The transactions paying the payee that appeared since ``before``."""
    now = payee_transactions(reserve, chain, before.block)
    return sorted(set(now) - set(before.payee_txs))


def vault_entry_keys(reserve: Reserve, chain: str, before: Baseline) -> list[str]:
    """The keys of the ledger entries touching the vault's holdings since ``before``."""
    with reserve.sessions() as session:
        return [
            e.key
            for e in ledger.list_entries(
                session,
                account=holdings(reserve, chain),
                after_id=before.last_entry_id,
                limit=1_000,
            )
        ]


def holdings_posted(reserve: Reserve, chain: str) -> int:
    with reserve.sessions() as session:
        return ledger.balance(session, holdings(reserve, chain)).posted


def reserve_is_sound(reserve: Reserve, chain: str) -> list[str]:
    """What is wrong with the reserve as a whole (nothing, when sound): the vault's books equal
    its chain balance, every asset balances, the audit chain verifies, no alarm is open."""
    problems: list[str] = []
    with reserve.sessions() as session:
        posted = ledger.balance(session, holdings(reserve, chain)).posted
        on_chain = vault_balance(reserve, chain)
        if posted != on_chain:
            problems.append(f"{chain} holdings {posted} != chain balance {on_chain}")
        unbalanced = [t for t in ledger.trial_balance(session) if not t.balanced]
        if unbalanced:
            problems.append(f"unbalanced trial balance: {unbalanced}")
        verdict = audit.verify(session)
        if not verdict.ok:
            problems.append(f"audit chain broken: {verdict.brk}")
        alarms = list_alarms(session, only_open=True)
        if alarms:
            problems.append(f"open alarms: {alarms}")
    return problems


def audit_verify_cli(url: str) -> tuple[int, str]:
    """``treasury audit verify`` on the database: its exit code and output."""
    result = CliRunner().invoke(app, ["audit", "verify"], env={DATABASE_URL_ENV: url})
    return result.exit_code, result.output


def spend_entry_keys(proposal_id: int) -> list[str]:
    """The two entries a paid proposal owns: its hold, and that hold posted once."""
    key = SpendPosting.key_for(proposal_id)
    return [key, f"{key}:post"]


__all__ = [
    "AMOUNTS",
    "Baseline",
    "CrashPoint",
    "Crashed",
    "MatrixReserve",
    "MatrixReserves",
    "Recovery",
    "audit_verify_cli",
    "baseline",
    "build_reserve",
    "drop_reserve",
    "holdings_posted",
    "new_payee_transactions",
    "payee_received",
    "recover",
    "reserve_is_sound",
    "run_until_crash",
    "spend_entry_keys",
    "vault_balance",
    "vault_entry_keys",
]
