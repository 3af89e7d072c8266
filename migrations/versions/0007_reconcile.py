"""Reconciliation: cursors, bookings, runs, results, alarms, acknowledgements, tracked tokens.

Ledger entries are referenced by id without foreign keys, so this revision only needs the
baseline. APScheduler creates its own job table (``reconcile_scheduler_jobs``) on first start.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AMOUNT = sa.Numeric(78, 0).with_variant(sa.String(78), "sqlite")
"""Integer base units: NUMERIC(78, 0) on PostgreSQL, decimal text on SQLite."""
SIGNED = sa.String(80)
"""A signed difference as decimal text (treasury.reconcile.records.SignedAmount)."""
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the seven reconciliation tables."""
    op.create_table(
        "reconcile_cursors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(120), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_cursors")),
        sa.UniqueConstraint("scope", name=op.f("uq_reconcile_cursors_scope")),
    )
    op.create_table(
        "reconcile_bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(120), nullable=False),
        sa.Column("chain_key", sa.String(100), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("asset", sa.String(100), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("tx_ref", sa.String(66), nullable=False),
        sa.Column("block_height", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("booked_at", WHEN, nullable=False),
        sa.Column("reversal_entry_id", sa.Integer(), nullable=True),
        sa.Column("reversed_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_bookings")),
        sa.UniqueConstraint(
            "chain_key", "generation", name=op.f("uq_reconcile_bookings_key_generation")
        ),
    )
    op.create_index(
        "ix_reconcile_bookings_scope_height", "reconcile_bookings", ["scope", "block_height"]
    )
    op.create_table(
        "reconcile_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.Column("reversed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_runs")),
    )
    op.create_index(op.f("ix_reconcile_runs_started_at"), "reconcile_runs", ["started_at"])
    op.create_table(
        "reconcile_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(120), nullable=False),
        sa.Column("asset", sa.String(100), nullable=False),
        sa.Column("gate_asset", sa.String(100), nullable=False),
        sa.Column("chain_balance", AMOUNT, nullable=False),
        sa.Column("ledger_balance", SIGNED, nullable=False),
        sa.Column("difference", SIGNED, nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("checked_at", WHEN, nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconcile_runs.id"],
            name=op.f("fk_reconcile_results_run_id_reconcile_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_results")),
    )
    op.create_index(op.f("ix_reconcile_results_run_id"), "reconcile_results", ["run_id"])
    op.create_index(
        "ix_reconcile_results_scope_asset", "reconcile_results", ["scope", "asset", "id"]
    )
    op.create_table(
        "reconcile_alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(120), nullable=False),
        sa.Column("asset", sa.String(100), nullable=True),
        sa.Column("tx_ref", sa.String(66), nullable=True),
        sa.Column("detail", sa.String(2000), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("raised_at", WHEN, nullable=False),
        sa.Column("cleared_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconcile_runs.id"],
            name=op.f("fk_reconcile_alarms_run_id_reconcile_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_alarms")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_reconcile_alarms_dedupe_key")),
    )
    op.create_index(op.f("ix_reconcile_alarms_raised_at"), "reconcile_alarms", ["raised_at"])
    op.create_table(
        "reconcile_alarm_acks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("officer_name", sa.String(200), nullable=False),
        sa.Column("institution", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("acknowledged_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["reconcile_alarms.id"],
            name=op.f("fk_reconcile_alarm_acks_alarm_id_reconcile_alarms"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_alarm_acks")),
        sa.UniqueConstraint("alarm_id", "officer_id", name=op.f("uq_reconcile_alarm_acks_officer")),
    )
    op.create_index(op.f("ix_reconcile_alarm_acks_alarm_id"), "reconcile_alarm_acks", ["alarm_id"])
    op.create_table(
        "reconcile_tracked_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_tracked_tokens")),
        sa.UniqueConstraint(
            "chain_id", "address", name=op.f("uq_reconcile_tracked_tokens_address")
        ),
    )

    # APScheduler's job table as its SQLAlchemyJobStore declares it; created here so that two
    # schedulers starting at once never race to create it.
    op.create_table(
        "reconcile_scheduler_jobs",
        sa.Column("id", sa.Unicode(191), nullable=False),
        sa.Column("next_run_time", sa.Float(25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_scheduler_jobs")),
    )
    op.create_index(
        op.f("ix_reconcile_scheduler_jobs_next_run_time"),
        "reconcile_scheduler_jobs",
        ["next_run_time"],
    )


def downgrade() -> None:
    """Drop the reconciliation tables (children first)."""
    for table in (
        "reconcile_scheduler_jobs",
        "reconcile_tracked_tokens",
        "reconcile_alarm_acks",
        "reconcile_alarms",
        "reconcile_results",
        "reconcile_runs",
        "reconcile_bookings",
        "reconcile_cursors",
    ):
        op.drop_table(table)
