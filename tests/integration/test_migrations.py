"""Alembic migrations run on both supported databases."""

from __future__ import annotations

from treasury import migrate


def test_alembic_upgrade_head_runs(db_url: str) -> None:
    """`upgrade head` brings an empty database to the newest revision, and running it again is a no-op."""
    assert migrate.current_revision(db_url) is None
    migrate.upgrade(db_url)
    head = migrate.current_revision(db_url)
    assert head is not None
    migrate.upgrade(db_url)
    assert migrate.current_revision(db_url) == head
