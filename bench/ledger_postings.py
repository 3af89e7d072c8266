"""Ledger throughput: postings per second through ``record_batch`` versus plain SQL inserts.

For each database (SQLite in a temp file, and throwaway databases on the local PostgreSQL
server) it records N balanced two-leg entries (each amount different, so each payload hash is)
in transactions of ``--batch`` entries, each measure on a fresh database, in the same run:

- ``record_batch``: the batch path (validation, payload hashes, key locks, set-based idempotency
  lookup, balance checks, bulk inserts through every trigger, deferred checks at COMMIT);
- ``plain SQL``: the same rows by DBAPI ``executemany`` into bare tables without constraints,
  indexes or triggers: the floor the target is measured against;
- ``plain SQL + triggers``: the same ``executemany`` into the ledger's own tables, through all
  their constraints, indexes and triggers: what the schema alone costs;
- ``record_entries``: the ordinary path, for comparison (``--skip-record-entries`` to leave out).

It ends with one ``target ledger <database> batch: met|missed (...)`` line per database and
exits 0 either way.

    .venv/bin/python bench/ledger_postings.py              # 100k entries
    .venv/bin/python bench/ledger_postings.py --entries 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from treasury import ledger, migrate
from treasury.db import make_engine, session_factory

DEFAULT_ENTRIES = 100_000
DEFAULT_BATCH_ENTRIES = 1_000
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LEGS_PER_ENTRY = 2
AMOUNT_SATS = 12_345
ACTOR = "bench"
TARGET_RATIO = 0.5
"""The batch path must reach this share of plain SQL's postings per second."""

PLAIN_TABLES = (
    "CREATE TABLE plain_entries (id BIGINT PRIMARY KEY, idempotency_key VARCHAR(128), "
    "kind VARCHAR(16), description VARCHAR(500), payload_hash VARCHAR(64), posting_count INTEGER, "
    "recorded_at TIMESTAMP)",
    "CREATE TABLE plain_postings (entry_id BIGINT, position INTEGER, account_id INTEGER, "
    "asset_id INTEGER, side VARCHAR(16), amount {amount_type}, PRIMARY KEY (entry_id, position))",
)


@contextmanager
def sqlite_database() -> Iterator[str]:
    """A SQLite file in a temp folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}"


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A throwaway database with a random name on ``server_url``, dropped afterwards."""
    name = f"ledger_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def open_accounts(engine: Engine) -> None:
    """BTC, a reserve account and an opening-equity account."""
    sessions = session_factory(engine)
    with sessions.begin() as session:
        ledger.register_asset(session, ledger.BTC, actor=ACTOR)
        for code, kind in (
            ("reserve:btc", ledger.AccountType.ASSET),
            ("equity:btc", ledger.AccountType.EQUITY),
        ):
            ledger.open_account(
                session, code, name=code, account_type=kind, asset_code="BTC", actor=ACTOR
            )


def amount_of(n: int) -> int:
    """Entry ``n``'s amount: they differ, so no two payloads (and payload hashes) are alike."""
    return AMOUNT_SATS + n


def through_ledger(engine: Engine, entries: int, batch: int, *, batch_path: bool) -> float:
    """Seconds to record ``entries`` entries in transactions of ``batch`` entries each, through
    ``record_batch`` (``batch_path``) or ``record_entries``; then the books are checked."""
    open_accounts(engine)
    sessions = session_factory(engine)
    record = ledger.record_batch if batch_path else ledger.record_entries
    started = time.perf_counter()
    for first in range(0, entries, batch):
        requests = [
            ledger.EntryRequest(
                f"bench-{n}",
                (
                    ledger.Leg.debit("reserve:btc", amount_of(n)),
                    ledger.Leg.credit("equity:btc", amount_of(n)),
                ),
                "benchmark deposit",
            )
            for n in range(first, min(first + batch, entries))
        ]
        with sessions.begin() as session:
            record(session, requests)
    elapsed = time.perf_counter() - started
    with sessions() as session:
        (line,) = ledger.trial_balance(session)
        if not line.balanced or line.totals.debits_posted != sum(map(amount_of, range(entries))):
            raise SystemExit(f"the ledger's books are wrong after the run: {line}")
    return elapsed


def plain_sql(engine: Engine, entries: int, batch: int, *, into_ledger: bool) -> float:
    """Seconds to insert the same rows with DBAPI ``executemany``, no ORM and no code checks.

    ``into_ledger=False``: into bare tables with no constraints, indexes or triggers (the floor
    the target is measured against). ``into_ledger=True``: into the ledger's own tables, through
    all their constraints, indexes and triggers: what the schema alone costs.
    """
    sqlite = engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    if into_ledger:
        open_accounts(engine)
        entries_table = "ledger_entries (id, idempotency_key, kind, description, payload_hash, posting_count, recorded_at)"
        postings_table = "ledger_postings (entry_id, position, account_id, asset_id, side, amount)"
    else:
        entries_table, postings_table = "plain_entries", "plain_postings"
        with engine.begin() as connection:
            for statement in PLAIN_TABLES:
                connection.exec_driver_sql(
                    statement.format(amount_type="VARCHAR(78)" if sqlite else "NUMERIC(78, 0)")
                )
    insert_entry = f"INSERT INTO {entries_table} VALUES ({', '.join([mark] * 7)})"  # noqa: S608 - constants only
    insert_posting = f"INSERT INTO {postings_table} VALUES ({', '.join([mark] * 6)})"  # noqa: S608 - constants only
    now: datetime | str = datetime.now(UTC)
    if sqlite:
        now = now.replace(tzinfo=None).isoformat(sep=" ")
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        for first in range(0, entries, batch):
            numbers = range(first, min(first + batch, entries))
            cursor = raw.cursor()
            cursor.executemany(
                insert_entry,
                [
                    (n + 1, f"bench-{n}", "posted", "benchmark deposit", "0" * 64, 2, now)
                    for n in numbers
                ],
            )
            cursor.executemany(
                insert_posting,
                [
                    (
                        n + 1,
                        position,
                        position,
                        1,
                        side,
                        f"{amount_of(n):078d}" if sqlite else amount_of(n),
                    )
                    for n in numbers
                    for position, side in ((1, "debit"), (2, "credit"))
                ],
            )
            cursor.close()
            raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


MEASURES = {
    "record_batch": lambda engine, entries, batch: through_ledger(
        engine, entries, batch, batch_path=True
    ),
    "plain SQL": lambda engine, entries, batch: plain_sql(
        engine, entries, batch, into_ledger=False
    ),
    "plain SQL + triggers": lambda engine, entries, batch: plain_sql(
        engine, entries, batch, into_ledger=True
    ),
    "record_entries": lambda engine, entries, batch: through_ledger(
        engine, entries, batch, batch_path=False
    ),
}
"""What is timed, each on a fresh database: the batch path, the floor, the floor through the
ledger's triggers and constraints, and the ordinary path."""


def measure(
    backend: str, fresh: Callable[[], AbstractContextManager[str]], arguments: argparse.Namespace
) -> float:
    """Time every measure (best of ``--rounds``) on fresh databases, print them; the batch ratio."""
    names = [n for n in MEASURES if n != "record_entries" or not arguments.skip_record_entries]
    best: dict[str, float] = {}
    for _ in range(arguments.rounds):
        for name in names:
            with fresh() as url:
                migrate.upgrade(url)
                engine = make_engine(url)
                try:
                    seconds = MEASURES[name](engine, arguments.entries, arguments.batch)
                finally:
                    engine.dispose()
            best[name] = min(seconds, best.get(name, seconds))
    postings = arguments.entries * LEGS_PER_ENTRY
    floor = postings / best["plain SQL"]
    print(
        f"{backend}: {arguments.entries} entries ({postings} postings), {arguments.batch} entries "
        f"per transaction, best of {arguments.rounds}"
    )
    for name in names:
        rate = postings / best[name]
        print(
            f"  {name:22} {rate:10,.0f} postings/s ({best[name]:6.2f} s)  "
            f"{rate / floor:.2f} of plain SQL"
        )
    return (postings / best["record_batch"]) / floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=DEFAULT_ENTRIES, help="entries per backend")
    parser.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH_ENTRIES, help="entries per transaction"
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat, keep each one's best time")
    parser.add_argument(
        "--skip-record-entries", action="store_true", help="do not time the ordinary path"
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="server to create throwaway databases on",
    )
    arguments = parser.parse_args()
    ratios: dict[str, float | None] = {"sqlite": measure("sqlite", sqlite_database, arguments)}
    try:
        ratios["postgresql"] = measure(
            "postgresql", lambda: postgres_database(arguments.postgres_url), arguments
        )
    except OperationalError as exc:
        print(
            f"postgresql skipped: no server at {arguments.postgres_url} ({str(exc.orig).strip()})"
        )
        ratios["postgresql"] = None
    for backend, ratio in ratios.items():
        if ratio is None:
            print(f"target ledger {backend} batch: missed (not measured: no server)")
        else:
            verdict = "met" if ratio >= TARGET_RATIO else "missed"
            print(
                f"target ledger {backend} batch: {verdict} ({ratio:.2f} of plain SQL vs >= "
                f"{TARGET_RATIO})"
            )


if __name__ == "__main__":
    main()
