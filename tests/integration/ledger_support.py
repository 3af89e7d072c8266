"""Test support for the ledger and audit-log tests: a stepping clock, and workers run at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta


class StepClock:
    """A deterministic clock: ``start``, then one second later at every reading (thread-safe)."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            current = self.now
            self.now += timedelta(seconds=1)
            return current


def run_at_once(worker: Callable[[int], None], count: int) -> None:
    """Run ``worker(0)`` .. ``worker(count - 1)`` in threads released together, and wait for all.

    Workers catch their own errors (an uncaught one would only be printed by the thread).
    """
    start = threading.Barrier(count)

    def released(number: int) -> None:
        start.wait()
        worker(number)

    threads = [threading.Thread(target=released, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
