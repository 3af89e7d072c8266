"""Officers' passkeys registered in the console: public keys only, append-only.

``passkey_registrations`` holds each passkey an officer registered (its public key as JSON, its
key id). A registration is usable only once an admin signs it into the roster chain; whether it
is active is read from that chain, so a row never changes: UPDATE and DELETE are refused by
triggers on both databases, TRUNCATE on PostgreSQL (reusing migration 0009's refusing function).

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "passkey_registrations"
REFUSE_FUNCTION = "treasury_refuse_authority_change"
"""Created by migration 0009: raises naming the table and the refused operation."""


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    """Create the table, then make it append-only."""
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["officer_id"],
            ["officers.id"],
            name=op.f("fk_passkey_registrations_officer_id_officers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkey_registrations")),
        sa.UniqueConstraint("key_id", name=op.f("uq_passkey_registrations_key_id")),
    )
    op.create_index(op.f("ix_passkey_registrations_officer_id"), TABLE, ["officer_id"])
    if _sqlite():
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_immutable_{operation.lower()} BEFORE {operation} ON "
                f"{TABLE} BEGIN SELECT RAISE(ABORT, '{TABLE} rows are immutable: {operation} "
                "refused; register a new passkey instead'); END"
            )
    else:
        op.execute(
            f"CREATE TRIGGER {TABLE}_immutable BEFORE UPDATE OR DELETE ON {TABLE} "
            f"FOR EACH ROW EXECUTE FUNCTION {REFUSE_FUNCTION}()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}()"
        )


def downgrade() -> None:
    """Drop the triggers and the table."""
    if _sqlite():
        op.execute(f"DROP TRIGGER {TABLE}_immutable_update")
        op.execute(f"DROP TRIGGER {TABLE}_immutable_delete")
    else:
        op.execute(f"DROP TRIGGER {TABLE}_immutable ON {TABLE}")
        op.execute(f"DROP TRIGGER {TABLE}_no_truncate ON {TABLE}")
    op.drop_index(op.f("ix_passkey_registrations_officer_id"), table_name=TABLE)
    op.drop_table(TABLE)
