"""``make demo``: the whole story on fresh local devnets, printed step by step.

Each issue grows this script; it runs on embedded defaults and leaves no node behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from custody.devnet import DevnetStack, find_binaries, install_signal_handlers

Echo = Callable[[str], None]


def run_demo(echo: Echo) -> None:
    """Start the devnets, show they are real, and stop them cleanly."""
    started = time.monotonic()
    install_signal_handlers()
    echo("== 1. Devnets")
    binaries = find_binaries(install=True, log=echo)
    for binary in (binaries.bitcoind, binaries.anvil):
        echo(f"   {binary.name}: {binary.version()} ({binary.source})")
    with DevnetStack(binaries) as stack:
        stack.start(lambda line: echo(f"   {line}"))
        btc = stack.bitcoin.rpc
        network = btc.call("getnetworkinfo")
        echo(
            f"   bitcoind subversion {network['subversion']}, chain {btc.call('getblockchaininfo')['chain']}"
        )
        echo(f"   bitcoin height {btc.call('getblockcount')} (101 blocks mined: coinbase matured)")
        for label, node in (("reserve", stack.reserve), ("services", stack.services)):
            echo(
                f"   {label} chain: chain id {node.rpc.chain_id()}, height {node.rpc.block_number()}"
            )
        pids = [pid for node in (stack.bitcoin, stack.reserve, stack.services) if (pid := node.pid)]
    echo(f"== Done in {time.monotonic() - started:.1f} s; {_exited(pids)}")


def _exited(pids: list[int]) -> str:
    """Prove the stop: signal 0 to each pid must find no process."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    if alive:
        return f"WARNING: nodes {alive} are still running."
    return f"nodes {', '.join(map(str, pids))} have exited."
