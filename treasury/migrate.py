"""Run the Alembic migrations from code (the CLI, the demo and the tests all go through here)."""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, Table

from custody.schema import CustodyBase
from treasury.db import Base
from treasury.db import default_database_url as database_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
MODEL_MODULES = (
    "custody.records",
    "custody.ethereum.records",
    "treasury.audit",
    "treasury.ledger.models",
    "treasury.officers",
    "treasury.console_sessions",
    "treasury.policy.tables",
    "treasury.proposals",
    "treasury.attest.records",
    "treasury.reconcile.records",
    "treasury.authority.tables",
    "treasury.authority.passkeys",
    "treasury.reconcile.break_glass",
    "treasury.translations",
    "treasury.custody_health",
    "treasury.recovery_vaults",
    "treasury.reconcile.refresh",
    "treasury.announcements",
)
"""Every module that declares tables (on ``custody.schema.CustodyBase`` or ``treasury.db.Base``)."""


def load_models() -> None:
    """Import every model module so the packages' metadata describe the whole schema."""
    for name in MODEL_MODULES:
        importlib.import_module(name)


def schema_metadata() -> tuple[MetaData, ...]:
    """Every package's table metadata, lowest layer first: what one Alembic history migrates."""
    load_models()
    return (CustodyBase.metadata, Base.metadata)


def schema_table(name: str) -> Table:
    """The declared table called ``name``, whichever package owns it (KeyError if none does)."""
    for metadata in schema_metadata():
        if name in metadata.tables:
            return metadata.tables[name]
    raise KeyError(name)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the project's migrations and at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "heads") -> None:
    """Bring the database at ``url`` up to ``revision`` (every branch head by default)."""
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str | None = None) -> str | None:
    """The revision the database at ``url`` is at (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    from treasury.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
