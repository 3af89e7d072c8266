"""One chain transaction per proposal: ``spend_reservations`` and ``sealed_transactions``.

``spend_reservations`` holds the chain-level resources a prepared transaction consumes (its Safe
nonce, each Bitcoin input) for its proposal; the unique constraint on ``(claim, live)``, with
``live`` TRUE while held and NULL once released, admits one live holder per resource on both
databases (NULLs are distinct). ``sealed_transactions`` is the write-ahead record of a broadcast:
the signed transaction and its txid, written before it is sent, unique by txid. No existing data
is touched: proposals prepared before this migration hold no reservations and are sent as before.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RESERVATIONS = "spend_reservations"
SEALED = "sealed_transactions"
WHEN = sa.DateTime(timezone=True)
TX_HASH_MAX_CHARS = 130
CLAIM_MAX_CHARS = 200


def upgrade() -> None:
    """Create both tables and their constraints."""
    op.create_table(
        RESERVATIONS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("prepared_tx_id", sa.Integer(), nullable=False),
        sa.Column("claim", sa.String(length=CLAIM_MAX_CHARS), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=True),
        sa.Column("reserved_at", WHEN, nullable=False),
        sa.Column("released_at", WHEN, nullable=True),
        sa.Column("released_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["spend_proposals.id"],
            name=op.f("fk_spend_reservations_proposal_id_spend_proposals"),
        ),
        sa.ForeignKeyConstraint(
            ["prepared_tx_id"],
            ["prepared_transactions.id"],
            name=op.f("fk_spend_reservations_prepared_tx_id_prepared_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_reservations")),
        sa.UniqueConstraint("claim", "live", name=op.f("uq_spend_reservations_claim")),
    )
    op.create_index(op.f("ix_spend_reservations_proposal_id"), RESERVATIONS, ["proposal_id"])
    op.create_table(
        SEALED,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=TX_HASH_MAX_CHARS), nullable=False),
        sa.Column("txid", sa.String(length=TX_HASH_MAX_CHARS), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("sealed_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["spend_proposals.id"],
            name=op.f("fk_sealed_transactions_proposal_id_spend_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sealed_transactions")),
        sa.UniqueConstraint("txid", name=op.f("uq_sealed_transactions_txid")),
    )
    op.create_index(op.f("ix_sealed_transactions_proposal_id"), SEALED, ["proposal_id"])


def downgrade() -> None:
    """Drop both tables (proposals then prepare and send without reservations)."""
    op.drop_index(op.f("ix_sealed_transactions_proposal_id"), table_name=SEALED)
    op.drop_table(SEALED)
    op.drop_index(op.f("ix_spend_reservations_proposal_id"), table_name=RESERVATIONS)
    op.drop_table(RESERVATIONS)
