"""The state ledger on both databases, built by the real migrations.

Each test gets a fresh database (``db_url``: SQLite and PostgreSQL), a deterministic clock, and
the reserve's chart of accounts. Database guarantees are tested by going around the code with
raw SQL, the way a buggy or malicious writer would.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_support import StepClock, run_at_once
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from treasury import audit, ledger
from treasury.audit import AuditEvent
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV, Base
from treasury.exceptions import (
    IdempotencyConflictError,
    IllegalTransitionError,
    ImmutableRecordError,
    InvalidAmountError,
    OverdraftError,
    UnbalancedEntryError,
    UnknownAccountError,
    UnknownEntryError,
)
from treasury.ledger import (
    AccountType,
    EntryKind,
    EntryRequest,
    JournalEntry,
    Leg,
    PendingState,
    Posting,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ONE_BTC_SATS = 100_000_000
ONE_ETH_WEI = 10**18
ACTOR = "ledger-test"

RESERVE_BTC = "reserve:btc:vault-1"
OPENING_BTC = "equity:btc:opening"
NATIONAL_FUND_BTC = "fund:btc:national-reserve"
MINISTRY_BTC = "fund:btc:ministry-programme"
FEES_BTC = "expense:btc:fees"
RESERVE_ETH = "reserve:eth:safe-1"
OPENING_ETH = "equity:eth:opening"
NATIONAL_FUND_ETH = "fund:eth:national-reserve"


@pytest.fixture
def clock() -> StepClock:
    return StepClock(T0)


@pytest.fixture
def chart(sessions: sessionmaker[Session], clock: StepClock) -> None:
    """BTC and ETH, a vault per asset, opening equity, no-overdraft funds, and a fees expense."""
    accounts = [
        (RESERVE_BTC, AccountType.ASSET, "BTC", False, "vault-1"),
        (OPENING_BTC, AccountType.EQUITY, "BTC", False, None),
        (NATIONAL_FUND_BTC, AccountType.LIABILITY, "BTC", True, None),
        (MINISTRY_BTC, AccountType.LIABILITY, "BTC", True, None),
        (FEES_BTC, AccountType.EXPENSE, "BTC", False, None),
        (RESERVE_ETH, AccountType.ASSET, "ETH", False, "safe-1"),
        (OPENING_ETH, AccountType.EQUITY, "ETH", False, None),
        (NATIONAL_FUND_ETH, AccountType.LIABILITY, "ETH", True, None),
    ]
    with sessions.begin() as session:
        ledger.register_asset(session, ledger.BTC, actor=ACTOR, clock=clock)
        ledger.register_asset(session, ledger.ETH, actor=ACTOR, clock=clock)
        for code, kind, asset, guarded, ref in accounts:
            ledger.open_account(
                session,
                code,
                name=code.replace(":", " "),
                account_type=kind,
                asset_code=asset,
                no_overdraft=guarded,
                external_ref=ref,
                actor=ACTOR,
                clock=clock,
            )


def _fund_btc(sessions: sessionmaker[Session], clock: StepClock, sats: int, key: str) -> int:
    """Opening balance: the vault holds ``sats``, allocated to the national reserve fund."""
    with sessions.begin() as session:
        return ledger.record_entries(
            session,
            [
                EntryRequest(
                    key + "-in", (Leg.debit(RESERVE_BTC, sats), Leg.credit(OPENING_BTC, sats))
                ),
                EntryRequest(
                    key + "-alloc",
                    (Leg.debit(OPENING_BTC, sats), Leg.credit(NATIONAL_FUND_BTC, sats)),
                ),
            ],
            clock=clock,
        )[-1].id


def _posted(sessions: sessionmaker[Session], code: str) -> int:
    with sessions() as session:
        return ledger.balance(session, code).posted


def _entry_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return len(session.scalars(select(JournalEntry.id)).all())


def _raw_amount(engine: Engine, amount: int) -> int | str:
    """An amount as a raw SQL writer must bind it on this database."""
    return f"{amount:078d}" if engine.dialect.name == "sqlite" else amount


def _write_raw_entry(engine: Engine, key: str, legs: list[tuple[str, str, int | str]]) -> None:
    """Insert an entry declaring two postings, then ``legs``, with raw SQL in one transaction."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO ledger_entries (idempotency_key, kind, description, payload_hash, "
                "posting_count, recorded_at) VALUES (:key, 'posted', '', 'h', 2, :t)"
            ),
            {"key": key, "t": T0},
        )
        for position, (account, side, amount) in enumerate(legs, start=1):
            connection.execute(
                text(
                    "INSERT INTO ledger_postings (entry_id, position, account_id, asset_id, side, "
                    "amount) VALUES ((SELECT id FROM ledger_entries WHERE idempotency_key = :key), "
                    ":position, (SELECT id FROM ledger_accounts WHERE code = :account), 1, :side, "
                    ":amount)"
                ),
                {
                    "key": key,
                    "position": position,
                    "account": account,
                    "side": side,
                    "amount": amount,
                },
            )


def _is_balanced(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return all(line.balanced for line in ledger.trial_balance(session))


# --- Schema -----------------------------------------------------------------------------------


def test_migration_creates_exactly_the_models_tables(engine: Engine) -> None:
    """Migration 0004 creates the ledger and audit tables with the models' columns, keys and uniques."""
    inspector = inspect(engine)
    mine = (*ledger.LEDGER_TABLES, "audit_events")
    ledger_like = {t for t in inspector.get_table_names() if t.startswith(("ledger_", "audit_"))}
    assert ledger_like == set(mine)
    for name in mine:
        model = Base.metadata.tables[name]
        columns = {c["name"]: c["nullable"] for c in inspector.get_columns(name)}
        assert columns == {c.name: c.nullable for c in model.columns}, name
        assert inspector.get_pk_constraint(name)["constrained_columns"] == [
            c.name for c in model.primary_key.columns
        ]
        stored_uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)}
        stored_uniques |= {
            tuple(i["column_names"]) for i in inspector.get_indexes(name) if i["unique"]
        }
        model_uniques = {(c.name,) for c in model.columns if c.unique}
        model_uniques |= {
            tuple(c.name for c in u.columns)
            for u in model.constraints
            if u.__class__.__name__ == "UniqueConstraint"
        }
        assert stored_uniques == model_uniques, name


# --- Entries ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("chart")
def test_a_multi_asset_entry_balances_per_asset(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """One entry may move BTC and ETH at once when each asset balances on its own."""
    wei = 12_345 * ONE_ETH_WEI + 1  # beyond 64 bits and beyond float precision
    with sessions.begin() as session:
        entry = ledger.record_entry(
            session,
            "opening-both",
            [
                Leg.debit(RESERVE_BTC, 3 * ONE_BTC_SATS),
                Leg.debit(RESERVE_ETH, wei),
                Leg.credit(OPENING_BTC, 3 * ONE_BTC_SATS),
                Leg.credit(OPENING_ETH, wei),
            ],
            description="opening balances",
            clock=clock,
        )
    assert entry.kind is EntryKind.POSTED
    assert _posted(sessions, RESERVE_ETH) == wei
    assert _posted(sessions, OPENING_ETH) == wei
    assert _posted(sessions, RESERVE_BTC) == 3 * ONE_BTC_SATS
    with sessions() as session:
        assert ledger.get_entry(session, entry.id) == entry
        lines = {line.asset: line for line in ledger.trial_balance(session)}
    assert lines["ETH"].totals.debits_posted == wei
    assert all(line.balanced for line in lines.values())


@pytest.mark.usefixtures("chart")
def test_an_entry_balanced_only_across_assets_is_refused(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """Debits in BTC cannot be paid by credits in ETH: the entry is refused and nothing is written."""
    with sessions.begin() as session, pytest.raises(UnbalancedEntryError, match="in BTC"):
        ledger.record_entry(
            session,
            "cross-asset",
            [Leg.debit(RESERVE_BTC, 500), Leg.credit(OPENING_ETH, 500)],
            clock=clock,
        )
    assert _entry_count(sessions) == 0


@pytest.mark.usefixtures("chart")
@pytest.mark.parametrize("amount", [1.5, 2.0, "3"])
def test_non_integer_amounts_are_refused_before_and_at_the_database(
    sessions: sessionmaker[Session], clock: StepClock, amount: object
) -> None:
    """Floats and strings are refused by the service and by the column type under a raw ORM insert."""
    with sessions.begin() as session, pytest.raises(InvalidAmountError, match="leg 1"):
        ledger.record_entry(
            session,
            "float",
            [Leg.debit(RESERVE_BTC, amount), Leg.credit(OPENING_BTC, 2)],  # type: ignore[arg-type]
            clock=clock,
        )
    with sessions() as session:
        session.execute(
            text(
                "INSERT INTO ledger_entries (idempotency_key, kind, description, payload_hash, "
                "posting_count, recorded_at) VALUES ('raw', 'posted', '', 'h', 2, :t)"
            ),
            {"t": T0},
        )
        with pytest.raises(StatementError) as caught:
            session.execute(
                Posting.__table__.insert(),
                {
                    "entry_id": 1,
                    "position": 1,
                    "account_id": 1,
                    "asset_id": 1,
                    "side": "debit",
                    "amount": amount,
                },
            )
        assert isinstance(caught.value.orig, InvalidAmountError)
    assert _entry_count(sessions) == 0


def test_the_database_refuses_unbalanced_or_incomplete_entries_written_around_the_code(
    sessions: sessionmaker[Session], engine: Engine, chart: None
) -> None:
    """Raw SQL that skips the service cannot commit an unbalanced entry, a partial one, or an extra posting."""
    one, two = _raw_amount(engine, 7), _raw_amount(engine, 8)
    attempts = {
        "unbalanced": [(RESERVE_BTC, "debit", one), (OPENING_BTC, "credit", two)],
        "incomplete": [(RESERVE_BTC, "debit", one)],
        "extra": [
            (RESERVE_BTC, "debit", one),
            (OPENING_BTC, "credit", one),
            (FEES_BTC, "debit", one),
        ],
    }
    for key, legs in attempts.items():
        with pytest.raises(IntegrityError):
            _write_raw_entry(engine, key, legs)
    assert _entry_count(sessions) == 0
    _write_raw_entry(engine, "fine", [(RESERVE_BTC, "debit", one), (OPENING_BTC, "credit", one)])
    assert _posted(sessions, RESERVE_BTC) == 7


@pytest.mark.usefixtures("chart")
def test_a_repeated_key_replays_and_a_changed_payload_conflicts(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """The same key and payload returns the original entry; the same key with another payload is refused."""
    legs = [Leg.debit(RESERVE_BTC, 1_000), Leg.credit(OPENING_BTC, 1_000)]
    with sessions.begin() as session:
        first = ledger.record_entry(session, "deposit-42", legs, description="d", clock=clock)
    with sessions.begin() as session:
        again = ledger.record_entry(session, "deposit-42", legs[::-1], description="d", clock=clock)
        batch = ledger.record_entries(
            session, [EntryRequest("deposit-42", tuple(legs), "d")] * 3, clock=clock
        )
    assert again == first
    assert batch == [first, first, first]
    changed = [
        ([Leg.debit(RESERVE_BTC, 1_001), Leg.credit(OPENING_BTC, 1_001)], "d", False),
        (legs, "other description", False),
        (legs, "d", True),
    ]
    for other_legs, description, pending in changed:
        with (
            sessions.begin() as session,
            pytest.raises(IdempotencyConflictError, match="deposit-42"),
        ):
            ledger.record_entry(
                session,
                "deposit-42",
                other_legs,
                description=description,
                pending=pending,
                clock=clock,
            )
    with sessions.begin() as session, pytest.raises(IdempotencyConflictError, match="twice"):
        ledger.record_entries(
            session,
            [EntryRequest("dup", tuple(legs)), EntryRequest("dup", tuple(legs), "x")],
            clock=clock,
        )
    assert _entry_count(sessions) == 1


@pytest.mark.usefixtures("chart")
def test_unknown_accounts_are_refused_and_nothing_of_the_batch_is_written(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """A batch with one leg on an unknown account writes none of its entries."""
    good = EntryRequest("good", (Leg.debit(RESERVE_BTC, 5), Leg.credit(OPENING_BTC, 5)))
    bad = EntryRequest("bad", (Leg.debit("reserve:btc:nowhere", 5), Leg.credit(OPENING_BTC, 5)))
    with sessions.begin() as session, pytest.raises(UnknownAccountError, match="nowhere"):
        ledger.record_entries(session, [good, bad], clock=clock)
    assert _entry_count(sessions) == 0


def test_ledger_and_audit_rows_cannot_be_changed_with_raw_sql(
    sessions: sessionmaker[Session], engine: Engine, clock: StepClock, chart: None
) -> None:
    """UPDATE and DELETE (and TRUNCATE on PostgreSQL) of entries, postings, accounts, assets and audit events fail."""
    _fund_btc(sessions, clock, 10 * ONE_BTC_SATS, "fund")
    with sessions.begin() as session:
        pending = ledger.record_entry(
            session,
            "p",
            [Leg.debit(NATIONAL_FUND_BTC, 5), Leg.credit(MINISTRY_BTC, 5)],
            pending=True,
            clock=clock,
        )
        ledger.void_pending(session, pending.id, "v", actor=ACTOR, reason="test", clock=clock)
    statements = [
        "UPDATE ledger_entries SET description = 'rewritten'",
        "UPDATE ledger_entries SET kind = 'posted' WHERE kind = 'pending'",
        "DELETE FROM ledger_entries WHERE kind = 'void_pending'",
        "UPDATE ledger_postings SET account_id = account_id",
        "DELETE FROM ledger_postings",
        "UPDATE ledger_accounts SET no_overdraft = NOT no_overdraft",
        "DELETE FROM ledger_assets",
        "UPDATE audit_events SET actor = 'someone else'",
        "DELETE FROM audit_events",
    ]
    if engine.dialect.name == "postgresql":
        statements += [f"TRUNCATE {table} CASCADE" for table in ledger.LEDGER_TABLES]
    with sessions() as session:
        before = [ledger.get_entry(session, i) for i in range(1, 5)]
        head = audit.head(session)
    for statement in statements:
        with pytest.raises(IntegrityError, match="immutable"), engine.begin() as connection:
            connection.execute(text(statement))
    with sessions() as session:
        assert [ledger.get_entry(session, i) for i in range(1, 5)] == before
        assert audit.head(session) == head
        assert ledger.pending_state(session, pending.id) is PendingState.VOIDED


@pytest.mark.usefixtures("chart")
def test_orm_changes_to_stored_rows_are_refused(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """Changing or deleting a loaded entry or audit event through the ORM raises ImmutableRecordError."""
    _fund_btc(sessions, clock, 100, "fund")
    with sessions() as session:
        entry = session.scalars(select(JournalEntry)).first()
        assert entry is not None
        entry.description = "rewritten"
        with pytest.raises(ImmutableRecordError, match="reversing entry"):
            session.flush()
        session.rollback()
        event = session.scalars(select(AuditEvent)).first()
        assert event is not None
        session.delete(event)
        with pytest.raises(ImmutableRecordError):
            session.flush()


# --- Two-phase, reversal, overdraft -----------------------------------------------------------


@pytest.mark.usefixtures("chart")
def test_a_pending_entry_reserves_then_posts(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """Pending legs count as pending (and against availability) until posted; then they are posted."""
    _fund_btc(sessions, clock, 1_000, "fund")
    spend = [Leg.debit(NATIONAL_FUND_BTC, 300), Leg.credit(RESERVE_BTC, 300)]
    with sessions.begin() as session:
        pending = ledger.record_entry(session, "spend-1", spend, pending=True, clock=clock)
        fund = ledger.balance(session, NATIONAL_FUND_BTC)
        assert (fund.posted, fund.pending, fund.available) == (1_000, -300, 700)
        assert ledger.pending_state(session, pending.id) is PendingState.PENDING
    with sessions.begin() as session:
        posted = ledger.post_pending(session, pending.id, "spend-1-post", clock=clock)
        assert ledger.post_pending(session, pending.id, "spend-1-post", clock=clock) == posted
    assert (posted.kind, posted.pending_id, posted.legs) == (
        EntryKind.POST_PENDING,
        pending.id,
        pending.legs,
    )
    with sessions() as session:
        fund = ledger.balance(session, NATIONAL_FUND_BTC)
        assert (fund.posted, fund.pending, fund.available) == (700, 0, 700)
        assert ledger.balance(session, RESERVE_BTC).posted == 700
        assert ledger.pending_state(session, pending.id) is PendingState.POSTED
    for again in (
        lambda s: ledger.post_pending(s, pending.id, "spend-1-post-again", clock=clock),
        lambda s: ledger.void_pending(
            s, pending.id, "spend-1-void", actor=ACTOR, reason="late", clock=clock
        ),
    ):
        with (
            sessions.begin() as session,
            pytest.raises(IllegalTransitionError, match=f"already posted by entry #{posted.id}"),
        ):
            again(session)
    assert _is_balanced(sessions)


@pytest.mark.usefixtures("chart")
def test_a_pending_entry_can_be_voided_once_and_then_never_posted(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """Voiding releases the reservation, is audited, and a voided entry cannot be posted or voided again."""
    _fund_btc(sessions, clock, 1_000, "fund")
    with sessions.begin() as session:
        pending = ledger.record_entry(
            session,
            "spend-2",
            [Leg.debit(NATIONAL_FUND_BTC, 999), Leg.credit(RESERVE_BTC, 999)],
            pending=True,
            clock=clock,
        )
        voided = ledger.void_pending(
            session, pending.id, "spend-2-void", actor="oversight", reason="vetoed", clock=clock
        )
    assert (voided.kind, voided.legs, voided.description) == (EntryKind.VOID_PENDING, (), "vetoed")
    with sessions() as session:
        fund = ledger.balance(session, NATIONAL_FUND_BTC)
        assert (fund.posted, fund.pending, fund.available) == (1_000, 0, 1_000)
        last = audit.events(session, after=audit.head(session).sequence - 1)[0]
        assert (last.kind, last.actor) == (audit.AuditKind.LEDGER_PENDING_VOIDED, "oversight")
        assert '"pending_id":' + str(pending.id) in last.refs
    with sessions.begin() as session, pytest.raises(IllegalTransitionError, match="already voided"):
        ledger.post_pending(session, pending.id, "spend-2-post", clock=clock)
    with sessions.begin() as session, pytest.raises(IllegalTransitionError, match="already voided"):
        ledger.void_pending(
            session, pending.id, "spend-2-void-2", actor=ACTOR, reason="x", clock=clock
        )


def test_illegal_transitions_are_refused_by_the_code_and_the_database(
    sessions: sessionmaker[Session], engine: Engine, clock: StepClock, chart: None
) -> None:
    """Posting or voiding a non-pending entry, reversing a pending one, or resolving twice is refused."""
    direct_id = _fund_btc(sessions, clock, 1_000, "fund")
    with sessions.begin() as session:
        pending = ledger.record_entry(
            session,
            "p",
            [Leg.debit(NATIONAL_FUND_BTC, 1), Leg.credit(RESERVE_BTC, 1)],
            pending=True,
            clock=clock,
        )
    refusals = [
        (
            lambda s: ledger.post_pending(s, direct_id, "a", clock=clock),
            IllegalTransitionError,
            "not a pending one",
        ),
        (
            lambda s: ledger.void_pending(s, direct_id, "b", actor=ACTOR, reason="r", clock=clock),
            IllegalTransitionError,
            "not a pending one",
        ),
        (
            lambda s: ledger.reverse(s, pending.id, "c", actor=ACTOR, reason="r", clock=clock),
            IllegalTransitionError,
            "void it instead",
        ),
        (lambda s: ledger.post_pending(s, 10_000, "d", clock=clock), UnknownEntryError, "10000"),
    ]
    for attempt, error, message in refusals:
        with sessions.begin() as session, pytest.raises(error, match=message):
            attempt(session)
    with sessions.begin() as session:
        ledger.post_pending(session, pending.id, "p-post", clock=clock)
    resolution = (
        "INSERT INTO ledger_entries (idempotency_key, kind, description, payload_hash, pending_id, "
        "recorded_at) VALUES (:key, 'void_pending', '', 'h', :target, :t)"
    )
    for key, target in (("raw-void-posted", direct_id), ("raw-second-resolution", pending.id)):
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text(resolution), {"key": key, "target": target, "t": T0})
    with sessions() as session:
        assert ledger.pending_state(session, pending.id) is PendingState.POSTED


@pytest.mark.usefixtures("chart")
def test_a_reversing_entry_restores_balances_once(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """A reversal mirrors the entry, restores every balance, is audited, and cannot be repeated."""
    _fund_btc(sessions, clock, 1_000, "fund")
    with sessions.begin() as session:
        wrong = ledger.record_entry(
            session,
            "alloc-typo",
            [Leg.debit(NATIONAL_FUND_BTC, 400), Leg.credit(MINISTRY_BTC, 400)],
            clock=clock,
        )
    with sessions.begin() as session:
        fix = ledger.reverse(
            session, wrong.id, "alloc-typo-fix", actor="accountant", reason="typo", clock=clock
        )
        assert (
            ledger.reverse(
                session, wrong.id, "alloc-typo-fix", actor="accountant", reason="typo", clock=clock
            )
            == fix
        )
    assert fix.reverses_id == wrong.id
    assert fix.legs == (Leg.credit(NATIONAL_FUND_BTC, 400), Leg.debit(MINISTRY_BTC, 400))
    assert _posted(sessions, NATIONAL_FUND_BTC) == 1_000
    assert _posted(sessions, MINISTRY_BTC) == 0
    with sessions() as session:
        last = audit.events(session, after=audit.head(session).sequence - 1)[0]
        assert (last.kind, last.actor) == (audit.AuditKind.LEDGER_ENTRY_REVERSED, "accountant")
    with (
        sessions.begin() as session,
        pytest.raises(IllegalTransitionError, match=f"already reversed by entry #{fix.id}"),
    ):
        ledger.reverse(
            session, wrong.id, "alloc-typo-fix-2", actor=ACTOR, reason="again", clock=clock
        )
    with sessions.begin() as session:
        allocation = ledger.record_entry(
            session,
            "alloc-2",
            [Leg.debit(NATIONAL_FUND_BTC, 300), Leg.credit(MINISTRY_BTC, 300)],
            clock=clock,
        )
        ledger.record_entry(
            session,
            "ministry-spend",
            [Leg.debit(MINISTRY_BTC, 300), Leg.credit(RESERVE_BTC, 300)],
            clock=clock,
        )
    with sessions.begin() as session, pytest.raises(OverdraftError, match="ministry"):
        ledger.reverse(
            session, allocation.id, "alloc-2-undo", actor=ACTOR, reason="spent", clock=clock
        )


@pytest.mark.usefixtures("chart")
def test_no_overdraft_accounts_count_pending_debits(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """A no-overdraft fund refuses a spend beyond what is posted minus pending reservations."""
    _fund_btc(sessions, clock, 100, "fund")
    with sessions.begin() as session:
        ledger.record_entry(
            session,
            "reserve-60",
            [Leg.debit(NATIONAL_FUND_BTC, 60), Leg.credit(RESERVE_BTC, 60)],
            pending=True,
            clock=clock,
        )
    over = [Leg.debit(NATIONAL_FUND_BTC, 41), Leg.credit(MINISTRY_BTC, 41)]
    with (
        sessions.begin() as session,
        pytest.raises(OverdraftError, match="available balance of -1"),
    ):
        ledger.record_entry(session, "too-much", over, clock=clock)
    exact = [Leg.debit(NATIONAL_FUND_BTC, 40), Leg.credit(MINISTRY_BTC, 40)]
    with sessions.begin() as session:
        ledger.record_entry(session, "exactly-enough", exact, clock=clock)
    with sessions() as session:
        assert ledger.balance(session, NATIONAL_FUND_BTC).available == 0


@pytest.mark.usefixtures("chart")
def test_balances_as_of_an_entry_or_a_time(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """Balances can be read as they stood after any entry id or at any time, pending and posted."""
    with sessions.begin() as session:
        first = ledger.record_entry(
            session, "e1", [Leg.debit(RESERVE_BTC, 10), Leg.credit(OPENING_BTC, 10)], clock=clock
        )
        second = ledger.record_entry(
            session,
            "e2",
            [Leg.debit(RESERVE_BTC, 5), Leg.credit(OPENING_BTC, 5)],
            pending=True,
            clock=clock,
        )
    with sessions.begin() as session:
        third = ledger.post_pending(session, second.id, "e2-post", clock=clock)
    views = {
        "after e1": ledger.Cutoff(entry_id=first.id),
        "after e2": ledger.Cutoff(entry_id=second.id),
        "at e2's time": ledger.Cutoff(time=second.recorded_at),
        "before anything": ledger.Cutoff(time=first.recorded_at - timedelta(microseconds=1)),
        "after e3": ledger.Cutoff(entry_id=third.id),
    }
    with sessions() as session:
        seen = {
            name: ledger.balance(session, RESERVE_BTC, cutoff) for name, cutoff in views.items()
        }
        lines = ledger.trial_balance(session, views["after e2"])
    assert {name: (b.posted, b.pending) for name, b in seen.items()} == {
        "after e1": (10, 0),
        "after e2": (10, 5),
        "at e2's time": (10, 5),
        "before anything": (0, 0),
        "after e3": (15, 0),
    }
    assert all(line.balanced for line in lines)


# --- Properties and concurrency ---------------------------------------------------------------

PROPERTY_ACCOUNTS = {
    "BTC": [RESERVE_BTC, OPENING_BTC, FEES_BTC],
    "ETH": [RESERVE_ETH, OPENING_ETH],
}

transfer = st.tuples(
    st.sampled_from(sorted(PROPERTY_ACCOUNTS)),
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(min_value=1, max_value=10**30),
)
operation = st.one_of(
    st.tuples(st.just("record"), st.lists(transfer, min_size=1, max_size=3), st.booleans()),
    st.tuples(st.just("resolve"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("reverse"), st.integers(0, 50), st.just(False)),
)


@pytest.mark.usefixtures("chart")
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture
    ],  # one ledger grows across examples on purpose
)
@given(operations=st.lists(operation, min_size=1, max_size=6))
def test_any_sequence_of_valid_entries_keeps_every_asset_balanced(
    sessions: sessionmaker[Session], clock: StepClock, operations: list[tuple[str, object, bool]]
) -> None:
    """Whatever valid entries, posts, voids and reversals happen, each asset's trial balance is zero and balances match a model."""
    model: dict[tuple[str, str], int] = defaultdict(
        int
    )  # (account, posted|pending) -> debit - credit
    with sessions() as session:
        for b in ledger.balances(session):
            t = b.totals
            model[b.account, "posted"] = t.debits_posted - t.credits_posted
            model[b.account, "pending"] = t.debits_pending - t.credits_pending
        stored_entries = ledger.list_entries(session, limit=10_000)
        reversed_ids = {e.reverses_id for e in stored_entries}
        pendings = [
            e
            for e in stored_entries
            if e.kind is EntryKind.PENDING
            and ledger.pending_state(session, e.id) is PendingState.PENDING
        ]
        postable = [
            e
            for e in stored_entries
            if e.kind in (EntryKind.POSTED, EntryKind.POST_PENDING) and e.id not in reversed_ids
        ]
    keys = (
        f"prop-{len(stored_entries)}-{n}" for n in itertools.count()
    )  # the entry count only grows: unique

    def apply(legs: tuple[Leg, ...], bucket: str, sign: int = 1) -> None:
        for leg in legs:
            model[leg.account, bucket] += sign * (
                leg.amount if leg.side is ledger.Side.DEBIT else -leg.amount
            )

    for name, argument, flag in operations:
        with sessions.begin() as session:
            if name == "record":
                legs: list[Leg] = []
                for asset, i, j, amount in argument:  # type: ignore[attr-defined]
                    codes = PROPERTY_ACCOUNTS[asset]
                    legs += [
                        Leg.debit(codes[i % len(codes)], amount),
                        Leg.credit(codes[j % len(codes)], amount),
                    ]
                entry = ledger.record_entry(session, next(keys), legs, pending=flag, clock=clock)
                if flag:
                    pendings.append(entry)
                    apply(entry.legs, "pending")
                else:
                    postable.append(entry)
                    apply(entry.legs, "posted")
            elif name == "resolve" and pendings:
                target = pendings.pop(argument % len(pendings))  # type: ignore[operator]
                apply(target.legs, "pending", -1)
                if flag:
                    postable.append(
                        ledger.post_pending(session, target.id, next(keys), clock=clock)
                    )
                    apply(target.legs, "posted")
                else:
                    ledger.void_pending(
                        session, target.id, next(keys), actor=ACTOR, reason="p", clock=clock
                    )
            elif name == "reverse" and postable:
                target = postable.pop(argument % len(postable))  # type: ignore[operator]
                reversal = ledger.reverse(
                    session, target.id, next(keys), actor=ACTOR, reason="p", clock=clock
                )
                apply(reversal.legs, "posted")
    with sessions() as session:
        assert all(line.balanced for line in ledger.trial_balance(session))
        for b in ledger.balances(session):
            t = b.totals
            assert t.debits_posted - t.credits_posted == model[b.account, "posted"], b.account
            assert t.debits_pending - t.credits_pending == model[b.account, "pending"], b.account
        assert audit.verify(session).ok


BANK_THREADS = 8
BANK_OPERATIONS_PER_THREAD = 30
BANK_ACCOUNTS = 5
BANK_OPENING_SATS = 600


def test_concurrent_transfers_keep_the_bank_invariants(
    sessions: sessionmaker[Session], clock: StepClock, test_seed: int
) -> None:
    """Eight threads of random transfers (with shared, repeated keys) leave one entry per key, no overdraft, and zero trial balance."""
    banks = [f"bank:{n}" for n in range(BANK_ACCOUNTS)]
    with sessions.begin() as session:
        ledger.register_asset(session, ledger.BTC, actor=ACTOR, clock=clock)
        ledger.open_account(
            session,
            OPENING_BTC,
            name="opening",
            account_type=AccountType.EQUITY,
            asset_code="BTC",
            actor=ACTOR,
            clock=clock,
        )
        for code in banks:
            ledger.open_account(
                session,
                code,
                name=code,
                account_type=AccountType.LIABILITY,
                asset_code="BTC",
                no_overdraft=True,
                actor=ACTOR,
                clock=clock,
            )
        ledger.record_entries(
            session,
            [
                EntryRequest(
                    f"open-{c}",
                    (Leg.debit(OPENING_BTC, BANK_OPENING_SATS), Leg.credit(c, BANK_OPENING_SATS)),
                )
                for c in banks
            ],
            clock=clock,
        )
    shared_rng = random.Random(test_seed)  # noqa: S311 - reproducible test data, replayable by seed
    shared = [
        (f"shared-{n}", *shared_rng.sample(banks, 2), shared_rng.randint(1, 400)) for n in range(12)
    ]
    results: dict[str, set[int]] = defaultdict(set)
    failures: list[BaseException] = []
    open_pendings: list[int] = []  # shared: threads race to post or void the same pending entry
    results_lock = threading.Lock()

    def worker(number: int) -> None:
        rng = random.Random(test_seed * 100 + number)  # noqa: S311 - reproducible test data
        mine: list[tuple[str, str, str, int]] = []
        for step in range(BANK_OPERATIONS_PER_THREAD):
            roll = rng.random()
            if roll < 0.25:
                key, source, target, amount = rng.choice(shared)
            elif roll < 0.35 and mine:
                key, source, target, amount = rng.choice(mine)
            else:
                key = f"t{number}-{step}"
                source, target = rng.sample(banks, 2)
                amount = rng.randint(1, 400)
                mine.append((key, source, target, amount))
            pending = key.endswith(("3", "7")) and not key.startswith("shared")
            try:
                with sessions.begin() as session:
                    entry = ledger.record_entry(
                        session,
                        key,
                        [Leg.debit(source, amount), Leg.credit(target, amount)],
                        pending=pending,
                        clock=clock,
                    )
                with results_lock:
                    results[key].add(entry.id)
                    if pending and entry.id not in open_pendings:
                        open_pendings.append(entry.id)
                    target_id = rng.choice(open_pendings) if open_pendings else None
                if target_id is not None and rng.random() < 0.5:
                    action = rng.choice(["post", "void"])
                    with sessions.begin() as session:
                        if action == "post":
                            resolution = ledger.post_pending(
                                session, target_id, f"post-{target_id}", clock=clock
                            )
                        else:
                            resolution = ledger.void_pending(
                                session,
                                target_id,
                                f"void-{target_id}",
                                actor=f"thread-{number}",
                                reason="bank test",
                                clock=clock,
                            )
                    with results_lock:
                        results[resolution.key].add(resolution.id)
            except (OverdraftError, IllegalTransitionError):
                continue  # refusals the rules call for: not enough available, or resolved already
            except BaseException as exc:  # any other error fails the test below, with its cause
                failures.append(exc)
                return

    run_at_once(worker, BANK_THREADS)
    assert failures == []
    with sessions() as session:
        assert all(line.balanced for line in ledger.trial_balance(session))
        stored = list(session.execute(select(JournalEntry.idempotency_key, JournalEntry.id)))
        by_key = dict(stored)
        assert len(by_key) == len(stored)
        for key, ids in results.items():
            assert ids == {by_key[key]}, key  # every thread that used a key got the one entry
        assert len(stored) == len(results) + BANK_ACCOUNTS
        resolved = [
            r
            for (r,) in session.execute(
                select(JournalEntry.pending_id).where(JournalEntry.pending_id.is_not(None))
            )
        ]
        assert len(resolved) == len(
            set(resolved)
        )  # each pending entry posted or voided at most once
        bank_balances = ledger.balances(session, banks)
        assert all(b.available >= 0 and b.posted >= 0 for b in bank_balances)
        assert sum(b.posted for b in bank_balances) == BANK_ACCOUNTS * BANK_OPENING_SATS
        assert audit.verify(session).ok
    assert any(key.startswith("shared") for key in results)
    assert any(key.startswith(("post-", "void-")) for key in results)


# --- CLI --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("chart")
def test_the_cli_prints_balances_trial_balance_and_entries(
    sessions: sessionmaker[Session], clock: StepClock, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`treasury ledger balances` and `entries` print whole units, the trial balance and each leg."""
    _fund_btc(sessions, clock, 150_000_000, "fund")
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)
    runner = CliRunner()
    shown = runner.invoke(app, ["ledger", "balances", "--asset", "BTC"])
    assert shown.exit_code == 0, shown.output
    assert "fund:btc:national-reserve" in shown.output
    assert "1.50000000 BTC" in shown.output
    assert "trial balance BTC: debits 300000000 = credits 300000000 sat posted" in shown.output
    assert "ETH" not in shown.output
    earlier = runner.invoke(app, ["ledger", "balances", "--as-of-entry", "1"])
    assert "available                 0.00000000 BTC" in earlier.output.splitlines()[2]
    listed = runner.invoke(app, ["ledger", "entries", "--account", NATIONAL_FUND_BTC])
    assert listed.exit_code == 0, listed.output
    assert "#2 " in listed.output
    assert "#1 " not in listed.output
    assert f"credit {NATIONAL_FUND_BTC:32} 150000000" in listed.output
    unknown = runner.invoke(app, ["ledger", "entries", "--account", "nope"])
    assert unknown.exit_code == 2
    assert "error: The account code 'nope' names no account." in unknown.output
