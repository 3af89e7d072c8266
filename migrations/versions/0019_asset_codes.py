"""Asset codes up to 64 characters, so a token's code ``ERC20:<contract>`` (48) fits.

Proposals, legal-basis ceilings, allowlist entries and reconciliation checkpoints named assets in
at most 16 characters (``BTC``, ``ETH``, a symbol); a token is named by its contract, as the
ledger and the officers' statements name it. Widening a ``VARCHAR`` keeps every row. SQLite does
not enforce a ``VARCHAR`` length, but its schema should say what the models say: its tables are
rebuilt (batch), keeping their triggers.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CHARS = 16
NEW_CHARS = 64
TABLES = (
    "spend_proposals",
    "legal_basis_ceilings",
    "allowlist_entries",
    "reconciliation_checkpoints",
)


def _alter_sqlite(table: str, length_from: int, length_to: int) -> None:
    """SQLite cannot change a column's type in place: the batch rebuilds the table, which drops
    its triggers (the immutability guards of 0008), so they are read first and made again."""
    bind = op.get_bind()
    triggers = (
        bind.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"),
            {"table": table},
        )
        .scalars()
        .all()
    )
    with op.batch_alter_table(table) as batch:
        batch.alter_column(
            "asset",
            existing_type=sa.String(length_from),
            type_=sa.String(length_to),
            existing_nullable=False,
        )
    for sql in triggers:
        op.execute(sql)


def _alter(length_from: int, length_to: int) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("PRAGMA foreign_keys = OFF")
    for table in TABLES:
        if sqlite:
            _alter_sqlite(table, length_from, length_to)
        else:
            op.alter_column(
                table,
                "asset",
                existing_type=sa.String(length_from),
                type_=sa.String(length_to),
                existing_nullable=False,
            )
    if sqlite:
        op.execute("PRAGMA foreign_keys = ON")


def upgrade() -> None:
    _alter(OLD_CHARS, NEW_CHARS)


def downgrade() -> None:
    _alter(NEW_CHARS, OLD_CHARS)
