"""Migrated databases for the tests without running every migration for every test.

Running the project's Alembic history takes about 0.3 s on SQLite and 0.4 s on PostgreSQL on a
quiet machine (more under the parallel suite), and well over a thousand tests start from a
database at every head: half of some files' time went to it. So each test process migrates one
template per backend once, with the real ``migrate.upgrade``, and an upgrade of an *empty*
database to every head becomes a copy of that template: SQLite's file bytes, or PostgreSQL's
``CREATE DATABASE ... TEMPLATE``. The result is the very database the migrations produce
(``tests/integration/test_migrations.py`` compares the two schemas, triggers and functions
included); any other upgrade (to a named revision, or of a database that already holds
something) runs the migrations as before, and tests marked ``real_migrations`` (the migration
tests) or a run with ``TREASURY_TEST_REAL_MIGRATIONS=1`` never take the shortcut.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REAL_MIGRATIONS_ENV = "TREASURY_TEST_REAL_MIGRATIONS"
"""Set to 1 to run every migration for every test, as before the templates."""

Upgrade = Callable[..., None]


@dataclass
class MigrationTemplates:
    """One migrated template per backend (and PostgreSQL server), made on first use."""

    real_upgrade: Upgrade
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="migrated-")))
    _sqlite: bytes | None = None
    _postgres: dict[str, str] = field(default_factory=dict)
    """Server URL (no database) -> the name of its template database."""

    def upgrade(self, url: str | None = None, revision: str = "heads") -> None:
        """``migrate.upgrade``, but a copy of the template when ``url`` is empty and the revision
        is every head."""
        if url is None or revision != "heads" or not self._clone(url):
            self.real_upgrade(url, revision)

    def _clone(self, url: str) -> bool:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            return self._clone_sqlite(parsed.database or "")
        if backend == "postgresql":
            return self._clone_postgres(url)
        return False

    def _clone_sqlite(self, database: str) -> bool:
        path = Path(database)
        if not database or database == ":memory:" or (path.exists() and path.stat().st_size > 0):
            return False
        for suffix in ("-wal", "-shm", "-journal"):
            if Path(database + suffix).exists():
                return False
        if self._sqlite is None:
            template = self.folder / f"template-{uuid.uuid4().hex[:8]}.sqlite3"
            self.real_upgrade(f"sqlite:///{template}", "heads")
            with sqlite3.connect(template) as conn:  # fold the write-ahead log into the file
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            self._sqlite = template.read_bytes()
        # Written into the same inode: a connection already open on the empty file sees it.
        with path.open("wb") as out:
            out.write(self._sqlite)
        return True

    def _clone_postgres(self, url: str) -> bool:
        parsed = make_url(url)
        target = parsed.database
        if not target:
            return False
        server = parsed.set(database="postgres").render_as_string(hide_password=False)
        if not _postgres_is_empty(url):
            return False
        template = self._postgres.get(server)
        if template is None:
            template = f"treasury_template_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            _admin(server, f'CREATE DATABASE "{template}"')
            self.real_upgrade(parsed.set(database=template).render_as_string(False), "heads")
            self._postgres[server] = template
        _admin(
            server,
            f'DROP DATABASE "{target}" WITH (FORCE)',
            f'CREATE DATABASE "{target}" TEMPLATE "{template}"',
        )
        return True

    def drop(self) -> None:
        """Remove the templates (at the end of the test session)."""
        for server, template in self._postgres.items():
            _admin(server, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        self._postgres.clear()
        for leftover in self.folder.glob("*"):
            leftover.unlink()
        self.folder.rmdir()


def _admin(server: str, *statements: str) -> None:
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _postgres_is_empty(url: str) -> bool:
    """No relation, function or schema of its own: a database as CREATE DATABASE left it."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            owned = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n"
                    "          ON n.oid = c.relnamespace"
                    "        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
                    "          AND n.nspname NOT LIKE 'pg_toast%')"
                    "     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n"
                    "          ON n.oid = p.pronamespace"
                    "        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))"
                    "     + (SELECT count(*) FROM pg_namespace"
                    "        WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public')"
                    "          AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%')"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return int(owned) == 0
