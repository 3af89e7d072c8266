"""Custody's declarative base: the tables custody owns (ceremonies, vaults, spends, Safes).

Custody sits at the bottom of the layers and owns its records; the treasury above it has its own
base. Both share one constraint-naming convention, so that one linear Alembic history migrates
every table and the migrations match on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

__all__ = ["NAMING_CONVENTION", "CustodyBase"]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so Alembic migrations match on SQLite and PostgreSQL."""


class CustodyBase(DeclarativeBase):
    """Declarative base of custody's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
