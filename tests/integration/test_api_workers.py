"""`treasury api serve --workers 2`: two processes serve one API, and nothing of it is per process.

A real server is started as a subprocess on both databases. Many fresh connections are opened so
the two workers each accept some (checked from /proc: which worker owns which connection); a
proposal written through one connection is read through every other, and a console session
opened through one connection is honoured through the others and, once ended, refused by all.
The workers' shared listener must give accepted connections TCP_NODELAY (uvicorn's does not).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from custody.clock import utc_now
from custody.devnet.process import free_port
from treasury import migrate
from treasury.api.console_pages import SESSION_COOKIE, csrf_token
from treasury.cli.api import tcp_listener, worker_listeners
from treasury.db import make_engine, session_factory
from treasury.officers import Founding, Role, add_institution, add_officer, issue_token
from treasury.policy import (
    LegalBasis,
    add_legal_basis,
    approve_destination,
    current_policy,
    request_destination,
    set_policy,
)
from treasury.reconcile.records import ResultRow, RunRow, RunStatus

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 60.0
WORKERS = 2
CONNECTIONS = 24
"""Fresh connections opened at once per round; the workers race to accept them."""
ROUNDS = 5
"""Rounds of ``CONNECTIONS`` tried until both workers accepted some (the kernel picks)."""
DESTINATION = "bcrt1qworkersdestination000000000000000000"
DECREE = "WORKERS-DECREE-1"
FOUNDING = Founding("workers-test")
POLICY = {
    "quorum": {"institutions": ["MOF", "CB", "PARL"], "required": 2},
    "assets": {"BTC": {"per_tx_limit": 10**12, "daily_limit": 10**12, "veto_threshold": 10**12}},
    "veto_window_seconds": 24 * 3600,
    "allowlist": {"required": 2, "delay_seconds": 48 * 3600},
    "reconciliation_max_age_seconds": 6 * 3600,
    "proposal_ttl_seconds": 7 * 24 * 3600,
}


@dataclass(frozen=True)
class Served:
    base: str
    port: int
    pid: int
    tokens: dict[str, str]


def _set_up(url: str) -> dict[str, str]:
    """Three institutions, a proposer, two approvers and an auditor, a policy, a decree, an
    allowlisted destination whose wait is over and a matched reconciliation: a spend is admitted."""
    migrate.upgrade(url)
    engine = make_engine(url)
    now = utc_now()
    past = now - timedelta(hours=49)
    tokens: dict[str, str] = {}
    try:
        with session_factory(engine).begin() as session:
            for code in ("MOF", "CB", "PARL"):
                add_institution(session, code, f"Institution {code}", actor=FOUNDING, now=past)
            admin = add_officer(session, "MOF", "admin", (Role.ADMIN,), actor=FOUNDING, now=past)
            people = {"admin": admin}
            for name, institution, role in (
                ("proposer", "MOF", Role.PROPOSER),
                ("cb_approver", "CB", Role.APPROVER),
                ("parl_approver", "PARL", Role.APPROVER),
                ("auditor", "PARL", Role.AUDITOR),
            ):
                actor = admin if institution == "MOF" else FOUNDING
                people[name] = add_officer(
                    session, institution, name, (role,), actor=actor, now=past
                )
            for name, officer in people.items():
                actor = admin if officer.institution_code == "MOF" else FOUNDING
                tokens[name] = issue_token(session, officer.id, actor=actor, now=now)
            set_policy(session, admin, POLICY, now=past)
            add_legal_basis(
                session, admin,
                LegalBasis(DECREE, "Workers decree", now + timedelta(days=30), {"BTC": 10**12}),
                now=past,
            )  # fmt: skip
            entry = request_destination(
                session, people["proposer"], "BTC", DESTINATION, "Payee", now=past
            )
            policy = current_policy(session)
            approve_destination(session, people["cb_approver"], entry.id, policy, now=past)
            approve_destination(session, people["parl_approver"], entry.id, policy, now=past)
            run = RunRow(
                started_at=now, finished_at=now, pid=os.getpid(), host="test",
                status=RunStatus.SUCCEEDED, booked=0, reversed=0,
            )  # fmt: skip
            session.add(run)
            session.flush()
            session.add(
                ResultRow(
                    run_id=run.id, scope="btc:test", asset="BTC", gate_asset="BTC",
                    chain_balance=0, ledger_balance=0, difference=0, height=0,
                    block_hash="00" * 32, checked_at=now, matched=True,
                )
            )  # fmt: skip
    finally:
        engine.dispose()
    return tokens


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[Served]:
    """`treasury api serve --workers 2` on a free loopback port; stopped (SIGTERM) after."""
    tokens = _set_up(db_url)
    port = free_port()
    env = {**os.environ, "TREASURY_DATABASE_URL": db_url}
    for name in ("TREASURY_BITCOIN_RPC_URL", "TREASURY_RESERVE_RPC_URL"):
        env.pop(name, None)
    env["TREASURY_NODES_DIR"] = str(tmp_path / "no-devnet")
    treasury = Path(sys.executable).parent / "treasury"
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(treasury), "api", "serve", "--port", str(port), "--workers", str(WORKERS)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(_workers(process.pid)) < WORKERS or not _answers(base):
            if process.poll() is not None:
                pytest.fail(
                    f"treasury api serve exited with {process.returncode}:\n{log.read_text()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"{WORKERS} workers did not answer within {START_TIMEOUT_S:g} s")
            time.sleep(0.2)
        yield Served(base, port, process.pid, tokens)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("treasury api serve --workers did not stop within 20 s of SIGTERM")


def _answers(base: str) -> bool:
    try:
        httpx.get(f"{base}/openapi.json", timeout=1.0)
    except httpx.TransportError:
        return False
    return True


def _workers(pid: int) -> list[int]:
    """The serving processes: the children of ``pid`` (from /proc), multiprocessing's resource
    tracker aside."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == pid and b"resource_tracker" not in command:
            found.append(int(entry.name))
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _connection_inodes(port: int, client_ports: set[int]) -> dict[str, int]:
    """Inode -> client port of the server's side of established connections from our clients."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            remote_port = int(fields[2].rpartition(":")[2], 16)
            if local_port == port and remote_port in client_ports:
                found[fields[9]] = remote_port
    return found


def _spread(served: Served, headers: dict[str, str], path: str) -> dict[int, list[httpx.Response]]:
    """``GET path`` over fresh connections, held open together, until both workers answered
    some; the answers by the worker that accepted each connection."""
    by_worker: dict[int, list[httpx.Response]] = {}
    for _ in range(ROUNDS):
        clients = [httpx.Client(base_url=served.base, timeout=10.0) for _ in range(CONNECTIONS)]
        try:
            answers = [client.get(path, headers=headers) for client in clients]
            ports = {}
            for answer in answers:
                stream = answer.extensions["network_stream"]
                ports[stream.get_extra_info("client_addr")[1]] = answer
            inodes = _connection_inodes(served.port, set(ports))
            for worker in _workers(served.pid):
                for inode in _socket_inodes(worker) & set(inodes):
                    by_worker.setdefault(worker, []).append(ports[inodes[inode]])
        finally:
            for client in clients:
                client.close()
        if len(by_worker) >= WORKERS:
            break
    return by_worker


def test_the_workers_share_writes_and_console_sessions(served: Served) -> None:
    """What one worker writes, every worker reads; what one worker opens or ends, every worker
    honours (one server for both: starting two workers is most of the cost)."""
    _a_write_through_one_worker_is_read_through_every_other(served)
    _a_console_session_is_shared_by_the_workers_and_ends_on_all(served)


def _a_write_through_one_worker_is_read_through_every_other(served: Served) -> None:
    """A proposal created through one worker is seen, in the same state, through both workers."""
    proposer = {"Authorization": f"Bearer {served.tokens['proposer']}"}
    created = httpx.post(
        f"{served.base}/proposals",
        json={
            "asset": "BTC", "amount": "12345", "destination": DESTINATION,
            "purpose": "Workers test", "legal_basis": DECREE,
        },
        headers=proposer,
        timeout=10.0,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    proposal = created.json()
    auditor = {"Authorization": f"Bearer {served.tokens['auditor']}"}
    by_worker = _spread(served, auditor, f"/proposals/{proposal['id']}")
    assert len(by_worker) == WORKERS, f"connections were accepted by {sorted(by_worker)} only"
    for answers in by_worker.values():
        for answer in answers:
            assert answer.status_code == 200, answer.text
            assert answer.json()["state"] == proposal["state"] == "proposed"
            assert answer.json()["amount"] == "12345"


def _a_console_session_is_shared_by_the_workers_and_ends_on_all(served: Served) -> None:
    """A console session opened through one worker is honoured by both; logged out through one,
    its cookie is refused by both (sessions are rows, not a worker's memory)."""
    login_csrf = "c" * 64
    opened = httpx.post(
        f"{served.base}/console/login",
        data={"csrf": login_csrf, "token": served.tokens["cb_approver"]},
        cookies={"console_login_csrf": login_csrf},
        timeout=10.0,
    )
    assert opened.status_code == 303, opened.text
    secret = opened.cookies[SESSION_COOKIE]
    cookie = {"Cookie": f"{SESSION_COOKIE}={secret}"}
    by_worker = _spread(served, cookie, "/console/proposals")
    assert len(by_worker) == WORKERS, f"connections were accepted by {sorted(by_worker)} only"
    assert all(a.status_code == 200 for answers in by_worker.values() for a in answers)

    ended = httpx.post(
        f"{served.base}/console/logout",
        data={"csrf": csrf_token(secret)},
        headers=cookie,
        timeout=10.0,
    )
    assert ended.status_code == 303
    by_worker = _spread(served, cookie, "/console/proposals")
    assert len(by_worker) == WORKERS, f"connections were accepted by {sorted(by_worker)} only"
    for answers in by_worker.values():
        for answer in answers:
            assert answer.status_code == 303, answer.text
            assert answer.headers["location"].endswith("/console/login")


def test_the_workers_listener_gives_accepted_connections_tcp_nodelay() -> None:
    """The workers' shared listener is marked TCP, so asyncio sets TCP_NODELAY on what it
    accepts (uvicorn's own left Nagle on: +40 ms per kept-alive answer, uvicorn issue 3149)."""
    listener = tcp_listener("127.0.0.1", free_port())
    seen: list[int] = []

    class Accepted(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        server = await asyncio.get_running_loop().create_server(Accepted, sock=listener)
        port = listener.getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    # A thread of its own: a browser test earlier in the same worker may have left an event
    # loop running in this one (Playwright's sync API), where asyncio.run() refuses to start.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, accept_one()).result(timeout=30)
    assert listener.proto == socket.IPPROTO_TCP
    assert seen, "no connection was accepted"
    assert seen[0] != 0, "an accepted connection kept Nagle's algorithm on"


def test_workers_refuse_a_port_another_process_shares_by_reuseport() -> None:
    """A port already bound with SO_REUSEPORT (a stale server) is refused, not silently shared."""
    stale = tcp_listener("127.0.0.1", free_port())
    stale.listen()
    try:
        with pytest.raises(OSError, match="in use"):
            worker_listeners("127.0.0.1", stale.getsockname()[1], WORKERS)
    finally:
        stale.close()
