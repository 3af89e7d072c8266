"""Benchmark the liability sum tree: build, every proof, and proof checks, against a hash floor.

Each size runs in a fresh child process so its peak memory is its own. Beside the build it
times, in the same process, bare ``hashlib.sha256`` calls on one core over every SHA-256 the
build computes (HMAC salts, leaves, nodes): the floor, so the ratio shows what the bookkeeping
around the hashing costs (below 1 when the build's workers use more than one core).

    .venv/bin/python bench/merkle_sum_tree.py            # 100k and 1M accounts
    .venv/bin/python bench/merkle_sum_tree.py --with-10m # also 10M accounts

"All proofs" is every leaf's serialised proof, produced batch by batch into one buffer
(``LiabilityTree.iter_proof_batches``), as a writer of proof files consumes them. Peak memory is
the largest sum of the proportional set sizes (PSS) of the run's process and its forked hashing
workers, sampled every 20 ms by a separate process (so the sampling costs the measured
processes no CPU time), or the process's own peak RSS if larger.

Targets (issues 7, 14 and 18) end the output, one ``target <name>: met|missed (...)`` line
each. They are measurements, not a verdict: the script exits 0 either way, unless it breaks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from reporting.forked_workers import available_cores
from reporting.merkle.encoding import level_size, record_width
from reporting.merkle.proof import (
    InclusionProof,
    verify_liability_proof,
    verify_liability_proof_bytes,
)
from reporting.sumtree import LiabilityTree

ASSETS = ("BTC", "ETH")
SEED = 7
VERIFY_COUNT = 10_000
VERIFY_ROUNDS = 10
"""Proof verification is timed in rounds, each followed by its floor; the median round is kept.
One timing of all 10,000 proofs (0.3 s) moved from 28 to 51 us a proof between runs of the same
code, as the bare hashing floor did (10 to 19 us): the core of this shared machine slows for
moments, and a median of interleaved rounds is not thrown by one such moment."""
SATS_MAX = 50 * 100_000_000
WEI_BITS = 72
"""ETH balances are drawn below 2**72 wei, so most exceed 64 bits and take the 128-bit path."""
FLOOR_BUFFER_MESSAGES = 1 << 16
MEMORY_SAMPLE_SECONDS = 0.02
"""Interval between memory samples: the large arrays live for tenths of a second or more."""
ONE_MILLION = 1_000_000
TEN_MILLION = 10_000_000
TARGET_1M_SECONDS = 2.5
TARGET_1M_ISSUE_7_SECONDS = 5.0
TARGET_10M_SECONDS = 30.0
TARGET_BUILD_VS_FLOOR = 1.3
TARGET_PEAK_BYTES = 4 * 1024**3
TARGET_VERIFY_SECONDS = 30e-6


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


class _MemorySampler:
    """Sample the PSS of a process and its children from a separate process; keep the peak.

    A separate process rather than a thread: a sampling thread took the measured process's GIL
    every few milliseconds and was charged the kernel's page-table walks of ``smaps_rollup``,
    which added about 0.8 s of CPU to a 1M build and 0.35 s to its proofs.
    """

    def __init__(self) -> None:
        """Start the sampler process on this process."""
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--sample-memory", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._process.stdout is None or self._process.stdout.readline().strip() != "ready":
            raise SystemExit("the memory sampler did not start")

    def stop(self) -> int:
        """Stop sampling and return the peak sum of PSS, in bytes."""
        output, _ = self._process.communicate("stop\n")
        return int(output.strip() or 0)


def _sample_memory(pid: int) -> None:
    """Print the peak PSS sum of ``pid`` and its children (but this one) once told to stop."""
    peak = 0
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    own = os.getpid()
    print("ready", flush=True)
    while not stop.is_set():
        members = [pid, *(child for child in _children(pid) if child != own)]
        peak = max(peak, sum(_pss_bytes(member) for member in members))
        time.sleep(MEMORY_SAMPLE_SECONDS)
    print(peak)


def _children(pid: int) -> list[int]:
    """Return the process ids of ``pid``'s children (forked hashing workers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _pss_bytes(pid: int) -> int:
    """Return a process's proportional set size (shared pages split between sharers)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def _cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the forked hashing workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def run_one(count: int) -> dict[str, Any]:
    """Build, prove and verify ``count`` accounts; return the measurements."""
    account_ids, columns = _inputs(count)
    input_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    nonce = bytes(range(32))
    sampler = _MemorySampler()

    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    tree = LiabilityTree.build(ASSETS, account_ids, columns, nonce)
    build_seconds = time.perf_counter() - start
    build_cpu_seconds = _cpu_seconds() - cpu_start

    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    proof_bytes_total = 0
    for _, proofs in tree.iter_proof_batches():
        proof_bytes_total += proofs.nbytes
    proofs_seconds = time.perf_counter() - start
    proofs_cpu_seconds = _cpu_seconds() - cpu_start
    peak_pss_bytes = sampler.stop()
    if proof_bytes_total != count * tree.proof_size_bytes:
        raise SystemExit(f"the proofs came to {proof_bytes_total} bytes, not one per leaf")

    rng = random.Random(SEED)  # noqa: S311  (which leaves to check, not a secret)
    chosen = [rng.randrange(count) for _ in range(VERIFY_COUNT)]
    cases = []
    for index in chosen:
        leaf = tree.leaf(account_ids[tree.input_row(index)])
        cases.append((leaf, tree.proof(index).to_bytes()))
    id_length = len(account_ids[0].encode())
    leaf_preimage = 2 + 32 + 2 + id_length + 16 * len(ASSETS)
    node_preimage = 2 + 2 * record_width(len(ASSETS))
    verify_rounds: list[float] = []
    floor_rounds: list[float] = []
    per_round = VERIFY_COUNT // VERIFY_ROUNDS
    for first in range(0, VERIFY_COUNT, per_round):
        start = time.perf_counter()
        for leaf, proof_bytes in cases[first : first + per_round]:
            verify_liability_proof_bytes(tree.root, leaf, proof_bytes)
        verify_rounds.append((time.perf_counter() - start) / per_round)
        # A verification's own hashing (its leaf hash and one node hash per level), bare, right
        # after: the floor at the same moment, so a passing slowdown of this shared machine's
        # core weighs on both.
        floor_rounds.append(
            _bare_sha256_seconds(
                [(per_round, leaf_preimage), (per_round * tree.depth, node_preimage)]
            )
            / per_round
        )
    verify_seconds = statistics.median(verify_rounds)
    verify_floor = statistics.median(floor_rounds)
    start = time.perf_counter()
    for leaf, proof_bytes in cases:
        verify_liability_proof(tree.root, leaf, InclusionProof.from_bytes(proof_bytes, len(ASSETS)))
    verify_objects_seconds = (time.perf_counter() - start) / VERIFY_COUNT

    node_hashes = sum(level_size(count, level) for level in range(1, tree.depth + 1))
    cpu_start = _cpu_seconds()
    floor_nodes = _bare_sha256_seconds([(node_hashes, node_preimage)])
    floor_all = floor_nodes + _bare_sha256_seconds(
        [
            (count, 64 + 2 + id_length),
            (count, 64 + 32),
            (count, leaf_preimage),
        ]
    )
    floor_cpu_seconds = _cpu_seconds() - cpu_start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "accounts": count,
        "build_seconds": build_seconds,
        "proofs_seconds": proofs_seconds,
        "verify_seconds_per_proof": verify_seconds,
        "verify_objects_seconds_per_proof": verify_objects_seconds,
        "verify_floor_seconds_per_proof": verify_floor,
        "verify_rounds": verify_rounds,
        "verify_hashes": 1 + tree.depth,
        "node_hashes": node_hashes,
        "floor_nodes_seconds": floor_nodes,
        "floor_all_seconds": floor_all,
        "build_cpu_seconds": build_cpu_seconds,
        "proofs_cpu_seconds": proofs_cpu_seconds,
        "floor_cpu_seconds": floor_cpu_seconds,
        "proof_size_bytes": tree.proof_size_bytes,
        "tree_storage_bytes": tree.storage_bytes,
        "input_rss_bytes": input_rss_bytes,
        "peak_rss_bytes": own,
        "worker_peak_rss_bytes": workers,
        "peak_pss_bytes": peak_pss_bytes,
        "peak_bytes": max(own, peak_pss_bytes),
        "load_average": os.getloadavg()[0],
    }


def _report(result: dict[str, Any]) -> None:
    """Print one size's measurements."""
    count = result["accounts"]
    total = result["build_seconds"] + result["proofs_seconds"]
    gib = 1024**3
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
        f"   floor (one core): bare sha256 x {result['node_hashes']:,} node hashes "
        f"{result['floor_nodes_seconds']:6.2f} s   (build / floor = {result['build_seconds'] / result['floor_nodes_seconds']:.2f}x)"
    )
    print(
        f"   floor (one core): bare sha256 x every hash of the build (salts, leaves, nodes) "
        f"{result['floor_all_seconds']:6.2f} s   (build / floor = {result['build_seconds'] / result['floor_all_seconds']:.2f}x)"
    )
    print(
        f"   cpu time (all processes): build {result['build_cpu_seconds']:.2f} s, proofs "
        f"{result['proofs_cpu_seconds']:.2f} s, floor {result['floor_cpu_seconds']:.2f} s "
        f"(build cpu / floor cpu = {result['build_cpu_seconds'] / result['floor_cpu_seconds']:.2f}x; "
        "less sensitive to other load than wall time)"
    )
    print(
        f"   verify            {result['verify_seconds_per_proof'] * 1e6:8.1f} us a proof from its bytes "
        f"(median of {VERIFY_ROUNDS} rounds of {VERIFY_COUNT // VERIFY_ROUNDS:,}; rounds "
        f"{min(result['verify_rounds']) * 1e6:.1f}-{max(result['verify_rounds']) * 1e6:.1f} us; "
        f"{result['verify_objects_seconds_per_proof'] * 1e6:.1f} us parsed to objects first, mean of {VERIFY_COUNT:,})"
    )
    print(
        f"   floor (one core): its {result['verify_hashes']} bare sha256 calls alone "
        f"{result['verify_floor_seconds_per_proof'] * 1e6:8.1f} us a proof (verify / floor = "
        f"{result['verify_seconds_per_proof'] / result['verify_floor_seconds_per_proof']:.2f}x)"
    )
    print(
        f"   memory: peak {result['peak_bytes'] / gib:.2f} GiB (PSS of all processes "
        f"{result['peak_pss_bytes'] / gib:.2f} GiB, own RSS {result['peak_rss_bytes'] / gib:.2f} GiB, "
        f"a worker's RSS {result['worker_peak_rss_bytes'] / gib:.2f} GiB, input alone "
        f"{result['input_rss_bytes'] / gib:.2f} GiB), tree kept {result['tree_storage_bytes'] / gib:.2f} GiB"
    )
    print(f"   load average during the run: {result['load_average']:.2f}")


def _target(name: str, met: bool, measured: str, target: str) -> str:
    """Return one target line in the fixed ``target <name>: met|missed (...)`` form."""
    return f"target {name}: {'met' if met else 'missed'} ({measured} vs {target})"


def _targets(results: dict[int, dict[str, Any]]) -> list[str]:
    """Return one line per target, from the sizes that ran."""
    million = results[ONE_MILLION]
    total = million["build_seconds"] + million["proofs_seconds"]
    ratio = million["build_seconds"] / million["floor_all_seconds"]
    peak = max(result["peak_bytes"] for result in results.values())
    verify = million["verify_seconds_per_proof"]
    lines = [
        _target(
            "merkle 1M build+proofs",
            total < TARGET_1M_SECONDS,
            f"{total:.2f} s",
            f"< {TARGET_1M_SECONDS} s",
        ),
        _target(
            "merkle 1M build+proofs (issue 7)",
            total < TARGET_1M_ISSUE_7_SECONDS,
            f"{total:.2f} s",
            f"< {TARGET_1M_ISSUE_7_SECONDS} s",
        ),
    ]
    if TEN_MILLION in results:
        ten = results[TEN_MILLION]
        total_ten = ten["build_seconds"] + ten["proofs_seconds"]
        lines.append(
            _target(
                "merkle 10M build+proofs",
                total_ten < TARGET_10M_SECONDS,
                f"{total_ten:.2f} s",
                f"< {TARGET_10M_SECONDS} s",
            )
        )
    lines += [
        _target(
            "merkle build vs floor",
            ratio <= TARGET_BUILD_VS_FLOOR,
            f"{ratio:.2f}x",
            f"<= {TARGET_BUILD_VS_FLOOR}x",
        ),
        _target(
            "merkle peak memory",
            peak < TARGET_PEAK_BYTES,
            f"{peak / 1024**3:.2f} GiB",
            f"< {TARGET_PEAK_BYTES / 1024**3:.0f} GiB",
        ),
        _target(
            "merkle proof verify",
            verify < TARGET_VERIFY_SECONDS,
            f"{verify * 1e6:.1f} us",
            f"< {TARGET_VERIFY_SECONDS * 1e6:.0f} us",
        ),
    ]
    return lines


def main() -> None:
    """Run each size in a child process, print its measurements, then the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--with-10m", action="store_true", help="also run 10,000,000 accounts")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sample-memory", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.sample_memory:
        _sample_memory(arguments.sample_memory)
        return
    if arguments.one:
        print(json.dumps(run_one(arguments.one)))
        return
    sizes = [100_000, ONE_MILLION] + ([TEN_MILLION] if arguments.with_10m else [])
    print(
        f"cpu cores: {available_cores()}; python {sys.version.split()[0]}; numpy {np.__version__}; "
        f"load average {statistics.mean(os.getloadavg()):.2f}"
    )
    results = {}
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
        results[count] = json.loads(child.stdout.strip().splitlines()[-1])
        _report(results[count])
    for line in _targets(results):
        print(line)


if __name__ == "__main__":
    main()
