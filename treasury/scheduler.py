"""The reconciliation scheduler: APScheduler 3 with its SQLAlchemy job store.

The job is the importable function ``reconcile_job`` (no arguments: it reads its settings,
database and nodes included, from the environment when it runs, through ``treasury.settings``, so
no credential is pickled into the job store). Any number of scheduler processes may share the
store; the run lock lets one reconcile at a time, the others skip. A run whose node was
unreachable is retried with exponential backoff (``treasury.reconcile.retries``). Each pass then
opens a key health alarm for every institution (and recovery body) whose health check is
overdue (``key_health_pass``; once per due date, so a pass that finds nothing new writes nothing).

This is an edge, like the CLI and the API: it reads the settings; the reconciler below it does not.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.orm import Session, sessionmaker

from custody.clock import Clock, utc_now
from treasury.custody_health import (
    HealthAlarm,
    HealthPolicy,
    raise_overdue_alarms,
)
from treasury.db import make_engine, session_factory
from treasury.logs import bound_ids
from treasury.reconcile.reconciler import RunReport
from treasury.reconcile.records import SCHEDULER_JOBS_TABLE
from treasury.reconcile.retries import reconcile_with_retries
from treasury.reconcile.service import configured_nodes, reconcile_now
from treasury.settings import Settings

JOB_ID = "treasury.reconcile"
"""The job's id in APScheduler's table: one reconciliation job, however many schedulers run."""
HEALTH_ACTOR = "scheduler"
"""The audit actor of the overdue key health alarms a scheduled pass opens."""


def key_health_pass(
    sessions: sessionmaker[Session], policy: HealthPolicy | None = None, *, clock: Clock = utc_now
) -> list[HealthAlarm]:
    """Open the overdue key health alarms (``raise_overdue_alarms``) in one transaction."""
    with sessions.begin() as session:
        raised = raise_overdue_alarms(session, clock(), policy, actor=HEALTH_ACTOR)
    for alarm in raised:
        _echo(f"key health alarm {alarm.id} opened for {alarm.institution}: {alarm.detail}")
    return raised


def _key_health_job(database_url: str, policy: HealthPolicy) -> None:
    engine = make_engine(database_url)
    try:
        key_health_pass(session_factory(engine), policy)
    finally:
        engine.dispose()


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
            evm_chains=settings.evm_chains,
            reserve_chain=settings.reserve_chain(),
        )

    with bound_ids(job_id=JOB_ID):
        try:
            reconcile_with_retries(run, echo=_echo)
        finally:
            _key_health_job(settings.database_url, HealthPolicy(settings.key_health_interval_days))


def _echo(line: str) -> None:
    print(line, flush=True)


def run_scheduler(
    database_url: str, interval_s: float, *, stop_after_s: float | None = None
) -> None:
    """Run ``reconcile_job`` every ``interval_s`` seconds until interrupted (or ``stop_after_s``)."""
    engine = make_engine(database_url)
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
