"""The officers, policy and spend CLI on both databases: bootstrap, tokens, roles, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from token_files import token_file
from typer.testing import CliRunner
from workflow_support import POLICY

from treasury import migrate
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV
from treasury.settings import API_TOKEN_ENV


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
        "officers", "add", "Pat", "--institution", "MOF", "--role", "proposer", *token_file(admin)
    )
    assert code == 0
    proposer_id = out.split()[1]
    code, proposer, _ = run("officers", "issue-token", proposer_id, *token_file(admin))
    assert code == 0
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(POLICY))
    code, out, _ = run("policy", "set", str(policy_file), *token_file(proposer.strip()))
    assert code == 1
    code, out, _ = run("policy", "set", str(policy_file), *token_file(admin))
    assert code == 0
    assert out.startswith("policy version 1 stored")
    code, out, _ = run(
        "policy", "add-legal-basis", "DECREE-9", "--title", "Decree", "--expires", "2099-01-01T00:00:00+00:00",
        "--ceiling", "BTC=500000000", *token_file(admin),
    )  # fmt: skip
    assert code == 0
    code, _, err = run(
        "spend", "propose", "--asset", "BTC", "--amount", "1000", "--destination", "bcrt1qnowhere",
        "--purpose", "Test", "--legal-basis", "DECREE-9", *token_file(proposer.strip()),
    )  # fmt: skip
    assert code == 1
    assert err.startswith("error: Policy version 1 refused:")
    assert "not an active allowlisted address" in err
    assert "Traceback" not in err
    code, out, _ = run("spend", "list", *token_file(proposer.strip()))
    assert (code, out) == (0, "")
    code, _, err = run("spend", "list", *token_file("trs_bad_token"))
    assert code == 1
    assert (
        err == "error: The API token is not valid: it is malformed, unknown, expired or revoked.\n"
    )


def test_the_cli_takes_a_token_from_a_file_or_the_environment_never_from_its_arguments(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--token is no option (arguments show in ps); the variable and --token-file both work."""
    migrate.upgrade(db_url)
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    runner = CliRunner()
    booted = runner.invoke(
        app,
        ["officers", "bootstrap", "--institution", "MOF", "--institution-name", "Ministry",
         "--admin-name", "Ada"],
    )  # fmt: skip
    assert booted.exit_code == 0, booted.output
    admin = booted.stdout.strip().rsplit(" ", 1)[1]

    on_argv = runner.invoke(app, ["officers", "list", "--token", admin])
    assert on_argv.exit_code == 2
    assert "No such option: --token" in on_argv.output
    assert admin not in on_argv.output

    missing = runner.invoke(app, ["officers", "list"])
    assert missing.exit_code == 1
    assert "an API token is required: set TREASURY_API_TOKEN, or pass --token-file" in (
        missing.stderr
    )
    absent = runner.invoke(app, ["officers", "list", "--token-file", str(tmp_path / "none")])
    assert absent.exit_code == 1
    assert "cannot read the token file" in absent.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert "is empty" in runner.invoke(app, ["officers", "list", "--token-file", str(empty)]).stderr

    from_file = runner.invoke(app, ["officers", "list", *token_file(admin)])
    assert from_file.exit_code == 0, from_file.output
    assert "Ada" in from_file.stdout
    monkeypatch.setenv(API_TOKEN_ENV, admin)
    from_env = runner.invoke(app, ["officers", "list"])
    assert from_env.exit_code == 0, from_env.output
    assert from_env.stdout == from_file.stdout
