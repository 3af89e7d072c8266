"""API tokens expire: an ``expires_at`` on every token.

Tokens issued before this migration get the default life counted from their issue
(``created_at`` + 30 days), so an old token stops on its own like a new one. The column is then
made NOT NULL: ``authenticate`` compares every token with its expiry.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_TOKEN_TTL = timedelta(days=30)
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the expiry, back-fill it for existing tokens, then require it."""
    op.add_column("api_tokens", sa.Column("expires_at", WHEN, nullable=True))
    tokens = sa.table(
        "api_tokens",
        sa.column("id", sa.Integer),
        sa.column("created_at", WHEN),
        sa.column("expires_at", WHEN),
    )
    connection = op.get_bind()
    for token_id, created_at in connection.execute(sa.select(tokens.c.id, tokens.c.created_at)):
        connection.execute(
            tokens.update()
            .where(tokens.c.id == token_id)
            .values(expires_at=created_at + DEFAULT_TOKEN_TTL)
        )
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("expires_at", existing_type=WHEN, nullable=False)


def downgrade() -> None:
    """Drop the expiry (tokens then live until revoked, as before)."""
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
