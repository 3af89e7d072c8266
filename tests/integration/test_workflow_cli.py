"""The officers, policy and spend CLI on both databases: bootstrap, tokens, roles, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from workflow_support import POLICY

from treasury import migrate
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV


def test_cli_sets_up_officers_and_policy_and_refuses_clearly(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bootstrap, add an officer, set a policy, then a refused proposal and a wrong role print one-line errors."""
    migrate.upgrade(db_url)
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = run(
        "officers",
        "bootstrap",
        "--institution",
        "MOF",
        "--institution-name",
        "Ministry",
        "--admin-name",
        "Ada",
    )
    assert code == 0
    admin = out.strip().rsplit(" ", 1)[1]
    code, _, err = run(
        "officers",
        "bootstrap",
        "--institution",
        "CB",
        "--institution-name",
        "Bank",
        "--admin-name",
        "Bo",
    )
    assert code == 1
    assert err.startswith("error: officers already exist")
    code, out, _ = run(
        "officers", "add", "Pat", "--institution", "MOF", "--role", "proposer", "--token", admin
    )
    assert code == 0
    proposer_id = out.split()[1]
    code, proposer, _ = run("officers", "issue-token", proposer_id, "--token", admin)
    assert code == 0
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(POLICY))
    code, out, _ = run("policy", "set", str(policy_file), "--token", proposer.strip())
    assert code == 1
    code, out, _ = run("policy", "set", str(policy_file), "--token", admin)
    assert code == 0
    assert out.startswith("policy version 1 stored")
    code, out, _ = run(
        "policy", "add-legal-basis", "DECREE-9", "--title", "Decree", "--expires", "2099-01-01T00:00:00+00:00",
        "--ceiling", "BTC=500000000", "--token", admin,
    )  # fmt: skip
    assert code == 0
    code, _, err = run(
        "spend", "propose", "--asset", "BTC", "--amount", "1000", "--destination", "bcrt1qnowhere",
        "--purpose", "Test", "--legal-basis", "DECREE-9", "--token", proposer.strip(),
    )  # fmt: skip
    assert code == 1
    assert err.startswith("error: Policy version 1 refused:")
    assert "not an active allowlisted address" in err
    assert "Traceback" not in err
    code, out, _ = run("spend", "list", "--token", proposer.strip())
    assert (code, out) == (0, "")
    code, _, err = run("spend", "list", "--token", "trs_bad_token")
    assert code == 1
    assert err == "error: The API token is not valid: it is malformed, unknown or revoked.\n"
