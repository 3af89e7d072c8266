"""Keep each attestation's liability tree secret: ``liability_secrets``.

One row per attestation (unique ``attestation_id``): the snapshot nonce, the canonical asset list,
the leaf level (each leaf's ``hash || sums`` record, in leaf order) and the first 8 bytes of each
leaf's salt. With them the treasury rebuilds the tree and issues any account's proof package at
any later time (``treasury proofs issue``, the holders' API route); the rebuilt root must equal
``root_digest``, the one the bundle published. Attestations made before this migration have no
row: their nonce was never kept, so their packages cannot be issued again.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SECRETS = "liability_secrets"
DIGEST_CHARS = 64


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        SECRETS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attestation_id", sa.Integer(), nullable=False),
        sa.Column("format_version", sa.Integer(), nullable=False),
        sa.Column("assets_json", sa.Text(), nullable=False),
        sa.Column("leaf_count", sa.Integer(), nullable=False),
        sa.Column("root_digest", sa.String(length=DIGEST_CHARS), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_records", sa.LargeBinary(), nullable=False),
        sa.Column("salt_keys", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attestation_id"],
            ["attestations.id"],
            name=op.f("fk_liability_secrets_attestation_id_attestations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_liability_secrets")),
        sa.UniqueConstraint("attestation_id", name=op.f("uq_liability_secrets_attestation_id")),
    )


def downgrade() -> None:
    """Drop the table (and with it every kept nonce: those packages can no longer be issued)."""
    op.drop_table(SECRETS)
