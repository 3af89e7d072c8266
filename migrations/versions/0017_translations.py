"""Translations of the text officers enter: ``translations``.

One row per wording of one record's text (an institution's name, a decree's title or the address
of its text, an account's name, a spend's purpose, a payee's label) in Kyrgyz or Russian, keyed by
``(kind, key, language)``; rows are only ever inserted and the newest of a key and language is the
one in force (``treasury.translations``). No existing data is touched: records entered before this
migration simply have no translations until an officer adds them.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRANSLATIONS = "translations"
KIND_MAX_CHARS = 32
KEY_MAX_CHARS = 128
LANGUAGE_MAX_CHARS = 8


def upgrade() -> None:
    """Create the table and its lookup index."""
    op.create_table(
        TRANSLATIONS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=KIND_MAX_CHARS), nullable=False),
        sa.Column("key", sa.String(length=KEY_MAX_CHARS), nullable=False),
        sa.Column("language", sa.String(length=LANGUAGE_MAX_CHARS), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["set_by"], ["officers.id"], name=op.f("fk_translations_set_by_officers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_translations")),
    )
    op.create_index("ix_translations_kind_key_language", TRANSLATIONS, ["kind", "key", "language"])


def downgrade() -> None:
    """Drop the table (and with it every translation entered)."""
    op.drop_index("ix_translations_kind_key_language", table_name=TRANSLATIONS)
    op.drop_table(TRANSLATIONS)
