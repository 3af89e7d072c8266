"""Vaults with a timelocked recovery path in the treasury, and their refresh alarms.

``recovery_vaults`` stores each miniscript vault's policy as the key origins of its ceremonies
(institutions and recovery bodies), thresholds, ``N`` and its receive descriptor;
``recovery_vault_addresses`` the addresses issued for it; ``recovery_refresh_alarms`` the alarms
the reconciler opens when a coin's recovery path is about to open and clears after a refresh
(``treasury.recovery_vaults``, ``treasury.reconcile.refresh``). Key health checks gain the
challenge their quorum signed and the proof (``key_health_checks.challenge``, ``.proof``, both
empty for earlier checks). No existing data is changed.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VAULTS = "recovery_vaults"
ADDRESSES = "recovery_vault_addresses"
ALARMS = "recovery_refresh_alarms"
CHECKS = "key_health_checks"
NAME_MAX_CHARS = 200
ADDRESS_MAX_CHARS = 128
DEDUPE_MAX_CHARS = 300
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the recovery vault, address and refresh alarm tables."""
    op.create_table(
        VAULTS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=NAME_MAX_CHARS), nullable=False),
        sa.Column("wallet_name", sa.String(length=NAME_MAX_CHARS), nullable=False),
        sa.Column("network", sa.String(length=16), nullable=False),
        sa.Column("primary_threshold", sa.Integer(), nullable=False),
        sa.Column("primary_ceremonies", sa.JSON(), nullable=False),
        sa.Column("primary_keys", sa.JSON(), nullable=False),
        sa.Column("recovery_threshold", sa.Integer(), nullable=False),
        sa.Column("recovery_ceremonies", sa.JSON(), nullable=False),
        sa.Column("recovery_keys", sa.JSON(), nullable=False),
        sa.Column("recovery_delay_blocks", sa.Integer(), nullable=False),
        sa.Column("receive_descriptor", sa.Text(), nullable=False),
        sa.Column("next_receive_index", sa.Integer(), nullable=False),
        sa.Column("next_change_index", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_vaults")),
        sa.UniqueConstraint("name", name=op.f("uq_recovery_vaults_name")),
        sa.UniqueConstraint("wallet_name", name=op.f("uq_recovery_vaults_wallet_name")),
    )
    op.create_table(
        ADDRESSES,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vault_id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=ADDRESS_MAX_CHARS), nullable=False),
        sa.Column("issued_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["vault_id"],
            ["recovery_vaults.id"],
            name=op.f("fk_recovery_vault_addresses_vault_id_recovery_vaults"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_vault_addresses")),
        sa.UniqueConstraint("address", name=op.f("uq_recovery_vault_addresses_address")),
        sa.UniqueConstraint("vault_id", "branch", "index", name="uq_recovery_vault_addresses_slot"),
    )
    op.create_table(
        ALARMS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vault", sa.String(length=NAME_MAX_CHARS), nullable=False),
        sa.Column("dedupe_key", sa.String(length=DEDUPE_MAX_CHARS), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("soonest_blocks_left", sa.Integer(), nullable=False),
        sa.Column("raised_at", WHEN, nullable=False),
        sa.Column("raised_height", sa.Integer(), nullable=False),
        sa.Column("cleared_at", WHEN, nullable=True),
        sa.Column("cleared_height", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_refresh_alarms")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_recovery_refresh_alarms_dedupe_key")),
    )

    op.add_column(CHECKS, sa.Column("challenge", sa.Text(), nullable=True))
    op.add_column(CHECKS, sa.Column("proof", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(CHECKS) as batch:
        batch.drop_column("proof")
        batch.drop_column("challenge")
    op.drop_table(ALARMS)
    op.drop_table(ADDRESSES)
    op.drop_table(VAULTS)
