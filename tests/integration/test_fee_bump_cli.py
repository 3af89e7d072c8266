"""`treasury spend bump` on regtest: a stuck spend replaced by fee through the officers' CLI steps
(bump, approve with key files, sign from share files, broadcast, refresh), booked once."""

from __future__ import annotations

import logging
import re
import uuid
from decimal import Decimal
from pathlib import Path

from test_spend_cli import (
    DECREE,
    INSTITUTIONS,
    PASSPHRASE,
    SATS_PER_BTC,
    SPEND_SATS,
    _allow,
    _approve,
    _ceremony,
    _cli,
    _govern,
    _roster,
    _single_error,
    _wait_until,
)
from token_files import token_file

from custody.devnet import BitcoinNode, EvmNode
from treasury.ledger import format_amount

log = logging.getLogger("tests.fee_bump_cli")

CEILING_SATS = 20_000


def test_a_stuck_spend_is_bumped_through_the_cli_and_booked_once(
    bitcoin_node: BitcoinNode, evm_node: EvmNode, tmp_path: Path
) -> None:
    """The proposer bumps a broadcast spend; the approvers approve the replacement (the ceiling
    in their statements), two institutions sign it, it replaces the stuck one and confirms; the
    stuck proposal fails, and the ledger pays the amount and the final fee once each."""
    cli = _cli(bitcoin_node, evm_node, tmp_path)
    shares = {
        "MOF": _ceremony(cli, tmp_path / "mof", INSTITUTIONS["MOF"]),
        "NBKR": _ceremony(cli, tmp_path / "nbkr", INSTITUTIONS["NBKR"], "--passphrase"),
        "ACH": _ceremony(cli, tmp_path / "ach", INSTITUTIONS["ACH"]),
    }
    vault = f"bump-{uuid.uuid4().hex[:10]}"
    cosigners = [arg for name in INSTITUTIONS.values() for arg in ("--cosigner", name)]
    cli("btc", "vault", "create", vault, "--threshold", "2", *cosigners)
    miner = bitcoin_node.rpc.wallet("miner")
    miner.call("sendtoaddress", cli("btc", "vault", "address", vault).split()[0], Decimal(1))
    bitcoin_node.mine(1)
    officers = _govern(cli, tmp_path)
    proposer = officers.proposer
    destination = str(miner.call("getnewaddress", "", "bech32"))
    roster = _roster(cli, tmp_path, shares, {"BTC": destination}, {"NBKR": PASSPHRASE})
    active_from = _allow(cli, officers, "BTC", destination)
    assert "succeeded" in cli("reconcile", "now")
    _wait_until(active_from)

    def approve_and_sign(pid: str, tx_hash: str) -> None:
        for code in ("NBKR", "ACH"):
            _approve(cli, roster, officers, pid, tx_hash, code)
        nbkr = [arg for path in shares["NBKR"][:2] for arg in ("--share-file", str(path))]
        cli("spend", "sign", pid, *nbkr, "--yes", *token_file(officers.approvers["NBKR"]),
            stdin=f"{PASSPHRASE}\n")  # fmt: skip
        ach = [arg for path in shares["ACH"][1:] for arg in ("--share-file", str(path))]
        cli("spend", "sign", pid, *ach, "--yes", *token_file(officers.approvers["ACH"]))

    log.info("a spend at 2 sat/vB, broadcast and left in the mempool")
    pid = cli(
        "spend", "propose", "--asset", "BTC", "--amount", str(SPEND_SATS), "--destination",
        destination, "--purpose", "Payment", "--legal-basis", DECREE, *token_file(proposer),
    ).split(":")[0].split()[1]  # fmt: skip
    prepared = cli("spend", "prepare", pid, *token_file(proposer))
    approve_and_sign(pid, prepared.split("hash to approve: ")[1].split()[0])
    stuck = cli("spend", "broadcast", pid, *token_file(proposer)).split("txid ")[1].split()[0]

    log.info("the bump: a proposal of its own, approved under the fee ceiling and signed")
    bumped = cli(
        "spend", "bump", pid, "--fee-rate", "12", "--max-fee-sats", str(CEILING_SATS),
        *token_file(proposer),
    )  # fmt: skip
    found = re.search(r"bump proposal (\d+) replaces proposal \d+'s transaction", bumped)
    assert found is not None, bumped
    bid = found.group(1)
    assert f"replaces_txid: {stuck}" in bumped
    assert f"max_fee_sats: {CEILING_SATS}" in bumped
    fee = int(re.findall(r"fee_sats: (\d+)", bumped)[0])
    assert fee <= CEILING_SATS
    statement = cli("spend", "statement", bid, *token_file(officers.approvers["NBKR"]))
    assert "fee at most" in statement
    approve_and_sign(bid, bumped.split("hash to approve: ")[1].split()[0])
    err = _single_error(
        cli("spend", "bump", pid, "--fee-rate", "20", "--max-fee-sats", "30000",
            *token_file(proposer), code=1)
    )  # fmt: skip
    assert "already has bump proposal" in err
    cli("spend", "broadcast", bid, *token_file(proposer))
    bitcoin_node.mine(1)
    assert cli("spend", "refresh", bid, *token_file(proposer)).startswith(
        f"proposal {bid}: confirmed"
    )
    assert cli("spend", "refresh", pid, *token_file(proposer)).startswith(f"proposal {pid}: failed")

    balances = cli("ledger", "balances", "--asset", "BTC")
    posted = dict(re.findall(r"^(\S+)\s+posted\s+(\S+) BTC", balances, re.MULTILINE))
    assert posted["reserve:approved-outflows:BTC"] == format_amount(SPEND_SATS, 8)
    assert posted["fees:BTC"] == format_amount(fee, 8)
    assert posted[f"vault:btc:{vault}:BTC"] == format_amount(SATS_PER_BTC - SPEND_SATS - fee, 8)
    assert "NOT BALANCED" not in balances
    cli("reconcile", "now")
    assert "MISMATCH" not in cli("reconcile", "status")
