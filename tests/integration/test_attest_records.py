"""Migration 0006 creates exactly the attestation tables the models declare, on both databases."""

from __future__ import annotations

from sqlalchemy import inspect

from treasury import migrate
from treasury.attest.records import ATTEST_TABLES
from treasury.db import Base, make_engine


def test_migration_creates_exactly_the_attestation_models(db_url: str) -> None:
    """Every attestation table, column, nullability and unique constraint matches the models."""
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        inspector = inspect(engine)
        assert set(ATTEST_TABLES) <= set(inspector.get_table_names())
        for name in ATTEST_TABLES:
            model = Base.metadata.tables[name]
            columns = {c["name"]: c for c in inspector.get_columns(name)}
            assert set(columns) == {c.name for c in model.columns}
            for column in model.columns:
                assert columns[column.name]["nullable"] == column.nullable, column.name
            uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)}
            declared = {(c.name,) for c in model.columns if c.unique}
            assert uniques == declared
    finally:
        engine.dispose()
