"""Relayer accounts per EVM chain: ``relayer_cursors`` and ``relayer_bookings``.

Each chain's relayer (the account that pays the Safes' gas) has its float in the ledger; the
reconciler records how far it read the relayer's chain and each transaction it booked (a top-up,
a Safe execution's gas, an unexplained spending, the opening balance), once per transaction. The
new alarm kinds (``relayer_low``, ``relayer_unexplained``) fit the existing 32-character kind
column. No existing data is touched.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURSORS = "relayer_cursors"
BOOKINGS = "relayer_bookings"
AMOUNT = sa.Numeric(78, 0).with_variant(sa.String(78), "sqlite")
"""Integer base units: NUMERIC(78, 0) on PostgreSQL, decimal text on SQLite."""
SIGNED = sa.String(80)
"""A signed balance as decimal text (treasury.reconcile.records.SignedAmount)."""
WHEN = sa.DateTime(timezone=True)
ADDRESS_CHARS = 42
HASH_CHARS = 66


def upgrade() -> None:
    """Create both tables; a relayer has one cursor per chain, a transaction one booking per kind."""
    op.create_table(
        CURSORS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("relayer", sa.String(ADDRESS_CHARS), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.String(HASH_CHARS), nullable=False),
        sa.Column("chain_balance", AMOUNT, nullable=False),
        sa.Column("ledger_balance", SIGNED, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relayer_cursors")),
        sa.UniqueConstraint("chain_id", "relayer", name="uq_relayer_cursors_relayer"),
    )
    op.create_table(
        BOOKINGS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("relayer", sa.String(ADDRESS_CHARS), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tx_ref", sa.String(HASH_CHARS), nullable=False),
        sa.Column("asset", sa.String(100), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("block_height", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.String(HASH_CHARS), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("booked_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relayer_bookings")),
        sa.UniqueConstraint(
            "chain_id", "relayer", "kind", "tx_ref", name="uq_relayer_bookings_transaction"
        ),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table(BOOKINGS)
    op.drop_table(CURSORS)
