"""Ledger throughput: postings per second through ``record_entries`` versus plain SQL inserts.

For each database (SQLite in a temp file, and a throwaway database on the local PostgreSQL
server) it records N balanced two-leg entries in batches through the ledger service (validation,
idempotency lookups, triggers, deferred balance checks), then inserts the same rows with plain
``executemany`` into identical tables without constraints or triggers, in the same run, and
prints both rates and their ratio.

    .venv/bin/python bench/ledger_postings.py              # 100k entries
    .venv/bin/python bench/ledger_postings.py --entries 5000
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


def through_ledger(engine: Engine, entries: int, batch: int) -> float:
    """Seconds to record ``entries`` entries via ``record_entries`` in batches of ``batch``."""
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
    legs = (
        ledger.Leg.debit("reserve:btc", AMOUNT_SATS),
        ledger.Leg.credit("equity:btc", AMOUNT_SATS),
    )
    started = time.perf_counter()
    for first in range(0, entries, batch):
        requests = [
            ledger.EntryRequest(f"bench-{n}", legs, "benchmark deposit")
            for n in range(first, min(first + batch, entries))
        ]
        with sessions.begin() as session:
            ledger.record_entries(session, requests)
    elapsed = time.perf_counter() - started
    with sessions() as session:
        (line,) = ledger.trial_balance(session)
        assert line.balanced
        assert line.totals.debits_posted == entries * AMOUNT_SATS
    return elapsed


def plain_sql(engine: Engine, entries: int, batch: int) -> float:
    """Seconds to insert the same rows with DBAPI ``executemany``: no ORM, no checks, no triggers."""
    sqlite = engine.dialect.name == "sqlite"
    amount = f"{AMOUNT_SATS:078d}" if sqlite else AMOUNT_SATS
    mark = "?" if sqlite else "%s"
    insert_entry = f"INSERT INTO plain_entries VALUES ({', '.join([mark] * 7)})"  # noqa: S608 - placeholders only
    insert_posting = f"INSERT INTO plain_postings VALUES ({', '.join([mark] * 6)})"  # noqa: S608 - placeholders only
    with engine.begin() as connection:
        for statement in PLAIN_TABLES:
            connection.exec_driver_sql(
                statement.format(amount_type="VARCHAR(78)" if sqlite else "NUMERIC(78, 0)")
            )
    now = datetime.now(UTC).replace(tzinfo=None)
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
                    (n + 1, position, position, 1, side, amount)
                    for n in numbers
                    for position, side in ((1, "debit"), (2, "credit"))
                ],
            )
            cursor.close()
            raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


def run(backend: str, url: str, entries: int, batch: int) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        service = through_ledger(engine, entries, batch)
        plain = plain_sql(engine, entries, batch)
    finally:
        engine.dispose()
    postings = entries * LEGS_PER_ENTRY
    service_rate, plain_rate = postings / service, postings / plain
    print(
        f"{backend:10} {entries} entries ({postings} postings) in batches of {batch}: "
        f"ledger {service_rate:10,.0f} postings/s ({service:.1f} s) | "
        f"plain SQL {plain_rate:10,.0f} postings/s ({plain:.1f} s) | "
        f"ledger/plain = {service_rate / plain_rate:.2f} ({plain_rate / service_rate:.1f}x slower)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=DEFAULT_ENTRIES, help="entries per backend")
    parser.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH_ENTRIES, help="entries per transaction"
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="server to create a throwaway database on",
    )
    arguments = parser.parse_args()
    with sqlite_database() as url:
        run("sqlite", url, arguments.entries, arguments.batch)
    try:
        with postgres_database(arguments.postgres_url) as url:
            run("postgresql", url, arguments.entries, arguments.batch)
    except OperationalError as exc:
        print(
            f"postgresql skipped: no server at {arguments.postgres_url} ({str(exc.orig).strip()})"
        )


if __name__ == "__main__":
    main()
