"""Scheduling: two scheduler processes on PostgreSQL never reconcile at once; the CLI reports."""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from reconcile_support import btc_world, migrated
from sqlalchemy import select

from custody.devnet import BitcoinNode, EvmNode
from treasury.reconcile import run_lock
from treasury.reconcile.records import RunRow, RunStatus

log = logging.getLogger("tests.reconcile.scheduler")

TREASURY = str(Path(sys.executable).with_name("treasury"))
SCHEDULER_SECONDS = 8
INTERVAL_SECONDS = "0.5"


def _env(url: str, bitcoin_node: BitcoinNode, evm_node: EvmNode) -> dict[str, str]:
    node_url = bitcoin_node.rpc_url.replace(
        "http://", f"http://{bitcoin_node.rpc_user}:{bitcoin_node.rpc_password}@"
    )
    return {
        **os.environ,
        "TREASURY_DATABASE_URL": url,
        "TREASURY_BITCOIN_RPC_URL": node_url,
        "TREASURY_RESERVE_RPC_URL": evm_node.rpc_url,
    }


def test_two_scheduler_processes_never_reconcile_concurrently(
    postgres_url: str, bitcoin_node: BitcoinNode, evm_node: EvmNode, tmp_path: Path, test_seed: int
) -> None:
    """Two `treasury scheduler run` processes share one job store; their runs' intervals never overlap."""
    db = migrated(postgres_url)
    world = btc_world(db, bitcoin_node, tmp_path, test_seed, f"sched-{test_seed % 10**6}")
    world.pay([1_000_000, 2_000_000])
    env = _env(postgres_url, bitcoin_node, evm_node)
    argv = [
        TREASURY,
        "scheduler",
        "run",
        "--interval",
        INTERVAL_SECONDS,
        "--stop-after",
        str(SCHEDULER_SECONDS),
    ]
    processes = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=SCHEDULER_SECONDS + 60)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        log.info("scheduler %d said:\n%s", process.pid, output)
        assert process.returncode == 0, output
    with db.sessions() as session:
        runs = list(session.scalars(select(RunRow).order_by(RunRow.started_at)))
    assert len(runs) >= 4
    assert any("skipped" in output for output in outputs)  # they did contend for the lock
    assert {run.pid for run in runs} == {p.pid for p in processes}
    assert all(run.status is RunStatus.SUCCEEDED and run.finished_at for run in runs)
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None
        assert earlier.finished_at <= later.started_at, (earlier.id, later.id)
    assert sorted(b.amount for b in db.bookings(world.scope)) == [1_000_000, 2_000_000]
    db.engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite_url", "postgres_url"], indirect=True)
def test_reconcile_now_skips_while_another_process_holds_the_lock(
    db_url: str, bitcoin_node: BitcoinNode, evm_node: EvmNode
) -> None:
    """While this process holds the run lock, `treasury reconcile now` runs nothing; afterwards it runs."""
    db = migrated(db_url)
    env = _env(db_url, bitcoin_node, evm_node)
    with run_lock(db.engine) as held:
        assert held
        blocked = subprocess.run(
            [TREASURY, "reconcile", "now"], env=env, capture_output=True, text=True, timeout=60
        )
    assert blocked.returncode == 1
    assert "skipped" in blocked.stdout
    with db.sessions() as session:
        assert session.scalar(select(RunRow)) is None
    done = subprocess.run(
        [TREASURY, "reconcile", "now"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    status = subprocess.run(
        [TREASURY, "reconcile", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0
    assert "last run 1: succeeded" in status.stdout
    assert "0 open alarm(s)" in status.stdout
    db.engine.dispose()
