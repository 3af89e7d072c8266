"""Benchmark the liability sum tree: build, every proof, and proof checks, against a hash floor.

Each size runs in a fresh child process so its peak memory (ru_maxrss, input included) is its own.
Beside the build it times, in the same process, bare ``hashlib.sha256`` calls over the same number
of node hashes (the floor the issue asks for) and over every SHA-256 the build computes (HMAC
salts, leaves, nodes), so the ratio shows what the bookkeeping around the hashing costs.

    .venv/bin/python bench/merkle_sum_tree.py            # 100k and 1M accounts
    .venv/bin/python bench/merkle_sum_tree.py --with-10m # also 10M accounts (about a minute)

Targets (issue 7): 1M accounts in under 5 s, 10M in under 60 s, peak memory under 4 GB,
verification under 1 ms a proof. Not part of the test verdict.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

from reporting.merkle.encoding import level_size, record_width
from reporting.merkle.proof import InclusionProof, verify_liability_proof
from reporting.sumtree import LiabilityTree

ASSETS = ("BTC", "ETH")
SEED = 7
VERIFY_COUNT = 10_000
SATS_MAX = 50 * 100_000_000
WEI_BITS = 72
"""ETH balances are drawn below 2**72 wei, so most exceed 64 bits and take the 128-bit path."""
FLOOR_BUFFER_MESSAGES = 1 << 16
TARGET_SECONDS = {1_000_000: 5.0, 10_000_000: 60.0}
TARGET_PEAK_BYTES = 4 * 1024**3
TARGET_VERIFY_SECONDS = 1e-3


def _inputs(count: int) -> tuple[list[str], list[Any]]:
    """Draw ``count`` account ids and their BTC (numpy) and ETH (Python int) columns."""
    rng = np.random.default_rng(SEED)
    draw = random.Random(SEED)  # noqa: S311  (benchmark input, not a secret)
    account_ids = [f"holder-{number:010d}" for number in range(count)]
    btc = rng.integers(0, SATS_MAX, count, dtype=np.uint64)
    eth = [draw.getrandbits(WEI_BITS) for _ in range(count)]
    return account_ids, [btc, eth]


def _bare_sha256_seconds(message_lengths: list[tuple[int, int]]) -> float:
    """Time one bare sha256 call per (count, length) message, cycling over a random buffer."""
    elapsed = 0.0
    sha256 = hashlib.sha256
    for count, length in message_lengths:
        buffer = memoryview(np.random.default_rng(SEED).bytes(FLOOR_BUFFER_MESSAGES * length))
        start = time.perf_counter()
        done = 0
        while done < count:
            batch = min(count - done, FLOOR_BUFFER_MESSAGES)
            for offset in range(0, batch * length, length):
                sha256(buffer[offset : offset + length]).digest()
            done += batch
        elapsed += time.perf_counter() - start
    return elapsed


def run_one(count: int) -> dict[str, Any]:
    """Build, prove and verify ``count`` accounts; return the measurements."""
    account_ids, columns = _inputs(count)
    input_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    nonce = bytes(range(32))

    start = time.perf_counter()
    tree = LiabilityTree.build(ASSETS, account_ids, columns, nonce)
    build_seconds = time.perf_counter() - start

    start = time.perf_counter()
    proof_bytes_total = 0
    for _, proof_bytes in tree.iter_proof_bytes():
        proof_bytes_total += len(proof_bytes)
    proofs_seconds = time.perf_counter() - start
    assert proof_bytes_total == count * tree.proof_size_bytes

    rng = random.Random(SEED)  # noqa: S311  (which leaves to check, not a secret)
    chosen = [rng.randrange(count) for _ in range(VERIFY_COUNT)]
    cases = []
    for index in chosen:
        leaf = tree.leaf(account_ids[tree.input_row(index)])
        cases.append((leaf, tree.proof(index).to_bytes()))
    start = time.perf_counter()
    for leaf, proof_bytes in cases:
        verify_liability_proof(tree.root, leaf, InclusionProof.from_bytes(proof_bytes, len(ASSETS)))
    verify_seconds = (time.perf_counter() - start) / VERIFY_COUNT

    node_hashes = sum(level_size(count, level) for level in range(1, tree.depth + 1))
    node_preimage = 2 + 2 * record_width(len(ASSETS))
    floor_nodes = _bare_sha256_seconds([(node_hashes, node_preimage)])
    id_length = len(account_ids[0].encode())
    floor_all = floor_nodes + _bare_sha256_seconds(
        [
            (count, 64 + 2 + id_length),
            (count, 64 + 32),
            (count, 2 + 32 + 2 + id_length + 16 * len(ASSETS)),
        ]
    )
    return {
        "accounts": count,
        "build_seconds": build_seconds,
        "proofs_seconds": proofs_seconds,
        "verify_seconds_per_proof": verify_seconds,
        "node_hashes": node_hashes,
        "floor_nodes_seconds": floor_nodes,
        "floor_all_seconds": floor_all,
        "proof_size_bytes": tree.proof_size_bytes,
        "tree_storage_bytes": tree.storage_bytes,
        "input_rss_bytes": input_rss_bytes,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _report(result: dict[str, Any]) -> None:
    """Print one size's measurements and its targets."""
    count = result["accounts"]
    total = result["build_seconds"] + result["proofs_seconds"]
    print(f"== {count:,} accounts, assets {', '.join(ASSETS)}")
    print(
        f"   build tree        {result['build_seconds']:8.2f} s   "
        f"({count / result['build_seconds']:,.0f} leaves/s)"
    )
    print(
        f"   all proofs        {result['proofs_seconds']:8.2f} s   "
        f"({count / result['proofs_seconds']:,.0f} proofs/s, {result['proof_size_bytes']} bytes each)"
    )
    print(f"   build + proofs    {total:8.2f} s")
    print(
        f"   floor: bare sha256 x {result['node_hashes']:,} node hashes   {result['floor_nodes_seconds']:6.2f} s"
        f"   (build / floor = {result['build_seconds'] / result['floor_nodes_seconds']:.1f}x)"
    )
    print(
        f"   floor: bare sha256 x every hash of the build (salts, leaves, nodes) {result['floor_all_seconds']:6.2f} s"
        f"   (build / floor = {result['build_seconds'] / result['floor_all_seconds']:.2f}x)"
    )
    print(
        f"   verify            {result['verify_seconds_per_proof'] * 1e6:8.1f} us a proof "
        f"(parse + check, mean of {VERIFY_COUNT:,})"
    )
    print(
        f"   memory: peak RSS {result['peak_rss_bytes'] / 1024**3:.2f} GiB "
        f"(input alone {result['input_rss_bytes'] / 1024**3:.2f} GiB), "
        f"tree kept {result['tree_storage_bytes'] / 1024**3:.2f} GiB"
    )
    if count in TARGET_SECONDS:
        verdicts = [
            (f"build + proofs < {TARGET_SECONDS[count]:.0f} s", total < TARGET_SECONDS[count]),
            ("peak memory < 4 GiB", result["peak_rss_bytes"] < TARGET_PEAK_BYTES),
            ("verify < 1 ms a proof", result["verify_seconds_per_proof"] < TARGET_VERIFY_SECONDS),
        ]
        print(
            "   targets: "
            + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in verdicts)
        )


def main() -> None:
    """Run each size in a child process and print its measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--with-10m", action="store_true", help="also run 10,000,000 accounts")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        print(json.dumps(run_one(arguments.one)))
        return
    sizes = [100_000, 1_000_000] + ([10_000_000] if arguments.with_10m else [])
    print(
        f"cpu cores: {len(os.sched_getaffinity(0))}; python {sys.version.split()[0]}; numpy {np.__version__}"
    )
    for count in sizes:
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(count)],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode:
            print(child.stderr, file=sys.stderr)
            raise SystemExit(f"the {count:,}-account run failed")
        _report(json.loads(child.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
