"""Safe vaults: roster, proposed SafeTxs and owner signatures (custody.ethereum.records).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from custody.ethereum.records import Uint256

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the four Safe tables."""
    op.create_table(
        "safe_vaults",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safe_vaults")),
        sa.UniqueConstraint("chain_id", "address", name=op.f("uq_safe_vaults_chain_address")),
        sa.UniqueConstraint("name", name=op.f("uq_safe_vaults_name")),
    )
    op.create_table(
        "safe_owners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vault_id", sa.Integer(), nullable=False),
        sa.Column("institution", sa.String(200), nullable=False),
        sa.Column("owner_address", sa.String(42), nullable=False),
        sa.Column("fingerprint", sa.String(8), nullable=False),
        sa.ForeignKeyConstraint(
            ["vault_id"], ["safe_vaults.id"], name=op.f("fk_safe_owners_vault_id_safe_vaults")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safe_owners")),
        sa.UniqueConstraint(
            "vault_id", "institution", name=op.f("uq_safe_owners_vault_institution")
        ),
        sa.UniqueConstraint("vault_id", "owner_address", name=op.f("uq_safe_owners_vault_address")),
    )
    op.create_index(op.f("ix_safe_owners_vault_id"), "safe_owners", ["vault_id"])
    op.create_table(
        "safe_transactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vault_id", sa.Integer(), nullable=False),
        sa.Column("safe_tx_hash", sa.String(66), nullable=False),
        sa.Column("to_address", sa.String(42), nullable=False),
        sa.Column("value", Uint256(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("operation", sa.Integer(), nullable=False),
        sa.Column("safe_tx_gas", Uint256(), nullable=False),
        sa.Column("base_gas", Uint256(), nullable=False),
        sa.Column("gas_price", Uint256(), nullable=False),
        sa.Column("gas_token", sa.String(42), nullable=False),
        sa.Column("refund_receiver", sa.String(42), nullable=False),
        sa.Column("nonce", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum("proposed", "executed", name="safetxstate", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("executed_tx_hash", sa.String(66), nullable=True),
        sa.Column("new_owner_institution", sa.String(200), nullable=True),
        sa.Column("new_owner_fingerprint", sa.String(8), nullable=True),
        sa.ForeignKeyConstraint(
            ["vault_id"], ["safe_vaults.id"], name=op.f("fk_safe_transactions_vault_id_safe_vaults")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safe_transactions")),
        sa.UniqueConstraint("safe_tx_hash", name=op.f("uq_safe_transactions_safe_tx_hash")),
    )
    op.create_index(op.f("ix_safe_transactions_vault_id"), "safe_transactions", ["vault_id"])
    op.create_table(
        "safe_signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("safe_tx_id", sa.Integer(), nullable=False),
        sa.Column("institution", sa.String(200), nullable=False),
        sa.Column("owner_address", sa.String(42), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["safe_tx_id"],
            ["safe_transactions.id"],
            name=op.f("fk_safe_signatures_safe_tx_id_safe_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safe_signatures")),
        sa.UniqueConstraint(
            "safe_tx_id", "owner_address", name=op.f("uq_safe_signatures_tx_owner")
        ),
    )
    op.create_index(op.f("ix_safe_signatures_safe_tx_id"), "safe_signatures", ["safe_tx_id"])


def downgrade() -> None:
    """Drop the Safe tables, children first."""
    for table in ("safe_signatures", "safe_transactions", "safe_owners", "safe_vaults"):
        op.drop_table(table)
