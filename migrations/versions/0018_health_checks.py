"""Key health checks of the institutions' shares: ``key_health_checks`` and ``key_health_alarms``.

One row per health check (which ceremony's institution, when, the outcome, the member indexes
that took part and a reason without any secret), only ever inserted; and one row per key health
alarm (a failed check or an overdue institution), open until a passing check clears it
(``treasury.custody_health``). No existing data is touched: institutions simply have no check
until their holders run one, and count as due from their ceremony's time.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECKS = "key_health_checks"
ALARMS = "key_health_alarms"
NAME_MAX_CHARS = 200
OUTCOME_MAX_CHARS = 16
CAUSE_MAX_CHARS = 16
DEDUPE_MAX_CHARS = 300
ACTOR_MAX_CHARS = 200


def upgrade() -> None:
    """Create both tables and the lookup index of checks by institution and time."""
    op.create_table(
        CHECKS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ceremony_id", sa.Integer(), nullable=False),
        sa.Column("institution", sa.String(length=NAME_MAX_CHARS), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=OUTCOME_MAX_CHARS), nullable=False),
        sa.Column("member_indexes", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=ACTOR_MAX_CHARS), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_health_checks")),
    )
    op.create_index("ix_key_health_checks_institution", CHECKS, ["institution", "checked_at"])
    op.create_table(
        ALARMS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution", sa.String(length=NAME_MAX_CHARS), nullable=False),
        sa.Column("cause", sa.String(length=CAUSE_MAX_CHARS), nullable=False),
        sa.Column("dedupe_key", sa.String(length=DEDUPE_MAX_CHARS), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("check_id", sa.Integer(), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by_check_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["check_id"],
            [f"{CHECKS}.id"],
            name=op.f("fk_key_health_alarms_check_id_key_health_checks"),
        ),
        sa.ForeignKeyConstraint(
            ["cleared_by_check_id"],
            [f"{CHECKS}.id"],
            name=op.f("fk_key_health_alarms_cleared_by_check_id_key_health_checks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_health_alarms")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_key_health_alarms_dedupe_key")),
    )


def downgrade() -> None:
    """Drop both tables (and with them the record of every check)."""
    op.drop_table(ALARMS)
    op.drop_index("ix_key_health_checks_institution", table_name=CHECKS)
    op.drop_table(CHECKS)
