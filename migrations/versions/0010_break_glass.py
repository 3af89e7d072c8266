"""Break-glass signatures: each institution's signature made without the officers' statements.

``break_glass_signatures`` records, once, every signature an institution's share holders made on
the break-glass path (``--break-glass --reason``): chain, vault, the signed transaction's hash,
institution, reason and time. It gets the ledger's protection: UPDATE and DELETE are refused by
triggers on both databases, TRUNCATE on PostgreSQL (SQLite has none; its DELETE without WHERE
fires the triggers too), so an emergency signature cannot be quietly taken off the record.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "break_glass_signatures"
REFUSE_FUNCTION = "treasury_refuse_break_glass_change"


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    """Create the table and its lookup index, then make it append-only."""
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.Column("vault", sa.String(length=200), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("institution", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass_signatures")),
    )
    op.create_index("ix_break_glass_signatures_chain_tx_hash", TABLE, ["chain", "tx_hash"])
    if _sqlite():
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_immutable_{operation.lower()} BEFORE {operation} "
                f"ON {TABLE} BEGIN SELECT RAISE(ABORT, '{TABLE} rows are immutable: "
                f"{operation} refused; a break-glass signature stays on record'); END"
            )
        return
    op.execute(
        f"""
        CREATE FUNCTION {REFUSE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% rows are immutable: % refused; a break-glass signature stays on record',
                TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
        END $$
        """
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_immutable BEFORE UPDATE OR DELETE ON {TABLE} "
        f"FOR EACH ROW EXECUTE FUNCTION {REFUSE_FUNCTION}()"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}()"
    )


def downgrade() -> None:
    """Drop the triggers, the index and the table."""
    if _sqlite():
        op.execute(f"DROP TRIGGER {TABLE}_immutable_update")
        op.execute(f"DROP TRIGGER {TABLE}_immutable_delete")
    else:
        op.execute(f"DROP TRIGGER {TABLE}_immutable ON {TABLE}")
        op.execute(f"DROP TRIGGER {TABLE}_no_truncate ON {TABLE}")
        op.execute(f"DROP FUNCTION {REFUSE_FUNCTION}()")
    op.drop_index("ix_break_glass_signatures_chain_tx_hash", table_name=TABLE)
    op.drop_table(TABLE)
