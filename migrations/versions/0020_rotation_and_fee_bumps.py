"""Bitcoin vault rotation and fee bumps: ``btc_vault_rotations`` and ``spend_fee_bumps``.

A rotation names the old and the new vault (each at most once), why, who started it and when,
the new vault's address the sweep pays, the sweep's spend proposal, and when the old vault was
retired (``treasury.rotation``). A fee bump links a spend proposal to the earlier proposal whose
broadcast transaction it replaces, with the fee rate and the officers' fee ceiling
(``treasury.fee_bumps``). No existing data is touched: vaults have no rotation, spends no bump.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROTATIONS = "btc_vault_rotations"
BUMPS = "spend_fee_bumps"
TX_HASH_MAX_CHARS = 130
FEE_RATE_MAX_CHARS = 32
VAULT_NAME_MAX_CHARS = 200
ADDRESS_MAX_CHARS = 128
WHEN = sa.DateTime(timezone=True)
AMOUNT = sa.Numeric(78, 0).with_variant(sa.String(78), "sqlite")
"""Integer base units: NUMERIC(78, 0) on PostgreSQL, decimal text on SQLite."""


def upgrade() -> None:
    """Create the rotations and fee bumps tables."""
    op.create_table(
        ROTATIONS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("old_vault", sa.String(length=VAULT_NAME_MAX_CHARS), nullable=False),
        sa.Column("new_vault", sa.String(length=VAULT_NAME_MAX_CHARS), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("started_by", sa.Integer(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("sweep_address", sa.String(length=ADDRESS_MAX_CHARS), nullable=False),
        sa.Column("sweep_proposal_id", sa.Integer(), nullable=True),
        sa.Column("retired_at", WHEN, nullable=True),
        sa.Column("retired_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["started_by"], ["officers.id"], name=op.f("fk_btc_vault_rotations_started_by_officers")
        ),
        sa.ForeignKeyConstraint(
            ["retired_by"], ["officers.id"], name=op.f("fk_btc_vault_rotations_retired_by_officers")
        ),
        sa.ForeignKeyConstraint(
            ["sweep_proposal_id"],
            ["spend_proposals.id"],
            name=op.f("fk_btc_vault_rotations_sweep_proposal_id_spend_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_btc_vault_rotations")),
        sa.UniqueConstraint("old_vault", name=op.f("uq_btc_vault_rotations_old_vault")),
        sa.UniqueConstraint("new_vault", name=op.f("uq_btc_vault_rotations_new_vault")),
        sa.UniqueConstraint("sweep_address", name=op.f("uq_btc_vault_rotations_sweep_address")),
    )

    op.create_table(
        BUMPS,
        sa.Column("proposal_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("replaces_proposal_id", sa.Integer(), nullable=False),
        sa.Column("replaced_txid", sa.String(length=TX_HASH_MAX_CHARS), nullable=False),
        sa.Column("fee_rate_sat_vb", sa.String(length=FEE_RATE_MAX_CHARS), nullable=False),
        sa.Column("fee_ceiling", AMOUNT, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["spend_proposals.id"],
            name=op.f("fk_spend_fee_bumps_proposal_id_spend_proposals"),
        ),
        sa.ForeignKeyConstraint(
            ["replaces_proposal_id"],
            ["spend_proposals.id"],
            name=op.f("fk_spend_fee_bumps_replaces_proposal_id_spend_proposals"),
        ),
        sa.PrimaryKeyConstraint("proposal_id", name=op.f("pk_spend_fee_bumps")),
    )


def downgrade() -> None:
    """Drop both tables (and with them the record of every rotation and fee bump)."""
    op.drop_table(BUMPS)
    op.drop_table(ROTATIONS)
