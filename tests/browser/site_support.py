"""Test support for the site: a chain of real attestations built on the live nodes, and a browser.

``build_attestations`` funds a regtest wallet and a Safe v1.4.1 on anvil step by step, and after
each step builds an attestation of them, proves control (BIP-127 PSBT signed by the wallet, the
Safe owners' EIP-1271 signature), signs it as treasury and audit office, and anchors it on
Bitcoin and in a fresh registry on the services chain: what ``treasury verify`` checks in full.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bundle_support import liabilities
from live_reserve_support import bitcoin_snapshot, fund_reserve, open_live_reserve, produce
from playwright.sync_api import Browser, Playwright, sync_playwright
from registry_support import asset_registry, snapshot_vaults
from reserve_verifier import Nodes

from custody.devnet import BitcoinNode, EvmNode
from reporting.attestation import (
    AttestationInputs,
    AuditHead,
    BlockRef,
    EvmSnapshot,
    KeySigner,
    RegistryRef,
    SignerRole,
    VaultSet,
)
from reporting.bundle import GENESIS_DIGEST_HEX, Bundle
from reporting.holdings import SafeBalanceHolding

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""Debian's Chromium, driven by Playwright without `playwright install` and without any
background traffic of its own (so the no-network assertions see only the pages' requests)."""

SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
"""Git-ignored; every browser test leaves its pages here for people to look at."""

NONCE = bytes(range(32, 64))
TREASURY_KEY = hashlib.sha256(b"site test treasury key").digest()
AUDITOR_KEY = hashlib.sha256(b"site test audit office key").digest()
PUBLISHER_KEY = hashlib.sha256(b"site test registry publisher").digest()
OWNER_KEYS = tuple(hashlib.sha256(f"site safe owner {i}".encode()).digest() for i in range(2))
SAFE_SALT_NONCE = 8_008
"""CREATE2 salt of this module's Safe, so it never collides with other tests' Safes."""
PUBLIC_ACCOUNT = "budget:defence"
PRIVATE_ACCOUNT = "citizen:0001"
FIRST_AS_OF = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ASSETS = ("BTC", "ETH")

STEPS: tuple[tuple[tuple[str, ...], int, dict[str, tuple[int, int]]], ...] = (
    (("1.0", "0.5"), 4 * 10**18,
     {PUBLIC_ACCOUNT: (60_000_000, 10**18), PRIVATE_ACCOUNT: (40_000_000, 10**18),
      "citizen:0002": (20_000_000, 5 * 10**17)}),
    (("0.8",), 2 * 10**18,
     {PUBLIC_ACCOUNT: (90_000_000, 2 * 10**18), PRIVATE_ACCOUNT: (50_000_000, 10**18),
      "citizen:0002": (25_000_000, 10**18), "citizen:0003": (10_000_000, 0)}),
    (("0.4",), 10**18,
     {PUBLIC_ACCOUNT: (120_000_000, 3 * 10**18), PRIVATE_ACCOUNT: (70_000_000, 2 * 10**18),
      "citizen:0002": (30_000_000, 10**18), "citizen:0003": (15_000_000, 5 * 10**17)}),
)  # fmt: skip
"""Per attestation: BTC sent to the reserve wallet, wei sent to the Safe, liabilities (sats, wei)."""


@dataclass(frozen=True)
class Attestations:
    """The built chain, the nodes to verify it against, and one account's private package."""

    bundles: tuple[Bundle, ...]
    nodes: Nodes
    private_package: dict[str, object]
    public_salt: str


def build_attestations(
    bitcoin_node: BitcoinNode, evm_node: EvmNode, services_node: EvmNode
) -> Attestations:
    """Three anchored attestations of a growing reserve (see ``STEPS``), in chain order."""
    live = open_live_reserve(
        bitcoin_node, evm_node, services_node, owner_keys=OWNER_KEYS,
        safe_salt_nonce=SAFE_SALT_NONCE, publisher_key=PUBLISHER_KEY, wallet_prefix="site-reserve",
    )  # fmt: skip
    w3, safe = live.w3, live.safe
    bundles: list[Bundle] = []
    tree = None
    for step, (btc_amounts, wei, rows) in enumerate(STEPS):
        fund_reserve(live, btc_amounts)
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction({"from": live.payer, "to": safe, "value": wei})
        )
        block = w3.eth.get_block("latest")
        chain_id = w3.eth.chain_id
        evm = EvmSnapshot(
            chain_id,
            BlockRef(block["number"], "0x" + bytes(block["hash"]).hex()),
            (
                SafeBalanceHolding(
                    chain_id, safe, "ETH", None, w3.eth.get_balance(safe, block["number"])
                ),
            ),
        )
        tree, totals = liabilities(ASSETS, rows, NONCE)
        inputs = AttestationInputs(
            sequence=step + 1,
            previous_digest=bundles[-1].digest.hex() if bundles else GENESIS_DIGEST_HEX,
            as_of=FIRST_AS_OF + timedelta(days=30 * step),
            bitcoin=bitcoin_snapshot(live),
            evm=(evm,),
            liabilities=tree,
            ledger_totals=totals,
            audit_head=AuditHead(10 * (step + 1), hashlib.sha256(bytes([step])).hexdigest()),
            registry=RegistryRef(live.services.eth.chain_id, live.registry, live.publisher.address),
            treasury=KeySigner(SignerRole.TREASURY, TREASURY_KEY),
            auditor=KeySigner(SignerRole.AUDITOR, AUDITOR_KEY),
            assets=asset_registry(chain_id),
            vaults=VaultSet((), ()),
            public_accounts=(PUBLIC_ACCOUNT,),
        )
        inputs = replace(inputs, vaults=snapshot_vaults(inputs.bitcoin, inputs.evm))
        bundles.append(produce(live, inputs))
    assert tree is not None
    return Attestations(
        tuple(bundles),
        live.nodes,
        tree.package(PRIVATE_ACCOUNT),
        tree.leaf(PUBLIC_ACCOUNT).salt.hex(),
    )


def write_bundles(bundles: tuple[Bundle, ...], folder: Path) -> Path:
    """Each bundle's exact bytes as ``attestation-N.json`` (what `treasury attest --out` writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for bundle in bundles:
        (folder / f"attestation-{bundle.sequence}.json").write_bytes(bundle.to_bytes())
    return folder


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium under Playwright (never a browser Playwright downloads)."""
    playwright: Playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
