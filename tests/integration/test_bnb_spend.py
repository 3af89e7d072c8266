"""A spend of the second EVM chain's native coin end to end on two anvils, on both databases.

The reserve runs two EVM chains: the first (ETH, the session's anvil) and BNB Chain (an anvil
under chain id 31339, ``TREASURY_EVM_CHAINS=bnb``), each with a Safe of its own owned by the same
institutions' ceremony keys. BNB is named by its code like ETH; nothing in the spend path knows
it is BNB. Through the CLI a BNB spend is proposed against the policy's BNB limits, prepared as a
SafeTx of the BNB Safe on chain 31339, approved by two institutions' signed statements naming
BNB, signed from share files by signers that decode it as BNB (so the policy's BNB ceiling,
allowlist and veto threshold apply, never ETH's), relayed on the BNB chain and booked into the
BNB Safe's holdings; chain and ledger agree and the ETH Safe is untouched.

The attacks: a BNB SafeTx (proposed and prepared through the API) offered through the ETH
chain's node, or to a signer set for the ETH chain, is refused before any signature exists; a
BNB spend above the policy's BNB veto threshold is refused by the workflow while its window is
open, and by the signer itself, which names it BNB and applies BNB's threshold (ETH's, set at
100, would have let it through).

Skipped until custody's ``SigningPolicy`` has ``chain_id`` and ``native_asset`` (issue 17's
custody edit): before it, the signer names every native coin ``ETH`` and signs no BNB spend.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

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

from custody.authority.delay import ServicesChainRequiredError
from custody.ceremony import read_share_file
from custody.devnet import BNB_DEVNET_CHAIN_ID, BitcoinNode, EvmNode
from custody.devnet.binaries import NODES_DIR_ENV
from custody.ethereum import (
    EthChain,
    KeyQuorum,
    SafeVaults,
    SigningPolicy,
    VaultOwner,
    deploy_safe_contracts,
)
from custody.exceptions import WrongChainError
from custody.shamir import parse_shares
from treasury.authority.store import load_records
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV, make_engine, session_factory
from treasury.ledger import format_amount
from treasury.settings import (
    BITCOIN_RPC_URL_ENV,
    BTC_VAULT_ENV,
    EVM_CHAINS_ENV,
    RESERVE_RPC_URL_ENV,
    SAFE_VAULT_ENV,
    evm_chain_env,
)
from treasury.spenders import authority_evidence

log = logging.getLogger("tests.bnb_spend")

BNB = "BNB"
WEI = 10**18
"""One BNB (or ETH) in base units: both native coins have 18 decimals."""
BNB_SAFE_HOLDS = 10 * WEI
ETH_SAFE_HOLDS = 3 * WEI
BNB_VETO_THRESHOLD = 3 * WEI
"""The policy's BNB veto threshold; ETH's is set at 100 ETH, so a signer that took a BNB spend
for an ETH one would let a spend between the two through without a window."""
SPEND = 2 * WEI + 500_000_000_000_000_007
OVER_THRESHOLD = 4 * WEI


def _cli(
    bitcoin_node: BitcoinNode, evm_node: EvmNode, bnb_node: EvmNode, db_url: str, tmp_path: Path
) -> Cli:
    """A CLI on the test's fresh database, configured with both EVM chains (no devnet state)."""
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
            EVM_CHAINS_ENV: "bnb",
            evm_chain_env("bnb", "RPC_URL"): bnb_node.rpc_url,
            evm_chain_env("bnb", "CHAIN_ID"): str(BNB_DEVNET_CHAIN_ID),
            evm_chain_env("bnb", "NATIVE_ASSET"): BNB,
            NODES_DIR_ENV: str(no_devnet),
            BTC_VAULT_ENV: None,
            SAFE_VAULT_ENV: None,
        }
    )
    cli("db", "upgrade")
    return cli


def _govern_bnb(cli: Cli, tmp_path: Path) -> Officers:
    """``test_spend_cli``'s governance, with ETH's limits raised, BNB's added, and the decree's
    ceiling in BNB."""
    assets = {
        **POLICY["assets"],
        "ETH": {"per_tx_limit": 100 * WEI_PER_ETH, "daily_limit": 200 * WEI_PER_ETH,
                "veto_threshold": 100 * WEI_PER_ETH},
        BNB: {"per_tx_limit": 5 * WEI, "daily_limit": 9 * WEI,
              "veto_threshold": BNB_VETO_THRESHOLD},
    }  # fmt: skip
    return _govern(
        cli, tmp_path, {**POLICY, "assets": assets}, (f"ETH={WEI_PER_ETH}", f"{BNB}={9 * WEI}")
    )


def _bnb_safe(cli: Cli, db_url: str, bnb: EthChain) -> tuple[str, str]:
    """The reserve's Safe on the BNB chain, owned by the three institutions' ceremony keys
    2-of-3, funded with ``BNB_SAFE_HOLDS``; returns its name and address."""
    payer = bnb.accounts()[0]
    deploy_safe_contracts(bnb, payer)
    owners = []
    for name in INSTITUTIONS.values():
        fingerprint, address = _safe_owner(cli, name).split("=", 1)[1].split(":", 1)
        owners.append(VaultOwner(name, address, fingerprint))
    name = f"bnb-{uuid.uuid4().hex[:10]}"
    engine = make_engine(db_url)
    try:
        safe = SafeVaults(bnb, session_factory(engine)).create(name, owners, 2, payer=payer)
    finally:
        engine.dispose()
    bnb.transact(payer, safe.address, b"", action="fund the BNB Safe", value=BNB_SAFE_HOLDS)
    return name, safe.address


def _posted(cli: Cli, asset: str) -> dict[str, str]:
    """Account -> posted balance of ``asset`` as `treasury ledger balances` prints it."""
    balances = cli("ledger", "balances", "--asset", asset)
    return dict(re.findall(rf"^(\S+)\s+posted\s+(\S+) {asset}", balances, re.MULTILINE))


def _propose_and_approve(
    cli: Cli, roster: Any, officers: Officers, amount: int, purpose: str
) -> tuple[str, str, str]:
    """A BNB proposal of ``amount`` prepared and approved by NBKR and ACH: (id, hash, prepared)."""
    proposed = cli(
        "spend", "propose", "--asset", BNB, "--amount", str(amount), "--destination",
        roster.payee, "--purpose", purpose, "--legal-basis", DECREE,
        *token_file(officers.proposer),
    )  # fmt: skip
    pid = proposed.split(":")[0].split()[1]
    prepared = cli("spend", "prepare", pid, *token_file(officers.proposer))
    safe_tx_hash = prepared.split("hash to approve: ")[1].split()[0]
    for institution in ("NBKR", "ACH"):
        _approve(cli, roster.founded, officers, pid, safe_tx_hash, institution)
    return pid, safe_tx_hash, prepared


class _Roster:
    """The founded roster and the BNB payee it lists."""

    def __init__(self, founded: Any, payee: str) -> None:
        self.founded = founded
        self.payee = payee


def test_a_bnb_spend_is_paid_from_the_bnb_safe_and_refused_on_the_eth_chain(
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    bnb_node: EvmNode,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BNB leaves the BNB chain's Safe through the CLI and is booked in its holdings, the ETH
    Safe untouched; the next BNB SafeTx, proposed and prepared through the API, cannot be signed
    through the ETH chain's node or by a signer set for the ETH chain; and a BNB spend over BNB's
    veto threshold is refused by the signer."""
    cli = _cli(bitcoin_node, evm_node, bnb_node, db_url, tmp_path)
    shares = {
        code: _ceremony(cli, tmp_path / code.lower(), INSTITUTIONS[code])
        for code in ("MOF", "NBKR", "ACH")
    }
    cli("safe", "deploy")
    owners = [arg for name in INSTITUTIONS.values() for arg in ("--owner", _safe_owner(cli, name))]
    eth_safe_name = f"eth-{uuid.uuid4().hex[:10]}"
    created = cli("safe", "create", eth_safe_name, "--threshold", "2", *owners)
    eth_safe = re.findall(r"Safe (0x[0-9a-fA-F]{40})", created)[0]
    reserve, bnb = EthChain(evm_node.rpc), EthChain(bnb_node.rpc)
    reserve.transact(reserve.accounts()[0], eth_safe, b"", action="fund", value=ETH_SAFE_HOLDS)
    bnb_safe_name, bnb_safe = _bnb_safe(cli, db_url, bnb)
    payee = bnb.accounts()[7]
    officers = _govern_bnb(cli, tmp_path)
    founded = found_spend_roster(
        db_url,
        tmp_path,
        admins={"MOF": "Admin", "NBKR": "NBKR admin", "ACH": "ACH admin"},
        approvers=[f"{c} approver" for c in ("NBKR", "ACH")],
        shares=shares,
        destinations={BNB: payee},
        decree=DECREE,
    )
    roster = _Roster(founded, payee)
    requester = _officer_id(cli, officers.admin, "Pat Proposer")
    approvers = [_officer_id(cli, officers.admin, f"{c} approver") for c in ("NBKR", "ACH")]
    active_from = _allowlist(db_url, BNB, payee, requester, approvers)
    assert "succeeded" in cli("reconcile", "now")
    _wait_until(active_from)

    log.info("BNB is proposed, prepared on chain 31339 from the BNB Safe, approved and signed")
    pid, _, prepared = _propose_and_approve(cli, roster, officers, SPEND, "Reserve rebalancing")
    assert f"chain_id: {BNB_DEVNET_CHAIN_ID}" in prepared
    assert f"vault: {bnb_safe_name}" in prepared
    assert f"asset: {BNB}" in prepared
    assert f"send 2.500000000000000007 {BNB} ({SPEND} wei) to {payee}" in prepared
    folder = tmp_path / "airgap"  # the offline signer's request names the chain's coin
    cli("airgap", "export", pid, "--out", str(folder), *token_file(officers.approvers["NBKR"]))
    (request_file,) = folder.glob("*.request.json")
    request = json.loads(request_file.read_text())
    assert request["safe"]["native_asset"] == BNB
    assert int(request["safe"]["typed_data"]["domain"]["chainId"]) == BNB_DEVNET_CHAIN_ID
    for institution, files in (("NBKR", shares["NBKR"][1:]), ("ACH", shares["ACH"][:2])):
        paths = [arg for path in files for arg in ("--share-file", str(path))]
        cli("spend", "sign", pid, *paths, "--yes", *token_file(officers.approvers[institution]))
    payee_before = bnb.balance(payee)
    eth_safe_before = reserve.balance(eth_safe)
    sent = cli("spend", "broadcast", pid, *token_file(officers.proposer))
    assert sent.startswith(f"proposal {pid}: broadcast")
    assert cli("spend", "refresh", pid, *token_file(officers.proposer)).startswith(
        f"proposal {pid}: confirmed"
    )
    assert bnb.balance(bnb_safe) == BNB_SAFE_HOLDS - SPEND  # the relayer paid the gas
    assert bnb.balance(payee) == payee_before + SPEND
    assert reserve.balance(eth_safe) == eth_safe_before == ETH_SAFE_HOLDS

    log.info("the ledger books it into the BNB Safe's holdings and agrees with the chain")
    holdings = f"vault:eth:{BNB_DEVNET_CHAIN_ID}:{bnb_safe_name}:{BNB}"
    posted = _posted(cli, BNB)
    assert posted[holdings] == format_amount(BNB_SAFE_HOLDS - SPEND, 18)
    assert posted[f"reserve:approved-outflows:{BNB}"] == format_amount(SPEND, 18)
    eth_posted = _posted(cli, "ETH")
    assert eth_posted[f"vault:eth:{reserve.chain_id}:{eth_safe_name}:ETH"] == format_amount(
        ETH_SAFE_HOLDS, 18
    )
    cli("reconcile", "now")
    status = cli("reconcile", "status")
    assert "MISMATCH" not in status
    assert "0 open alarm(s)" in status

    log.info("the next BNB SafeTx is refused through the ETH chain's node and by an ETH signer")
    log.info("the API serves BNB's spender: propose and prepare the next BNB spend through it")
    served: dict[str, FastAPI] = {}
    monkeypatch.setattr(uvicorn, "run", lambda api, **_: served.setdefault("app", api))
    result = CliRunner().invoke(app, ["api", "serve"], env=cli.env)
    assert result.exit_code == 0, result.output
    client = TestClient(served["app"])
    proposer = {"Authorization": f"Bearer {officers.proposer}"}
    answer = client.post(
        "/proposals",
        headers=proposer,
        json={"asset": BNB, "amount": str(WEI), "destination": payee,
              "purpose": "Second tranche", "legal_basis": DECREE},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    second = str(answer.json()["id"])
    answer = client.post(f"/proposals/{second}/prepare", headers=proposer)
    assert answer.status_code == 200, answer.text
    summary = answer.json()["tx_summary"]
    assert (summary["asset"], summary["vault"]) == (BNB, bnb_safe_name)
    assert summary["chain_id"] == BNB_DEVNET_CHAIN_ID
    second_hash = answer.json()["tx_hash"]
    for institution in ("NBKR", "ACH"):
        _approve(cli, founded, officers, second, second_hash, institution)
    engine = make_engine(db_url)
    try:
        sessions = session_factory(engine)
        with sessions() as session:
            load_records(session)  # the roster is founded: the refusals below are the chain's
        evidence = authority_evidence(sessions, second_hash)
        transcript = re.findall(
            r"fingerprint:\s+(\S+)", cli("ceremony", "show", "--institution", INSTITUTIONS["NBKR"])
        )[0]
        quorum = KeyQuorum(
            INSTITUTIONS["NBKR"],
            parse_shares([read_share_file(p) for p in shares["NBKR"][:2]]),
            "",
            transcript,
        )
        bnb_policy = SigningPolicy(frozenset(), chain_id=BNB_DEVNET_CHAIN_ID, native_asset=BNB)
        eth_policy = SigningPolicy(frozenset(), chain_id=reserve.chain_id, native_asset="ETH")
        through_eth = SafeVaults(reserve, sessions)
        with pytest.raises(WrongChainError, match=f"lives on chain {BNB_DEVNET_CHAIN_ID}"):
            through_eth.cosign(
                through_eth.approval(second_hash, bnb_policy), quorum, bnb_policy,
                authority=evidence,
            )  # fmt: skip
        on_bnb = SafeVaults(bnb, sessions)
        with pytest.raises(WrongChainError, match=f"signs for chain {reserve.chain_id}"):
            on_bnb.approval(second_hash, eth_policy)
        assert on_bnb.proposal(second_hash).signatures == ()
    finally:
        engine.dispose()

    log.info("a BNB spend above BNB's veto threshold is refused by the signer (no window ran)")
    over, over_hash, _ = _propose_and_approve(
        cli, roster, officers, OVER_THRESHOLD, "Large tranche"
    )
    paths = [arg for path in shares["NBKR"][:2] for arg in ("--share-file", str(path))]
    refused = cli(
        "spend", "sign", over, *paths, "--yes", *token_file(officers.approvers["NBKR"]), code=1
    )
    assert "at or above the veto threshold; its veto window is open" in refused  # the workflow's
    engine = make_engine(db_url)
    try:  # and the signer's own check, asked directly: BNB's threshold, not ETH's 100
        sessions = session_factory(engine)
        on_bnb = SafeVaults(bnb, sessions)
        with pytest.raises(
            ServicesChainRequiredError, match=f"this spend of {OVER_THRESHOLD} {BNB} under a"
        ):
            on_bnb.cosign(
                on_bnb.approval(over_hash, bnb_policy), quorum, bnb_policy,
                authority=authority_evidence(sessions, over_hash),
            )  # fmt: skip
        assert on_bnb.proposal(over_hash).signatures == ()
    finally:
        engine.dispose()
    assert bnb.balance(bnb_safe) == BNB_SAFE_HOLDS - SPEND
