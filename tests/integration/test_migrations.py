"""Alembic migrations run on both supported databases, and the tests' migrated templates are
exactly what they build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from migration_templates import MigrationTemplates
from sqlalchemy import Connection, MetaData, inspect, select, text
from sqlalchemy import table as table_clause
from sqlalchemy.engine import make_url

from treasury import migrate
from treasury.db import make_engine

pytestmark = pytest.mark.real_migrations
"""Every upgrade here runs the migrations themselves."""


def test_alembic_upgrade_head_runs(db_url: str) -> None:
    """`upgrade head` brings an empty database to the newest revision, and running it again is a no-op."""
    assert migrate.current_revision(db_url) is None
    migrate.upgrade(db_url)
    head = migrate.current_revision(db_url)
    assert head is not None
    migrate.upgrade(db_url)
    assert migrate.current_revision(db_url) == head


def test_alembic_command_line_upgrades_head(db_url: str) -> None:
    """The plain `alembic upgrade head` a DBA would type works from the repository's alembic.ini."""
    repo = Path(__file__).resolve().parents[2]
    alembic = Path(sys.executable).parent / "alembic"
    done = subprocess.run(
        [str(alembic), "-x", f"url={db_url}", "upgrade", "head"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert migrate.current_revision(db_url) is not None


def test_migrations_build_exactly_the_models_schema(db_url: str) -> None:
    """After `upgrade head`, Alembic's autogenerate finds no difference from the models."""
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = [
                d for d in compare_metadata(context, _whole_schema()) if not _sqlite_only(d)
            ]
            assert differences == []
    finally:
        engine.dispose()


def _whole_schema() -> MetaData:
    """Every package's tables in one MetaData, as one Alembic history migrates them."""
    whole = MetaData()
    for metadata in migrate.schema_metadata():
        for table in metadata.tables.values():
            table.to_metadata(whole)
    return whole


def _sqlite_only(difference: tuple[object, ...]) -> bool:
    """The ledger's deferred completeness foreign key exists on SQLite only, by design.

    SQLite has no deferred triggers, so migration 0004 adds a deferred foreign key from
    ``ledger_entries.posting_count`` to the last posting's position; PostgreSQL checks the same
    rule with a deferred constraint trigger instead. The models do not declare it.
    """
    if difference[0] != "remove_fk":
        return False
    constraint = difference[1]
    return getattr(getattr(constraint, "table", None), "name", None) == "ledger_entries"


def test_a_template_copy_is_the_database_the_migrations_build(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    """The suite's shortcut (an empty database upgraded to every head is a copy of a template
    migrated once) gives the same tables, columns, indexes, constraints, triggers, functions
    and rows as running the migrations on that database."""
    other: str = request.getfixturevalue(
        "postgres_url" if db_url.startswith("postgresql") else "sqlite_url"
    )
    if other == db_url:  # the SQLite fixture's one file per test: make a second one beside it
        other = db_url.replace("treasury.sqlite3", "copied.sqlite3")
    migrate.upgrade(db_url)
    templates = MigrationTemplates(real_upgrade=migrate.upgrade)
    try:
        templates.upgrade(other)
        assert migrate.current_revision(other) == migrate.current_revision(db_url)
        assert _fingerprint(other) == _fingerprint(db_url)
    finally:
        templates.drop()


def _fingerprint(url: str) -> dict[str, object]:
    """Everything the schema is made of, and every row, in a comparable form."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            found: dict[str, object] = {"rows": _rows(conn)}
            if make_url(url).get_backend_name() == "sqlite":
                # Batch-mode table rebuilds write a table's constraints in set order, which
                # differs between any two runs of the migrations: compare clauses, not order.
                found["schema"] = [
                    (
                        kind,
                        name,
                        owner,
                        sorted((sql or "").replace("\n)", ", \n\t)").split(", \n\t")),
                    )
                    for kind, name, owner, sql in conn.execute(
                        text("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY 1, 2")
                    )
                ]
                return found
            for name, query in _POSTGRES_CATALOG.items():
                found[name] = conn.execute(text(query)).all()
            return found
    finally:
        engine.dispose()


def _rows(conn: Connection) -> dict[str, list[str]]:
    names = inspect(conn).get_table_names()
    return {
        n: sorted(map(repr, conn.execute(select(text("*")).select_from(table_clause(n)))))
        for n in names
    }


_POSTGRES_CATALOG = {
    "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default"
    " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
    " FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes"
    " WHERE schemaname = 'public' ORDER BY 1, 2",
    "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger"
    " WHERE NOT tgisinternal ORDER BY 1, 2",
    "functions": "SELECT proname, pg_get_functiondef(oid) FROM pg_proc"
    " WHERE pronamespace = 'public'::regnamespace ORDER BY 1, 2",
    "rules": "SELECT tablename, rulename, definition FROM pg_rules"
    " WHERE schemaname = 'public' ORDER BY 1, 2",
    "sequences": "SELECT sequencename, start_value, increment_by FROM pg_sequences"
    " WHERE schemaname = 'public' ORDER BY 1",
}
