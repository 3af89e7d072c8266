"""The `treasury ceremony` and `treasury btc` commands, end to end on regtest.

A custody-level spend (built with `btc spend build`, no proposal) has no officers' statements, so
custody signs it only on the break-glass path, by every cosigner institution.
"""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from custody.devnet import BitcoinNode
from treasury.cli import app
from treasury.cli import btc as btc_cli
from treasury.cli import ceremony as ceremony_cli
from treasury.db import DATABASE_URL_ENV
from treasury.settings import BITCOIN_RPC_URL_ENV

log = logging.getLogger("tests.cli")


class Cli:
    """Runs `treasury ...` in-process against one database and one bitcoind."""

    def __init__(self, database_url: str, rpc_url: str) -> None:
        self.runner = CliRunner()
        self.env = {DATABASE_URL_ENV: database_url, BITCOIN_RPC_URL_ENV: rpc_url}

    def __call__(self, *args: str, stdin: str | None = None, code: int = 0) -> str:
        result = self.runner.invoke(app, list(args), input=stdin, env=self.env)
        log.info("$ treasury %s\n%s", " ".join(args), result.output)
        assert result.exit_code == code, result.output
        return result.output


@pytest.fixture
def cli(bitcoin_node: BitcoinNode, tmp_path: Path) -> Cli:
    rpc_url = (
        f"http://{bitcoin_node.rpc_user}:{bitcoin_node.rpc_password}@127.0.0.1:"
        f"{bitcoin_node.rpc_port}"
    )
    runner = Cli(f"sqlite:///{tmp_path / 'treasury.sqlite3'}", rpc_url)
    runner("db", "upgrade")
    return runner


def _ceremony(cli: Cli, folder: Path, institution: str, holders: list[str], *extra: str) -> str:
    args = ["ceremony", "run", "--institution", institution, "--threshold", "2"]
    for holder in holders:
        args += ["--holder", holder]
    return cli(
        *args,
        "--witness",
        "Auditor Ivanova",
        "--out-dir",
        str(folder),
        *extra,
        stdin="bank secret\nbank secret\n" if "--passphrase" in extra else None,
    )


def test_ceremony_vault_and_spend_through_the_cli(
    cli: Cli, bitcoin_node: BitcoinNode, tmp_path: Path
) -> None:
    """Three ceremonies, a 2-of-3 vault, funding, a spend signed from files and prompts, broadcast."""
    shares = tmp_path / "shares"
    out = _ceremony(cli, shares / "mof", "Ministry of Finance", ["Alice", "Bob", "Carol"])
    assert "fingerprint:" in out
    assert "share file:" in out
    _ceremony(cli, shares / "nb", "National Bank", ["Dan", "Erin", "Frank"], "--passphrase")
    _ceremony(cli, shares / "ac", "Accounts Chamber", ["Ivan", "Judy", "Mallory"])
    bob = next((shares / "mof").glob("*-share-1-bob.txt"))
    assert bob.stat().st_mode & 0o777 == 0o600
    assert (shares / "mof").stat().st_mode & 0o777 == 0o700
    ok = cli(
        "ceremony",
        "check-share",
        "--institution",
        "Ministry of Finance",
        "--holder",
        "Bob",
        "--share-file",
        str(bob),
    )
    assert "OK: checksum valid; member 1 of Ministry of Finance" in ok
    wrong = cli(
        "ceremony",
        "check-share",
        "--institution",
        "National Bank",
        "--share-file",
        str(bob),
        code=1,
    )
    assert wrong.startswith("error: The share's identifier is")
    assert wrong.count("\n") == 1
    assert "Carol" in cli("ceremony", "show", "--institution", "Ministry of Finance")

    created = cli(
        "btc",
        "vault",
        "create",
        "cli-reserve",
        "--threshold",
        "2",
        "--cosigner",
        "Ministry of Finance",
        "--cosigner",
        "National Bank",
        "--cosigner",
        "Accounts Chamber",
    )
    assert "2-of-3" in created
    address = cli("btc", "vault", "address", "cli-reserve").split()[0]
    bitcoin_node.rpc.wallet("miner").call("sendtoaddress", address, Decimal("2"))
    bitcoin_node.mine(1)
    assert "200000000 sats confirmed" in cli("btc", "vault", "balance", "cli-reserve")
    caravan = json.loads(cli("btc", "vault", "export", "cli-reserve", "--format", "caravan"))
    assert caravan["quorum"] == {"requiredSigners": 2, "totalSigners": 3}
    bsms = cli("btc", "vault", "export", "cli-reserve", "--format", "bsms").splitlines()
    assert bsms[0] == "BSMS 1.0"
    assert bsms[3] == address

    payee = bitcoin_node.rpc.wallet("miner").call("getnewaddress", "", "bech32")
    built = cli(
        "btc",
        "spend",
        "build",
        "cli-reserve",
        "--pay",
        f"{payee}:50000000",
        "--fee-rate",
        "3",
        "--max-fee-sats",
        "20000",
    )
    spend_id = re.search(r"^spend (\d+) \(built\)", built, re.M)
    assert spend_id is not None
    sid = spend_id.group(1)
    mof_files = sorted((shares / "mof").glob("*.txt"))
    emergency = ["--break-glass", "--reason", "CLI drill of the emergency path"]
    refused = cli(
        "btc", "spend", "sign", sid, "--institution", "Ministry of Finance",
        "--share-file", str(mof_files[0]), "--yes", code=2,
    )  # fmt: skip
    assert "custody signs only a transaction covered by the officers' approval" in refused
    cli(
        "btc",
        "spend",
        "sign",
        sid,
        "--institution",
        "Ministry of Finance",
        "--share-file",
        str(mof_files[0]),
        "--share-file",
        str(mof_files[2]),
        "--yes",
        *emergency,
    )
    nb_words = [
        " ".join(x for x in p.read_text().splitlines() if not x.startswith("#"))
        for p in sorted((shares / "nb").glob("*.txt"))
    ]
    signed = cli(
        "btc",
        "spend",
        "sign",
        sid,
        "--institution",
        "National Bank",
        "--yes",
        *emergency,
        stdin=f"{nb_words[1]}\n{nb_words[2]}\nbank secret\n",
    )
    assert "signed by: Ministry of Finance, National Bank" in signed
    assert nb_words[1] not in signed
    incomplete = cli("btc", "spend", "broadcast", sid, code=1)
    assert "missing: Accounts Chamber" in incomplete
    ac_files = sorted((shares / "ac").glob("*.txt"))
    ac_shares = [arg for path in ac_files[:2] for arg in ("--share-file", str(path))]
    cli("btc", "spend", "sign", sid, "--institution", "Accounts Chamber", *ac_shares, "--yes",
        *emergency)  # fmt: skip
    broadcast = cli("btc", "spend", "broadcast", sid)
    txid = broadcast.split()[-1]
    bitcoin_node.mine(1)
    tx = bitcoin_node.rpc.wallet("miner").call("gettransaction", txid)
    assert tx["confirmations"] == 1
    again = cli("btc", "spend", "broadcast", sid, code=1)
    assert again.startswith("error: Spend")
    assert "cannot be broadcast again" in again


def test_bad_arguments_give_one_line_errors(cli: Cli) -> None:
    """Unknown vaults, bad payments and missing share options print `error: ...`, no traceback."""
    missing = cli("btc", "vault", "balance", "nope", code=1)
    assert (
        missing
        == "error: No vault named 'nope' exists; create it with `treasury btc vault create`.\n"
    )
    bad_pay = cli(
        "btc",
        "spend",
        "build",
        "nope",
        "--pay",
        "bcrt1qxyz:abc",
        "--fee-rate",
        "2",
        "--max-fee-sats",
        "1000",
        code=1,
    )
    assert bad_pay.startswith("error: --pay 'bcrt1qxyz:abc' must be ADDRESS:SATS")
    neither = cli(
        "ceremony",
        "run",
        "--institution",
        "X",
        "--holder",
        "A",
        "--holder",
        "B",
        "--threshold",
        "2",
        code=1,
    )
    assert neither == "error: choose exactly one of --out-dir FOLDER or --print-shares.\n"


def _commands(group: Any, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        found.append((path, command))
        if hasattr(command, "commands"):
            found += _commands(command, path)
    return found


@pytest.mark.parametrize("group", [ceremony_cli.app, btc_cli.app], ids=["ceremony", "btc"])
def test_every_command_has_a_one_sentence_help(group: typer.Typer) -> None:
    """Each ceremony/btc command and group explains itself in exactly one sentence."""
    root = get_command(group)
    assert hasattr(root, "commands")
    commands = _commands(root, ())
    assert len(commands) >= 3
    for path, command in [((), root), *commands]:
        text = (command.help or "").strip()
        sentences = re.findall(r"[.!?](?:\s|$)", text)
        assert text.endswith("."), (path, text)
        assert len(sentences) == 1, (path, text)
        result = CliRunner().invoke(group, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
