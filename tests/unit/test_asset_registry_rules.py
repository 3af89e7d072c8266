"""Offline rules of the asset registry and the vault set, one tamper per rule.

Each tampered body is re-signed with the real treasury and audit-office keys (what an insider
holding both can do), so the digest and signatures hold and only the rule under test can refuse
it; the honest bundle passes that same rule. Bundles hold no UTXOs (Bitcoin rules use one
without its reserve proof, and assert only their own line), so no node is needed.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from bundle_support import failed, liabilities
from eth_utils.address import to_checksum_address
from registry_support import asset_registry, snapshot_vaults, with_offline_safe_signatures
from reserve_verifier import CheckStatus, Report, verify_bundle
from reserve_verifier.trust import RegistryPin, TrustFileError, parse_trust, trust_document

from reporting.attestation import (
    AssetInfo,
    AssetKind,
    AttestationInputs,
    AuditHead,
    BitcoinSnapshot,
    BlockRef,
    EvmSnapshot,
    KeySigner,
    RegistryRef,
    SignerRole,
    SnapshotUtxo,
    VaultSet,
    build_attestation,
    sign_bundle,
)
from reporting.bundle import GENESIS_DIGEST_HEX, AttestationError, Bundle
from reporting.holdings import SafeBalanceHolding

NONCE = bytes(range(32))
TREASURY = KeySigner(SignerRole.TREASURY, hashlib.sha256(b"rules treasury").digest())
AUDITOR = KeySigner(SignerRole.AUDITOR, hashlib.sha256(b"rules auditor").digest())
SAFE = to_checksum_address("0x" + "5a" * 20)
OTHER_SAFE = to_checksum_address("0x" + "5b" * 20)
TOKEN = to_checksum_address("0x" + "70" * 20)
OTHER_TOKEN = to_checksum_address("0x" + "71" * 20)
CHAIN = 31337
ROWS = {"budget:health": (10**18, 5 * 10**6), "citizen:0001": (2 * 10**18, 10**6)}
SCRIPT = bytes.fromhex("0014" + "ab" * 20)


def inputs(**changes: Any) -> AttestationInputs:
    """A first attestation: one Safe holding ether and a token; two accounts owed both."""
    tree, totals = liabilities(("ETH", "USDX"), ROWS, NONCE)
    evm = EvmSnapshot(
        CHAIN,
        BlockRef(50, "0x" + "77" * 32),
        (
            SafeBalanceHolding(CHAIN, SAFE, "ETH", None, 4 * 10**18),
            SafeBalanceHolding(CHAIN, SAFE, "USDX", TOKEN, 10**7),
        ),
    )
    bitcoin = BitcoinSnapshot("regtest", BlockRef(110, "66" * 32), ())
    base = AttestationInputs(
        sequence=1,
        previous_digest=GENESIS_DIGEST_HEX,
        as_of=datetime(2026, 3, 1, tzinfo=UTC),
        bitcoin=bitcoin,
        evm=(evm,),
        liabilities=tree,
        ledger_totals=totals,
        audit_head=AuditHead(9, "cd" * 32),
        registry=RegistryRef(31338, "0x" + "11" * 20, "0x" + "22" * 20),
        treasury=TREASURY,
        auditor=AUDITOR,
        assets=asset_registry(CHAIN, {"USDX": (TOKEN, 6, "USDX")}),
        vaults=snapshot_vaults(bitcoin, (evm,)),
        public_accounts=("budget:health",),
    )
    return replace(base, **changes)


def signed(bundle: Bundle) -> Bundle:
    """The Safe's proof placeholder (checked online only) and both real signatures."""
    bundle = with_offline_safe_signatures(Bundle(bundle.body))
    return sign_bundle(sign_bundle(bundle, TREASURY), AUDITOR)


@pytest.fixture(scope="module")
def honest() -> Bundle:
    return signed(build_attestation(inputs()))


def tampered(honest: Bundle, edit: Callable[[dict[str, Any]], None]) -> Report:
    """Edit a copy of the honest body, re-sign it with the real keys, verify offline."""
    body = copy.deepcopy(dict(honest.body))
    edit(body)
    return verify_bundle(signed(Bundle(body)).to_bytes())


def _balances(body: dict[str, Any]) -> list[dict[str, Any]]:
    balances: list[dict[str, Any]] = body["snapshot"]["evm"][0]["balances"]
    return balances


def test_honest_bundle_passes_every_new_rule(honest: Bundle) -> None:
    """The honest bundle passes each registry and vault rule offline."""
    report = verify_bundle(honest.to_bytes())
    assert not report.failed(), report.render()
    for name in (
        "asset registry",
        "balance assets",
        "vault UTXOs",
        "vault Safes",
        "Safe proofs of control",
        "reconciliation assets",
        "coverage assets",
    ):
        assert report.status_of(name) is CheckStatus.OK, name


def test_body_states_registry_and_vaults_with_checksummed_addresses(honest: Bundle) -> None:
    """The body's new fields, exactly; every address in EIP-55 form."""
    body = honest.body
    assert body["assets"] == {
        "BTC": {
            "chain": "bitcoin:regtest",
            "kind": "native",
            "contract": None,
            "decimals": 8,
            "symbol": "BTC",
        },
        "ETH": {
            "chain": f"evm:{CHAIN}",
            "kind": "native",
            "contract": None,
            "decimals": 18,
            "symbol": "ETH",
        },
        "USDX": {
            "chain": f"evm:{CHAIN}",
            "kind": "erc20",
            "contract": TOKEN,
            "decimals": 6,
            "symbol": "USDX",
        },
    }
    assert body["vaults"] == {"bitcoin": [], "evm": [{"chain_id": CHAIN, "safe_address": SAFE}]}
    assert body["registry"]["address"] == to_checksum_address("0x" + "11" * 20)
    assert body["registry"]["publisher"] == to_checksum_address("0x" + "22" * 20)


def _rename_ledger_asset(body: dict[str, Any]) -> None:
    body["ledger"]["totals"]["GOLD"] = "0"


def _relabel_token_as_ether(body: dict[str, Any]) -> None:
    _balances(body)[0]["token_address"] = TOKEN


def _read_from_other_token(body: dict[str, Any]) -> None:
    _balances(body)[1]["token_address"] = OTHER_TOKEN


def _ether_as_token(body: dict[str, Any]) -> None:
    _balances(body)[1]["token_address"] = None


def _token_on_other_chain(body: dict[str, Any]) -> None:
    body["assets"]["USDX"]["chain"] = "evm:1"


def _safe_outside_vaults(body: dict[str, Any]) -> None:
    body["vaults"]["evm"] = [{"chain_id": CHAIN, "safe_address": OTHER_SAFE}]


def _vault_chain_without_snapshot(body: dict[str, Any]) -> None:
    body["vaults"]["evm"].append({"chain_id": 99_999, "safe_address": OTHER_SAFE})


def _drop_slot(body: dict[str, Any]) -> None:
    body["proofs_of_control"]["eip1271"] = []


def _two_native_coins(body: dict[str, Any]) -> None:
    body["assets"]["WETH"] = dict(body["assets"]["ETH"], symbol="WETH")


@pytest.mark.parametrize(
    ("edit", "check", "reason"),
    [
        (_rename_ledger_asset, "asset registry", "GOLD appears in the ledger totals"),
        (_relabel_token_as_ether, "balance assets", "relabelled as the native coin"),
        (_read_from_other_token, "balance assets", "not from USDX's registered contract"),
        (_ether_as_token, "balance assets", "is read from the native coin"),
        (_token_on_other_chain, "balance assets", "registry puts USDX on evm:1"),
        (_safe_outside_vaults, "vault Safes", "not in the vault set"),
        (_vault_chain_without_snapshot, "vault Safes", "has no snapshot"),
        (_drop_slot, "Safe proofs of control", "no EIP-1271 slot"),
        (_two_native_coins, "asset registry", "two native coins"),
    ],
)
def test_each_rule_refuses_its_tamper(
    honest: Bundle, edit: Callable[[dict[str, Any]], None], check: str, reason: str
) -> None:
    """A re-signed tamper fails the rule that guards it, with that rule's reason."""
    assert verify_bundle(honest.to_bytes()).status_of(check) is CheckStatus.OK
    reasons = failed(tampered(honest, edit))
    assert reason in reasons[check], reasons


def test_signature_dropped_with_slot_kept_is_refused(honest: Bundle) -> None:
    """The body keeps the slot but the bundle carries no signature for it."""
    bundle = Bundle(honest.body, honest.signatures, {}, honest.anchors)
    reasons = failed(verify_bundle(bundle.to_bytes()))
    assert "no EIP-1271 signature" in reasons["Safe proofs of control"]


@pytest.mark.parametrize("section", ["coverage", "reconciliation"])
def test_extra_and_missing_assets_are_refused_in_reconciliation_and_coverage(
    honest: Bundle, section: str
) -> None:
    """An asset in no tree added to (or a real one removed from) a section is refused by name."""

    def add(body: dict[str, Any]) -> None:
        body["assets"]["GOLD"] = dict(body["assets"]["ETH"], chain="evm:5", symbol="GOLD")
        body[section]["GOLD"] = copy.deepcopy(body[section]["ETH"])

    def remove(body: dict[str, Any]) -> None:
        del body[section]["USDX"]

    extra = failed(tampered(honest, add))
    assert "lists GOLD, which no holding" in extra[f"{section} assets"], extra
    missing = failed(tampered(honest, remove))
    assert "omits USDX" in missing[f"{section} assets"], missing


def test_utxo_outside_the_vault_set_is_refused() -> None:
    """A UTXO paying a script the vault set does not list fails 'vault UTXOs'."""
    utxo = SnapshotUtxo("aa" * 32, 0, 50_000, SCRIPT, BlockRef(100, "99" * 32))
    bitcoin = BitcoinSnapshot("regtest", BlockRef(110, "66" * 32), (utxo,))
    tree, totals = liabilities(("BTC", "ETH", "USDX"), {"budget:health": (1, 1, 1)}, NONCE)
    base = inputs(bitcoin=bitcoin, liabilities=tree, ledger_totals=totals)
    honest = signed(build_attestation(replace(base, vaults=snapshot_vaults(bitcoin, base.evm))))
    assert verify_bundle(honest.to_bytes()).status_of("vault UTXOs") is CheckStatus.OK
    reasons = failed(tampered(honest, lambda body: body["vaults"].update(bitcoin=[])))
    assert "is not in the vault set" in reasons["vault UTXOs"]


def test_lowercase_address_is_refused_by_the_grammar(honest: Bundle) -> None:
    """A lowercase address is no longer an accepted spelling."""

    def lower(body: dict[str, Any]) -> None:
        body["vaults"]["evm"][0]["safe_address"] = SAFE.lower()

    report = tampered(honest, lower)
    assert "EIP-55" in failed(report)["bundle format"]


def test_unsorted_vault_scripts_are_refused_by_the_grammar(honest: Bundle) -> None:
    """The vault set has one order: scripts sorted, each once."""
    report = tampered(honest, lambda body: body["vaults"].update(bitcoin=["bb", "aa"]))
    assert "not sorted" in failed(report)["bundle format"]


def test_producer_refuses_what_the_verifier_refuses() -> None:
    """The producer will not build a bundle with a relabelled token, an unregistered asset or a
    Safe outside the vault set."""
    evm = inputs().evm[0]
    relabelled = replace(
        evm, balances=(SafeBalanceHolding(CHAIN, SAFE, "ETH", TOKEN, 10**7), evm.balances[1])
    )
    with pytest.raises(AttestationError, match="registry's ETH is the native coin"):
        build_attestation(inputs(evm=(relabelled,)))
    registry = {k: v for k, v in inputs().assets.items() if k != "USDX"}
    with pytest.raises(AttestationError, match="USDX is used but not in the asset registry"):
        build_attestation(inputs(assets=registry))
    with pytest.raises(AttestationError, match="not in the vault set"):
        build_attestation(inputs(vaults=VaultSet((), ())))
    with pytest.raises(AttestationError, match="must have no contract"):
        AssetInfo(f"evm:{CHAIN}", AssetKind.NATIVE, TOKEN, 18, "ETH")


def _trust(honest: Bundle, **changes: Any) -> Any:
    document = trust_document(
        [TREASURY.identity()["public_key"]],
        [AUDITOR.identity()["public_key"]],
        RegistryPin(31338, "0x" + "11" * 20, "0x" + "22" * 20),
        assets=honest.body["assets"],
        vaults=honest.body["vaults"],
    )
    document.update(changes)
    return parse_trust(json.dumps(document))


def test_pinned_assets_and_vaults_refuse_a_redefined_registry(honest: Bundle) -> None:
    """Pinned, the registry and vault set must be the body's: a token redefined as ETH, or a
    Safe dropped from the set, each fails its own pinned line."""
    trust = _trust(honest)
    assert verify_bundle(honest.to_bytes(), anchors=trust).status_of("pinned assets") is (
        CheckStatus.OK
    )

    def redefine(body: dict[str, Any]) -> None:
        body["assets"]["ETH"] = dict(body["assets"]["USDX"], symbol="ETH")
        _balances(body)[0]["token_address"] = TOKEN

    def drop_safe(body: dict[str, Any]) -> None:
        body["vaults"]["evm"] = []

    for edit, line, reason in (
        (redefine, "pinned assets", "the bundle's ETH is"),
        (drop_safe, "pinned vaults", "omits the pinned Safe"),
    ):
        body = copy.deepcopy(dict(honest.body))
        edit(body)
        report = verify_bundle(signed(Bundle(body)).to_bytes(), anchors=trust)
        assert reason in failed(report)[line]


def test_trust_file_assets_and_vaults_are_read_strictly(honest: Bundle) -> None:
    """A misspelt field or a malformed entry in the pinned registry or vault set is refused."""
    assets = copy.deepcopy(dict(honest.body["assets"]))
    assets["ETH"]["decimal"] = 18
    with pytest.raises(TrustFileError, match="unknown field 'decimal'"):
        _trust(honest, assets=assets)
    with pytest.raises(TrustFileError, match="lists a script twice"):
        _trust(honest, vaults={"bitcoin": ["aa", "aa"], "evm": []})
    with pytest.raises(TrustFileError, match="contract must be null"):
        _trust(honest, assets={"ETH": dict(honest.body["assets"]["ETH"], contract=TOKEN)})
