"""Test support for the site: a chain of real attestations built on the live nodes, and a browser.

``build_attestations`` funds a regtest wallet and a Safe v1.4.1 on anvil step by step, and after
each step builds an attestation of them, proves control (BIP-127 PSBT signed by the wallet, the
Safe owners' EIP-1271 signature), signs it as treasury and audit office, and anchors it on
Bitcoin and in a fresh registry on the services chain: what ``treasury verify`` checks in full.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from eth_abi.abi import decode, encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys import keys
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from playwright.sync_api import Browser, Playwright, sync_playwright
from web3 import Web3

from custody.devnet import BitcoinNode, EvmNode, btc_to_sats
from custody.ethereum.chain import EthChain
from custody.ethereum.deploy import (
    FALLBACK_HANDLER,
    PROXY_FACTORY,
    SAFE_L2_SINGLETON,
    deploy_safe_contracts,
)
from reporting.anchor import BitcoinWalletRPC, anchor, deploy_registry
from reporting.attestation import (
    AttestationInputs,
    AuditHead,
    BitcoinSnapshot,
    BlockRef,
    EvmSnapshot,
    KeySigner,
    RegistryRef,
    SignerRole,
    SnapshotUtxo,
    build_attestation,
    reserve_commitment_txid,
    sign_bundle,
)
from reporting.bundle import GENESIS_DIGEST_HEX, Bundle
from reporting.holdings import SafeBalanceHolding
from reporting.sumtree import LiabilityTree
from reporting.verify import Nodes

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


def _create_safe(w3: Web3, payer: str) -> str:
    owners = sorted(keys.PrivateKey(k).public_key.to_checksum_address() for k in OWNER_KEYS)
    setup = keccak(text="setup(address[],uint256,address,bytes,address,address,uint256,address)")[
        :4
    ]
    zero = "0x" + "00" * 20
    setup += encode(
        ["address[]", "uint256", "address", "bytes", "address", "address", "uint256", "address"],
        [owners, 2, zero, b"", FALLBACK_HANDLER.canonical_address, zero, 0, zero],
    )
    create = keccak(text="createProxyWithNonce(address,bytes,uint256)")[:4] + encode(
        ["address", "bytes", "uint256"],
        [SAFE_L2_SINGLETON.canonical_address, setup, SAFE_SALT_NONCE],
    )
    call = {"from": payer, "to": PROXY_FACTORY.canonical_address, "data": "0x" + create.hex()}
    (address,) = decode(["address"], w3.eth.call(call))  # type: ignore[arg-type]
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(call))  # type: ignore[arg-type]
    return str(to_checksum_address(address))


def _eip1271_signature(w3: Web3, safe: str, digest: bytes) -> bytes:
    message = encode(["bytes32"], [digest])
    data = keccak(text="getMessageHash(bytes)")[:4] + encode(["bytes"], [message])
    (message_hash,) = decode(["bytes32"], w3.eth.call({"to": safe, "data": "0x" + data.hex()}))  # type: ignore[typeddict-item]
    parts = []
    for key in sorted(
        OWNER_KEYS, key=lambda k: keys.PrivateKey(k).public_key.to_canonical_address()
    ):
        sig = keys.PrivateKey(key).sign_msg_hash(message_hash)
        parts.append(sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes((sig.v + 27,)))
    return b"".join(parts)


def _bitcoin_snapshot(node: BitcoinNode, reserve: BitcoinWalletRPC) -> BitcoinSnapshot:
    info = node.rpc.call("getblockchaininfo")
    utxos = []
    for entry in reserve.call("listunspent", 1):
        found = reserve.call("gettransaction", entry["txid"])
        utxos.append(
            SnapshotUtxo(
                txid=entry["txid"],
                vout=entry["vout"],
                amount_sats=btc_to_sats(entry["amount"]),
                script_pubkey=bytes.fromhex(entry["scriptPubKey"]),
                created=BlockRef(found["blockheight"], found["blockhash"]),
            )
        )
    return BitcoinSnapshot("regtest", BlockRef(info["blocks"], info["bestblockhash"]), tuple(utxos))


def _reserve_psbt(node: BitcoinNode, reserve: BitcoinWalletRPC, bundle: Bundle) -> str:
    utxos = bundle.body["snapshot"]["bitcoin"]["utxos"]
    total = sum(int(u["amount"]) for u in utxos)
    psbt = node.rpc.call(
        "createpsbt",
        [{"txid": reserve_commitment_txid(bundle.digest), "vout": 0}]
        + [{"txid": u["txid"], "vout": u["vout"]} for u in utxos],
        [{reserve.call("getnewaddress"): str(Decimal(total) / 10**8)}],
    )
    processed = reserve.call("walletprocesspsbt", psbt, True, "ALL", True, True)
    return str(processed["psbt"])


def build_attestations(
    bitcoin_node: BitcoinNode, evm_node: EvmNode, services_node: EvmNode
) -> Attestations:
    """Three anchored attestations of a growing reserve (see ``STEPS``), in chain order."""
    w3 = Web3(Web3.HTTPProvider(evm_node.rpc_url))
    payer = w3.eth.accounts[0]
    deploy_safe_contracts(EthChain(evm_node.rpc), payer)
    safe = _create_safe(w3, payer)
    services = Web3(Web3.HTTPProvider(services_node.rpc_url))
    publisher: LocalAccount = Account.from_key(PUBLISHER_KEY)
    services.provider.make_request("anvil_setBalance", [publisher.address, hex(10**20)])  # type: ignore[arg-type]
    registry = deploy_registry(services, publisher, publisher.address)
    name = f"site-reserve-{uuid.uuid4().hex[:8]}"
    bitcoin_node.rpc.call("createwallet", name)
    bitcoin_node.miner_address()
    reserve = BitcoinWalletRPC(
        bitcoin_node.rpc_url, bitcoin_node.rpc_user, bitcoin_node.rpc_password, name
    )
    miner = BitcoinWalletRPC(
        bitcoin_node.rpc_url, bitcoin_node.rpc_user, bitcoin_node.rpc_password, "miner"
    )
    bundles: list[Bundle] = []
    tree = None
    for step, (btc_amounts, wei, liabilities) in enumerate(STEPS):
        for amount in btc_amounts:
            miner.call("sendtoaddress", reserve.call("getnewaddress"), amount)
        bitcoin_node.mine(1)
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction({"from": payer, "to": safe, "value": wei})
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
        tree = LiabilityTree.from_rows(ASSETS, list(liabilities.items()), NONCE)
        totals = {
            asset: sum(row[i] for row in liabilities.values()) for i, asset in enumerate(ASSETS)
        }
        inputs = AttestationInputs(
            sequence=step + 1,
            previous_digest=bundles[-1].digest.hex() if bundles else GENESIS_DIGEST_HEX,
            as_of=FIRST_AS_OF + timedelta(days=30 * step),
            bitcoin=_bitcoin_snapshot(bitcoin_node, reserve),
            evm=(evm,),
            liabilities=tree,
            ledger_totals=totals,
            audit_head=AuditHead(10 * (step + 1), hashlib.sha256(bytes([step])).hexdigest()),
            registry=RegistryRef(services.eth.chain_id, registry, publisher.address),
            treasury=KeySigner(SignerRole.TREASURY, TREASURY_KEY),
            auditor=KeySigner(SignerRole.AUDITOR, AUDITOR_KEY),
            public_accounts=(PUBLIC_ACCOUNT,),
        )
        bundle = build_attestation(inputs)
        bundle = bundle.with_proof(
            "bitcoin_reserve_proof", {"psbt": _reserve_psbt(bitcoin_node, reserve, bundle)}
        )
        bundle = bundle.with_proof(
            "eip1271",
            [{"chain_id": chain_id, "safe_address": safe,
              "signature": _eip1271_signature(w3, safe, bundle.digest).hex()}],
        )  # fmt: skip
        bundle = sign_bundle(sign_bundle(bundle, inputs.treasury), inputs.auditor)
        bundle = anchor(
            bundle, miner, services, registry, publisher,
            await_bitcoin_confirmation=lambda _txid: bitcoin_node.mine(1) and None,
        )  # fmt: skip
        bundles.append(bundle)
    assert tree is not None
    nodes = Nodes(
        bitcoin=f"http://{bitcoin_node.rpc_user}:{bitcoin_node.rpc_password}@127.0.0.1:{bitcoin_node.rpc_port}",
        evm=evm_node.rpc_url,
        services=services_node.rpc_url,
    )
    return Attestations(
        tuple(bundles), nodes, tree.package(PRIVATE_ACCOUNT), tree.leaf(PUBLIC_ACCOUNT).salt.hex()
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
