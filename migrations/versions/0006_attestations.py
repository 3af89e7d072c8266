"""Attestations and the attestation registry (treasury.attest.records).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from treasury.db import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the attestations and attestation_registries tables."""
    op.create_table(
        "attestations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("previous_digest", sa.String(64), nullable=False),
        sa.Column("bitcoin_anchor_txid", sa.String(64), nullable=False),
        sa.Column("services_chain_id", sa.Integer(), nullable=False),
        sa.Column("services_anchor_tx", sa.String(66), nullable=False),
        sa.Column("anchors_json", sa.Text(), nullable=False),
        sa.Column("bundle_json", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attestations")),
        sa.UniqueConstraint("sequence", name=op.f("uq_attestations_sequence")),
        sa.UniqueConstraint("digest", name=op.f("uq_attestations_digest")),
    )
    op.create_table(
        "attestation_registries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("publisher", sa.String(42), nullable=False),
        sa.Column("deployed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attestation_registries")),
        sa.UniqueConstraint("chain_id", name=op.f("uq_attestation_registries_chain_id")),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("attestation_registries")
    op.drop_table("attestations")
