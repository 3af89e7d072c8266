"""`treasury safe create --owner` takes an institution's owner key from its ceremony transcript."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custody.ceremony import CeremonyPlan, ShareFiles, run_ceremony
from treasury import migrate
from treasury.cli import app
from treasury.cli.safe import _owner
from treasury.db import DATABASE_URL_ENV, make_engine, session_factory


def test_an_owner_named_by_institution_comes_from_its_transcript(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--owner 'National Bank'` resolves to the transcript's address and fingerprint."""
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    rng = random.Random(3)  # noqa: S311 (deterministic test randomness)
    with session_factory(engine).begin() as session:
        transcript = run_ceremony(
            session,
            CeremonyPlan("National Bank", ("A", "B", "C"), 2),
            ShareFiles(tmp_path / "shares"),
            random_bytes=rng.randbytes,
            rng=rng,
        )
    engine.dispose()
    monkeypatch.setenv(DATABASE_URL_ENV, sqlite_url)
    owner = _owner("National Bank")
    assert (owner.institution, owner.address, owner.fingerprint) == (
        "National Bank",
        transcript.eth_address,
        transcript.fingerprint,
    )


def test_an_institution_without_a_transcript_is_a_one_line_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Naming an institution that held no ceremony fails with `error:` and no traceback."""
    migrate.upgrade(sqlite_url)
    monkeypatch.setenv(DATABASE_URL_ENV, sqlite_url)
    monkeypatch.setenv("TREASURY_RESERVE_RPC_URL", "http://127.0.0.1:9")
    result = CliRunner().invoke(
        app, ["safe", "create", "v", "--threshold", "1", "--owner", "Nobody"]
    )
    assert result.exit_code == 1
    assert "error:" in result.output
    assert "Nobody" in result.output
    assert "Traceback" not in result.output
