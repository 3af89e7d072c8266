"""Reconciling Bitcoin vaults on regtest: deposits once, reorgs, out-of-band spends, node loss."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from reconcile_authority_support import AuthorityWorld, authority_world
from reconcile_support import (
    BtcWorld,
    Db,
    btc_world,
    migrated,
    run,
)
from sqlalchemy import select

from custody.bitcoin.rpc import BitcoinRPC
from custody.devnet import BitcoinNode, NodeBinaries
from treasury import officers
from treasury.officers import Role
from treasury.policy import ReconciliationOutcome
from treasury.reconcile import (
    AcknowledgementError,
    AlarmKind,
    ReconcileGate,
    RunStatus,
    acknowledge,
    list_alarms,
    suspense_account,
)
from treasury.reconcile.records import RunRow

log = logging.getLogger("tests.reconcile.btc")


@pytest.fixture
def world(
    bitcoin_node: BitcoinNode,
    db_url: str,
    tmp_path: Path,
    test_seed: int,
    request: pytest.FixtureRequest,
) -> Iterator[BtcWorld]:
    db = migrated(db_url)
    name = f"rc{test_seed % 10**6}-{abs(hash(request.node.nodeid)) % 10**8}"
    yield btc_world(db, bitcoin_node, tmp_path, test_seed, name)
    db.engine.dispose()


def test_deposits_are_booked_once_per_output_however_often_it_runs(world: BtcWorld) -> None:
    """Three outputs of one transaction and a fourth payment are four deposits, booked once over five runs."""
    world.pay([10_000_000, 20_000_000, 30_000_001])
    world.pay([40_000_000])
    first = run(world.db, bitcoin=world.node.rpc)
    assert first.status is RunStatus.SUCCEEDED
    bookings = world.db.bookings(world.scope)
    assert sorted(b.amount for b in bookings) == [10_000_000, 20_000_000, 30_000_001, 40_000_000]
    assert len({b.tx_ref for b in bookings}) == 2
    assert world.db.posted(world.holdings) == 100_000_001
    entries = world.db.entry_count()
    for _ in range(4):
        assert run(world.db, bitcoin=world.node.rpc).status is RunStatus.SUCCEEDED
    assert world.db.entry_count() == entries
    assert len(world.db.bookings(world.scope)) == 4
    assert world.db.trial_balance_zero()
    with world.db.sessions() as session:
        facts = ReconcileGate().latest(session, "BTC")
    assert facts is not None
    assert facts.outcome is ReconciliationOutcome.MATCHED


def test_deposit_waits_for_the_minimum_confirmations(world: BtcWorld) -> None:
    """With three confirmations required, a deposit one block deep is not booked; two blocks later it is."""
    world.pay([5_000_000])
    run(world.db, bitcoin=world.node.rpc, btc_min_conf=3)
    assert world.db.bookings(world.scope) == []
    world.node.mine(2)
    run(world.db, bitcoin=world.node.rpc, btc_min_conf=3)
    assert [b.amount for b in world.db.bookings(world.scope)] == [5_000_000]


def test_reorg_reverses_a_deposit_and_books_it_again_once(world: BtcWorld) -> None:
    """A deposit whose block is invalidated is reversed; mined into another block it is booked once more."""
    rpc = world.node.rpc
    txid = world.pay([70_000_000])
    orphan = rpc.call("getbestblockhash")
    run(world.db, bitcoin=rpc)
    assert world.db.posted(world.holdings) == 70_000_000

    log.info("invalidating block %s", orphan)
    rpc.call("invalidateblock", orphan)
    assert run(world.db, bitcoin=rpc).status is RunStatus.SUCCEEDED
    assert world.db.posted(world.holdings) == 0
    (reversed_booking,) = world.db.bookings(world.scope)
    assert reversed_booking.reversal_entry_id is not None
    assert world.db.trial_balance_zero()

    new_block = world.node.mine(1)[0]
    assert rpc.call("getrawtransaction", txid, True, new_block)["txid"] == txid
    for _ in range(3):
        run(world.db, bitcoin=rpc)
    bookings = world.db.bookings(world.scope)
    assert [(b.generation, b.block_hash, b.reversal_entry_id is None) for b in bookings] == [
        (1, orphan, False),
        (2, new_block, True),
    ]
    assert world.db.posted(world.holdings) == 70_000_000
    assert world.db.trial_balance_zero()


FOUNDING = officers.Founding("test")
"""These institutions have no admin: the test founds their rosters (``treasury.officers``)."""


def _officer(db: Db, institution: str, name: str, *roles: Role) -> officers.Officer:
    now = datetime.now(UTC)
    with db.sessions.begin() as session:
        codes = {i.code for i in officers.list_institutions(session)}
        if institution not in codes:
            officers.add_institution(session, institution, institution, actor=FOUNDING, now=now)
        return officers.add_officer(session, institution, name, roles, actor=FOUNDING, now=now)


@pytest.fixture
def authorised(
    bitcoin_node: BitcoinNode,
    db_url: str,
    tmp_path: Path,
    test_seed: int,
    request: pytest.FixtureRequest,
) -> Iterator[AuthorityWorld]:
    """The vault's ceremonies with a founded roster: spends approved by signed statements."""
    name = f"ra{test_seed % 10**6}-{abs(hash(request.node.nodeid)) % 10**8}"
    found = authority_world(db_url, bitcoin_node, tmp_path, test_seed, name)
    yield found
    found.db.engine.dispose()


def test_out_of_band_spend_raises_an_alarm_that_blocks_spends_until_two_officers_ack(
    authorised: AuthorityWorld,
) -> None:
    """A spend signed outside the system alarms in one run and closes the gate until two officers acknowledge it."""
    world = authorised.btc
    rpc, db = world.node.rpc, world.db
    external = rpc.wallet("miner").call("getnewaddress", "", "bech32")
    world.pay([200_000_000])
    run(db, bitcoin=rpc)

    log.info("an approved spend through custody (officers' statements verified) raises nothing")
    authorised.approved_btc_spend(10_000_000)
    world.node.mine(1)
    assert run(db, bitcoin=rpc).status is RunStatus.SUCCEEDED
    with db.sessions() as session:
        assert list_alarms(session, only_open=True) == []
        facts = ReconcileGate().latest(session, "BTC")
    assert facts is not None
    assert facts.outcome is ReconciliationOutcome.MATCHED

    log.info("now a spend signed directly with two recombined keys")
    txid = world.out_of_band_spend(external, 50_000_000)
    world.node.mine(1)
    report = run(db, bitcoin=rpc)
    assert report.status is RunStatus.SUCCEEDED
    with db.sessions() as session:
        (alarm,) = list_alarms(session, only_open=True)
        assert (alarm.kind, alarm.tx_ref) == (AlarmKind.UNAUTHORISED_OUTFLOW, txid)
        facts = ReconcileGate().latest(session, "BTC")
    assert facts is not None
    assert facts.outcome is ReconciliationOutcome.MISMATCHED
    assert db.posted(suspense_account("BTC")) > 50_000_000  # amount plus the fee
    run(db, bitcoin=rpc)
    with db.sessions() as session:
        assert len(list_alarms(session)) == 1  # one alarm per transaction, not per run

    first = _officer(db, "TR", "Alice", Role.APPROVER)
    second = _officer(db, "CB", "Bob", Role.ADMIN)
    auditor = _officer(db, "AO", "Ivy", Role.AUDITOR)
    with db.sessions.begin() as session, pytest.raises(AcknowledgementError):
        acknowledge(session, alarm.id, auditor, "Looked at it.")
    with db.sessions.begin() as session:
        assert acknowledge(session, alarm.id, first, "Checked with the bank: a test.").open
    with db.sessions.begin() as session, pytest.raises(AcknowledgementError):
        acknowledge(session, alarm.id, first, "Again.")
    colleague = _officer(db, "TR", "Aibek", Role.APPROVER)
    with (
        db.sessions.begin() as session,
        pytest.raises(AcknowledgementError, match="another institution"),
    ):
        acknowledge(session, alarm.id, colleague, "Same ministry, second voice.")
    with db.sessions() as session:
        (still_open,) = list_alarms(session, only_open=True)
    assert [a.officer_name for a in still_open.acknowledgements] == ["Alice"]
    run(db, bitcoin=rpc)
    with db.sessions() as session:
        facts = ReconcileGate().latest(session, "BTC")
    assert facts is not None
    assert facts.outcome is ReconciliationOutcome.MISMATCHED
    with db.sessions.begin() as session:
        cleared = acknowledge(session, alarm.id, second, "Confirmed; keys rotated.")
    assert not cleared.open
    assert [a.officer_name for a in cleared.acknowledgements] == [
        "Alice",
        "Bob",
    ]
    run(db, bitcoin=rpc)
    with db.sessions() as session:
        facts = ReconcileGate().latest(session, "BTC")
    assert facts is not None
    assert facts.outcome is ReconciliationOutcome.MATCHED
    assert db.trial_balance_zero()


class _DyingRPC(BitcoinRPC):
    """A real client that stops the node itself just before its N-th call (shared by wallets)."""

    def __init__(self, node: BitcoinNode, left: list[int], wallet: str | None = None) -> None:
        super().__init__(node.rpc_url, node.rpc_user, node.rpc_password, wallet=wallet)
        self._node, self._left = node, left

    def wallet(self, name: str) -> BitcoinRPC:
        return _DyingRPC(self._node, self._left, name)

    def call(self, method: str, *params: Any) -> Any:
        self._left[0] -= 1
        if self._left[0] == 0:
            log.info("stopping the node before %s", method)
            self._node.stop()
        return super().call(method, *params)


def test_node_down_mid_run_books_nothing_and_the_next_run_catches_up(
    binaries: NodeBinaries, db_url: str, tmp_path: Path, test_seed: int
) -> None:
    """A node that dies mid-read leaves a failed run, an alarm and no bookings; once back, one run books all."""
    node = BitcoinNode(binaries.bitcoind, datadir=tmp_path / "bitcoind")
    node.start()
    try:
        node.mine(101)
        db = migrated(db_url)
        world = btc_world(db, node, tmp_path, test_seed, "dying")
        world.pay([11_000_000, 12_000_000])
        entries = db.entry_count()

        report = run(db, bitcoin=_DyingRPC(node, [6]))
        assert report.status is RunStatus.FAILED
        assert report.vaults[0].unreachable
        assert db.bookings(world.scope) == []
        assert db.entry_count() == entries
        with db.sessions() as session:
            row = session.scalar(select(RunRow).where(RunRow.id == report.run_id))
            assert row is not None
            assert row.status is RunStatus.FAILED
            assert row.error
            (alarm,) = list_alarms(session, only_open=True)
            assert alarm.kind is AlarmKind.NODE_UNREACHABLE
            assert alarm.scope == world.scope

        assert run(db, bitcoin=node.rpc).status is RunStatus.FAILED  # still down
        with db.sessions() as session:
            assert len(list_alarms(session)) == 1  # one open alarm per vault, not one per run

        node.start()
        report = run(db, bitcoin=node.rpc)
        assert report.status is RunStatus.SUCCEEDED
        assert sorted(b.amount for b in db.bookings(world.scope)) == [11_000_000, 12_000_000]
        assert db.posted(world.holdings) == 23_000_000
        db.engine.dispose()
    finally:
        node.stop()
