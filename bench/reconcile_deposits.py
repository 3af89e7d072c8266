"""Benchmark: reconcile a Bitcoin vault holding 10,000 deposits made over 1,000 blocks.

The reconciler (watch-only wallet ``listsinceblock`` + booking every deposit into the ledger,
SQLite) against the floor, a naive scan of the same 1,000 blocks that only finds the vault's
outputs and books nothing: one ``getblockhash`` and one ``getblock`` verbosity 2 per block, in the
same run on the same node. The target is the reconciler within 2x of the floor.

The deposits are made deterministically, so the run always measures exactly 10,000: the miner
wallet first splits one mature coinbase into one confirmed coin per funding transaction; each
funding transaction then spends exactly its own coin (no wallet coin selection, no chain of
unconfirmed change, no mempool limit), and each is mined alone in its own block with
``generateblock``. The deposits are counted in the vault's wallet before anything is timed; a
bench that could not make them exits non-zero. A missed target still exits 0.

    .venv/bin/python bench/reconcile_deposits.py
"""

from __future__ import annotations

import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from custody.bitcoin import create_vault
from custody.bitcoin.rpc import BitcoinRPC, RPCCall, btc_to_sats, sats_to_btc
from custody.ceremony import CeremonyPlan, ShareFiles, run_ceremony
from custody.devnet import BitcoinNode, find_binaries
from treasury import migrate
from treasury.db import make_engine, session_factory
from treasury.reconcile import BitcoinReader, Reconciler

BLOCKS = 1000
OUTPUTS_PER_TX = 10
DEPOSITS = BLOCKS * OUTPUTS_PER_TX
DEPOSIT_SATS = 100_000
FUNDING_FEE_RATE_SAT_VB = 2
FUNDING_FEE_ALLOWANCE_SATS = 10_000
"""What each funding coin holds above its deposits: a 10-output transaction at 2 sat/vB pays
under 1,000 sats, the rest comes back as change."""
COINBASE_MATURITY_BLOCKS = 100
SETUP_BATCH_CALLS = 100
"""Calls per batch while funding (new addresses): each batch ends well inside the RPC client's
timeout even on a loaded machine."""
PROGRESS_EVERY_BLOCKS = 200
TARGET_RATIO = 2.0
"""The reconciler may take at most this many times the naive scan's time."""
INSTITUTIONS = ("Ministry of Finance", "National Bank", "Accounts Chamber")


class BenchSetupError(RuntimeError):
    """The bench could not make exactly its deposits: nothing it would time means anything."""


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


def _values(rpc: BitcoinRPC, calls: list[RPCCall]) -> list[Any]:
    """Every call's result, in batches of ``SETUP_BATCH_CALLS``; the first failed call raises."""
    values: list[Any] = []
    for start in range(0, len(calls), SETUP_BATCH_CALLS):
        values += [r.value() for r in rpc.batch(calls[start : start + SETUP_BATCH_CALLS])]
    return values


def _funding_coins(node: BitcoinNode, mine_to: str) -> list[dict[str, Any]]:
    """One confirmed miner coin per funding transaction, split from one mature coinbase."""
    miner = node.rpc.wallet("miner")
    addresses = _values(miner, [RPCCall("getnewaddress", ("", "bech32"))] * BLOCKS)
    coin = sats_to_btc(OUTPUTS_PER_TX * DEPOSIT_SATS + FUNDING_FEE_ALLOWANCE_SATS)
    split = miner.call("sendmany", "", {str(address): coin for address in addresses})
    node.rpc.call("generateblock", mine_to, [split])
    node.sync_wallets()
    detail = miner.call("gettransaction", split)
    if int(detail["confirmations"]) != 1:
        raise BenchSetupError(f"The coin split {split} was not confirmed by its block.")
    outputs = miner.call("getrawtransaction", split, True, detail["blockhash"])["vout"]
    ours = set(addresses)
    return [
        {"txid": split, "vout": int(out["n"])}
        for out in outputs
        if out["scriptPubKey"].get("address") in ours
    ]


def _fund(node: BitcoinNode, addresses: list[str]) -> list[int]:
    """Make exactly ``DEPOSITS`` deposits, ``OUTPUTS_PER_TX`` per block; the blocks' heights.

    Each funding transaction spends only its own confirmed coin and is mined alone in its own
    block (``generateblock`` with that one transaction), so none can be left out or delayed.
    """
    mine_to = node.miner_address()
    coins = _funding_coins(node, mine_to)
    if len(coins) != BLOCKS:
        raise BenchSetupError(f"The coin split made {len(coins)} coins, not {BLOCKS}.")
    miner = node.rpc.wallet("miner")
    amount = sats_to_btc(DEPOSIT_SATS)
    first = int(node.rpc.call("getblockcount")) + 1
    for block, coin in enumerate(coins):
        start = (block * OUTPUTS_PER_TX) % len(addresses)
        outputs = {address: amount for address in addresses[start : start + OUTPUTS_PER_TX]}
        options = {"inputs": [coin], "add_inputs": False, "fee_rate": FUNDING_FEE_RATE_SAT_VB}
        txid = str(miner.call("send", outputs, None, "unset", None, options)["txid"])
        mined = node.rpc.call("generateblock", mine_to, [txid])["hash"]
        if node.rpc.call("getblock", mined, 1)["tx"][1:] != [txid]:
            raise BenchSetupError(f"Block {mined} does not hold just {txid}.")
        if (block + 1) % PROGRESS_EVERY_BLOCKS == 0:
            print(f"  funded {block + 1} of {BLOCKS} blocks", flush=True)
    node.sync_wallets()
    return list(range(first, first + BLOCKS))


def _count_deposits(node: BitcoinNode, wallet_name: str, tip: int) -> None:
    """Check, before timing, that the vault's wallet holds exactly the deposits made."""
    wallet = node.rpc.wallet(wallet_name)
    seen = int(wallet.call("getwalletinfo")["lastprocessedblock"]["height"])
    coins = wallet.call("listunspent", 1)
    amounts = {btc_to_sats(coin["amount"]) for coin in coins}
    if seen != tip or len(coins) != DEPOSITS or amounts != {DEPOSIT_SATS}:
        raise BenchSetupError(
            f"The vault's wallet holds {len(coins)} coins of {sorted(amounts)} sats at block "
            f"{seen}; the bench made {DEPOSITS} of {DEPOSIT_SATS} sats up to block {tip}."
        )


def _naive_scan(node: BitcoinNode, heights: list[int], addresses: set[str]) -> tuple[int, int]:
    """The floor: each block by height, decoded, its outputs to the vault's addresses picked."""
    found = total = 0
    for height in heights:
        block = node.rpc.call("getblock", node.rpc.call("getblockhash", height), 2)
        for tx in block["tx"]:
            for output in tx["vout"]:
                if output["scriptPubKey"].get("address") in addresses:
                    found += 1
                    total += btc_to_sats(output["value"])
    return found, total


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    url = f"sqlite:///{folder / 'treasury.sqlite3'}"
    migrate.upgrade(url)
    with BitcoinNode(find_binaries(install=True).bitcoind) as node:
        node.mine(COINBASE_MATURITY_BLOCKS + 1)
        wallet_name, addresses = _vault(folder, url, node)
        print(f"making {DEPOSITS} deposits over {BLOCKS} blocks...", flush=True)
        try:
            heights = _fund(node, addresses)
            _count_deposits(node, wallet_name, heights[-1])
        except BenchSetupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(
            f"  {DEPOSITS} deposits counted in the vault's wallet, blocks {heights[0]}-{heights[-1]}"
        )

        started = time.perf_counter()
        found, total = _naive_scan(node, heights, set(addresses))
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
    succeeded = report.status is not None and report.status.value == "succeeded"
    if not (succeeded and booked == found == DEPOSITS and total == DEPOSITS * DEPOSIT_SATS):
        print(
            f"error: the reconciler booked {booked} (run {report.status}) and the scan found "
            f"{found} deposits ({total} sats); the bench made {DEPOSITS}.",
            file=sys.stderr,
        )
        return 1

    ratio = ours_s / naive_s
    print(f"deposits: {booked} over {BLOCKS} blocks")
    print(
        f"floor, naive scan (getblockhash + getblock v2 per block, read only): {naive_s:.2f} s, "
        f"{found / naive_s:,.0f} deposits/s"
    )
    print(
        f"reconciler (read + book into the ledger, SQLite): {ours_s:.2f} s, "
        f"{booked / ours_s:,.0f} deposits/s"
    )
    print(f"ratio reconciler / naive scan: {ratio:.2f}x the time")
    verdict = "met" if ratio <= TARGET_RATIO else "missed"
    print(f"target reconcile vs naive scan: {verdict} ({ratio:.2f}x vs <= {TARGET_RATIO:g}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
