"""End to end: a bundle built from real regtest UTXOs and anvil Safe balances, anchored on both
chains, and checked by the auditors' verifier against the live nodes; tampering is named."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from bundle_support import failed, liabilities
from live_reserve_support import (
    LiveReserve,
    bitcoin_snapshot,
    eip1271_signature,
    fund_reserve,
    fund_safe,
    open_live_reserve,
    produce,
    safe_snapshot,
)
from registry_support import (
    METADATA_TOKEN_DECIMALS,
    METADATA_TOKEN_SYMBOL,
    asset_registry,
    deploy_metadata_token,
    snapshot_vaults,
)
from reserve_verifier import CheckStatus, LeafQuery, verify_bundle
from typer.testing import CliRunner

from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum.chain import EthChain
from reporting.anchor import publish_digest, registry_contract
from reporting.attestation import (
    AssetInfo,
    AttestationInputs,
    AuditHead,
    Encumbrance,
    EncumbranceKind,
    EvmSnapshot,
    KeySigner,
    RegistryRef,
    SignerRole,
    VaultSet,
)
from reporting.bundle import GENESIS_DIGEST_HEX, AnchorError, Bundle
from treasury.cli import app

log = logging.getLogger(__name__)

TOKEN_SUPPLY = 10**24
SAFE_ETH_WEI = 5 * 10**18
SAFE_TOKEN_UNITS = 7 * 10**20
SAFE_SALT_NONCE = 7
"""CREATE2 salt of this module's Safe, so it never collides with other tests' Safes."""
NONCE = bytes(range(32))
TREASURY_KEY = hashlib.sha256(b"test treasury key").digest()
AUDITOR_KEY = hashlib.sha256(b"test audit office key").digest()
PUBLISHER_KEY = hashlib.sha256(b"test registry publisher").digest()
OWNER_KEYS = tuple(hashlib.sha256(f"safe owner {i}".encode()).digest() for i in range(2))


@dataclass(frozen=True)
class Scenario(LiveReserve):
    """The live pieces every test of this module shares; the Safe also holds a test ERC-20."""

    token: str


@pytest.fixture(scope="module")
def scenario(bitcoin_node: BitcoinNode, evm_node: EvmNode, services_node: EvmNode) -> Scenario:
    live = open_live_reserve(
        bitcoin_node, evm_node, services_node, owner_keys=OWNER_KEYS,
        safe_salt_nonce=SAFE_SALT_NONCE, publisher_key=PUBLISHER_KEY, wallet_prefix="reserve",
    )  # fmt: skip
    payer = live.payer
    token = deploy_metadata_token(EthChain(evm_node.rpc), payer, TOKEN_SUPPLY)
    fund_safe(live, token, SAFE_ETH_WEI, SAFE_TOKEN_UNITS)
    return Scenario(**vars(live), token=token)


def evm_snapshot(s: Scenario) -> EvmSnapshot:
    """The Safe's ether and token balances at the latest block, as the treasury reads them."""
    return safe_snapshot(s, s.token, "USDX")


def registry_head(s: Scenario) -> tuple[int, str]:
    contract = registry_contract(s.services, s.registry)
    return int(contract.functions.count().call()) + 1, bytes(
        contract.functions.latest().call()
    ).hex()


def make_inputs(
    s: Scenario, rows: dict[str, tuple[int, int, int]], **changes: Any
) -> AttestationInputs:
    """Inputs at the current tips; liabilities are (BTC sats, ETH wei, USDX units) per account."""
    sequence, previous = registry_head(s)
    tree, totals = liabilities(("BTC", "ETH", "USDX"), rows, NONCE)
    inputs = AttestationInputs(
        sequence=sequence,
        previous_digest=previous if sequence > 1 else GENESIS_DIGEST_HEX,
        as_of=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        bitcoin=bitcoin_snapshot(s),
        evm=(evm_snapshot(s),),
        liabilities=tree,
        ledger_totals=totals,
        audit_head=AuditHead(42, "ab" * 32),
        registry=RegistryRef(s.services.eth.chain_id, s.registry, s.publisher.address),
        treasury=KeySigner(SignerRole.TREASURY, TREASURY_KEY),
        auditor=KeySigner(SignerRole.AUDITOR, AUDITOR_KEY),
        assets=registry(s),
        vaults=VaultSet((), ()),
        public_accounts=("budget:defence",),
        encumbrances=(
            Encumbrance(
                "BTC",
                10_000_000,
                EncumbranceKind.PENDING_SPEND,
                "psbt:demo",
                "An approved payment awaiting confirmation.",
            ),
        ),
    )
    changed = replace(inputs, **changes)
    if "vaults" in changes:
        return changed
    return replace(changed, vaults=snapshot_vaults(changed.bitcoin, changed.evm))


def registry(s: Scenario) -> dict[str, AssetInfo]:
    """BTC, ETH and the Safe's token as the chain describes it."""
    token = (s.token, METADATA_TOKEN_DECIMALS, METADATA_TOKEN_SYMBOL)
    return asset_registry(s.w3.eth.chain_id, {"USDX": token})


LIABILITIES = {
    "budget:defence": (50_000_000, 10**18, 10**20),
    "citizen:0001": (100_000_000, 2 * 10**18, 3 * 10**20),
    "citizen:0002": (30_000_000, 0, 10**20),
}


@pytest.fixture(scope="module")
def good(scenario: Scenario) -> Bundle:
    """One honest, anchored attestation (the first of the registry's chain)."""
    fund_reserve(scenario, ("1.5", "0.7"))
    return produce(scenario, make_inputs(scenario, LIABILITIES))


def test_honest_bundle_passes_every_check_against_live_nodes(
    scenario: Scenario, good: Bundle
) -> None:
    """An honest anchored bundle passes every check against the live nodes, with nothing skipped."""
    report = verify_bundle(good.to_bytes(), nodes=scenario.nodes)
    log.info("%s", report.render())
    assert report.passed(), report.render()
    names = {check.name for check in report.checks}
    assert {
        "bitcoin anchor",
        "services anchor",
        "reserve proof (BIP-127)",
        f"eip1271 {scenario.safe}",
    } <= names
    assert sum(name.startswith("utxo ") for name in names) == len(
        good.body["snapshot"]["bitcoin"]["utxos"]
    )


def test_anchors_record_where_they_landed(scenario: Scenario, good: Bundle) -> None:
    """The bundle records the anchor txid, block and height, and the registry tx, block and log."""
    on_bitcoin = good.anchors["bitcoin"]
    assert (
        scenario.bitcoin_node.rpc.call("getblockhash", on_bitcoin["height"])
        == on_bitcoin["block_hash"]
    )
    on_services = good.anchors["services"]
    receipt = scenario.services.eth.get_transaction_receipt(on_services["tx_hash"])
    assert receipt["blockNumber"] == on_services["block_number"]
    assert on_services["sequence"] == good.sequence


def test_leaf_inclusion_for_a_published_account(scenario: Scenario, good: Bundle) -> None:
    """A published budget line is found and proven; an unpublished account is refused by name."""
    salt = bytes.fromhex(good.body["liabilities"]["public_listing"][0]["leaf"]["salt"])
    ok = verify_bundle(good, leaf=LeafQuery("budget:defence", salt))
    assert ok.status_of("inclusion of 'budget:defence'") is CheckStatus.OK
    missing = verify_bundle(good, leaf=LeafQuery("citizen:0001"))
    assert "not published" in failed(missing)["inclusion of 'citizen:0001'"]


def test_spent_utxo_before_snapshot_is_caught(scenario: Scenario, good: Bundle) -> None:
    """A UTXO attested at a snapshot taken after it was spent fails with the spending height."""
    fund_reserve(scenario, ("0.3",))
    stale = bitcoin_snapshot(scenario)
    victim = max(stale.utxos, key=lambda u: u.created.height)
    spend = scenario.reserve.call(
        "send", {scenario.reserve.call("getnewaddress"): "0.1"}, None, "unset", None,
        {"inputs": [{"txid": victim.txid, "vout": victim.vout}], "add_inputs": False},
    )  # fmt: skip
    scenario.bitcoin_node.mine(1)
    fresh = bitcoin_snapshot(scenario)
    lying = replace(fresh, utxos=(*fresh.utxos, victim))
    bundle = produce(scenario, make_inputs(scenario, LIABILITIES, bitcoin=lying), do_anchor=False)
    report = verify_bundle(bundle, nodes=scenario.nodes)
    reason = failed(report)[f"utxo {victim.txid}:{victim.vout}"]
    assert "spent before the snapshot" in reason
    assert spend["txid"] in reason


def test_missing_anchor_and_other_digest_are_caught(scenario: Scenario, good: Bundle) -> None:
    """A bundle without anchors, or whose anchors carry another digest, fails both anchor checks."""
    bare = Bundle(good.body, good.signatures, good.proofs_of_control, {})
    report = failed(verify_bundle(bare, nodes=scenario.nodes))
    assert "Bitcoin anchor is missing" in report["bitcoin anchor"]
    assert "services-chain anchor is missing" in report["services anchor"]
    other = produce(scenario, make_inputs(scenario, {**LIABILITIES, "citizen:0003": (1, 1, 1)}))
    # The other bundle's anchors, with the registry's sequence restated as this bundle's (else
    # the file grammar refuses the mismatch before any node is asked).
    anchors = {
        **other.anchors,
        "services": {**other.anchors["services"], "sequence": good.body["sequence"]},
    }
    moved = Bundle(good.body, good.signatures, good.proofs_of_control, anchors)
    report = failed(verify_bundle(moved, nodes=scenario.nodes))
    assert "bitcoin anchor" in report, report
    assert "points at another digest" in report["bitcoin anchor"]
    assert "another digest" in report["services anchor"]


def test_chain_gap_is_refused_by_anchor_and_caught_by_the_verifier(
    scenario: Scenario, good: Bundle
) -> None:
    """Anchoring out of sequence sends nothing; a digest published past a gap fails the verifier."""
    inputs = make_inputs(scenario, LIABILITIES)
    before = registry_head(scenario)
    with pytest.raises(AnchorError, match="break the chain"):
        produce(scenario, replace(inputs, sequence=inputs.sequence + 1))
    assert registry_head(scenario) == before
    skipping = replace(inputs, previous_digest="11" * 32)
    bundle = produce(scenario, skipping, do_anchor=False)
    landed = publish_digest(scenario.services, scenario.registry, scenario.publisher, bundle.digest)
    bundle = bundle.with_anchor("services", asdict(landed))
    reason = failed(verify_bundle(bundle, nodes=scenario.nodes))["services anchor"]
    assert "Attestation chain gap" in reason
    assert inputs.previous_digest in reason


def test_reserve_proof_missing_a_utxo_is_refused(scenario: Scenario) -> None:
    """A reserve proof that leaves out one attested UTXO fails with the missing outpoint named."""
    bundle = produce(scenario, make_inputs(scenario, LIABILITIES), psbt_skip=1, do_anchor=False)
    assert (
        "does not spend exactly the attested UTXOs"
        in failed(verify_bundle(bundle))["reserve proof (BIP-127)"]
    )


def test_wrong_eip1271_signature_is_refused(scenario: Scenario, good: Bundle) -> None:
    """The Safe rejects a signature of another digest at the snapshot block."""
    other = eip1271_signature(scenario, b"\x01" * 32).hex()
    forged = Bundle(good.body, good.signatures,
                    {**good.proofs_of_control, "eip1271": [{"chain_id": scenario.w3.eth.chain_id,
                     "safe_address": scenario.safe, "signature": other}]}, good.anchors)  # fmt: skip
    reason = failed(verify_bundle(forged, nodes=scenario.nodes))[f"eip1271 {scenario.safe}"]
    assert "does not accept" in reason or "reverted" in reason


def test_under_coverage_is_stated_and_reported(scenario: Scenario) -> None:
    """Liabilities above holdings yield a bundle saying UNDER-COVERED and a failed coverage line."""
    heavy = {**LIABILITIES, "citizen:0009": (10**12, 0, 0)}
    bundle = produce(scenario, make_inputs(scenario, heavy), do_anchor=False)
    line = bundle.body["coverage"]["BTC"]
    assert line["covered"] is False
    assert "UNDER-COVERED" in line["statement"]
    report = verify_bundle(bundle, nodes=scenario.nodes)
    assert "UNDER-COVERED" in failed(report)["coverage BTC"]
    assert report.status_of("coverage ETH") is CheckStatus.OK


def test_cli_verify_exit_codes(scenario: Scenario, good: Bundle, tmp_path: Any) -> None:
    """`treasury verify` exits 0 on the honest bundle and 1 on a tampered one, printing the report."""
    path = tmp_path / "bundle.json"
    path.write_bytes(good.to_bytes())
    args = ["verify", str(path), "--bitcoin-rpc", scenario.nodes.bitcoin or "",
            "--evm-rpc", scenario.nodes.evm or "", "--services-rpc", scenario.nodes.services or ""]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "0 failed, 0 skipped" in result.output
    data = json.loads(good.to_bytes())
    data["body"]["snapshot"]["bitcoin"]["utxos"][0]["amount"] = "1"
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "failed  holdings root" in result.output
