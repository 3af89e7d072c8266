"""Migration 0002 creates exactly the custody models' tables, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import UniqueConstraint, inspect

from custody.records import CUSTODY_TABLES
from custody.schema import CustodyBase
from treasury import migrate
from treasury.db import make_engine


def test_migration_0002_creates_exactly_the_custody_models(db_url: str) -> None:
    """Tables, columns, nullability, unique and foreign keys match the models; downgrade drops them."""
    migrate.upgrade(db_url, "0002")
    engine = make_engine(db_url)
    try:
        inspector = inspect(engine)
        migrated = {t for t in inspector.get_table_names() if t.startswith("custody_")}
        assert migrated == set(CUSTODY_TABLES)
        assert set(CUSTODY_TABLES) <= set(CustodyBase.metadata.tables)
        for name in CUSTODY_TABLES:
            table = CustodyBase.metadata.tables[name]
            columns = {c["name"]: c for c in inspector.get_columns(name)}
            assert set(columns) == {c.name for c in table.columns}, name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, (name, column.name)
            uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)}
            expected_uniques = {
                tuple(c.name for c in constraint.columns)
                for constraint in table.constraints
                if isinstance(constraint, UniqueConstraint)
            }
            assert uniques == expected_uniques, name
            foreign = {
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(name)
            }
            assert foreign == {
                ((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys
            }, name
    finally:
        engine.dispose()
    command.downgrade(migrate.alembic_config(db_url), "0001")
    engine = make_engine(db_url)
    try:
        assert not {t for t in inspect(engine).get_table_names() if t.startswith("custody_")}
    finally:
        engine.dispose()
