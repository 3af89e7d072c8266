"""A token spend end to end on anvil, through the CLI, on both databases.

A KGST-like ERC-20 held by the Safe is proposed (named by its symbol, resolved to its asset code
``ERC20:<contract>``), judged against the policy's limits for that code, prepared as the Safe's
``transfer(payee, amount)`` call, approved by two institutions' signed statements naming the
token, the payee and the amount, signed from share files, relayed, confirmed and booked; the
token's balances on chain (``balanceOf``) and in the ledger then agree, and the reconciler finds
no unexplained outflow. A token the policy sets no limits for is refused with that reason.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from spend_roster_support import found_spend_roster
from test_spend_cli import (
    DECREE,
    INSTITUTIONS,
    POLICY,
    WEI_PER_ETH,
    Cli,
    Officers,
    _allowlist,
    _approve,
    _ceremony,
    _govern,
    _officer_id,
    _safe_owner,
    _wait_until,
)
from token_files import token_file
from typer.testing import CliRunner

from custody.devnet import BitcoinNode, EvmNode
from custody.devnet.binaries import NODES_DIR_ENV
from custody.ethereum import EthChain
from custody.ethereum.dev_token import deploy_dev_token, token_balance
from custody.ethereum.erc20 import transfer_calldata
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV, make_engine, session_factory
from treasury.ledger import format_amount
from treasury.reconcile import track_token
from treasury.settings import (
    BITCOIN_RPC_URL_ENV,
    BTC_VAULT_ENV,
    RESERVE_RPC_URL_ENV,
    SAFE_VAULT_ENV,
)

log = logging.getLogger("tests.token_spend")

KGST_DECIMALS = 18
KGST = 10**KGST_DECIMALS
"""One KGST in base units."""
SAFE_HOLDS = 5_000 * KGST
SPEND = 1_250 * KGST + 7
API_SPEND = 500 * KGST


def _cli(bitcoin_node: BitcoinNode, evm_node: EvmNode, db_url: str, tmp_path: Path) -> Cli:
    """A CLI on the test's fresh migrated database (SQLite or PostgreSQL), on the session's nodes."""
    no_devnet = tmp_path / "no-devnet"
    no_devnet.mkdir()
    cli = Cli(
        {
            DATABASE_URL_ENV: db_url,
            BITCOIN_RPC_URL_ENV: (
                f"http://{bitcoin_node.rpc_user}:{bitcoin_node.rpc_password}@127.0.0.1:"
                f"{bitcoin_node.rpc_port}"
            ),
            RESERVE_RPC_URL_ENV: evm_node.rpc_url,
            NODES_DIR_ENV: str(no_devnet),
            BTC_VAULT_ENV: None,
            SAFE_VAULT_ENV: None,
        }
    )
    cli("db", "upgrade")
    return cli


def _govern_token(cli: Cli, tmp_path: Path, token: str) -> Officers:
    """``test_spend_cli``'s governance, with limits for the token's code (and none for any other
    token), and the decree's ceiling in the token."""
    assets = {
        **POLICY["assets"],
        token: {"per_tx_limit": 2_000 * KGST, "daily_limit": 3_000 * KGST,
                "veto_threshold": 2_000 * KGST},
    }  # fmt: skip
    return _govern(
        cli,
        tmp_path,
        {**POLICY, "assets": assets},
        (f"ETH={WEI_PER_ETH}", f"{token}={2_000 * KGST}"),
    )


def _track(db_url: str, chain_id: int, token: str, symbol: str) -> None:
    engine = make_engine(db_url)
    try:
        with session_factory(engine).begin() as session:
            track_token(session, chain_id, token, symbol, KGST_DECIMALS)
    finally:
        engine.dispose()


def _posted(cli: Cli, asset: str, symbol: str) -> dict[str, str]:
    """Account -> posted balance of ``asset`` as `treasury ledger balances` prints it."""
    balances = cli("ledger", "balances", "--asset", asset)
    return dict(re.findall(rf"^(\S+)\s+posted\s+(\S+) {re.escape(symbol)}", balances, re.MULTILINE))


def test_a_token_spend_is_proposed_approved_signed_relayed_and_booked_through_cli_and_api(
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KGST leaves the Safe as transfer(payee, amount), once through the CLI and once proposed
    and prepared through the API; balanceOf of Safe and payee and the ledger's holdings and
    approved outflows agree after each, and reconciliation still matches with no alarm."""
    cli = _cli(bitcoin_node, evm_node, db_url, tmp_path)
    shares = {
        "MOF": _ceremony(cli, tmp_path / "mof", INSTITUTIONS["MOF"]),
        "NBKR": _ceremony(cli, tmp_path / "nbkr", INSTITUTIONS["NBKR"]),
        "ACH": _ceremony(cli, tmp_path / "ach", INSTITUTIONS["ACH"]),
    }
    cli("safe", "deploy")
    owners = [arg for name in INSTITUTIONS.values() for arg in ("--owner", _safe_owner(cli, name))]
    name = f"safe-{uuid.uuid4().hex[:10]}"
    created = cli("safe", "create", name, "--threshold", "2", *owners)
    safe = re.findall(r"Safe (0x[0-9a-fA-F]{40})", created)[0]
    chain = EthChain(evm_node.rpc)
    relayer, payee = chain.accounts()[0], chain.accounts()[8]
    token = deploy_dev_token(chain, relayer, 10 * SAFE_HOLDS)
    unpoliced = deploy_dev_token(chain, relayer, SAFE_HOLDS, symbol="NOPOL")
    for contract in (token, unpoliced):
        chain.transact(relayer, contract, transfer_calldata(safe, SAFE_HOLDS), action="fund")
    code = f"ERC20:{token}"
    _track(db_url, chain.chain_id, token, "KGST")
    _track(db_url, chain.chain_id, unpoliced, "NOPOL")
    officers = _govern_token(cli, tmp_path, code)
    roster = found_spend_roster(
        db_url,
        tmp_path,
        admins={"MOF": "Admin", "NBKR": "NBKR admin", "ACH": "ACH admin"},
        approvers=[f"{c} approver" for c in ("NBKR", "ACH")],
        shares=shares,
        destinations={code: payee},
        decree=DECREE,
    )
    requester = _officer_id(cli, officers.admin, "Pat Proposer")
    approvers = [_officer_id(cli, officers.admin, f"{c} approver") for c in ("NBKR", "ACH")]
    active_from = _allowlist(db_url, code, payee, requester, approvers)
    assert "succeeded" in cli("reconcile", "now")
    _wait_until(active_from)

    log.info("a token the policy sets no limits for is refused, with that reason")
    refused = cli(
        "spend", "propose", "--asset", "NOPOL", "--amount", "1", "--destination", payee,
        "--purpose", "Unpoliced", "--legal-basis", DECREE, *token_file(officers.proposer), code=1,
    )  # fmt: skip
    assert f"sets no limits for ERC20:{unpoliced}" in refused

    log.info("KGST by its symbol resolves to its code; over the per-spend limit is refused")
    over = cli(
        "spend", "propose", "--asset", "KGST", "--amount", str(2_000 * KGST + 1), "--destination",
        payee, "--purpose", "Too much", "--legal-basis", DECREE, *token_file(officers.proposer),
        code=1,
    )  # fmt: skip
    assert f"{2_000 * KGST + 1} {code} exceeds the per-transaction limit of {2_000 * KGST}" in over
    proposed = cli(
        "spend", "propose", "--asset", "KGST", "--amount", str(SPEND), "--destination",
        payee, "--purpose", "Reserve rebalancing", "--legal-basis", DECREE,
        *token_file(officers.proposer),
    )  # fmt: skip
    assert f"{SPEND} {code} base units" in proposed
    pid = proposed.split(":")[0].split()[1]
    prepared = cli("spend", "prepare", pid, *token_file(officers.proposer))
    assert f"asset: {code}" in prepared
    assert f"send {SPEND} base units of token {token} to {payee}" in prepared
    safe_tx_hash = prepared.split("hash to approve: ")[1].split()[0]
    for institution in ("NBKR", "ACH"):
        _approve(cli, roster, officers, pid, safe_tx_hash, institution)
    for institution, files in (("NBKR", shares["NBKR"][1:]), ("ACH", shares["ACH"][:2])):
        paths = [arg for path in files for arg in ("--share-file", str(path))]
        cli("spend", "sign", pid, *paths, "--yes", *token_file(officers.approvers[institution]))
    ether_before = chain.balance(safe)
    sent = cli("spend", "broadcast", pid, *token_file(officers.proposer))
    assert sent.startswith(f"proposal {pid}: broadcast")
    assert token_balance(chain, token, payee) == SPEND
    assert token_balance(chain, token, safe) == SAFE_HOLDS - SPEND
    assert chain.balance(safe) == ether_before  # the relayer paid the gas
    refreshed = cli("spend", "refresh", pid, *token_file(officers.proposer))
    assert refreshed.startswith(f"proposal {pid}: confirmed")

    holdings = f"vault:eth:{chain.chain_id}:{name}:{code}"
    posted = _posted(cli, code, code)
    assert posted[holdings] == format_amount(token_balance(chain, token, safe), KGST_DECIMALS)
    assert posted[f"reserve:approved-outflows:{code}"] == format_amount(SPEND, KGST_DECIMALS)
    cli("reconcile", "now")
    status = cli("reconcile", "status")
    assert "MISMATCH" not in status
    assert "0 open alarm(s)" in status
    assert f"{code}: chain {format_amount(SAFE_HOLDS - SPEND, KGST_DECIMALS)}" in status
    assert _posted(cli, code, code)[holdings] == format_amount(SAFE_HOLDS - SPEND, KGST_DECIMALS)

    log.info("the API serves the token's spender: propose and prepare through it")
    served: dict[str, FastAPI] = {}
    monkeypatch.setattr(uvicorn, "run", lambda api, **_: served.setdefault("app", api))
    result = CliRunner().invoke(app, ["api", "serve"], env=cli.env)
    assert result.exit_code == 0, result.output
    assert code not in result.stderr  # no note: the token's spends can be prepared
    client = TestClient(served["app"])
    proposer = {"Authorization": f"Bearer {officers.proposer}"}
    answer = client.post(
        "/proposals",
        headers=proposer,
        json={"asset": code, "amount": str(API_SPEND), "destination": payee,
              "purpose": "Second tranche", "legal_basis": DECREE},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    second = str(answer.json()["id"])
    answer = client.post(f"/proposals/{second}/prepare", headers=proposer)
    assert answer.status_code == 200, answer.text
    summary = answer.json()["tx_summary"]
    assert summary["asset"] == code
    assert summary["vault"] == name
    second_hash = answer.json()["tx_hash"]
    for institution in ("NBKR", "ACH"):
        _approve(cli, roster, officers, second, second_hash, institution)
    for institution, files in (("NBKR", shares["NBKR"][:2]), ("ACH", shares["ACH"][1:])):
        paths = [arg for path in files for arg in ("--share-file", str(path))]
        cli("spend", "sign", second, *paths, "--yes", *token_file(officers.approvers[institution]))
    cli("spend", "broadcast", second, *token_file(officers.proposer))
    assert cli("spend", "refresh", second, *token_file(officers.proposer)).startswith(
        f"proposal {second}: confirmed"
    )
    assert token_balance(chain, token, payee) == SPEND + API_SPEND
    left = SAFE_HOLDS - SPEND - API_SPEND
    assert token_balance(chain, token, safe) == left
    assert _posted(cli, code, code)[holdings] == format_amount(left, KGST_DECIMALS)
    answer = client.get("/ledger/balances", headers=proposer)
    assert answer.status_code == 200, answer.text
    assert str(left) in answer.text
    cli("reconcile", "now")
    status = cli("reconcile", "status")
    assert "MISMATCH" not in status
    assert "0 open alarm(s)" in status
