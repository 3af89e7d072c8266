"""Server-side console sessions: ``console_sessions``.

Until now the console's cookie held the officer's raw API token. Each console login now opens a
session row holding only a salted hash of a random session id (lookup in clear, like API tokens),
its officer, the API token it was opened with (so revoking that token ends it), its creation,
last request, absolute expiry, idle timeout, and the moment it was ended at logout. No existing
data is touched: cookies issued before this migration no longer name a session, so their officers
log in again.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "console_sessions"
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the table and its lookups."""
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("token_lookup_id", sa.String(length=16), nullable=False),
        sa.Column("lookup_id", sa.String(length=16), nullable=False),
        sa.Column("salt_hex", sa.String(length=32), nullable=False),
        sa.Column("digest_hex", sa.String(length=64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("idle_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("ended_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_console_sessions_officer_id_officers")
        ),
        sa.ForeignKeyConstraint(
            ["token_lookup_id"],
            ["api_tokens.lookup_id"],
            name=op.f("fk_console_sessions_token_lookup_id_api_tokens"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("lookup_id", name=op.f("uq_console_sessions_lookup_id")),
    )
    op.create_index(op.f("ix_console_sessions_officer_id"), TABLE, ["officer_id"])
    op.create_index(op.f("ix_console_sessions_token_lookup_id"), TABLE, ["token_lookup_id"])


def downgrade() -> None:
    """Drop the table (console logins then fail until the code that needs it is gone too)."""
    op.drop_index(op.f("ix_console_sessions_token_lookup_id"), table_name=TABLE)
    op.drop_index(op.f("ix_console_sessions_officer_id"), table_name=TABLE)
    op.drop_table(TABLE)
