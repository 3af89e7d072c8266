"""Benchmark: a real ``treasury api serve`` on PostgreSQL under 50 concurrent officers' clients.

A throwaway database (``bench_api_<pid>``) on the local PostgreSQL server is migrated and set up
the way the workflow tests set up theirs: three institutions, their officers and API tokens, a
policy whose limits admit every proposal of the run, a decree, an allowlisted destination (its
waiting period already over), and one matched reconciliation result so the policy's gate admits
spends. The server runs as its own process on a free loopback port.

Approvals bind to a prepared transaction. The server here has no node configured (``prepare``
answers 503 without one, and the bench measures the API and the database, not a chain), so the
proposals that clients approve are proposed and prepared before timing, in this process, through
the same workflow, with a bench spender that stands in for the chain: its transaction hash is
a digest of the request. The roster chain is not founded, so the API takes approvals without a
signed statement, as it does for every deployment before its genesis; no statement is signed.

The server runs ``--workers`` processes (default: one per core; ``treasury api serve`` itself
defaults to one). Three phases, on one server and one database:

1. **Floor**, one client, one request at a time: each kind's unloaded service time, and the
   server's own floor, a refused request (401, no token) that does no database work.
2. **Paced** (the target): ``CLIENTS`` clients, each sending one request every ``PACE_S``
   seconds (with jitter), as officers at their consoles do; the offered load is
   ``CLIENTS / PACE_S`` requests a second. The target (p99 < 100 ms, no error) is judged here,
   on the requests of connected clients: each client first connects with one read, as a console
   does once per session; those first requests (a new TCP connection, and on a cold worker its
   first database connections) are printed apart, and their errors still count.
3. **Saturation**: ``CLIENTS`` clients sending back to back. In a closed loop, the mean latency
   is ``CLIENTS / throughput`` (Little's law), so its p99 says how fast the server is, not how an
   officer is served; the phase prints the throughput, and the rate p99 < 100 ms would need.

The load generator keeps its own garbage collector out of the timed phases
(``collector_paused``): otherwise its pauses are counted as the server's latency. The server's
workers freeze their start-up heap once started (``treasury.api.heap``).

The requests share a bounded plan (proposals, approvals of the prepared proposals by two
institutions each, and reads of a proposal's status, the ledger's balances, the audit head).
Each phase prints throughput, latency percentiles and the answers by status; a 409 by policy
is a correct refusal, counted apart from errors (5xx, timeouts, connection errors).

    .venv/bin/python bench/api_load.py
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from custody.clock import utc_now
from custody.devnet.process import free_port
from treasury import migrate
from treasury.db import make_engine, session_factory
from treasury.officers import (
    Founding,
    Officer,
    Role,
    RosterActor,
    add_institution,
    add_officer,
    issue_token,
)
from treasury.policy import (
    LegalBasis,
    add_legal_basis,
    approve_destination,
    current_policy,
    request_destination,
    set_policy,
)
from treasury.proposals import PreparedTx, SealedTx, SpendRequest
from treasury.reconcile.records import ResultRow, RunRow, RunStatus
from treasury.wiring import configured_workflow

DEFAULT_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CLIENTS = 50
WORKERS = os.cpu_count() or 1
"""Server processes (``treasury api serve --workers``): one per core, as the CLI advises for
PostgreSQL; one process serves every request under one GIL."""
REQUESTS = 2_000
"""Requests of the saturation phase, at most."""
DURATION_S = 60.0
"""Seconds of the saturation phase, at most."""
PACE_S = 1.0
"""Seconds between one paced client's requests (on average)."""
PACED_DURATION_S = 20.0
FLOOR_REPEATS = 20
"""Requests of each kind in the floor phase."""
REQUEST_TIMEOUT_S = 10.0
START_TIMEOUT_S = 90.0
PREPARED_PROPOSALS = 400
"""Proposals prepared before timing; each gets at most two approvals during the run."""
AMOUNT_SATS = 10_000
BIG_LIMIT_SATS = 10**15
"""Per-spend, daily and decree limits far above what the run proposes, so policy admits all."""
TARGET_P99_MS = 100.0
TARGET_ERRORS = 0
DESTINATION = "bcrt1qbenchdestination00000000000000000000"
DECREE = "BENCH-DECREE-1"
INSTITUTIONS = {"MOF": "Ministry of Finance", "CB": "Central Bank", "PARL": "Parliament"}
OFFICERS: dict[str, tuple[str, tuple[Role, ...]]] = {
    "admin": ("MOF", (Role.ADMIN,)),
    "proposer": ("MOF", (Role.PROPOSER,)),
    "mof_approver": ("MOF", (Role.APPROVER,)),
    "cb_approver": ("CB", (Role.APPROVER,)),
    "parl_approver": ("PARL", (Role.APPROVER,)),
    "auditor": ("PARL", (Role.AUDITOR,)),
}
POLICY: dict[str, Any] = {
    "quorum": {"institutions": list(INSTITUTIONS), "required": 2},
    "assets": {
        "BTC": {
            "per_tx_limit": BIG_LIMIT_SATS,
            "daily_limit": BIG_LIMIT_SATS,
            "veto_threshold": BIG_LIMIT_SATS,
        }
    },
    "veto_window_seconds": 24 * 3600,
    "allowlist": {"required": 2, "delay_seconds": 48 * 3600},
    "reconciliation_max_age_seconds": 6 * 3600,
    "proposal_ttl_seconds": 7 * 24 * 3600,
}
FOUNDING = Founding("bench")


class BenchSpender:
    """Stands in for a chain in ``prepare``: the API bench measures no node (see the docstring)."""

    def build(self, request: SpendRequest) -> PreparedTx:
        digest = hashlib.sha256(
            f"{request.proposal_id}:{request.asset}:{request.amount}:{request.destination}".encode()
        ).hexdigest()
        summary = {"outputs": [{"address": request.destination, "amount": request.amount}]}
        return PreparedTx(tx_hash=digest, summary=summary, payload=digest, fee=0)

    def sign(
        self, prepared: PreparedTx, institution: str, shares: Sequence[str], passphrase: str
    ) -> PreparedTx:
        raise NotImplementedError("The API bench never signs.")

    def seal(self, prepared: PreparedTx) -> SealedTx:
        raise NotImplementedError("The API bench never seals.")

    def send(self, prepared: PreparedTx, sealed: SealedTx) -> str:
        raise NotImplementedError("The API bench never sends.")

    def find_broadcast(self, prepared: PreparedTx, sealed: SealedTx | None) -> str | None:
        return None

    def confirmations(self, txid: str) -> int:
        return 0


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """``bench_api_<pid>`` on ``server_url``, created fresh and dropped afterwards."""
    name = f"bench_api_{os.getpid()}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass(frozen=True)
class World:
    tokens: Mapping[str, str]
    prepared: tuple[tuple[int, str], ...]
    """(proposal id, transaction hash) of each proposal prepared before timing."""


def roster_actor(people: Mapping[str, Officer], institution: str) -> RosterActor:
    """The first admin of ``institution`` among ``people``, or founding while it has none."""
    admins = [
        p for p in people.values() if p.institution_code == institution and Role.ADMIN in p.roles
    ]
    return admins[0] if admins else FOUNDING


def set_up(url: str) -> World:
    """Governance as the workflow tests set it up, and ``PREPARED_PROPOSALS`` prepared spends."""
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    now = utc_now()
    past = now - timedelta(hours=49)  # the allowlisted destination's waiting period is over
    people: dict[str, Officer] = {}
    tokens: dict[str, str] = {}
    with sessions.begin() as session:
        for code, name in INSTITUTIONS.items():
            add_institution(session, code, name, actor=FOUNDING, now=past)
        for name, (institution, roles) in OFFICERS.items():
            actor = roster_actor(people, institution)
            people[name] = add_officer(session, institution, name, roles, actor=actor, now=past)
            actor = roster_actor(people, institution)
            tokens[name] = issue_token(session, people[name].id, actor=actor, now=now)
        set_policy(session, people["admin"], POLICY, now=past)
        add_legal_basis(
            session,
            people["admin"],
            LegalBasis(DECREE, "Bench decree", now + timedelta(days=30), {"BTC": BIG_LIMIT_SATS}),
            now=past,
        )
        entry = request_destination(
            session, people["proposer"], "BTC", DESTINATION, "Payee", now=past
        )
        policy = current_policy(session)
        approve_destination(session, people["cb_approver"], entry.id, policy, now=past)
        approve_destination(session, people["parl_approver"], entry.id, policy, now=past)
        run = RunRow(
            started_at=now, finished_at=now, pid=os.getpid(), host="bench",
            status=RunStatus.SUCCEEDED, booked=0, reversed=0,
        )  # fmt: skip
        session.add(run)
        session.flush()
        session.add(
            ResultRow(
                run_id=run.id, scope="btc:bench", asset="BTC", gate_asset="BTC",
                chain_balance=0, ledger_balance=0, difference=0, height=0,
                block_hash="00" * 32, checked_at=now, matched=True,
            )
        )  # fmt: skip
    workflow = configured_workflow(sessions)
    spender = BenchSpender()
    prepared: list[tuple[int, str]] = []
    for number in range(PREPARED_PROPOSALS):
        view = workflow.propose(
            people["proposer"],
            asset="BTC",
            amount=AMOUNT_SATS + number,
            destination=DESTINATION,
            purpose=f"Bench spend {number}",
            legal_basis=DECREE,
        )
        view = workflow.prepare(people["proposer"], view.id, spender)
        if view.tx_hash is None:
            raise RuntimeError(f"Proposal {view.id} has no prepared transaction.")
        prepared.append((view.id, view.tx_hash))
    engine.dispose()
    return World(tokens, tuple(prepared))


@contextmanager
def api_server(url: str, folder: Path, workers: int) -> Iterator[str]:
    """``treasury api serve --workers N`` on a free loopback port; stopped (SIGTERM) afterwards."""
    port = free_port()
    env = {**os.environ, "TREASURY_DATABASE_URL": url, "TREASURY_NODES_DIR": str(folder)}
    for name in ("TREASURY_BITCOIN_RPC_URL", "TREASURY_RESERVE_RPC_URL"):
        env.pop(name, None)
    treasury = Path(sys.executable).parent / "treasury"
    log = (folder / "server.log").open("wb")
    command = [str(treasury), "api", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"treasury api serve exited with {process.returncode}: "
                    f"{(folder / 'server.log').read_text()[-2000:]}"
                )
            try:
                httpx.get(f"{base}/openapi.json", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"treasury api serve did not answer within {START_TIMEOUT_S:g} s: "
                        + (folder / "server.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def collector_paused() -> Iterator[None]:
    """This process's garbage collector off while it times requests.

    The load generator holds the set-up's objects (its engine, workflow and 400 proposals'
    views); a full collection walked them all and stopped every client for up to 158 ms
    (measured with ``gc.callbacks``), time that was then counted as the server's latency.
    What survived the set-up is frozen, and the collector stays off for the timed phases
    (reference counting still frees almost everything a request allocates).
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(frozen=True)
class Call:
    """One planned request: who sends it, and what."""

    kind: str
    officer: str
    method: str
    path: str
    body: Mapping[str, Any] | None = None


def approval_calls(world: World) -> list[Call]:
    """Every approval the run may send: two institutions' for each prepared proposal."""
    return [
        Call("approve", officer, "POST", f"/proposals/{pid}/approve", {"tx_hash": tx_hash})
        for officer in ("cb_approver", "parl_approver")
        for pid, tx_hash in world.prepared
    ]


def plan(world: World, requests: int, approvals: list[Call]) -> list[Call]:
    """A phase's requests, interleaved: proposals, approvals (taken from ``approvals``), reads.

    When ``approvals`` is empty, the approvals' slots are reads too.
    """
    body = {
        "asset": "BTC",
        "amount": str(AMOUNT_SATS),
        "destination": DESTINATION,
        "purpose": "Bench load proposal",
        "legal_basis": DECREE,
    }
    pids = [pid for pid, _ in world.prepared]
    calls: list[Call] = []
    for number in range(requests):
        slot = number % 5
        if slot == 0:
            calls.append(Call("propose", "proposer", "POST", "/proposals", body))
        elif slot == 1 and approvals:
            calls.append(approvals.pop(0))
        elif slot == 2:
            pid = pids[number % len(pids)]
            calls.append(Call("read proposal", "auditor", "GET", f"/proposals/{pid}"))
        elif slot == 3:
            calls.append(Call("read balances", "auditor", "GET", "/ledger/balances"))
        else:
            calls.append(Call("read audit head", "auditor", "GET", "/audit/head"))
    return calls


@dataclass(frozen=True)
class Answer:
    kind: str
    status: str
    """The HTTP status, or the transport failure (``timeout``, ``connection error``)."""
    latency_s: float


async def client(
    base: str,
    tokens: Mapping[str, str],
    queue: asyncio.Queue[Call],
    duration_s: float,
    pace_s: float | None = None,
    connected: asyncio.Barrier | None = None,
    started_at: dict[str, float] | None = None,
) -> list[Answer]:
    """Send planned requests one at a time until the plan is empty or the time is up; with
    ``pace_s``, one request every ``pace_s`` seconds on average (uniform jitter, first one at a
    random point of the first period), else back to back."""
    answers: list[Answer] = []
    limits = httpx.Limits(max_connections=1)
    jitter = random.Random()  # noqa: S311  # spacing of requests, not a secret
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S, limits=limits) as http:
        if pace_s:  # connect first, as a console does once: timed apart (``CONNECT_KIND``)
            headers = {"Authorization": f"Bearer {tokens['auditor']}"}
            started = time.perf_counter()
            try:
                outcome = str((await http.get("/audit/head", headers=headers)).status_code)
            except httpx.TimeoutException:
                outcome = "timeout"
            except httpx.TransportError:
                outcome = "connection error"
            answers.append(Answer(CONNECT_KIND, outcome, time.perf_counter() - started))
        if connected is not None:  # every client connected before the timed requests begin
            await connected.wait()
        if started_at is not None:
            started_at.setdefault("at", time.perf_counter())
        deadline = time.monotonic() + duration_s
        next_at = time.monotonic() + (jitter.uniform(0, pace_s) if pace_s else 0.0)
        while time.monotonic() < deadline:
            if pace_s:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += jitter.uniform(0.5 * pace_s, 1.5 * pace_s)
                if time.monotonic() >= deadline:
                    break
            try:
                call = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            headers = {"Authorization": f"Bearer {tokens[call.officer]}"}
            started = time.perf_counter()
            try:
                response = await http.request(
                    call.method, call.path, json=call.body, headers=headers
                )
                outcome = str(response.status_code)
            except httpx.TimeoutException:
                outcome = "timeout"
            except httpx.TransportError:
                outcome = "connection error"
            answers.append(Answer(call.kind, outcome, time.perf_counter() - started))
    return answers


async def load(
    base: str,
    world: World,
    calls: Sequence[Call],
    clients: int,
    duration_s: float,
    pace_s: float | None = None,
) -> tuple[list[Answer], float]:
    queue: asyncio.Queue[Call] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    started: dict[str, float] = {}
    connected = asyncio.Barrier(clients) if pace_s else None
    results = await asyncio.gather(
        *(
            client(base, world.tokens, queue, duration_s, pace_s, connected, started)
            for _ in range(clients)
        )
    )
    return [a for answers in results for a in answers], time.perf_counter() - started["at"]


@dataclass(frozen=True)
class Floor:
    """Unloaded service times (medians, seconds) by kind, and the server's own floor."""

    by_kind: Mapping[str, float]
    refused_s: float


def measure_floor(base: str, world: World, approvals: list[Call]) -> Floor:
    """One client, one request at a time: each kind ``FLOOR_REPEATS`` times, and a 401."""
    calls = plan(world, FLOOR_REPEATS * 5, approvals)
    times: dict[str, list[float]] = {}
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
        for _ in range(5):  # warm the server's caches and connection pool
            http.get("/audit/head", headers={"Authorization": f"Bearer {world.tokens['auditor']}"})
        for call in calls:
            headers = {"Authorization": f"Bearer {world.tokens[call.officer]}"}
            started = time.perf_counter()
            response = http.request(call.method, call.path, json=call.body, headers=headers)
            times.setdefault(call.kind, []).append(time.perf_counter() - started)
            if response.status_code >= 400:
                raise RuntimeError(f"floor phase: {call.kind} answered {response.status_code}")
        refused = []
        for _ in range(FLOOR_REPEATS):
            started = time.perf_counter()
            response = http.get("/audit/head")
            refused.append(time.perf_counter() - started)
            if response.status_code != 401:
                raise RuntimeError(f"a request without a token answered {response.status_code}")
    return Floor(
        {kind: statistics.median(values) for kind, values in times.items()},
        statistics.median(refused),
    )


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    rank = max(1, round(share * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def is_error(status: str) -> bool:
    """5xx, timeouts and connection errors; any 4xx is an answer the API chose to give."""
    return not status.isdigit() or int(status) >= 500


CONNECT_KIND = "connect"
"""The kind of each paced client's first request, which opens its connection."""


@dataclass(frozen=True)
class Summary:
    throughput: float
    p99_ms: float
    errors: int


def report(all_answers: list[Answer], elapsed_s: float, clients: int) -> Summary:
    connects = sorted(a.latency_s * 1000 for a in all_answers if a.kind == CONNECT_KIND)
    answers = [a for a in all_answers if a.kind != CONNECT_KIND]
    if connects:
        failed = sum(1 for a in all_answers if a.kind == CONNECT_KIND and is_error(a.status))
        print(
            f"connecting: {len(connects)} new connections, each client's first request (not in "
            f"the figures below) p50 {percentile(connects, 0.50):.1f} ms, p99 "
            f"{percentile(connects, 0.99):.1f} ms, {failed} failed"
        )
    latencies = sorted(a.latency_s * 1000 for a in answers)
    p50, p95, p99 = (percentile(latencies, share) for share in (0.50, 0.95, 0.99))
    by_status = Counter(a.status for a in answers)
    by_kind = Counter((a.kind, a.status) for a in answers)
    errors = sum(n for status, n in by_status.items() if is_error(status))
    refused = by_status.get("409", 0)
    print(f"requests: {len(answers)} from {clients} clients in {elapsed_s:.2f} s")
    print(f"throughput: {len(answers) / elapsed_s:,.0f} requests/s")
    print(
        f"latency: p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms"
    )
    print("answers by status: " + ", ".join(f"{s} x{n}" for s, n in sorted(by_status.items())))
    for (kind, status), count in sorted(by_kind.items()):
        print(f"  {kind}: {status} x{count}")
    for kind in sorted({a.kind for a in answers}):
        times = sorted(a.latency_s * 1000 for a in answers if a.kind == kind)
        print(
            f"  {kind} latency: p50 {percentile(times, 0.50):.1f} ms, "
            f"p99 {percentile(times, 0.99):.1f} ms"
        )
    print(f"refused by policy or state (409, correct answers): {refused}")
    errors += sum(1 for a in all_answers if a.kind == CONNECT_KIND and is_error(a.status))
    print(f"errors (5xx, timeouts, connection errors): {errors}")
    return Summary(len(answers) / elapsed_s, p99, errors)


def report_floor(floor: Floor) -> None:
    print(
        f"floor: a refused request (401, no database work) {floor.refused_s * 1000:.1f} ms; "
        "unloaded service time by kind (median of "
        f"{FLOOR_REPEATS}): "
        + ", ".join(f"{kind} {t * 1000:.1f} ms" for kind, t in sorted(floor.by_kind.items()))
    )


def report_saturation(summary: Summary, floor: Floor, clients: int) -> None:
    mean_service_s = statistics.fmean(floor.by_kind.values())
    needed = clients / (TARGET_P99_MS / 1000)
    print(
        f"saturation: {summary.throughput:,.0f} requests/s = {summary.throughput * mean_service_s:.2f}"
        f"x one client's unloaded rate ({1 / mean_service_s:,.0f}/s, mean service "
        f"{mean_service_s * 1000:.1f} ms); closed-loop latency is {clients} clients / throughput "
        f"= {clients / summary.throughput * 1000:,.0f} ms mean, so p99 < {TARGET_P99_MS:g} ms back "
        f"to back would need more than {needed:,.0f} requests/s "
        f"({needed / summary.throughput:.1f}x this run's)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument(
        "--requests", type=int, default=REQUESTS, help="saturation phase: requests, at most"
    )
    parser.add_argument(
        "--duration", type=float, default=DURATION_S, help="saturation phase: seconds, at most"
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=PACE_S,
        help="paced phase: seconds between a client's requests",
    )
    parser.add_argument(
        "--paced-duration", type=float, default=PACED_DURATION_S, help="paced phase: seconds"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=WORKERS,
        help=f"server processes (treasury api serve --workers; default {WORKERS}, the cores)",
    )
    parser.add_argument("--server-log", type=Path, help="keep the server's log in this file")
    parser.add_argument(
        "--no-approvals", action="store_true", help="proposals and reads only (a diagnostic mix)"
    )
    arguments = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-api-") as temp,
        postgres_database(arguments.postgres_url) as url,
    ):
        folder = Path(temp)
        print(f"setting up a fresh database and {PREPARED_PROPOSALS} prepared proposals...")
        world = set_up(url)
        approvals = [] if arguments.no_approvals else approval_calls(world)
        clients = arguments.clients
        with api_server(url, folder, arguments.workers) as base, collector_paused():
            print(
                f"== floor: one client, one request at a time, against {base} "
                f"({arguments.workers} server worker processes, {os.cpu_count()} cores)",
                flush=True,
            )
            floor = measure_floor(base, world, approvals)
            report_floor(floor)
            paced_requests = round(clients * arguments.paced_duration / arguments.pace) + clients
            print(
                f"== paced: {clients} clients, one request every {arguments.pace:g} s each "
                f"({clients / arguments.pace:,.0f} requests/s offered), {arguments.paced_duration:g} s",
                flush=True,
            )
            paced_answers, paced_elapsed = asyncio.run(
                load(
                    base,
                    world,
                    plan(world, paced_requests, approvals),
                    clients,
                    arguments.paced_duration,
                    arguments.pace,
                )
            )
            paced = report(paced_answers, paced_elapsed, clients)
            print(
                f"== saturation: {clients} clients back to back, at most {arguments.requests} "
                f"requests and {arguments.duration:g} s",
                flush=True,
            )
            answers, elapsed = asyncio.run(
                load(
                    base,
                    world,
                    plan(world, arguments.requests, approvals),
                    clients,
                    arguments.duration,
                )
            )
            saturated = report(answers, elapsed, clients)
            report_saturation(saturated, floor, clients)
        if arguments.server_log is not None:
            arguments.server_log.write_bytes((folder / "server.log").read_bytes())
    offered = f"{clients / arguments.pace:,.0f}/s offered"
    p99_verdict = "met" if paced.p99_ms < TARGET_P99_MS else "missed"
    print(
        f"target api p99 at {clients} clients ({offered}): {p99_verdict} "
        f"({paced.p99_ms:.1f} ms vs < {TARGET_P99_MS:g} ms)"
    )
    errors = paced.errors + saturated.errors
    errors_verdict = "met" if errors <= TARGET_ERRORS else "missed"
    print(
        f"target api errors at {clients} clients (paced and saturated): {errors_verdict} "
        f"({errors} vs {TARGET_ERRORS})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
