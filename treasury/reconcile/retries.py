"""Runs that retry: a run whose node was unreachable is retried with exponential backoff.

Also the one-line description of a run that the CLI, the console and the scheduler's log print.
The scheduled job itself, which reads its settings at run time, is ``treasury.scheduler``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from treasury.reconcile.errors import ReconcileError
from treasury.reconcile.observation import Progress
from treasury.reconcile.reconciler import RunReport
from treasury.reconcile.records import RunStatus

log = logging.getLogger(__name__)

RETRY_ATTEMPTS = 4
RETRY_BASE_DELAY_S = 2.0
RETRY_MAX_DELAY_S = 60.0


def describe(report: RunReport) -> str:
    """One line per run, for logs and the console."""
    if report.skipped:
        return "skipped: another process holds the reconciliation lock"
    if report.status is None:
        raise ReconcileError(f"Run {report.run_id} reports no status; only a skipped run has none.")
    failed = [v for v in report.vaults if not v.ok]
    line = (
        f"run {report.run_id} {report.status.value}: {len(report.vaults)} vault(s), "
        f"{sum(v.booked for v in report.vaults)} booked, "
        f"{sum(v.reversed for v in report.vaults)} reversed"
    )
    return line + "".join(f"; {v.scope}: {v.error}" for v in failed)


def reconcile_with_retries(
    run: Callable[[], RunReport],
    *,
    attempts: int = RETRY_ATTEMPTS,
    base_delay_s: float = RETRY_BASE_DELAY_S,
    max_delay_s: float = RETRY_MAX_DELAY_S,
    sleep: Callable[[float], None] = time.sleep,
    echo: Progress = print,
) -> list[RunReport]:
    """Run; while a node is unreachable, retry after 1x, 2x, 4x... the base delay (capped)."""
    reports: list[RunReport] = []
    for attempt in range(attempts):
        report = run()
        reports.append(report)
        echo(describe(report))
        retry = report.status is RunStatus.FAILED and any(v.unreachable for v in report.vaults)
        if not retry or attempt == attempts - 1:
            break
        delay = min(max_delay_s, base_delay_s * 2**attempt)
        echo(f"a node is unreachable; retrying in {delay:.0f} s")
        sleep(delay)
    return reports
