"""`treasury spend sign` shows the approved transaction decoded from its PSBT, in BTC and sat, with
the approvers' names and institutions, and asks before any share is read; declining signs nothing,
and a transaction that does not pay what the proposal says is refused before the question."""

from __future__ import annotations

import logging
import re
import uuid
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text
from test_spend_cli import (
    DECREE,
    INSTITUTIONS,
    SPEND_SATS,
    Cli,
    _allow,
    _approve,
    _ceremony,
    _cli,
    _govern,
    _roster,
    _wait_until,
)
from token_files import token_file

from custody.ceremony import read_share_file
from custody.devnet import BitcoinNode, EvmNode
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV, make_engine

log = logging.getLogger("tests.spend_sign_review")


def _output(cli: Cli, *args: str, stdin: str | None = None, code: int = 0) -> str:
    """Everything a run printed (summary, prompts, error line): ``Cli`` keeps only stderr on error."""
    result = cli.runner.invoke(app, list(args), input=stdin, env=cli.env)
    log.info("$ treasury %s\n%s", " ".join(args), result.output)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def test_spend_sign_shows_the_decoded_transaction_and_approvers_before_any_share(
    db_url: str, bitcoin_node: BitcoinNode, evm_node: EvmNode, tmp_path: Path
) -> None:
    """Summary first (proposal, decoded payment, change, fee, hash, approvers), then the question,
    then the share prompts; 'no' leaves the proposal unsigned; a re-pointed proposal is refused."""
    cli = _cli(bitcoin_node, evm_node, tmp_path)
    cli.env[DATABASE_URL_ENV] = db_url
    cli("db", "upgrade")
    shares = {
        code: _ceremony(cli, tmp_path / code.lower(), name) for code, name in INSTITUTIONS.items()
    }
    vault = f"review-{uuid.uuid4().hex[:10]}"
    cosigners = [arg for name in INSTITUTIONS.values() for arg in ("--cosigner", name)]
    cli("btc", "vault", "create", vault, "--threshold", "2", *cosigners)
    miner = bitcoin_node.rpc.wallet("miner")
    miner.call("sendtoaddress", cli("btc", "vault", "address", vault).split()[0], Decimal(1))
    bitcoin_node.mine(1)
    officers = _govern(cli, tmp_path)
    destination = str(miner.call("getnewaddress", "", "bech32"))
    roster = _roster(cli, tmp_path, shares, {"BTC": destination})
    active_from = _allow(cli, officers, "BTC", destination)
    assert "succeeded" in cli("reconcile", "now")
    _wait_until(active_from)

    proposed = cli(
        "spend", "propose", "--asset", "BTC", "--amount", str(SPEND_SATS), "--destination",
        destination, "--purpose", "Reserve rebalancing", "--legal-basis", DECREE,
        *token_file(officers.proposer),
    )  # fmt: skip
    pid = proposed.split(":")[0].split()[1]
    prepared = cli("spend", "prepare", pid, *token_file(officers.proposer))
    tx_hash = prepared.split("hash to approve: ")[1].split()[0]
    for code in ("NBKR", "ACH"):
        _approve(cli, roster, officers, pid, tx_hash, code)

    log.info("ACH declines: everything is shown, nothing is signed")
    declined = _output(
        cli, "spend", "sign", pid, *token_file(officers.approvers["ACH"]), stdin="n\n", code=1
    )
    assert f"Proposal {pid} (as recorded): 0.1 BTC (10000000 sat) to {destination}" in declined
    assert f"pay 0.1 BTC (10000000 sat) to {destination}" in declined
    assert "change back to the vault: 0.8" in declined
    assert re.search(r"fee 0\.0000\d+ BTC \(\d+ sat\)", declined)
    assert f"transaction hash (unsigned txid): {tx_hash}" in declined
    assert "approved by NBKR approver (NBKR, National Bank)" in declined
    assert "approved by ACH approver (ACH, Accounts Chamber)" in declined
    assert "error: Not signed" in declined
    status = cli("spend", "status", pid, *token_file(officers.proposer))
    assert status.startswith(f"proposal {pid}: approved")
    assert "signed by" not in status

    log.info("ACH confirms: the summary and the question precede the first share prompt")
    words = [read_share_file(path) for path in shares["ACH"]]
    signed = _output(
        cli, "spend", "sign", pid, *token_file(officers.approvers["ACH"]),
        stdin=f"y\n{words[0]}\n{words[2]}\n",
    )  # fmt: skip
    first_prompt = signed.index("Share words of holder 1 of 2")
    assert signed.index(f"pay 0.1 BTC (10000000 sat) to {destination}") < first_prompt
    assert signed.index("Sign this transaction for ACH?") < first_prompt
    assert words[0] not in signed
    assert "signed by ACH" in signed

    log.info("the proposal is re-pointed in the database: the PSBT no longer matches, refused")
    other = str(miner.call("getnewaddress", "", "bech32"))
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE spend_proposals SET destination = :d WHERE id = :i"),
                {"d": other, "i": int(pid)},
            )
    finally:
        engine.dispose()
    files = [arg for path in shares["NBKR"] for arg in ("--share-file", str(path))]
    refused = cli(
        "spend", "sign", pid, *files, "--yes", *token_file(officers.approvers["NBKR"]), code=1
    )
    assert f"pays 0.1 BTC (10000000 sat) to {destination}" in refused
    assert f"is for {SPEND_SATS} BTC base units to {other}" in refused
    assert "refusing before any share is read" in refused
    assert "signed by ACH\n" in cli("spend", "status", pid, *token_file(officers.proposer))
