"""Public delay windows of large spends: ``spend_announcements`` and ``spend_vetoes``.

The services chain's window registry is the authority (the signers read it themselves); these
tables are the treasury's record of what it announced and which vetoes it saw there, for the
site's pending-spends section. Each row is only ever inserted. No existing data is touched.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANNOUNCEMENTS = "spend_announcements"
VETOES = "spend_vetoes"
AMOUNT_DIGITS = 78
HASH_CHARS = 66
ADDRESS_CHARS = 200
CODE_CHARS = 120


def upgrade() -> None:
    """Create both tables; a spend is announced once and a veto statement recorded once."""
    op.create_table(
        ANNOUNCEMENTS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=CODE_CHARS), nullable=False),
        sa.Column("asset", sa.String(length=CODE_CHARS), nullable=False),
        sa.Column(
            "amount",
            sa.Numeric(AMOUNT_DIGITS, 0).with_variant(sa.String(AMOUNT_DIGITS), "sqlite"),
            nullable=False,
        ),
        sa.Column("destination", sa.String(length=ADDRESS_CHARS), nullable=False),
        sa.Column("tx_hash", sa.String(length=HASH_CHARS), nullable=False),
        sa.Column("announcement_digest", sa.String(length=HASH_CHARS), nullable=False),
        sa.Column("services_chain_id", sa.Integer(), nullable=False),
        sa.Column("window_registry", sa.String(length=ADDRESS_CHARS), nullable=False),
        sa.Column("services_tx", sa.String(length=HASH_CHARS), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_announcements")),
        sa.UniqueConstraint(
            "announcement_digest", name=op.f("uq_spend_announcements_announcement_digest")
        ),
    )
    op.create_index("ix_spend_announcements_proposal", ANNOUNCEMENTS, ["proposal_id"])
    op.create_table(
        VETOES,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.String(length=CODE_CHARS), nullable=False),
        sa.Column("institution", sa.String(length=CODE_CHARS), nullable=False),
        sa.Column("statement_digest", sa.String(length=HASH_CHARS), nullable=False),
        sa.Column("services_tx", sa.String(length=HASH_CHARS), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_vetoes")),
        sa.UniqueConstraint("statement_digest", name=op.f("uq_spend_vetoes_statement_digest")),
    )
    op.create_index("ix_spend_vetoes_proposal", VETOES, ["proposal_id"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_spend_vetoes_proposal", table_name=VETOES)
    op.drop_table(VETOES)
    op.drop_index("ix_spend_announcements_proposal", table_name=ANNOUNCEMENTS)
    op.drop_table(ANNOUNCEMENTS)
