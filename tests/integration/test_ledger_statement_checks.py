"""PostgreSQL's ledger checks after migration 0025, attacked with raw SQL (issue 18).

0025 turned the posting range check into a statement trigger over the statement's new rows and
gave the deferred balance check a fast path. Each attack here runs on two databases side by
side, one at 0024 (the row trigger, the full deferred check) and one at every head, through the
same statements in the same order, so their entry ids agree and each refusal's SQLSTATE and
message can be compared exactly. The one documented difference: a posting for an entry that
does not exist meets the foreign key before the statement trigger runs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from treasury import migrate

CHECK_VIOLATION = "23514"
FOREIGN_KEY_VIOLATION = "23503"
POSTING_COLUMNS = "entry_id, position, account_id, asset_id, side, amount"
BIG = 10**77
"""An amount far beyond 64 bits, to keep the sums exact NUMERIC."""


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended: committed, or refused with this SQLSTATE and message."""

    sqlstate: str | None
    message: str | None

    @property
    def committed(self) -> bool:
        return self.sqlstate is None


COMMITTED = Outcome(None, None)


@dataclass(frozen=True)
class Ledger:
    """One raw connection to a migrated database with a BTC and an ETH account pair."""

    connection: psycopg.Connection[tuple[Any, ...]]
    accounts: dict[str, tuple[int, int]]
    """Account code -> (account id, asset id)."""

    def attempt(self, work: Callable[[psycopg.Connection[tuple[Any, ...]]], None]) -> Outcome:
        """Run ``work`` in one transaction and commit it: the outcome, refusals included."""
        try:
            with self.connection.transaction():
                work(self.connection)
        except psycopg.errors.IntegrityError as exc:
            return Outcome(exc.sqlstate, exc.diag.message_primary)
        return COMMITTED

    def count(self, table: str) -> int:
        row = self.connection.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - test constant
        assert row is not None
        return int(row[0])


def _entry(
    connection: psycopg.Connection[tuple[Any, ...]],
    posting_count: int | None,
    kind: str = "posted",
) -> int:
    """A raw entry; its id."""
    row = connection.execute(
        "INSERT INTO ledger_entries (idempotency_key, kind, description, payload_hash, "
        "posting_count, recorded_at) VALUES (%s, %s, '', 'h', %s, now()) RETURNING id",
        (f"raw-{uuid.uuid4().hex}", kind, posting_count),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _rows(
    ledger: Ledger, entry_id: int, legs: list[tuple[int, str, str, int]]
) -> list[tuple[int, int, int, int, str, int]]:
    """(position, account, side, amount) legs as posting rows of ``entry_id``."""
    return [
        (entry_id, position, *ledger.accounts[account], side, amount)
        for position, account, side, amount in legs
    ]


def _insert(
    connection: psycopg.Connection[tuple[Any, ...]],
    rows: list[tuple[int, int, int, int, str, int]],
) -> None:
    """All ``rows`` in one multi-row INSERT statement (none: no statement)."""
    if not rows:
        return
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
    connection.execute(
        f"INSERT INTO ledger_postings ({POSTING_COLUMNS}) VALUES {values}",  # noqa: S608 - placeholders only
        [value for row in rows for value in row],
    )


def _copy(
    connection: psycopg.Connection[tuple[Any, ...]],
    rows: list[tuple[int, int, int, int, str, int]],
) -> None:
    """All ``rows`` in one COPY FROM STDIN."""
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY ledger_postings ({POSTING_COLUMNS}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _ledger_at(server: str, revision: str) -> Iterator[Ledger]:
    """A fresh database migrated to ``revision`` (``heads``: every head), with its chart."""
    name = f"ledger_stmt_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name)
    try:
        migrate.upgrade(url.render_as_string(hide_password=False), revision)
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as connection:
            accounts: dict[str, tuple[int, int]] = {}
            for asset in ("BTC", "ETH"):
                row = connection.execute(
                    "INSERT INTO ledger_assets (code, chain, unit_name, decimals, registered_at) "
                    "VALUES (%s, 'test', 'unit', 8, now()) RETURNING id",
                    (asset,),
                ).fetchone()
                assert row is not None
                for suffix in ("a", "b"):
                    code = f"{asset.lower()}-{suffix}"
                    account = connection.execute(
                        "INSERT INTO ledger_accounts (code, name, type, asset_id, no_overdraft, "
                        "opened_at) VALUES (%s, %s, 'asset', %s, false, now()) RETURNING id",
                        (code, code, row[0]),
                    ).fetchone()
                    assert account is not None
                    accounts[code] = (int(account[0]), int(row[0]))
            yield Ledger(connection, accounts)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def old(postgres_server_url: str) -> Iterator[Ledger]:
    """A PostgreSQL database at 0024: 0004's row trigger, 0024's deferred check."""
    yield from _ledger_at(postgres_server_url, "0024")


@pytest.fixture
def new(postgres_server_url: str) -> Iterator[Ledger]:
    """A PostgreSQL database at every head (0025's checks)."""
    yield from _ledger_at(postgres_server_url, "heads")


def _both(
    old: Ledger, new: Ledger, attack: Callable[[Ledger], Callable[..., None]]
) -> tuple[Outcome, Outcome]:
    """The same attack on each database."""
    return old.attempt(attack(old)), new.attempt(attack(new))


BALANCED = [(1, "btc-a", "debit", 5), (2, "btc-b", "credit", 5)]


def _entry_with(
    legs: list[tuple[int, str, str, int]],
    *,
    posting_count: int | None = None,
    by_copy: bool = False,
) -> Callable[[Ledger], Callable[..., None]]:
    """An entry declaring ``posting_count`` (default: as many as ``legs``) and its legs, sent in
    one INSERT or one COPY."""

    def attack(ledger: Ledger) -> Callable[..., None]:
        def work(connection: psycopg.Connection[tuple[Any, ...]]) -> None:
            declared = len(legs) if posting_count is None else posting_count
            rows = _rows(ledger, _entry(connection, declared), legs)
            (_copy if by_copy else _insert)(connection, rows)

        return work

    return attack


def test_a_posting_beyond_posting_count_is_refused_with_the_same_error(
    old: Ledger, new: Ledger
) -> None:
    """Position 3 of a two-posting entry is refused at the INSERT, as 0004's row trigger did,
    with its message naming the position and the entry; nothing of the entry is stored."""
    attack = _entry_with([*BALANCED, (3, "btc-a", "debit", 1)], posting_count=2)
    before, after = _both(old, new, attack)
    assert before.sqlstate == CHECK_VIOLATION
    assert before.message is not None
    assert before.message.startswith("ledger posting position 3 is beyond the posting_count")
    assert after == before
    assert new.count("ledger_entries") == new.count("ledger_postings") == 0


def test_a_posting_added_later_to_a_stored_entry_is_refused(old: Ledger, new: Ledger) -> None:
    """A committed entry takes no posting beyond its count in a later transaction, and a void
    (no ``posting_count``) takes none at all: the statement trigger sees entries committed
    before it, like the row trigger."""
    assert _both(old, new, _entry_with(BALANCED)) == (COMMITTED, COMMITTED)

    def void(ledger: Ledger) -> Callable[..., None]:
        def work(connection: psycopg.Connection[tuple[Any, ...]]) -> None:
            pending = _entry(connection, 2, kind="pending")
            _insert(connection, _rows(ledger, pending, BALANCED))
            connection.execute(
                "INSERT INTO ledger_entries (idempotency_key, kind, description, payload_hash, "
                "pending_id, recorded_at) VALUES (%s, 'void_pending', '', 'h', %s, now())",
                (f"void-{pending}", pending),
            )

        return work

    assert _both(old, new, void) == (COMMITTED, COMMITTED)
    ids = new.connection.execute("SELECT min(id), max(id) FROM ledger_entries").fetchone()
    assert ids is not None
    stored, void_id = int(ids[0]), int(ids[1])  # the first posted entry, the void
    for entry_id, position in ((stored, 3), (void_id, 1)):

        def late(
            ledger: Ledger, entry_id: int = entry_id, position: int = position
        ) -> Callable[..., None]:
            return lambda connection: _insert(
                connection, _rows(ledger, entry_id, [(position, "btc-a", "debit", 1)])
            )

        before, after = _both(old, new, late)
        assert before == Outcome(
            CHECK_VIOLATION,
            f"ledger posting position {position} is beyond the posting_count of entry {entry_id}",
        )
        assert after == before
    assert new.count("ledger_postings") == old.count("ledger_postings") == 4


def test_one_bad_row_refuses_the_whole_multi_row_insert(old: Ledger, new: Ledger) -> None:
    """A multi-row INSERT with one row beyond its entry's count, among good rows of two
    entries, fails as a whole: within the transaction not one of its rows is stored. With two
    bad rows, the refusal names the first in the statement's order, as the row trigger did."""

    def attack(bad: list[tuple[int, str, str, int]]) -> Callable[[Ledger], Callable[..., None]]:
        def prepare(ledger: Ledger) -> Callable[..., None]:
            def work(connection: psycopg.Connection[tuple[Any, ...]]) -> None:
                first, second = _entry(connection, 2), _entry(connection, 2)
                rows = _rows(ledger, first, BALANCED) + _rows(ledger, second, [*BALANCED, *bad])
                with (
                    pytest.raises(psycopg.errors.CheckViolation) as refused,
                    connection.transaction(),  # a savepoint: the statement alone fails
                ):
                    _insert(connection, rows)
                stored = connection.execute(
                    "SELECT count(*) FROM ledger_postings WHERE entry_id IN (%s, %s)",
                    (first, second),
                ).fetchone()
                assert stored == (0,)
                raise refused.value

            return work

        return prepare

    one = _both(old, new, attack([(3, "btc-a", "debit", 1)]))
    two = _both(old, new, attack([(4, "btc-a", "debit", 1), (3, "btc-b", "credit", 1)]))
    for (before, after), position in ((one, 3), (two, 4)):
        assert before.sqlstate == CHECK_VIOLATION
        assert before.message is not None
        assert before.message.startswith(f"ledger posting position {position} is beyond")
        assert after == before
    assert new.count("ledger_postings") == new.count("ledger_entries") == 0


def test_copy_of_a_bad_posting_is_refused(old: Ledger, new: Ledger) -> None:
    """COPY fires the statement trigger too: a posting beyond the count is refused with the
    same error, and a good COPY commits."""
    bad = _both(
        old, new, _entry_with([*BALANCED, (3, "btc-a", "debit", 1)], posting_count=2, by_copy=True)
    )
    assert bad[0].sqlstate == CHECK_VIOLATION
    assert bad[0].message is not None
    assert bad[0].message.startswith("ledger posting position 3 is beyond the posting_count")
    assert bad[1] == bad[0]
    assert new.count("ledger_postings") == 0
    assert _both(old, new, _entry_with(BALANCED, by_copy=True)) == (COMMITTED, COMMITTED)
    assert new.count("ledger_postings") == 2


def test_merge_and_on_conflict_inserts_are_checked_too(old: Ledger, new: Ledger) -> None:
    """MERGE ... WHEN NOT MATCHED THEN INSERT and INSERT ... ON CONFLICT DO NOTHING fill the
    transition table as well: a posting beyond the count is refused with the same error."""
    assert _both(old, new, _entry_with(BALANCED)) == (COMMITTED, COMMITTED)
    ids = new.connection.execute("SELECT max(id) FROM ledger_entries").fetchone()
    assert ids is not None
    entry_id = int(ids[0])
    statements = {
        "merge": "MERGE INTO ledger_postings AS p USING (VALUES (%s::bigint, 3, %s, %s)) "
        "AS v (entry_id, position, account_id, asset_id) "
        "ON p.entry_id = v.entry_id AND p.position = v.position WHEN NOT MATCHED THEN "
        "INSERT VALUES (v.entry_id, v.position, v.account_id, v.asset_id, 'debit', 1)",
        "on conflict": f"INSERT INTO ledger_postings ({POSTING_COLUMNS}) "  # noqa: S608 - constants
        "VALUES (%s, 3, %s, %s, 'debit', 1) ON CONFLICT DO NOTHING",
    }
    for name, statement in statements.items():

        def attack(ledger: Ledger, statement: str = statement) -> Callable[..., None]:
            return lambda connection: connection.execute(
                statement, (entry_id, *ledger.accounts["btc-a"])
            )

        before, after = _both(old, new, attack)
        assert before == Outcome(
            CHECK_VIOLATION,
            f"ledger posting position 3 is beyond the posting_count of entry {entry_id}",
        ), name
        assert after == before, name
    assert new.count("ledger_postings") == 2


def test_a_posting_for_a_missing_entry_is_refused(old: Ledger, new: Ledger) -> None:
    """Refused on both sides, nothing stored. 0004's row trigger ran before the row's foreign
    key and raised the range message; the statement trigger runs after it, so the foreign key
    to ``ledger_entries`` refuses the row first."""

    def orphan(ledger: Ledger) -> Callable[..., None]:
        return lambda connection: _insert(
            connection, _rows(ledger, 10**9, [(1, "btc-a", "debit", 1)])
        )

    before, after = _both(old, new, orphan)
    assert before == Outcome(
        CHECK_VIOLATION, f"ledger posting position 1 is beyond the posting_count of entry {10**9}"
    )
    assert after.sqlstate == FOREIGN_KEY_VIOLATION
    assert after.message is not None
    assert "ledger_postings_entry_id_fkey" in after.message
    assert new.count("ledger_postings") == 0


def test_postings_inserted_with_their_entry_in_one_statement(old: Ledger, new: Ledger) -> None:
    """A data-modifying WITH inserting the entry and its postings: the statement trigger sees
    the entry the same statement inserted; complete, it commits; with a row beyond the count,
    it is refused with the same error."""

    def together(legs: list[tuple[int, str, str, int]]) -> Callable[[Ledger], Callable[..., None]]:
        def prepare(ledger: Ledger) -> Callable[..., None]:
            def work(connection: psycopg.Connection[tuple[Any, ...]]) -> None:
                values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(legs))
                connection.execute(
                    "WITH entry AS (INSERT INTO ledger_entries (idempotency_key, kind, "  # noqa: S608 - placeholders only
                    "description, payload_hash, posting_count, recorded_at) VALUES "
                    "(%s, 'posted', '', 'h', 2, now()) RETURNING id) "
                    f"INSERT INTO ledger_postings ({POSTING_COLUMNS}) "
                    "SELECT entry.id, leg.position, leg.account_id, leg.asset_id, leg.side, "
                    f"leg.amount FROM entry, (VALUES {values}) AS leg (position, account_id, "
                    "asset_id, side, amount)",
                    [
                        f"with-{uuid.uuid4().hex}",
                        *(
                            value
                            for position, account, side, amount in legs
                            for value in (position, *ledger.accounts[account], side, amount)
                        ),
                    ],
                )

            return work

        return prepare

    assert _both(old, new, together(BALANCED)) == (COMMITTED, COMMITTED)
    before, after = _both(old, new, together([*BALANCED, (3, "btc-a", "debit", 1)]))
    assert before.sqlstate == CHECK_VIOLATION
    assert after == before
    assert new.count("ledger_postings") == 2


def test_incomplete_and_unbalanced_entries_are_refused_at_commit(old: Ledger, new: Ledger) -> None:
    """At COMMIT the deferred check refuses an entry missing a posting, one with none, an
    unbalanced one (also beyond 64 bits), and one balanced in BTC but not in ETH, with 0024's
    messages; entries balanced per asset, several assets included, commit."""
    btc, eth = old.accounts["btc-a"][1], old.accounts["eth-a"][1]
    refused = {
        "missing the last posting": (
            _entry_with(BALANCED, posting_count=3),
            "declares 3 postings but has 2",
        ),
        "no postings": (_entry_with([], posting_count=2), "declares 2 postings but has 0"),
        "unbalanced": (
            _entry_with([(1, "btc-a", "debit", 5), (2, "btc-b", "credit", 6)]),
            f"does not balance: debits differ from credits for asset id {btc}",
        ),
        "unbalanced beyond 64 bits": (
            _entry_with([(1, "btc-a", "debit", BIG + 1), (2, "btc-b", "credit", BIG)]),
            f"does not balance: debits differ from credits for asset id {btc}",
        ),
        "balanced across assets only": (
            _entry_with([(1, "btc-a", "debit", 5), (2, "eth-a", "credit", 5)]),
            f"does not balance: debits differ from credits for asset id {btc}",
        ),
        "one asset of two unbalanced": (
            _entry_with(
                [
                    (1, "btc-a", "debit", 5),
                    (2, "btc-b", "credit", 5),
                    (3, "eth-a", "debit", BIG),
                    (4, "eth-b", "credit", BIG - 1),
                ]
            ),
            f"does not balance: debits differ from credits for asset id {eth}",
        ),
    }
    for name, (attack, message) in refused.items():
        before, after = _both(old, new, attack)
        assert before.sqlstate == CHECK_VIOLATION, name
        assert before.message is not None, name
        assert before.message.endswith(message), name
        assert after == before, name
    assert new.count("ledger_entries") == 0
    accepted = {
        "two assets, each balanced": [
            (1, "btc-a", "debit", 5),
            (2, "eth-a", "debit", BIG),
            (3, "btc-b", "credit", 5),
            (4, "eth-b", "credit", BIG),
        ],
        "beyond 64 bits": [(1, "btc-a", "debit", BIG), (2, "btc-b", "credit", BIG)],
    }
    for name, legs in accepted.items():
        assert _both(old, new, _entry_with(legs)) == (COMMITTED, COMMITTED), name
    assert new.count("ledger_entries") == old.count("ledger_entries") == len(accepted)


@pytest.mark.real_migrations
def test_migration_0025_downgrades_to_0024s_checks_and_upgrades_again(
    postgres_url: str,
) -> None:
    """Down to 0024 and back up on one database: the same attacks refused with the same errors
    on each side, the trigger per row at 0024 and per statement at 0025."""
    migrate.upgrade(postgres_url)
    config = migrate.alembic_config(postgres_url)
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    outcomes: dict[str, list[Outcome]] = {}
    levels: dict[str, str] = {}
    for revision in ("0024", "0025"):
        if revision == "0024":
            command.downgrade(config, "0024")
        else:
            migrate.upgrade(postgres_url)
        assert migrate.current_revision(postgres_url) == revision
        with psycopg.connect(dsn, autocommit=True) as connection:
            level = connection.execute(
                "SELECT tgtype & 1 FROM pg_trigger WHERE tgname = 'ledger_postings_in_range'"
            ).fetchone()
            assert level is not None
            levels[revision] = "row" if level[0] else "statement"
            if revision == "0024":
                for code, asset in (("btc-a", "BTC"), ("btc-b", "BTC")):
                    connection.execute(
                        "INSERT INTO ledger_assets (code, chain, unit_name, decimals, "
                        "registered_at) VALUES (%s, 'test', 'unit', 8, now()) "
                        "ON CONFLICT DO NOTHING",
                        (asset,),
                    )
                    connection.execute(
                        "INSERT INTO ledger_accounts (code, name, type, asset_id, no_overdraft, "
                        "opened_at) SELECT %s, %s, 'asset', id, false, now() FROM ledger_assets "
                        "WHERE code = %s",
                        (code, code, asset),
                    )
            accounts = {
                str(code): (int(account), int(asset))
                for code, account, asset in connection.execute(
                    "SELECT code, id, asset_id FROM ledger_accounts WHERE code LIKE 'btc-%'"
                )
            }
            ledger = Ledger(connection, accounts)
            attacks = [
                _entry_with([*BALANCED, (3, "btc-a", "debit", 1)], posting_count=2),
                _entry_with([*BALANCED, (3, "btc-a", "debit", 1)], posting_count=2, by_copy=True),
                _entry_with(BALANCED, posting_count=3),
                _entry_with([(1, "btc-a", "debit", 5), (2, "btc-b", "credit", 6)]),
            ]
            outcomes[revision] = [ledger.attempt(attack(ledger)) for attack in attacks]
            assert ledger.attempt(_entry_with(BALANCED)(ledger)) == COMMITTED
    assert levels == {"0024": "row", "0025": "statement"}
    for before, after in zip(outcomes["0024"], outcomes["0025"], strict=True):
        assert before.sqlstate == after.sqlstate == CHECK_VIOLATION
        assert before.message is not None
        assert after.message is not None
        # One database: the entry ids differ between the two sides, the rest may not.
        assert re.sub(r"entry \d+", "entry #", before.message) == re.sub(
            r"entry \d+", "entry #", after.message
        )
