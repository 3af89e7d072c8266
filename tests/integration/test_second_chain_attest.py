"""One attestation over both EVM reserve chains: the reserve's anvil (ETH, a USDX-like token) and the
BNB devnet (BNB and a KGST-like token), each Safe proving control on its own chain; the auditors'
verifier checks each chain against the node the auditor names for it, and the pinned vault set
covers both."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from attest_support import INSTITUTIONS, Reserve, build_reserve, rng_for
from reserve_verifier import CheckStatus, Nodes, Report, verify_bundle
from reserve_verifier.cli import main as reserve_verify
from reserve_verifier.trust import RegistryPin, parse_trust, trust_document
from sqlalchemy import func, select

from custody.ceremony import load_transcript
from custody.devnet import BNB_DEVNET_CHAIN_ID, BitcoinNode, EvmNode
from custody.ethereum import EthChain, SafeVaults, VaultOwner, deploy_safe_contracts
from custody.ethereum.dev_token import deploy_dev_token
from custody.ethereum.erc20 import transfer_calldata
from custody.ethereum.vault import Vault as SafeVault
from treasury import ledger
from treasury.attest import (
    AttestationRecord,
    AttestError,
    AttestNodes,
    AttestOptions,
    AttestResult,
    attest,
)
from treasury.chains import EvmChainSettings, connect
from treasury.reconcile import track_token

log = logging.getLogger("tests.second_chain.attest")

BNB_WEI = 9 * 10**18 + 11
KGST_SUPPLY = 10**27
KGST_UNITS = 4_000 * 10**18
KGST_DEPLOYER = 7
"""The BNB devnet account that deploys the KGST-like token (not account 0, whose deployments on
the reserve chain could land at the same address)."""


@dataclass
class TwoChainReserve:
    """The attest-support reserve, plus a Safe with BNB and KGST on the BNB devnet."""

    reserve: Reserve
    bnb_node: EvmNode
    bnb: EthChain
    bnb_safe: SafeVault
    kgst: str

    @property
    def kgst_code(self) -> str:
        return ledger.erc20_asset(self.kgst, 18).code

    @property
    def bnb_settings(self) -> EvmChainSettings:
        return EvmChainSettings(
            "bnb", self.bnb_node.rpc_url, BNB_DEVNET_CHAIN_ID, native_asset="BNB"
        )

    def nodes(self, *chains: EvmChainSettings) -> AttestNodes:
        r = self.reserve
        return AttestNodes(r.endpoint, "miner", r.chain, r.services, evm_chains=connect(chains))

    def attest(self, *chains: EvmChainSettings, out: Path | None = None) -> AttestResult:
        r = self.reserve
        with r.sessions.begin() as session:
            return attest(
                session,
                self.nodes(*chains),
                treasury=r.treasury,
                auditor=r.auditor,
                institutions=r.institutions(),
                await_bitcoin_confirmation=r.mine,
                options=AttestOptions(out=out),
                random_bytes=rng_for(r.seed, f"nonce-{uuid.uuid4()}").randbytes,
                progress=log.info,
            )

    def auditor_nodes(self, *evm_chains: tuple[int, str], evm: str | None = None) -> Nodes:
        live = self.reserve.verify_nodes
        return Nodes(bitcoin=live.bitcoin, evm=evm, services=live.services, evm_chains=evm_chains)

    @property
    def both(self) -> tuple[tuple[int, str], ...]:
        return (
            (31337, self.reserve.evm_node.rpc_url),
            (BNB_DEVNET_CHAIN_ID, self.bnb_node.rpc_url),
        )


@pytest.fixture(scope="module")
def two(
    tmp_path_factory: pytest.TempPathFactory,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    services_node: EvmNode,
    bnb_node: EvmNode,
    test_seed: int,
) -> Iterator[TwoChainReserve]:
    reserve = build_reserve(
        tmp_path_factory.mktemp("second-chain"),
        bitcoin_node,
        evm_node,
        services_node,
        test_seed,
        "second-chain",
    )
    bnb = EthChain(bnb_node.rpc)
    payer = bnb.accounts()[0]
    deploy_safe_contracts(bnb, payer)
    with reserve.sessions() as session:
        owners = [
            VaultOwner(
                i, load_transcript(session, i).eth_address, load_transcript(session, i).fingerprint
            )
            for i in INSTITUTIONS
        ]
    safes = SafeVaults(bnb, reserve.sessions, random_bytes=rng_for(test_seed, "bnb-safe").randbytes)
    safe = safes.create(f"safe-bnb-{uuid.uuid4().hex[:8]}", owners, 2, payer=payer)
    issuer = bnb.accounts()[KGST_DEPLOYER]
    kgst = deploy_dev_token(bnb, issuer, KGST_SUPPLY, name="Kyrgyz Som", symbol="KGST", decimals=18)
    bnb.transact(payer, safe.address, b"", action="fund the BNB Safe", value=BNB_WEI)
    bnb.transact(issuer, kgst, transfer_calldata(safe.address, KGST_UNITS), action="fund KGST")
    with reserve.sessions.begin() as session:
        track_token(session, BNB_DEVNET_CHAIN_ID, kgst, "KGST", 18)
        ledger.register_asset(session, ledger.erc20_asset(kgst, 18, chain="bnb"), actor="tests")
    yield TwoChainReserve(reserve, bnb_node, bnb, safe, kgst)
    reserve.engine.dispose()


@pytest.fixture(scope="module")
def bundle_path(two: TwoChainReserve, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Attestation 1, over the bitcoin vault and both EVM chains, written to a file."""
    path = tmp_path_factory.mktemp("bundles") / "attestation-1.json"
    two.attest(two.bnb_settings, out=path)
    return path


def _status(report: Report, name: str) -> CheckStatus | None:
    return report.status_of(name)


def test_one_attestation_states_both_chains(two: TwoChainReserve, bundle_path: Path) -> None:
    """The body holds one snapshot per chain, BNB and KGST registered on the BNB chain, both Safes
    in the vault set, and an EIP-1271 proof of control from each, on its own chain."""
    body = json.loads(bundle_path.read_bytes())["body"]
    snapshots = {s["chain_id"]: s for s in body["snapshot"]["evm"]}
    assert sorted(snapshots) == [31337, BNB_DEVNET_CHAIN_ID]
    on_bnb = {
        (b["safe_address"], b["asset"]): int(b["amount"])
        for b in snapshots[BNB_DEVNET_CHAIN_ID]["balances"]
    }
    assert on_bnb == {
        (two.bnb_safe.address, "BNB"): BNB_WEI,
        (two.bnb_safe.address, two.kgst_code): KGST_UNITS,
    }
    assets = body["assets"]
    assert assets["BNB"] == {
        "chain": f"evm:{BNB_DEVNET_CHAIN_ID}", "kind": "native", "contract": None,
        "decimals": 18, "symbol": "BNB",
    }  # fmt: skip
    assert assets[two.kgst_code]["chain"] == f"evm:{BNB_DEVNET_CHAIN_ID}"
    assert assets[two.kgst_code]["symbol"] == "KGST"
    assert assets["ETH"]["chain"] == "evm:31337"
    assert assets[two.reserve.token_asset]["chain"] == "evm:31337"
    safes = {(s["chain_id"], s["safe_address"]) for s in body["vaults"]["evm"]}
    assert safes == {
        (31337, two.reserve.safe.address),
        (BNB_DEVNET_CHAIN_ID, two.bnb_safe.address),
    }
    proven = {(p["chain_id"], p["safe_address"]) for p in body["proofs_of_control"]["eip1271"]}
    assert proven == safes
    assert body["holdings"]["totals"]["BNB"] == str(BNB_WEI)


def test_the_verifier_checks_each_chain_against_its_own_node(
    two: TwoChainReserve, bundle_path: Path
) -> None:
    """Given a node per chain, every check passes: each chain's block, balances, token metadata,
    vault holdings and the Safe's EIP-1271 answer on that chain."""
    report = verify_bundle(bundle_path.read_bytes(), nodes=two.auditor_nodes(*two.both))
    assert report.passed(), report.render()
    for name in (
        "evm node for chain 31337",
        f"evm node for chain {BNB_DEVNET_CHAIN_ID}",
        "evm snapshot block 31337",
        f"evm snapshot block {BNB_DEVNET_CHAIN_ID}",
        f"eip1271 {two.reserve.safe.address}",
        f"eip1271 {two.bnb_safe.address}",
        f"token {two.kgst_code}",
        f"vault holdings of {two.bnb_safe.address}",
        f"balance BNB of {two.bnb_safe.address}",
    ):
        assert _status(report, name) is CheckStatus.OK, name


def test_one_bare_node_leaves_the_other_chain_unchecked(
    two: TwoChainReserve, bundle_path: Path
) -> None:
    """The old single --evm-rpc still works for its chain; the other chain's checks are skipped
    (so the bundle does not pass without --offline), never taken from the wrong node."""
    report = verify_bundle(
        bundle_path.read_bytes(), nodes=two.auditor_nodes(evm=two.reserve.evm_node.rpc_url)
    )
    assert _status(report, "evm snapshot block 31337") is CheckStatus.OK
    assert _status(report, f"evm chain {BNB_DEVNET_CHAIN_ID}") is CheckStatus.SKIPPED
    assert _status(report, f"eip1271 {two.bnb_safe.address}") is CheckStatus.SKIPPED
    assert not report.passed()
    assert report.passed(allow_skipped=True), report.render()


def test_a_node_named_for_the_wrong_chain_is_refused(
    two: TwoChainReserve, bundle_path: Path
) -> None:
    """A node named for the BNB chain that serves the reserve chain fails its own check, and no
    BNB-chain check takes its answers."""
    reserve_url = two.reserve.evm_node.rpc_url
    report = verify_bundle(
        bundle_path.read_bytes(),
        nodes=two.auditor_nodes((31337, reserve_url), (BNB_DEVNET_CHAIN_ID, reserve_url)),
    )
    failed = {c.name: c.reason for c in report.failed()}
    assert f"evm node for chain {BNB_DEVNET_CHAIN_ID}" in failed
    assert "serves chain 31337" in failed[f"evm node for chain {BNB_DEVNET_CHAIN_ID}"]
    assert _status(report, f"evm chain {BNB_DEVNET_CHAIN_ID}") is CheckStatus.SKIPPED
    assert _status(report, f"eip1271 {two.bnb_safe.address}") is CheckStatus.SKIPPED
    assert not report.passed(allow_skipped=True)


def test_reserve_verify_takes_a_node_per_chain_and_pins_both_chains_vaults(
    two: TwoChainReserve, bundle_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reserve-verify --evm-rpc 31337=URL --evm-rpc 31339=URL --trust FILE` exits 0 with the
    vault set of both chains pinned; a trust file pinning only the reserve chain's Safe fails the
    pinned-vaults check (a dropped chain cannot pass unnoticed)."""
    bundle = json.loads(bundle_path.read_bytes())
    body = bundle["body"]
    live = two.reserve.verify_nodes
    registry = body["registry"]

    def trust_file(name: str, vaults: dict[str, object]) -> Path:
        document = trust_document(
            [two.reserve.treasury.identity()["public_key"]],
            [two.reserve.auditor.identity()["public_key"]],
            RegistryPin(registry["chain_id"], registry["address"], registry["publisher"]),
            assets=body["assets"],
            vaults=vaults,
        )
        path = tmp_path / name
        path.write_text(json.dumps(document))
        parse_trust(path.read_bytes())
        return path

    both = trust_file("both.json", body["vaults"])
    argv = [
        str(bundle_path),
        "--bitcoin-rpc", str(live.bitcoin),
        "--services-rpc", str(live.services),
        "--evm-rpc", f"31337={two.reserve.evm_node.rpc_url}",
        "--evm-rpc", f"{BNB_DEVNET_CHAIN_ID}={two.bnb_node.rpc_url}",
    ]  # fmt: skip
    assert reserve_verify([*argv, "--trust", str(both)]) == 0, capsys.readouterr().out
    capsys.readouterr()
    one_chain = {
        "bitcoin": body["vaults"]["bitcoin"],
        "evm": [s for s in body["vaults"]["evm"] if s["chain_id"] == 31337],
    }
    assert reserve_verify([*argv, "--trust", str(trust_file("one.json", one_chain))]) == 1
    out = capsys.readouterr().out
    assert "pinned vaults" in out
    assert two.bnb_safe.address.lower() in out.lower()


def test_attesting_without_a_chain_that_holds_a_safe_is_refused(
    two: TwoChainReserve, bundle_path: Path
) -> None:
    """With the BNB chain left out of the configuration, the attestation refuses before anything
    is deployed, signed or anchored, naming the chain; no record is written."""
    with two.reserve.sessions() as session:
        before = session.scalar(select(func.count()).select_from(AttestationRecord))
    with pytest.raises(AttestError, match=rf"chain\(s\) \[{BNB_DEVNET_CHAIN_ID}\]"):
        two.attest()
    with two.reserve.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AttestationRecord)) == before
