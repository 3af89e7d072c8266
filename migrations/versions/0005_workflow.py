"""Spend workflow: officers and roles, policy versions and decisions, legal bases, allowlist,
reconciliation checkpoints, spend proposals with their transactions, approvals and signatures.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AMOUNT = sa.Numeric(78, 0).with_variant(sa.String(78), "sqlite")
"""Integer base units: NUMERIC(78, 0) on PostgreSQL, decimal text on SQLite (see treasury.ledger.amounts)."""

TABLES = (
    "institutions",
    "legal_bases",
    "reconciliation_checkpoints",
    "legal_basis_ceilings",
    "officers",
    "allowlist_entries",
    "api_tokens",
    "officer_roles",
    "policy_versions",
    "spend_proposals",
    "allowlist_approvals",
    "policy_decisions",
    "prepared_transactions",
    "proposal_approvals",
    "proposal_signatures",
)
"""Created in this order (foreign keys point backwards); dropped in reverse."""


def upgrade() -> None:
    """Create the workflow tables (token digests only: no token, share or key is ever stored)."""
    op.create_table(
        "institutions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_institutions")),
        sa.UniqueConstraint("code", name=op.f("uq_institutions_code")),
    )
    op.create_table(
        "legal_bases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=400), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_bases")),
        sa.UniqueConstraint("reference", name=op.f("uq_legal_bases_reference")),
    )
    op.create_table(
        "reconciliation_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_checkpoints")),
    )
    op.create_index(
        "ix_reconciliation_checkpoints_asset_checked_at",
        "reconciliation_checkpoints",
        ["asset", "checked_at"],
        unique=False,
    )
    op.create_table(
        "legal_basis_ceilings",
        sa.Column("legal_basis_id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("ceiling", AMOUNT, nullable=False),
        sa.ForeignKeyConstraint(
            ["legal_basis_id"],
            ["legal_bases.id"],
            name=op.f("fk_legal_basis_ceilings_legal_basis_id_legal_bases"),
        ),
        sa.PrimaryKeyConstraint("legal_basis_id", "asset", name=op.f("pk_legal_basis_ceilings")),
    )
    op.create_table(
        "officers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_officers_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_officers")),
    )
    op.create_index(
        op.f("ix_officers_institution_id"), "officers", ["institution_id"], unique=False
    )
    op.create_table(
        "allowlist_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active_from", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["officers.id"],
            name=op.f("fk_allowlist_entries_requested_by_officers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allowlist_entries")),
    )
    op.create_index(
        "ix_allowlist_entries_asset_address",
        "allowlist_entries",
        ["asset", "address"],
        unique=False,
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("lookup_id", sa.String(length=16), nullable=False),
        sa.Column("salt_hex", sa.String(length=32), nullable=False),
        sa.Column("digest_hex", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_api_tokens_officer_id_officers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("lookup_id", name=op.f("uq_api_tokens_lookup_id")),
    )
    op.create_index(op.f("ix_api_tokens_officer_id"), "api_tokens", ["officer_id"], unique=False)
    op.create_table(
        "officer_roles",
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_officer_roles_officer_id_officers")
        ),
        sa.PrimaryKeyConstraint("officer_id", "role", name=op.f("pk_officer_roles")),
    )
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["officers.id"], name=op.f("fk_policy_versions_created_by_officers")
        ),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_policy_versions")),
    )
    op.create_table(
        "spend_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("destination", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("legal_basis_id", sa.Integer(), nullable=False),
        sa.Column("proposer_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quorum_reached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("broadcast_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("txid", sa.String(length=130), nullable=True),
        sa.Column("broadcast_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.Integer(), nullable=True),
        sa.Column("closed_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["closed_by"], ["officers.id"], name=op.f("fk_spend_proposals_closed_by_officers")
        ),
        sa.ForeignKeyConstraint(
            ["legal_basis_id"],
            ["legal_bases.id"],
            name=op.f("fk_spend_proposals_legal_basis_id_legal_bases"),
        ),
        sa.ForeignKeyConstraint(
            ["proposer_id"], ["officers.id"], name=op.f("fk_spend_proposals_proposer_id_officers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_proposals")),
    )
    op.create_index(op.f("ix_spend_proposals_state"), "spend_proposals", ["state"], unique=False)
    op.create_table(
        "allowlist_approvals",
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["allowlist_entries.id"],
            name=op.f("fk_allowlist_approvals_entry_id_allowlist_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_allowlist_approvals_institution_id_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_allowlist_approvals_officer_id_officers")
        ),
        sa.PrimaryKeyConstraint("entry_id", "institution_id", name=op.f("pk_allowlist_approvals")),
    )
    op.create_table(
        "policy_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("policy_hash", sa.String(length=64), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("inputs_digest", sa.String(length=64), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_version"],
            ["policy_versions.version"],
            name=op.f("fk_policy_decisions_policy_version_policy_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_decisions")),
    )
    op.create_index(
        op.f("ix_policy_decisions_proposal_id"), "policy_decisions", ["proposal_id"], unique=False
    )
    op.create_table(
        "prepared_transactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=130), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("fee", AMOUNT, nullable=False),
        sa.Column("prepared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["spend_proposals.id"],
            name=op.f("fk_prepared_transactions_proposal_id_spend_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prepared_transactions")),
    )
    op.create_index(
        op.f("ix_prepared_transactions_proposal_id"),
        "prepared_transactions",
        ["proposal_id"],
        unique=False,
    )
    op.create_table(
        "proposal_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=130), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("void_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_proposal_approvals_institution_id_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_proposal_approvals_officer_id_officers")
        ),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["spend_proposals.id"],
            name=op.f("fk_proposal_approvals_proposal_id_spend_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposal_approvals")),
    )
    op.create_index(
        op.f("ix_proposal_approvals_proposal_id"),
        "proposal_approvals",
        ["proposal_id"],
        unique=False,
    )
    op.create_index(
        "uq_proposal_approvals_standing_institution",
        "proposal_approvals",
        ["proposal_id", "institution_id"],
        unique=True,
        sqlite_where=sa.text("voided_at IS NULL"),
        postgresql_where=sa.text("voided_at IS NULL"),
    )
    op.create_index(
        "uq_proposal_approvals_standing_officer",
        "proposal_approvals",
        ["proposal_id", "officer_id"],
        unique=True,
        sqlite_where=sa.text("voided_at IS NULL"),
        postgresql_where=sa.text("voided_at IS NULL"),
    )
    op.create_table(
        "proposal_signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=130), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_proposal_signatures_institution_id_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_proposal_signatures_officer_id_officers")
        ),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["spend_proposals.id"],
            name=op.f("fk_proposal_signatures_proposal_id_spend_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposal_signatures")),
        sa.UniqueConstraint(
            "proposal_id",
            "tx_hash",
            "institution_id",
            name=op.f("uq_proposal_signatures_proposal_id"),
        ),
    )


def downgrade() -> None:
    """Drop the workflow tables."""
    for table in reversed(TABLES):
        op.drop_table(table)
