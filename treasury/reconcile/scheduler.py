"""The reconciliation scheduler: APScheduler 3 with its SQLAlchemy job store.

The job is the importable function ``reconcile_job`` (no arguments: it reads its settings,
database and nodes included, from the environment when it runs, through ``treasury.settings``, so
no credential is pickled into the job store). Any
number of scheduler processes may share the store; the run lock lets one reconcile at a time,
the others skip. A run whose node was unreachable is retried with exponential backoff.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler

from treasury.db import make_engine
from treasury.logs import bound_ids
from treasury.reconcile.errors import ReconcileError
from treasury.reconcile.observation import Progress
from treasury.reconcile.reconciler import RunReport
from treasury.reconcile.records import SCHEDULER_JOBS_TABLE, RunStatus
from treasury.reconcile.service import configured_nodes, reconcile_now
from treasury.settings import Settings, database_url

log = logging.getLogger(__name__)

JOB_ID = "treasury.reconcile"
"""APScheduler's own job table (it creates it on first start)."""
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


def reconcile_job() -> None:
    """The scheduled job: one locked run (with retries) against the configured nodes."""
    settings = Settings.from_env(os.environ)

    def run() -> RunReport:
        bitcoin, evm = configured_nodes(settings.nodes)
        return reconcile_now(
            settings.database_url,
            bitcoin=bitcoin,
            evm=evm,
            settings=settings.reconcile,
            progress=_echo,
        )

    with bound_ids(job_id=JOB_ID):
        reconcile_with_retries(run, echo=_echo)


def _echo(line: str) -> None:
    print(line, flush=True)


def run_scheduler(interval_s: float, *, stop_after_s: float | None = None) -> None:
    """Run ``reconcile_job`` every ``interval_s`` seconds until interrupted (or ``stop_after_s``)."""
    engine = make_engine(database_url())
    scheduler = BlockingScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=SCHEDULER_JOBS_TABLE)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=UTC,
    )
    scheduler.add_job(
        reconcile_job,
        "interval",
        seconds=interval_s,
        id=JOB_ID,
        replace_existing=True,
        next_run_time=datetime.now(UTC),
    )
    timer = None
    if stop_after_s is not None:
        timer = threading.Timer(stop_after_s, lambda: scheduler.shutdown(wait=True))
        timer.daemon = True
        timer.start()
    try:
        scheduler.start()
    finally:
        if timer is not None:
            timer.cancel()
        engine.dispose()
