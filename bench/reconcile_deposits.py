"""Benchmark: reconcile a Bitcoin vault holding 10,000 deposits made over 1,000 blocks.

The reconciler (watch-only wallet ``listsinceblock`` + booking every deposit into the ledger,
SQLite) against a naive scan of the same 1,000 blocks with ``getblock`` verbosity 2 that only
finds the vault's outputs (no booking at all), in the same run on the same node.
"""

from __future__ import annotations

import random
import secrets
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from custody.bitcoin import create_vault
from custody.ceremony import CeremonyPlan, ShareFiles, run_ceremony
from custody.devnet import BitcoinNode, find_binaries
from treasury import migrate
from treasury.db import make_engine, session_factory
from treasury.reconcile import BitcoinReader, Reconciler

BLOCKS = 1000
OUTPUTS_PER_TX = 10
DEPOSIT_SATS = 100_000
PROGRESS_EVERY_BLOCKS = 200
MAX_EXTRA_BLOCKS = 10
"""Blocks mined after funding, at most, to confirm a straggling funding transaction."""
INSTITUTIONS = ("Ministry of Finance", "National Bank", "Accounts Chamber")


def _vault(folder: Path, url: str, node: BitcoinNode) -> tuple[str, list[str]]:
    engine = make_engine(url)
    sessions = session_factory(engine)
    for number, institution in enumerate(INSTITUTIONS):
        with sessions.begin() as session:
            run_ceremony(
                session,
                CeremonyPlan(institution, ("A", "B", "C"), 2),
                ShareFiles(folder / "shares" / str(number)),
                "",
                random_bytes=secrets.token_bytes,
                rng=random.SystemRandom(),
            )
    with sessions.begin() as session:
        vault = create_vault(session, node.rpc, "bench", 2, list(INSTITUTIONS))
    engine.dispose()
    addresses = node.rpc.call("deriveaddresses", vault.receive_descriptor, [0, 999])
    return vault.wallet_name, list(addresses)


def _fund(node: BitcoinNode, addresses: list[str]) -> list[str]:
    """Make exactly ``BLOCKS * OUTPUTS_PER_TX`` deposits, each confirmed in a block we return.

    Every block is mined through ``BitcoinNode.mine``, which waits until the wallets have seen it
    (bitcoind notifies them asynchronously, and a lagging miner wallet once left a funding
    transaction out of the blocks counted here); every funding transaction is then checked to be
    confirmed in one of the returned blocks, mining more blocks only while one is not.
    """
    miner = node.rpc.wallet("miner")
    mine_to = node.miner_address()
    hashes: list[str] = []
    funding: list[str] = []
    amount = Decimal(DEPOSIT_SATS) / 10**8
    for block in range(BLOCKS):
        start = (block * OUTPUTS_PER_TX) % len(addresses)
        outputs = {address: amount for address in addresses[start : start + OUTPUTS_PER_TX]}
        funding.append(miner.call("sendmany", "", outputs))
        hashes += node.mine(1, mine_to)
        if (block + 1) % PROGRESS_EVERY_BLOCKS == 0:
            print(f"  funded {block + 1} of {BLOCKS} blocks", flush=True)
    for _ in range(MAX_EXTRA_BLOCKS):
        pending = [t for t in funding if _block_of(node, t) not in hashes]
        if not pending:
            break
        print(f"  {len(pending)} funding transaction(s) not yet mined; one more block", flush=True)
        hashes += node.mine(1, mine_to)
    else:
        raise RuntimeError(
            f"Funding transactions still unconfirmed after {MAX_EXTRA_BLOCKS} blocks."
        )
    return hashes


def _block_of(node: BitcoinNode, txid: str) -> str | None:
    """The hash of the block that confirmed ``txid`` in the miner wallet's view, if any."""
    found: str | None = node.rpc.wallet("miner").call("gettransaction", txid).get("blockhash")
    return found


def _naive_scan(node: BitcoinNode, hashes: list[str], addresses: set[str]) -> tuple[int, int]:
    found = total = 0
    for block_hash in hashes:
        block = node.rpc.call("getblock", block_hash, 2)
        for tx in block["tx"]:
            for output in tx["vout"]:
                if output["scriptPubKey"].get("address") in addresses:
                    found += 1
                    total += int(output["value"] * 10**8)
    return found, total


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    url = f"sqlite:///{folder / 'treasury.sqlite3'}"
    migrate.upgrade(url)
    with BitcoinNode(find_binaries(install=True).bitcoind) as node:
        node.mine(101)
        wallet_name, addresses = _vault(folder, url, node)
        print(f"making {BLOCKS * OUTPUTS_PER_TX} deposits over {BLOCKS} blocks...", flush=True)
        hashes = _fund(node, addresses)

        started = time.perf_counter()
        found, total = _naive_scan(node, hashes, set(addresses))
        naive_s = time.perf_counter() - started

        engine = make_engine(url)
        reconciler = Reconciler(
            session_factory(engine),
            bitcoin=BitcoinReader(node.rpc, progress=lambda line: print(f"  {line}", flush=True)),
            ethereum=None,
            progress=lambda line: print(f"  {line}", flush=True),
        )
        started = time.perf_counter()
        report = reconciler.run()
        ours_s = time.perf_counter() - started
        engine.dispose()
        booked = sum(v.booked for v in report.vaults)
        assert wallet_name
        assert booked == found == BLOCKS * OUTPUTS_PER_TX, (booked, found)
        assert report.status is not None
        assert report.status.value == "succeeded"
        assert total == booked * DEPOSIT_SATS

    print(f"deposits: {booked} over {BLOCKS} blocks")
    print(
        f"reconciler (read + book into the ledger): {ours_s:.2f} s, {booked / ours_s:,.0f} deposits/s"
    )
    print(
        f"naive getblock v2 scan (read only):      {naive_s:.2f} s, {found / naive_s:,.0f} deposits/s"
    )
    print(f"ratio reconciler / naive scan: {ours_s / naive_s:.2f}x the time")


if __name__ == "__main__":
    main()
