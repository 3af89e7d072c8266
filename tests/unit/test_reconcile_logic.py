"""Reconciliation logic without nodes: reorg resume points, retry backoff, exactly-once booking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import UniqueConstraint, inspect, select

from treasury import ledger, migrate
from treasury.db import Base, make_engine, session_factory
from treasury.ledger import BTC
from treasury.reconcile import RECONCILE_TABLES, RunReport, VaultOutcome, holdings_account
from treasury.reconcile.booking import Booker
from treasury.reconcile.cursor import resume_point
from treasury.reconcile.observation import BlockRef, ChainBalance, Movement, Observation
from treasury.reconcile.records import BookingRow, MovementKind, RunRow, RunStatus
from treasury.reconcile.retries import reconcile_with_retries

CHAIN = {height: f"h{height}" for height in range(20)}


def test_resume_point_keeps_a_cursor_on_the_best_chain() -> None:
    """A cursor whose hash is still the chain's block at its height resumes there, reversing nothing."""
    resume = resume_point(BlockRef(5, "h5"), (BlockRef(3, "h3"),), CHAIN.get)
    assert (resume.start, resume.orphaned_above) == (BlockRef(5, "h5"), None)


def test_resume_point_falls_back_to_the_highest_surviving_booked_block() -> None:
    """An orphaned cursor resumes from the highest booked block still on the chain, reversing above it."""
    booked = (BlockRef(7, "x7"), BlockRef(4, "h4"), BlockRef(2, "h2"))
    resume = resume_point(BlockRef(8, "x8"), booked, CHAIN.get)
    assert (resume.start, resume.orphaned_above) == (BlockRef(4, "h4"), 4)


def test_resume_point_reverses_everything_when_nothing_survives() -> None:
    """If no booked block survives (or the chain got shorter than all of them), all bookings go."""
    resume = resume_point(BlockRef(30, "x30"), (BlockRef(25, "x25"),), CHAIN.get)
    assert (resume.start, resume.orphaned_above) == (None, -1)


def _report(unreachable: bool) -> RunReport:
    status = RunStatus.FAILED if unreachable else RunStatus.SUCCEEDED
    return RunReport(1, status, (VaultOutcome("btc:v", not unreachable, unreachable=unreachable),))


def test_retries_back_off_exponentially_while_a_node_is_down() -> None:
    """Unreachable-node runs are retried after 2, 4, 8 s (capped) until one succeeds."""
    outcomes = iter([True, True, True, False])
    slept: list[float] = []
    reports = reconcile_with_retries(
        lambda: _report(next(outcomes)), attempts=5, base_delay_s=2, max_delay_s=8,
        sleep=slept.append, echo=lambda _line: None,
    )  # fmt: skip
    assert slept == [2, 4, 8]
    assert [r.status for r in reports][-1] is RunStatus.SUCCEEDED


def test_retries_give_up_after_the_last_attempt() -> None:
    """A node that stays down is tried exactly ``attempts`` times."""
    slept: list[float] = []
    reports = reconcile_with_retries(
        lambda: _report(True), attempts=3, base_delay_s=1, sleep=slept.append, echo=lambda _l: None
    )
    assert len(reports) == 3
    assert slept == [1, 2]


def test_migration_0007_creates_exactly_the_models_tables(tmp_path: Path) -> None:
    """The migrated schema of every reconcile table equals the models' columns and types."""
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    inspector = inspect(engine)
    assert set(RECONCILE_TABLES) <= set(inspector.get_table_names())
    for table in RECONCILE_TABLES:
        model = Base.metadata.tables[table]
        migrated = {c["name"]: c for c in inspector.get_columns(table)}
        assert set(migrated) == {c.name for c in model.columns}, table
        for column in model.columns:
            assert migrated[column.name]["nullable"] == column.nullable, (table, column.name)
        assert {i["name"] for i in inspector.get_indexes(table)} == {i.name for i in model.indexes}
        assert {u["name"] for u in inspector.get_unique_constraints(table)} == {
            c.name for c in model.constraints if isinstance(c, UniqueConstraint)
        }, table
    engine.dispose()


def _movement(index: int, block: BlockRef) -> Movement:
    return Movement(
        f"btc:{index:064x}:0", MovementKind.DEPOSIT, BTC, 1000 + index, f"{index:064x}", block
    )


def _observation(
    target: BlockRef, movements: list[Movement], orphaned_above: int | None
) -> Observation:
    total = sum(m.amount for m in movements)
    return Observation(
        "btc:unit", "bitcoin", target, orphaned_above, tuple(movements), (),
        (ChainBalance(BTC, "BTC", total),),
    )  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 3)), min_size=1, max_size=8))
def test_any_sequence_of_reorgs_books_each_deposit_once(tmp_path_factory, script) -> None:  # type: ignore[no-untyped-def]
    """After any sequence of chains (each a reorg of the last), exactly the latest chain's deposits are active."""
    url = f"sqlite:///{tmp_path_factory.mktemp('p') / 'p.sqlite3'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    clock = iter(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s) for s in range(10**6))
    with sessions.begin() as session:
        run = RunRow(
            started_at=next(clock),
            pid=1,
            host="unit",
            status=RunStatus.RUNNING,
            booked=0,
            reversed=0,
        )
        session.add(run)
        session.flush()
        run_id = run.id
    booker = Booker(run_id, lambda: next(clock), lambda _line: None)
    previous: list[Movement] = []
    for fork, count in script:
        # keep deposits up to the fork height, then a new branch (new hashes) with `count` blocks
        kept = [m for m in previous if m.block.height <= fork]
        branch = [BlockRef(fork + i, f"b{len(previous)}-{fork}-{i}") for i in range(1, count + 1)]
        fresh = [_movement(i, branch[i % count]) for i in range(fork, fork + count)]
        movements = kept + [m for m in fresh if m.chain_key not in {k.chain_key for k in kept}]
        with sessions.begin() as session:
            booker.apply(session, _observation(branch[-1], movements, fork))
        with sessions.begin() as session:  # a replay books nothing new
            booker.apply(session, _observation(branch[-1], movements, None))
        previous = movements
    with sessions() as session:
        active = session.scalars(
            select(BookingRow).where(BookingRow.reversal_entry_id.is_(None))
        ).all()
        assert sorted((b.chain_key, b.block_hash) for b in active) == sorted(
            (m.chain_key, m.block.hash) for m in previous
        )
        assert all(line.balanced for line in ledger.trial_balance(session))
        expected = sum(m.amount for m in previous)
        assert ledger.balance(session, holdings_account("btc:unit", "BTC")).posted == expected
    engine.dispose()
