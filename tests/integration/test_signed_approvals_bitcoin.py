"""Signed approvals end to end on bitcoind, on both databases: a roster founded with the real
ceremonies' keys, approvals signed with officers' key files through `treasury spend approve`, and
`treasury spend sign` handing the roster and the statements to custody's signer, which verifies
them itself before it signs and names the approvers whose signatures it verified."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from test_spend_cli import (
    DECREE,
    INSTITUTIONS,
    SPEND_SATS,
    _allow,
    _approve,
    _ceremony,
    _cli,
    _govern,
    _roster,
    _wait_until,
)
from token_files import token_file

from custody.devnet import BitcoinNode, EvmNode
from treasury.db import DATABASE_URL_ENV, make_engine

log = logging.getLogger("tests.signed_approvals_bitcoin")


def test_the_bitcoin_signer_verifies_the_officers_signed_approvals(
    db_url: str,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Approvals signed with key files are verified by the signer (its log names the approvers),
    the spend is signed and broadcast; a statement deleted behind the server's back (triggers
    dropped) makes the next signer refuse before any signature."""
    cli = _cli(bitcoin_node, evm_node, tmp_path)
    cli.env[DATABASE_URL_ENV] = db_url
    cli("db", "upgrade")
    shares = {
        code: _ceremony(cli, tmp_path / code.lower(), name) for code, name in INSTITUTIONS.items()
    }
    vault = f"signed-{uuid.uuid4().hex[:10]}"
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
    refused = cli(
        "spend", "approve", pid, "--tx-hash", tx_hash, *token_file(officers.approvers["NBKR"]),
        code=1,
    )  # fmt: skip
    assert "must carry your signed statement" in refused
    for code in ("NBKR", "ACH"):
        approved = _approve(cli, roster, officers, pid, tx_hash, code)
        assert f"0.1 BTC (10000000 sat) to {destination}" in approved
        assert "from vault " + vault + " on bitcoin:regtest" in approved

    log.info("NBKR signs: the signer verifies both statements and names the approvers")
    files = [arg for path in shares["NBKR"][:2] for arg in ("--share-file", str(path))]
    with caplog.at_level(logging.INFO, logger="treasury.spenders"):
        cli("spend", "sign", pid, *files, "--yes", *token_file(officers.approvers["NBKR"]))
    verified = [r.getMessage() for r in caplog.records if r.name == "treasury.spenders"]
    assert "signatures verified: NBKR approver (NBKR), ACH approver (ACH)" in verified

    log.info("a database writer deletes ACH's statement: ACH's signer refuses, signs nothing")
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("ALTER TABLE approval_statements DISABLE TRIGGER USER"))
            else:
                for (name,) in connection.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                        "AND tbl_name = 'approval_statements'"
                    )
                ):
                    connection.execute(text(f'DROP TRIGGER "{name}"'))
            connection.execute(
                text(
                    "DELETE FROM approval_statements WHERE id = "
                    "(SELECT MAX(id) FROM approval_statements)"
                )
            )
    finally:
        engine.dispose()
    files = [arg for path in shares["ACH"][:2] for arg in ("--share-file", str(path))]
    refused = cli(
        "spend", "sign", pid, *files, "--yes", *token_file(officers.approvers["ACH"]), code=1
    )
    assert "Approvals come from 1 institution(s) (['NBKR'])" in refused
    status = cli("spend", "status", pid, *token_file(officers.proposer))
    assert "signed by NBKR" in status
    assert "ACH" not in status.split("signed by", 1)[1].splitlines()[0]
