"""The database's own ledger checks, attacked with raw SQL on both databases (issue 18).

Migration 0024 made SQLite's balance trigger take a fast path (one asset, every amount below
10**18, two 9-digit slices) and PostgreSQL's deferred check read the postings once. These tests
go around the code the way a buggy or malicious writer would and hold the database's verdict to
exact integer arithmetic: entries that balance only in their low digits, amounts near 10**78,
several assets, postings out of order, missing or beyond ``posting_count``. Migration 0025
made PostgreSQL's range check run per statement and gave its deferred check a fast path. The
verdict is also compared with 0004's triggers (a database migrated to 0023) and 0024's, example
by example. PostgreSQL's own attacks on 0025 are in ``test_ledger_statement_checks.py``.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from treasury import ledger, migrate
from treasury.db import make_engine, session_factory
from treasury.exceptions import UnbalancedEntryError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACTOR = "ledger-checks-test"
LIMIT = 10**78
"""Amounts are 1 .. 10**78 - 1 (78 digits)."""
SMALL = 10**18
"""SQLite's fast path covers single-asset entries with every amount below this."""
ACCOUNTS = {
    "btc-a": "BTC",
    "btc-b": "BTC",
    "btc-c": "BTC",
    "eth-a": "ETH",
    "eth-b": "ETH",
    "eth-c": "ETH",
}


@dataclass(frozen=True)
class RawLeg:
    """One posting as a raw writer sends it."""

    account: str
    side: str
    amount: int


def _chart(engine: Engine) -> None:
    """BTC and ETH with a few accounts each."""
    with session_factory(engine).begin() as session:
        ledger.register_asset(session, ledger.BTC, actor=ACTOR)
        ledger.register_asset(session, ledger.ETH, actor=ACTOR)
        for code, asset in ACCOUNTS.items():
            ledger.open_account(
                session,
                code,
                name=code,
                account_type=ledger.AccountType.ASSET,
                asset_code=asset,
                actor=ACTOR,
            )


_keys = itertools.count()


def _write(
    engine: Engine,
    legs: Sequence[RawLeg],
    *,
    posting_count: int | None = None,
    positions: Sequence[int] | None = None,
    kind: str = "posted",
    reverses_id: int | None = None,
) -> bool:
    """Insert one entry and its postings with raw SQL in one transaction: True if it committed,
    False if the database refused it (at an insert or at COMMIT)."""
    sqlite = engine.dialect.name == "sqlite"
    key = f"raw-{next(_keys)}"
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO ledger_entries (idempotency_key, kind, description, "
                    "payload_hash, posting_count, reverses_id, recorded_at) VALUES (:key, :kind, "
                    "'', 'h', :count, :reverses, :t)"
                ),
                {
                    "key": key,
                    "kind": kind,
                    "count": len(legs) if posting_count is None else posting_count,
                    "reverses": reverses_id,
                    "t": T0,
                },
            )
            for position, leg in zip(positions or range(1, len(legs) + 1), legs, strict=True):
                connection.execute(
                    text(
                        "INSERT INTO ledger_postings (entry_id, position, account_id, asset_id, "
                        "side, amount) SELECT e.id, :position, a.id, a.asset_id, :side, :amount "
                        "FROM ledger_entries e, ledger_accounts a "
                        "WHERE e.idempotency_key = :key AND a.code = :account"
                    ),
                    {
                        "key": key,
                        "position": position,
                        "account": leg.account,
                        "side": leg.side,
                        "amount": f"{leg.amount:078d}" if sqlite else leg.amount,
                    },
                )
    except IntegrityError:  # at an insert, or at COMMIT (PostgreSQL's deferred check)
        return False
    return True


def _balanced(legs: Sequence[RawLeg]) -> bool:
    """The exact rule: per asset, debits equal credits."""
    net: dict[str, int] = defaultdict(int)
    for leg in legs:
        net[ACCOUNTS[leg.account]] += leg.amount if leg.side == "debit" else -leg.amount
    return not any(net.values())


def _stored_entries(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one())


def d(account: str, amount: int) -> RawLeg:
    return RawLeg(account, "debit", amount)


def c(account: str, amount: int) -> RawLeg:
    return RawLeg(account, "credit", amount)


REFUSED = {
    "small, off by one": [d("btc-a", 7), c("btc-b", 8)],
    "low 18 digits balance, 10**18 differs": [d("btc-a", SMALL + 5), c("btc-b", 5)],
    "low 18 digits balance, 10**60 differs": [d("btc-a", 10**60 + 5), c("btc-b", 5)],
    "low 60 digits balance, top digit differs": [
        d("btc-a", 9 * 10**77 + 1),
        c("btc-b", 10**77 + 1),
    ],
    "near 10**78, off by one": [d("btc-a", LIMIT - 1), c("btc-b", LIMIT - 2)],
    "near 10**78, off by 10**9": [d("btc-a", LIMIT - 1), c("btc-b", LIMIT - 1 - 10**9)],
    "just below 10**18 against 10**18": [d("btc-a", SMALL - 1), c("btc-b", SMALL)],
    "low slice carries wrong": [d("btc-a", 10**9), c("btc-b", 10**9 - 1), c("btc-c", 2)],
    "balanced only across assets": [d("btc-a", 5), c("eth-a", 5)],
    "one asset balances, the other not": [
        d("btc-a", 5),
        c("btc-b", 5),
        d("eth-a", 10**30),
        c("eth-b", 10**30 - 1),
    ],
    "two huge debits, one credit short by 10**78 - its sum": [
        d("btc-a", LIMIT - 1),
        d("btc-b", LIMIT - 1),
        c("btc-c", LIMIT - 2),
    ],
}
"""Unbalanced entries, each sent in position order with the right posting_count."""

ACCEPTED = {
    "small": [d("btc-a", 7), c("btc-b", 7)],
    "carry across the low slices": [d("btc-a", 10**9), c("btc-b", 10**9 - 1), c("btc-c", 1)],
    "just below 10**18 twice": [
        d("btc-a", 2 * SMALL - 2),
        c("btc-b", SMALL - 1),
        c("btc-c", SMALL - 1),
    ],
    "exactly 10**18": [d("btc-a", SMALL), c("btc-b", SMALL)],
    "near 10**78": [d("btc-a", LIMIT - 1), c("btc-b", LIMIT - 1)],
    "near 10**78, split": [
        d("btc-a", LIMIT - 1),
        c("btc-b", LIMIT // 2),
        c("btc-c", LIMIT // 2 - 1),
    ],
    "two assets, each balanced": [
        d("btc-a", 5),
        c("btc-b", 5),
        d("eth-a", 10**40),
        c("eth-b", 10**40),
    ],
}


def test_unbalanced_entries_are_refused_whatever_their_size(engine: Engine) -> None:
    """Every unbalanced entry is refused, including those whose low digits balance (only the
    full check sees them) and those near 10**78; nothing of them is stored."""
    _chart(engine)
    refused = {name: not _write(engine, legs) for name, legs in REFUSED.items()}
    assert refused == dict.fromkeys(REFUSED, True)
    assert _stored_entries(engine) == 0


def test_balanced_entries_are_stored_whatever_their_size(engine: Engine) -> None:
    """Balanced entries of every size and shape commit, several assets included."""
    _chart(engine)
    stored = {name: _write(engine, legs) for name, legs in ACCEPTED.items()}
    assert stored == dict.fromkeys(ACCEPTED, True)
    assert _stored_entries(engine) == len(ACCEPTED)


def test_positions_must_run_one_to_posting_count_in_order(engine: Engine) -> None:
    """A gap, a repeat, a zero, one beyond ``posting_count`` or one missing refuse the entry,
    balanced as it is. SQLite also requires them in order (its triggers check as they come);
    PostgreSQL counts them at COMMIT, so a complete set in another order is the same entry."""
    _chart(engine)
    three = [d("btc-a", 10), c("btc-b", 4), c("btc-c", 6)]
    two = [d("btc-a", 10), c("btc-b", 10)]
    attempts = {
        "starts at 2": _write(engine, two, positions=[2, 3]),
        "repeat": _write(engine, three, positions=[1, 1, 2]),
        "zero": _write(engine, two, positions=[0, 1]),
        "beyond posting_count": _write(engine, three, posting_count=2),
        "one missing": _write(engine, two, posting_count=3),
        "fewer than declared, last one missing": _write(engine, three[:2], posting_count=3),
    }
    assert attempts == dict.fromkeys(attempts, False)
    assert _stored_entries(engine) == 0
    in_order_only = engine.dialect.name == "sqlite"
    unordered = {
        "reversed": _write(engine, two, positions=[2, 1]),
        "last first": _write(engine, three, positions=[3, 1, 2]),
    }
    assert unordered == dict.fromkeys(unordered, not in_order_only)
    assert _write(engine, three)
    assert _stored_entries(engine) == 1 + (0 if in_order_only else len(unordered))


def test_a_posting_cannot_be_added_to_a_stored_entry(engine: Engine) -> None:
    """An entry committed complete takes no further posting, at any position."""
    _chart(engine)
    assert _write(engine, [d("btc-a", 3), c("btc-b", 3)])
    sqlite = engine.dialect.name == "sqlite"
    for position in (1, 2, 3):
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO ledger_postings (entry_id, position, account_id, asset_id, side, "
                    "amount) SELECT max(e.id), :position, a.id, a.asset_id, 'debit', :amount "
                    "FROM ledger_entries e, ledger_accounts a WHERE a.code = 'btc-a' "
                    "GROUP BY a.id, a.asset_id"
                ),
                {"position": position, "amount": f"{1:078d}" if sqlite else 1},
            )


def _void(engine: Engine, pending_id: int) -> bool:
    """A raw ``void_pending`` entry naming ``pending_id``: True if it committed."""
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO ledger_entries (idempotency_key, kind, description, "
                    "payload_hash, pending_id, recorded_at) VALUES (:key, 'void_pending', '', "
                    "'h', :pending, :t)"
                ),
                {"key": f"raw-{next(_keys)}", "pending": pending_id, "t": T0},
            )
    except IntegrityError:
        return False
    return True


def _last_id(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT max(id) FROM ledger_entries")).scalar_one())


def test_resolutions_and_reversals_must_name_the_right_kind_of_entry(engine: Engine) -> None:
    """A void must name a pending entry, once; a reversal a posted one. The references check
    now runs only on entries that name one, and still refuses every wrong name."""
    _chart(engine)
    legs = [d("btc-a", 4), c("btc-b", 4)]
    assert _write(engine, legs)
    posted = _last_id(engine)
    assert _write(engine, legs, kind="pending")
    pending = _last_id(engine)
    missing = pending + 1000
    wrong = {
        "void of a posted entry": _void(engine, posted),
        "void of no entry": _void(engine, missing),
        "reversal of a pending entry": _write(engine, legs, reverses_id=pending),
        "reversal of no entry": _write(engine, legs, reverses_id=missing),
    }
    assert wrong == dict.fromkeys(wrong, False)
    assert _void(engine, pending)
    assert not _void(engine, pending)  # a second resolution
    assert _write(engine, [c("btc-a", 4), d("btc-b", 4)], reverses_id=posted)
    assert not _write(engine, [c("btc-a", 4), d("btc-b", 4)], reverses_id=posted)
    assert _stored_entries(engine) == 4


_AMOUNTS = st.one_of(
    st.integers(1, 10**6),
    st.integers(SMALL - 10**3, SMALL + 10**3),
    st.integers(1, SMALL - 1),
    st.integers(1, LIMIT - 1),
    st.integers(LIMIT - 10**3, LIMIT - 1),
)
_PERTURBATIONS = st.sampled_from(
    [0, 0, 0, 1, -1, 10**9, -(10**9), SMALL, -SMALL, 10**60, 10**77, -(10**77)]
)


@st.composite
def _entries(draw: st.DrawFn) -> list[RawLeg]:
    """A balanced entry (one or two assets, two to five legs) with, often, one amount moved by
    a power of ten chosen to slip past a check of the low slices only."""
    legs: list[RawLeg] = []
    assets = draw(st.sampled_from([["BTC"], ["BTC"], ["BTC", "ETH"]]))
    for asset in assets:
        codes = [code for code, owner in ACCOUNTS.items() if owner == asset]
        total = draw(_AMOUNTS)
        split = draw(st.integers(1, total)) if total > 1 and draw(st.booleans()) else total
        debit_side, credit_side = draw(st.permutations(["debit", "credit"]))
        legs.append(RawLeg(codes[0], debit_side, total))
        parts = [split, total - split] if split < total else [total]
        legs.extend(RawLeg(codes[1 + i], credit_side, part) for i, part in enumerate(parts))
    legs = draw(st.permutations(legs))
    delta = draw(_PERTURBATIONS)
    index = draw(st.integers(0, len(legs) - 1))
    moved = legs[index].amount + delta
    if delta and 0 < moved < LIMIT:
        legs[index] = RawLeg(legs[index].account, legs[index].side, moved)
    return legs


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(legs=_entries())
def test_the_database_verdict_is_exact_integer_arithmetic(
    new_engine: Engine, legs: list[RawLeg]
) -> None:
    """Whatever the amounts, the database stores an entry iff it balances per asset."""
    assert _write(new_engine, legs) == _balanced(legs)


@pytest.fixture(params=["0023", "0024"], ids=["0004-checks", "0024-checks"])
def old_engine(
    db_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Engine]:
    """A second database of ``db_url``'s kind with earlier checks: 0004's (migrated to 0023
    only), or 0024's (migrated to 0024: PostgreSQL's row-level range trigger and full deferred
    check, before 0025)."""
    if make_url(db_url).get_backend_name() == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('old') / 'old.sqlite3'}"
        admin = None
    else:
        server = request.getfixturevalue("postgres_server_url")
        name = f"ledger_old_{uuid.uuid4().hex[:12]}"
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url, request.param)
    engine = make_engine(url)
    _chart(engine)
    yield engine
    engine.dispose()
    if admin is not None:
        with admin.connect() as connection:
            connection.execute(
                text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
            )
        admin.dispose()


@pytest.fixture
def new_engine(engine: Engine) -> Engine:
    """``engine`` (every head) with the chart."""
    _chart(engine)
    return engine


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(legs=_entries(), positions=st.none() | st.permutations([1, 2, 3]))
def test_the_new_checks_refuse_exactly_what_0004s_refused(
    old_engine: Engine, new_engine: Engine, legs: list[RawLeg], positions: list[int] | None
) -> None:
    """Example by example, the checks at every head and the earlier ones (0004's, at 0023; and
    0024's) give the same verdict, and it is the exact rule: balanced per asset, positions 1..n
    (in order, on SQLite)."""
    order = positions if positions is not None and len(legs) == len(positions) else None
    old = _write(old_engine, legs, positions=order)
    new = _write(new_engine, legs, positions=order)
    in_order = order in (None, [1, 2, 3]) or new_engine.dialect.name != "sqlite"
    assert old == new == (_balanced(legs) and in_order)


@pytest.mark.real_migrations
def test_migration_0024_downgrades_to_0004s_checks_and_upgrades_again(db_url: str) -> None:
    """Down to 0023 and back up to every head (0024 and later): the checks refuse the same
    attacks on each side."""
    head = ScriptDirectory.from_config(migrate.alembic_config(db_url)).get_current_head()
    assert head is not None
    assert head >= "0024"
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        _chart(engine)
        for revision in ("0023", "heads"):
            if revision == "0023":
                command.downgrade(migrate.alembic_config(db_url), "0023")
            else:
                migrate.upgrade(db_url)
            engine.dispose()
            assert migrate.current_revision(db_url) == ("0023" if revision == "0023" else head)
            refused = {name: not _write(engine, legs) for name, legs in REFUSED.items()}
            assert refused == dict.fromkeys(REFUSED, True), revision
            assert _write(engine, ACCEPTED["near 10**78"]), revision
            assert not _write(engine, [d("btc-a", 1), c("btc-b", 1)], positions=[2, 3]), revision
            assert not _void(engine, _last_id(engine)), revision  # names a posted entry
    finally:
        engine.dispose()


def test_record_batch_still_refuses_what_the_database_refuses(
    sessions: sessionmaker[Session], engine: Engine
) -> None:
    """The batch path's own check refuses an entry balanced in its low digits only before the
    database sees it; and a huge balanced entry goes through every trigger."""
    _chart(engine)
    with pytest.raises(UnbalancedEntryError), sessions.begin() as session:
        ledger.record_batch(
            session,
            [
                ledger.EntryRequest(
                    "low-only",
                    (ledger.Leg.debit("btc-a", SMALL + 5), ledger.Leg.credit("btc-b", 5)),
                )
            ],
        )
    with sessions.begin() as session:
        result = ledger.record_batch(
            session,
            [
                ledger.EntryRequest(
                    "huge",
                    (ledger.Leg.debit("btc-a", LIMIT - 1), ledger.Leg.credit("btc-b", LIMIT - 1)),
                )
            ],
        )
    assert result.posted == ("huge",)
