"""Database plumbing: one engine, the treasury's declarative base, shared column types and the
write-serialising transaction start.

``TREASURY_DATABASE_URL`` picks the database (read once by ``treasury.settings``, passed here);
the default is an embedded SQLite file under the working folder, and PostgreSQL
(``postgresql+psycopg://...``) is the production database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Dialect, Engine, MetaData, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import DateTime, TypeDecorator

from custody.schema import NAMING_CONVENTION
from treasury.exceptions import DatabaseConfigError

DATABASE_URL_ENV = "TREASURY_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path("var") / "treasury.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another writer's lock before failing."""
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


class Base(DeclarativeBase):
    """Declarative base of the treasury's tables (custody has its own, ``custody.schema``)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def default_database_url() -> str:
    """The embedded SQLite database under the working folder, used when no URL is configured."""
    return f"sqlite:///{(Path.cwd() / DEFAULT_SQLITE_PATH).resolve()}"


def parse_database_url(url: str) -> URL:
    """``url`` parsed, if it names a supported backend (``DatabaseConfigError`` otherwise)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseConfigError(
            f"{DATABASE_URL_ENV} is not a database URL: expected e.g. "
            "'sqlite:///var/treasury.sqlite3' or 'postgresql+psycopg://user@host:5432/db'."
        ) from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise DatabaseConfigError(
            f"{DATABASE_URL_ENV} names the unsupported backend {backend!r}; "
            f"use one of {', '.join(SUPPORTED_BACKENDS)}."
        )
    return parsed


def masked_database_url(url: str) -> str:
    """``url`` as it may be shown: its password, if any, replaced by ``***``."""
    return parse_database_url(url).render_as_string(hide_password=True)


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: ``default_database_url()``) set up as its backend needs."""
    parsed = parse_database_url(url or default_database_url())
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys on (SQLite defaults them off) and WAL so readers never block the writer."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def begin_serialised_write(session: Session) -> None:
    """Serialise check-then-insert sequences with other writers, for the current transaction.

    On SQLite the transaction is started with ``BEGIN IMMEDIATE``: it takes the single write lock
    before anything is read, so another writer waits (busy timeout) instead of acting on a stale
    read. If the driver already opened a transaction, it has written and so already holds that
    lock. PostgreSQL callers take row or advisory locks instead; this is a no-op there.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"The timestamp {value.isoformat()} has no timezone; use UTC.")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
