"""Alembic migrations run on both supported databases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from treasury import migrate


def test_alembic_upgrade_head_runs(db_url: str) -> None:
    """`upgrade head` brings an empty database to the newest revision, and running it again is a no-op."""
    assert migrate.current_revision(db_url) is None
    migrate.upgrade(db_url)
    head = migrate.current_revision(db_url)
    assert head is not None
    migrate.upgrade(db_url)
    assert migrate.current_revision(db_url) == head


def test_alembic_command_line_upgrades_head(db_url: str) -> None:
    """The plain `alembic upgrade head` a DBA would type works from the repository's alembic.ini."""
    repo = Path(__file__).resolve().parents[2]
    alembic = Path(sys.executable).parent / "alembic"
    done = subprocess.run(
        [str(alembic), "-x", f"url={db_url}", "upgrade", "head"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert migrate.current_revision(db_url) is not None
