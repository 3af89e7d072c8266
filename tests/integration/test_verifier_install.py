"""The auditor's verifier installs alone into a fresh virtualenv (only ``./verifier``, from the
package index, pinned by requirements.lock) and its ``reserve-verify`` checks real anchored
attestations there, offline and against the live nodes, and refuses a tampered one.

The install runs in a thread while the attestations are produced on the devnets. If the index
cannot be reached the install fails, and so does this test: it never skips.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bundle_support import liabilities
from live_reserve_support import bitcoin_snapshot, fund_reserve, open_live_reserve, produce
from registry_support import asset_registry, snapshot_vaults

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

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_S = 300
"""Upper bound for creating the virtualenv and installing the verifier and its dependencies."""
RUN_TIMEOUT_S = 120
"""Upper bound for one run of ``reserve-verify``."""

NONCE = bytes(range(64, 96))
TREASURY_KEY = hashlib.sha256(b"install test treasury key").digest()
AUDITOR_KEY = hashlib.sha256(b"install test audit office key").digest()
PUBLISHER_KEY = hashlib.sha256(b"install test registry publisher").digest()
OWNER_KEYS = tuple(hashlib.sha256(f"install safe owner {i}".encode()).digest() for i in range(2))
SAFE_SALT_NONCE = 9_119
"""CREATE2 salt of this module's Safe, so it never collides with other tests' Safes."""
PUBLIC_ACCOUNT = "budget:health"
PRIVATE_ACCOUNT = "citizen:0042"
STEPS = (
    (("0.9", "0.4"), {PUBLIC_ACCOUNT: (50_000_000, 10**18), PRIVATE_ACCOUNT: (30_000_000, 0)}),
    (("0.2",), {PUBLIC_ACCOUNT: (70_000_000, 2 * 10**18), PRIVATE_ACCOUNT: (40_000_000, 10**17)}),
)
"""Per attestation: BTC sent to the reserve wallet, and liabilities (sats, wei) per account."""


def _install(folder: Path) -> Path:
    """Create a virtualenv without system site packages and install only ``./verifier`` into it.

    The verifier's folder is copied first (without build leftovers), so the wheel is built from
    the sources alone and nothing is written into the repository.
    """
    source = shutil.copytree(
        REPO / "verifier",
        folder.parent / "verifier",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    venv.create(folder, with_pip=True, system_site_packages=False)
    python = folder / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "-c", str(REPO / "requirements.lock"), str(source)],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, cwd=folder, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(
            f"pip could not install ./verifier into a fresh virtualenv:\n{result.stderr[-4000:]}"
        )
    return folder / "bin"


@pytest.fixture(scope="module")
def installing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[Path]]:
    """The fresh install, started at once in a thread; its result is the venv's ``bin`` folder."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(_install, tmp_path_factory.mktemp("auditor") / "venv")


@dataclass(frozen=True)
class Published:
    """Two anchored attestations written to files, the nodes' URLs, and one private package."""

    folder: Path
    first: Path
    second: Path
    package: Path
    nodes: list[str]


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    services_node: EvmNode,
) -> Published:
    """Two anchored attestations of a live reserve (the second follows the first)."""
    live = open_live_reserve(
        bitcoin_node, evm_node, services_node, owner_keys=OWNER_KEYS,
        safe_salt_nonce=SAFE_SALT_NONCE, publisher_key=PUBLISHER_KEY, wallet_prefix="install",
    )  # fmt: skip
    w3 = live.w3
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": live.payer, "to": live.safe, "value": 3 * 10**18})
    )
    bundles: list[Bundle] = []
    for step, (btc_amounts, rows) in enumerate(STEPS):
        fund_reserve(live, btc_amounts)
        block = w3.eth.get_block("latest")
        chain_id = w3.eth.chain_id
        balance = w3.eth.get_balance(live.safe, block["number"])
        tree, totals = liabilities(("BTC", "ETH"), rows, NONCE)
        inputs = AttestationInputs(
            sequence=step + 1,
            previous_digest=bundles[-1].digest.hex() if bundles else GENESIS_DIGEST_HEX,
            as_of=datetime(2026, 5, 1 + step, tzinfo=UTC),
            bitcoin=bitcoin_snapshot(live),
            evm=(
                EvmSnapshot(
                    chain_id,
                    BlockRef(block["number"], "0x" + bytes(block["hash"]).hex()),
                    (SafeBalanceHolding(chain_id, live.safe, "ETH", None, balance),),
                ),
            ),
            liabilities=tree,
            ledger_totals=totals,
            audit_head=AuditHead(step + 1, hashlib.sha256(bytes([step])).hexdigest()),
            registry=RegistryRef(live.services.eth.chain_id, live.registry, live.publisher.address),
            treasury=KeySigner(SignerRole.TREASURY, TREASURY_KEY),
            auditor=KeySigner(SignerRole.AUDITOR, AUDITOR_KEY),
            assets=asset_registry(chain_id),
            vaults=VaultSet((), ()),
            public_accounts=(PUBLIC_ACCOUNT,),
        )
        inputs = replace(inputs, vaults=snapshot_vaults(inputs.bitcoin, inputs.evm))
        bundles.append(produce(live, inputs))
    folder = tmp_path_factory.mktemp("published")
    first, second, package = folder / "first.json", folder / "second.json", folder / "proof.json"
    first.write_bytes(bundles[0].to_bytes())
    second.write_bytes(bundles[1].to_bytes())
    package.write_text(json.dumps(tree.package(PRIVATE_ACCOUNT)))
    nodes = live.nodes
    return Published(
        folder, first, second, package,
        ["--bitcoin-rpc", nodes.bitcoin or "", "--evm-rpc", nodes.evm or "",
         "--services-rpc", nodes.services or ""],
    )  # fmt: skip


def _verify(bin_dir: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the fresh install's ``reserve-verify``."""
    result = subprocess.run(
        [str(bin_dir / "reserve-verify"), *map(str, args)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=cwd, check=False,
    )  # fmt: skip
    log.info(
        "reserve-verify %s -> %s\n%s%s", args[:1], result.returncode, result.stdout, result.stderr
    )
    return result


def test_fresh_install_verifies_real_attestations_offline_and_live(
    installing: Future[Path], published: Published
) -> None:
    """In a virtualenv holding only the verifier, `reserve-verify` passes honest anchored
    attestations offline and against the live nodes (nothing failed, nothing skipped), with the
    chain and an account's private proof checked; a tampered bundle exits 1 naming the check."""
    bin_dir = installing.result(timeout=INSTALL_TIMEOUT_S)
    here = published.folder
    offline = _verify(bin_dir, published.first, "--offline", cwd=here)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert " 0 failed, " in offline.stdout
    assert "skipped  bitcoin anchor: no --bitcoin-rpc given" in offline.stdout
    live = _verify(
        bin_dir, published.second, "--previous", published.first, "--proof", published.package,
        *published.nodes, cwd=here,
    )  # fmt: skip
    assert live.returncode == 0, live.stdout + live.stderr
    assert live.stdout.rstrip().endswith(" ok, 0 failed, 0 skipped")
    for line in ("ok  bitcoin anchor:", "ok  services anchor:", "ok  attestation chain:",
                 f"ok  inclusion of {PRIVATE_ACCOUNT!r}:", "ok  reserve proof (BIP-127):"):  # fmt: skip
        assert line in live.stdout
    data = json.loads(published.second.read_bytes())
    data["body"]["snapshot"]["bitcoin"]["utxos"][0]["amount"] = "1"
    tampered = here / "tampered.json"
    tampered.write_text(json.dumps(data))
    refused = _verify(bin_dir, tampered, *published.nodes, cwd=here)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "failed  holdings root: The holdings root is altered" in refused.stdout


def test_fresh_install_holds_nothing_of_the_treasury(installing: Future[Path]) -> None:
    """The auditor's virtualenv has the verifier and its libraries, and no custody, treasury or
    reporting package (nor the treasury's distribution)."""
    bin_dir = installing.result(timeout=INSTALL_TIMEOUT_S)
    code = (
        "import importlib.util, importlib.metadata as md\n"
        "print(sorted(n for n in ('custody', 'treasury', 'reporting', 'reserve_verifier', "
        "'bitcoinlib', 'web3') if importlib.util.find_spec(n)))\n"
        "print(sorted(d.metadata['Name'] for d in md.distributions()))\n"
    )
    result = subprocess.run(
        [str(bin_dir / "python"), "-I", "-c", code],
        capture_output=True, text=True, check=True, cwd=bin_dir,
    )  # fmt: skip
    found, distributions = result.stdout.splitlines()
    assert found == str(["bitcoinlib", "reserve_verifier", "web3"])
    assert "reserve-verifier" in distributions
    assert "national-reserve" not in distributions
    assert sys.prefix not in result.stdout
