"""Custody: ceremony transcripts, share holders, Bitcoin vaults and their spends.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the custody tables (public material only: no shares, seeds or private keys)."""
    op.create_table(
        "custody_ceremonies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution", sa.String(length=200), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("share_count", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.Integer(), nullable=False),
        sa.Column("iteration_exponent", sa.Integer(), nullable=False),
        sa.Column("extendable", sa.Boolean(), nullable=False),
        sa.Column("passphrase_protected", sa.Boolean(), nullable=False),
        sa.Column("fingerprint", sa.String(length=8), nullable=False),
        sa.Column("account_path", sa.String(length=40), nullable=False),
        sa.Column("account_xpub", sa.String(length=120), nullable=False),
        sa.Column("eth_address", sa.String(length=42), nullable=False),
        sa.Column("witnesses", sa.JSON(), nullable=False),
        sa.Column("performed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_ceremonies")),
        sa.UniqueConstraint("institution", name=op.f("uq_custody_ceremonies_institution")),
    )
    op.create_table(
        "custody_share_holders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ceremony_id", sa.Integer(), nullable=False),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("member_index", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ceremony_id"],
            ["custody_ceremonies.id"],
            name=op.f("fk_custody_share_holders_ceremony_id_custody_ceremonies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_share_holders")),
        sa.UniqueConstraint("ceremony_id", "holder_name", name="uq_custody_share_holders_holder"),
        sa.UniqueConstraint("ceremony_id", "member_index", name="uq_custody_share_holders_member"),
    )
    op.create_table(
        "custody_btc_vaults",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("wallet_name", sa.String(length=200), nullable=False),
        sa.Column("receive_descriptor", sa.Text(), nullable=False),
        sa.Column("change_descriptor", sa.Text(), nullable=False),
        sa.Column("next_receive_index", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_btc_vaults")),
        sa.UniqueConstraint("name", name=op.f("uq_custody_btc_vaults_name")),
        sa.UniqueConstraint("wallet_name", name=op.f("uq_custody_btc_vaults_wallet_name")),
    )
    op.create_table(
        "custody_btc_vault_cosigners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vault_id", sa.Integer(), nullable=False),
        sa.Column("ceremony_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ceremony_id"],
            ["custody_ceremonies.id"],
            name=op.f("fk_custody_btc_vault_cosigners_ceremony_id_custody_ceremonies"),
        ),
        sa.ForeignKeyConstraint(
            ["vault_id"],
            ["custody_btc_vaults.id"],
            name=op.f("fk_custody_btc_vault_cosigners_vault_id_custody_btc_vaults"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_btc_vault_cosigners")),
        sa.UniqueConstraint("vault_id", "ceremony_id", name="uq_custody_btc_vault_cosigners_key"),
    )
    op.create_table(
        "custody_btc_spends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vault_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "built",
                "broadcast",
                "replaced",
                name="spendstate",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("unsigned_psbt", sa.Text(), nullable=False),
        sa.Column("unsigned_txid", sa.String(length=64), nullable=False),
        sa.Column("payments", sa.JSON(), nullable=False),
        sa.Column("fee_sats", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_sats", sa.BigInteger(), nullable=False),
        sa.Column("fee_rate_sat_vb", sa.Numeric(precision=12, scale=3), nullable=False),
        sa.Column("replaces_id", sa.Integer(), nullable=True),
        sa.Column("txid", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("broadcast_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["replaces_id"],
            ["custody_btc_spends.id"],
            name=op.f("fk_custody_btc_spends_replaces_id_custody_btc_spends"),
        ),
        sa.ForeignKeyConstraint(
            ["vault_id"],
            ["custody_btc_vaults.id"],
            name=op.f("fk_custody_btc_spends_vault_id_custody_btc_vaults"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_btc_spends")),
    )
    op.create_table(
        "custody_btc_spend_signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("spend_id", sa.Integer(), nullable=False),
        sa.Column("ceremony_id", sa.Integer(), nullable=False),
        sa.Column("signed_psbt", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ceremony_id"],
            ["custody_ceremonies.id"],
            name=op.f("fk_custody_btc_spend_signatures_ceremony_id_custody_ceremonies"),
        ),
        sa.ForeignKeyConstraint(
            ["spend_id"],
            ["custody_btc_spends.id"],
            name=op.f("fk_custody_btc_spend_signatures_spend_id_custody_btc_spends"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_btc_spend_signatures")),
        sa.UniqueConstraint(
            "spend_id", "ceremony_id", name="uq_custody_btc_spend_signatures_signer"
        ),
    )


def downgrade() -> None:
    """Drop the custody tables, dependents first."""
    for table in (
        "custody_btc_spend_signatures",
        "custody_btc_spends",
        "custody_btc_vault_cosigners",
        "custody_btc_vaults",
        "custody_share_holders",
        "custody_ceremonies",
    ):
        op.drop_table(table)
