"""Signed approvals through the edges, on both databases: ``treasury spend statement`` and
``spend approve --key-file`` with a real encrypted officer key file, and the API's statement and
signed approve routes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from signed_approvals_support import StatementChain, found_roster
from token_files import token_file
from typer.testing import CliRunner
from workflow_support import DECREE, DESTINATION, SHARES, World, build_world

from custody.authority import create_key_file, load_public_key, sign_digest
from treasury.api import create_app
from treasury.authority.statements import signed_to_json
from treasury.authority.store import statements_for
from treasury.cli import app
from treasury.cli import spend as spend_cli
from treasury.cli.officers import OfficerContext, read_token
from treasury.officers import authenticate
from treasury.proposals import ProposalState, ProposalView
from treasury.settings import Settings

BTC = 100_000_000
PASSPHRASE = "correct horse battery staple"
TEST_SCRYPT_N = 2**10
"""A cheap scrypt cost: the tests check the format and the signing path, not the stretching."""


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    built = build_world(db_url)
    built.chain = StatementChain(SHARES, required_signatures=2)
    yield built
    built.engine.dispose()


def _prepared(world: World) -> ProposalView:
    wf = world.workflow()
    view = wf.propose(
        world.officers["proposer"],
        asset="BTC",
        amount=BTC // 4,
        destination=DESTINATION,
        purpose="Pay the contractor",
        legal_basis=DECREE,
    )
    return wf.prepare(world.officers["proposer"], view.id, world.chain)


def _use_world(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the spend commands on the world's database, workflow and clock (the world's stepping
    clock is days ahead of the real one, and its chain is in memory)."""

    @contextlib.contextmanager
    def cli_context(token_file: str | None) -> Iterator[OfficerContext]:
        token = read_token(token_file)  # the CLI's own reading of --token-file
        with world.sessions() as session:
            actor = authenticate(session, token, now=world.clock())
        yield OfficerContext(Settings(), world.sessions, world.workflow(), actor)

    monkeypatch.setattr(spend_cli, "cli_context", cli_context)


def test_cli_shows_signs_and_submits_the_statement_with_a_key_file(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`spend statement` prints the statement in coin units with its canonical JSON and digest;
    `spend approve --key-file` shows it, signs it with the encrypted key file and the server stores
    it; without the key file, or with the wrong passphrase, nothing is approved."""
    key_file = tmp_path / "cb-approver.key"
    create_key_file(key_file, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    found_roster(world, public_keys={"cb_approver": load_public_key(key_file)})
    view = _prepared(world)
    _use_world(world, monkeypatch)
    runner = CliRunner()
    token = world.tokens["cb_approver"]
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")

    result = runner.invoke(app, ["spend", "statement", str(view.id), *token_file(token)])
    assert result.exit_code == 0, result.stderr
    assert f"0.25 BTC (25000000 sat) to {DESTINATION}" in result.stdout
    assert '"format":"national-reserve/approval/1"' in result.stdout
    assert "digest to sign: " in result.stdout

    unsigned = runner.invoke(
        app, ["spend", "approve", str(view.id), "--tx-hash", str(view.tx_hash), *token_file(token)]
    )
    assert unsigned.exit_code == 1
    assert unsigned.stderr.startswith("error: The roster chain is founded")

    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase")
    args = ["spend", "approve", str(view.id), "--tx-hash", str(view.tx_hash)]
    bad = runner.invoke(
        app,
        [*args, "--key-file", str(key_file), "--passphrase-file", str(wrong), *token_file(token)],
    )
    assert bad.exit_code == 1
    assert "passphrase does not open the key file" in bad.stderr
    assert "Traceback" not in bad.stderr

    result = runner.invoke(
        app,
        [
            *args,
            "--key-file",
            str(key_file),
            "--passphrase-file",
            str(passphrase_file),
            *token_file(token),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert f"APPROVE proposal {view.id}: 0.25 BTC (25000000 sat)" in result.stdout
    assert f"signed with key {load_public_key(key_file).key_id}" in result.stdout
    assert f"approval by officer {world.officers['cb_approver'].id} (CB)" in result.stdout
    with world.sessions() as session:
        stored = statements_for(session, view.id)
    assert [s.statement.officer_id for s in stored] == [str(world.officers["cb_approver"].id)]
    assert PASSPHRASE not in result.stdout + result.stderr


def test_cli_refuses_to_sign_a_statement_for_another_transaction(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An officer who reviewed another hash than the prepared one signs nothing."""
    key_file = tmp_path / "cb-approver.key"
    create_key_file(key_file, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    found_roster(world, public_keys={"cb_approver": load_public_key(key_file)})
    view = _prepared(world)
    _use_world(world, monkeypatch)
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE)
    result = CliRunner().invoke(
        app,
        [
            "spend",
            "approve",
            str(view.id),
            "--tx-hash",
            "cd" * 32,
            "--key-file",
            str(key_file),
            "--passphrase-file",
            str(passphrase_file),
            *token_file(world.tokens["cb_approver"]),
        ],
    )
    assert result.exit_code == 1
    assert "Nothing was signed" in result.stderr
    assert "signed with key" not in result.stdout


def test_api_serves_the_statement_and_takes_a_signed_approval(world: World, tmp_path: Path) -> None:
    """GET /statement gives the statement and digest; POST /approve with the signature over that
    digest is stored; one whose statement was altered after signing is refused with 409."""
    key_file = tmp_path / "parl.key"
    create_key_file(key_file, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    roster = found_roster(world, public_keys={"parl_approver": load_public_key(key_file)})
    view = _prepared(world)
    client = TestClient(
        create_app(
            world.workflow(), world.sessions, spenders={"BTC": world.chain}, clock=world.clock
        )
    )

    def auth(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {world.tokens[name]}"}

    url = f"/proposals/{view.id}"
    unsigned = client.post(
        f"{url}/approve", json={"tx_hash": view.tx_hash}, headers=auth("cb_approver")
    )
    assert unsigned.status_code == 422
    assert "signed statement" in unsigned.json()["detail"]

    served = client.get(f"{url}/statement", headers=auth("parl_approver"))
    assert served.status_code == 200
    body = served.json()
    assert body["statement"]["amount"] == str(BTC // 4)
    assert body["summary"].startswith(f"APPROVE proposal {view.id}: 0.25 BTC")
    signature = sign_digest(key_file, PASSPHRASE, bytes.fromhex(body["digest"]))
    signed = {
        "statement": body["statement"],
        "key_id": load_public_key(key_file).key_id,
        "signature": {"kind": "secp256k1", "signature": signature.hex()},
    }
    altered = {**signed, "statement": {**body["statement"], "destination": "bcrt1qelsewhere"}}
    refused = client.post(
        f"{url}/approve",
        json={"tx_hash": view.tx_hash, "signed": altered},
        headers=auth("parl_approver"),
    )
    assert refused.status_code == 409
    assert "destination" in refused.json()["detail"]
    malformed = client.post(
        f"{url}/approve",
        json={"tx_hash": view.tx_hash, "signed": {"statement": {}}},
        headers=auth("parl_approver"),
    )
    assert malformed.status_code == 422
    accepted = client.post(
        f"{url}/approve",
        json={"tx_hash": view.tx_hash, "signed": signed},
        headers=auth("parl_approver"),
    )
    assert accepted.status_code == 200, accepted.json()
    cb_signed = roster.sign(
        "cb_approver", world.workflow().statement(world.officers["cb_approver"], view.id)
    )
    done = client.post(
        f"{url}/approve",
        json={"tx_hash": view.tx_hash, "signed": signed_to_json(cb_signed)},
        headers=auth("cb_approver"),
    )
    assert done.status_code == 200, done.json()
    assert done.json()["state"] == ProposalState.APPROVED.value
    with world.sessions() as session:
        assert len(statements_for(session, view.id)) == 2
