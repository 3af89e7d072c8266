"""The auditor's two forgeries that verified online before the asset registry and vault set:
a Safe's token balance relabelled as ether, and a Safe's EIP-1271 slot and signature dropped.

Each forgery is built from a real attestation of a live reserve (regtest coins, a Safe on anvil
holding ether and an ERC-20 that answers ``decimals()`` and ``symbol()``), carries real proofs of
control, is signed with the real treasury and audit-office keys, and is anchored on Bitcoin and in
the registry, so only the new rules can refuse it. The old checks still pass on each forgery
(shown below), which is why they verified before. A bundle signed by an unpinned key is refused
through the trust file, which now also pins the asset registry and the vault set.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass, replace
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
    reserve_psbt,
    safe_snapshot,
)
from registry_support import (
    METADATA_TOKEN_DECIMALS,
    METADATA_TOKEN_SYMBOL,
    asset_registry,
    deploy_metadata_token,
    snapshot_vaults,
)
from reserve_verifier import CheckStatus, Report, verify_bundle
from reserve_verifier.trust import RegistryPin, parse_trust, trust_document

from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum.chain import EthChain
from reporting import attestation
from reporting.anchor import anchor, registry_contract
from reporting.attestation import (
    AttestationInputs,
    AuditHead,
    EvmSnapshot,
    KeySigner,
    RegistryRef,
    SignerRole,
    VaultSet,
    build_attestation,
    sign_bundle,
)
from reporting.bundle import GENESIS_DIGEST_HEX, Bundle
from reporting.holdings import SafeBalanceHolding

log = logging.getLogger(__name__)

SAFE_SALT_NONCE = 1_421
"""CREATE2 salt of this module's Safe, apart from every other test's Safe."""
TOKEN_SUPPLY = 10**15
SAFE_ETH_WEI = 2 * 10**18
SAFE_TOKEN_UNITS = 9 * 10**12
"""More token base units than the Safe holds wei: relabelled as ether, they cover the ether owed."""
NONCE = bytes(range(32, 64))
TREASURY = KeySigner(SignerRole.TREASURY, hashlib.sha256(b"registry test treasury").digest())
AUDITOR = KeySigner(SignerRole.AUDITOR, hashlib.sha256(b"registry test audit office").digest())
INSIDER = KeySigner(SignerRole.TREASURY, hashlib.sha256(b"registry test insider").digest())
PUBLISHER_KEY = hashlib.sha256(b"registry test publisher").digest()
OWNER_KEYS = tuple(hashlib.sha256(f"registry test owner {i}".encode()).digest() for i in range(2))
ROWS = {
    "budget:health": (40_000_000, 10**18, 10**12),
    "citizen:0001": (20_000_000, 5 * 10**17, 2 * 10**12),
}


@dataclass(frozen=True)
class World(LiveReserve):
    """The live reserve every test of this module shares, with its token."""

    token: str


@pytest.fixture(scope="module")
def world(bitcoin_node: BitcoinNode, evm_node: EvmNode, services_node: EvmNode) -> World:
    live = open_live_reserve(
        bitcoin_node, evm_node, services_node, owner_keys=OWNER_KEYS,
        safe_salt_nonce=SAFE_SALT_NONCE, publisher_key=PUBLISHER_KEY, wallet_prefix="registry",
    )  # fmt: skip
    payer = live.payer
    token = deploy_metadata_token(EthChain(evm_node.rpc), payer, TOKEN_SUPPLY)
    fund_safe(live, token, SAFE_ETH_WEI, SAFE_TOKEN_UNITS)
    fund_reserve(live, ("0.9", "0.4"))
    return World(**vars(live), token=token)


def evm_snapshot(w: World) -> EvmSnapshot:
    """The Safe's ether and token balances at the latest block, as the treasury reads them."""
    return safe_snapshot(w, w.token, "USDX")


def make_inputs(w: World, **changes: Any) -> AttestationInputs:
    """The next attestation of the registry's chain, at the current tips."""
    contract = registry_contract(w.services, w.registry)
    sequence = int(contract.functions.count().call()) + 1
    previous = bytes(contract.functions.latest().call()).hex()
    tree, totals = liabilities(("BTC", "ETH", "USDX"), ROWS, NONCE)
    bitcoin, evm = bitcoin_snapshot(w), evm_snapshot(w)
    token = (w.token, METADATA_TOKEN_DECIMALS, METADATA_TOKEN_SYMBOL)
    inputs = AttestationInputs(
        sequence=sequence,
        previous_digest=previous if sequence > 1 else GENESIS_DIGEST_HEX,
        as_of=datetime(2026, 6, 1, tzinfo=UTC),
        bitcoin=bitcoin,
        evm=(evm,),
        liabilities=tree,
        ledger_totals=totals,
        audit_head=AuditHead(7, "ef" * 32),
        registry=RegistryRef(w.services.eth.chain_id, w.registry, w.publisher.address),
        treasury=TREASURY,
        auditor=AUDITOR,
        assets=asset_registry(evm.chain_id, {"USDX": token}),
        vaults=snapshot_vaults(bitcoin, (evm,)),
        public_accounts=("budget:health",),
    )
    return replace(inputs, **changes)


def pins(w: World, honest: Bundle) -> bytes:
    """The auditor's trust file: the real keys, the registry, the asset registry, the vaults."""
    registry = honest.body["registry"]
    document = trust_document(
        [TREASURY.identity()["public_key"]],
        [AUDITOR.identity()["public_key"]],
        RegistryPin(registry["chain_id"], registry["address"], registry["publisher"]),
        assets=honest.body["assets"],
        vaults=honest.body["vaults"],
    )
    return json.dumps(document).encode()


def seal(w: World, bundle: Bundle, *, eip1271: bool) -> Bundle:
    """Prove control (the wallet's BIP-127 PSBT; the owners' EIP-1271 signature unless left out),
    sign with both real keys and anchor on Bitcoin and in the registry."""
    bundle = bundle.with_proof("bitcoin_reserve_proof", {"psbt": reserve_psbt(w, bundle)})
    if eip1271:
        signature = eip1271_signature(w, bundle.digest).hex()
        bundle = bundle.with_proof(
            "eip1271",
            [{"chain_id": w.w3.eth.chain_id, "safe_address": w.safe, "signature": signature}],
        )
    bundle = sign_bundle(sign_bundle(bundle, TREASURY), AUDITOR)
    return anchor(
        bundle, w.miner, w.services, w.registry, w.publisher,
        await_bitcoin_confirmation=lambda _txid: w.bitcoin_node.mine(1),
    )  # fmt: skip


@pytest.fixture(scope="module")
def honest(world: World) -> Bundle:
    """An honest attestation, anchored."""
    return produce(world, make_inputs(world))


def checked(world: World, bundle: Bundle) -> Report:
    report = verify_bundle(bundle.to_bytes(), nodes=world.nodes)
    log.info("%s", report.render())
    return report


def test_honest_bundle_passes_the_registry_and_vault_checks_online(
    world: World, honest: Bundle
) -> None:
    """The honest bundle passes everything online, including the token's metadata and the Safe's
    balance of every registered asset."""
    report = checked(world, honest)
    assert report.passed(), report.render()
    assert report.status_of("token USDX") is CheckStatus.OK
    assert report.status_of(f"vault holdings of {world.safe}") is CheckStatus.OK
    assert report.status_of("Safe proofs of control") is CheckStatus.OK
    assert honest.body["assets"]["USDX"] == {
        "chain": f"evm:{world.w3.eth.chain_id}",
        "kind": "erc20",
        "contract": world.token,
        "decimals": METADATA_TOKEN_DECIMALS,
        "symbol": METADATA_TOKEN_SYMBOL,
    }


def test_token_relabelled_as_ether_is_refused_online(world: World, honest: Bundle) -> None:
    """The Safe's token balance stated as ETH (read from the token, so balanceOf matches) and the
    real ether left out: refused as a relabelled balance and as holdings other than attested."""
    real = evm_snapshot(world)
    token_units = real.balances[1].amount
    forged_evm = replace(
        real,
        balances=(SafeBalanceHolding(real.chain_id, world.safe, "ETH", world.token, token_units),),
    )
    # The forger's producer: the registry rules removed, everything else the real code.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(attestation, "_check_registry", lambda _inputs, _used: None)
        body = build_attestation(make_inputs(world, evm=(forged_evm,)))
    forged = seal(world, body, eip1271=True)
    report = checked(world, forged)
    # What used to verify: balanceOf(token) is the stated "ETH", the Safe signs, both anchors hold.
    for name in (f"balance ETH of {world.safe}", f"eip1271 {world.safe}", "services anchor"):
        assert report.status_of(name) is CheckStatus.OK, name
    assert report.status_of("bitcoin anchor") is CheckStatus.OK
    reasons = failed(report)
    assert "relabelled as the native coin" in reasons["balance assets"]
    holdings = reasons[f"vault holdings of {world.safe}"]
    assert f"{SAFE_ETH_WEI} ETH base units on chain, {token_units} attested" in holdings
    assert f"{token_units} USDX base units on chain, 0 attested" in holdings


def test_dropped_eip1271_slot_is_refused(world: World, honest: Bundle) -> None:
    """The Safe's EIP-1271 slot removed from the body and its signature from the bundle: no slot
    check runs, so before this only the new rule could notice; it refuses the bundle."""
    body = copy.deepcopy(dict(build_attestation(make_inputs(world)).body))
    body["proofs_of_control"]["eip1271"] = []
    forged = seal(world, Bundle(body), eip1271=False)
    report = checked(world, forged)
    assert not any(check.name.startswith("eip1271 ") for check in report.checks)
    assert report.status_of("services anchor") is CheckStatus.OK
    assert report.status_of("bitcoin anchor") is CheckStatus.OK
    reasons = failed(report)
    assert set(reasons) == {"Safe proofs of control"}, report.render()
    assert "no EIP-1271 slot" in reasons["Safe proofs of control"]


def test_unpinned_key_and_redefined_registry_are_refused_by_the_trust_file(
    world: World, honest: Bundle
) -> None:
    """With the trust file, the honest bundle passes; one signed by an unpinned treasury key (and
    anchored) fails 'pinned treasury key'; one whose registry or vault set differs fails its pin."""
    trust = parse_trust(pins(world, honest))
    ok = verify_bundle(honest.to_bytes(), nodes=world.nodes, anchors=trust)
    assert ok.passed(), ok.render()
    assert ok.status_of("pinned assets") is CheckStatus.OK
    assert ok.status_of("pinned vaults") is CheckStatus.OK

    insider = produce(world, make_inputs(world, treasury=INSIDER))
    report = verify_bundle(insider.to_bytes(), nodes=world.nodes, anchors=trust)
    assert report.status_of("signature treasury") is CheckStatus.OK
    assert report.status_of("services anchor") is CheckStatus.OK
    assert "not pinned" in failed(report)["pinned treasury key"]

    real = make_inputs(world)
    token = replace(real.assets["USDX"], symbol="USDT")
    extra_safe = VaultSet(real.vaults.bitcoin_scripts, (*real.vaults.safes, (1, "0x" + "ee" * 20)))
    other = produce(world, replace(real, assets={**real.assets, "USDX": token}, vaults=extra_safe))
    reasons = failed(verify_bundle(other.to_bytes(), nodes=world.nodes, anchors=trust))
    assert "USDX" in reasons["pinned assets"]
    assert "the bundle lists the Safe 0x" + "ee" * 20 in reasons["pinned vaults"]
    assert "USDT" in reasons["token USDX"]
