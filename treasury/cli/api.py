"""``treasury api``: serve the REST API (OpenAPI schema at /openapi.json) with uvicorn.

The API runs the configured workflow and chain spenders (``treasury.wiring``): ``prepare`` builds
transactions for every asset whose vault and node are configured, and answers 503 for the others.
The server logs JSON lines (``treasury.logs``), uvicorn's request lines among them.

``--workers N`` serves from N processes under uvicorn's supervisor, each on its own listening
socket bound with ``SO_REUSEPORT`` (``tcp_listener`` says why not uvicorn's one shared socket);
each builds its own engine, workflow and application with ``worker_app``. One process runs every
request under one GIL, so on PostgreSQL a deployment serving many officers at once should pass
about one worker per core (``bench/api_load.py`` does). The default stays 1: on SQLite, writers
serialise on the database file whatever the number of processes, and one process is what every
deployment ran before. Nothing that must be shared lives in a worker's memory: console sessions
are rows (``treasury.console_sessions``), CSRF tokens and passkey registration challenges are
HMACs keyed by the session id with their nonce in the browser's cookie, API tokens and officers
are read from the database on every request, the limit and audit-chain locks are PostgreSQL
advisory locks (``BEGIN IMMEDIATE`` on SQLite), and the request bounds (``treasury.api.limits``)
hold no state. Per process, and harmless so: the engine's connection pool (each worker opens up
to its own pool size of connections) and the read-only caches of translations and templates.

Every serving process, one or many, freezes its start-up heap once it has started
(``treasury.api.heap``), so the garbage collector's full passes no longer stop it for tens of
milliseconds in the middle of officers' requests.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import typer
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from treasury.api import create_app, heap
from treasury.cli.context import fail, invocation, settings
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError
from treasury.logs import LogFormat, configure_logging
from treasury.settings import Settings
from treasury.wiring import configured_workflow, spender_setup

if TYPE_CHECKING:
    import uvicorn

DEFAULT_PORT = 8080
DEFAULT_WORKERS = 1
"""Processes serving the API unless ``--workers`` says otherwise (see the module docstring)."""
log = logging.getLogger(__name__)
SERVER_LOGGERS = {"uvicorn": logging.INFO}
"""uvicorn's start-up and request lines stay at INFO, as uvicorn logs them by default."""
WORKER_APP = "treasury.cli.api:worker_app"
"""The import string of the factory each worker process builds its application with."""
WORKER_HEALTHCHECK_TIMEOUT_S = 60
"""How long uvicorn waits for a worker to answer its health check before killing it. A new
worker answers only once it has imported the whole package and built its app, which took more
than uvicorn's default 5 s on a busy two-core machine: the workers were killed in a loop."""
WORKER_LOG_LEVEL_ENV = "TREASURY_API_WORKER_LOG_LEVEL"
"""Set by ``serve`` for its workers: the log level the command was run with (workers are
fresh interpreters, which get the settings from the environment but not the command's options)."""

app = typer.Typer(help="Serve the REST API for officers and auditors.", no_args_is_help=True)


def worker_app() -> FastAPI:
    """The application of one worker process: its own engine, workflow and spenders.

    uvicorn calls this in every worker (``factory=True``); the settings come from the
    environment the workers inherit, already checked by ``serve`` before they were started.
    """
    configured = Settings.from_env(os.environ)
    engine = make_engine(configured.database_url)
    sessions = session_factory(engine)
    workflow = configured_workflow(sessions, configured)
    setup = spender_setup(sessions, configured)
    level = int(os.environ.get(WORKER_LOG_LEVEL_ENV, str(logging.WARNING)))
    configure_logging(LogFormat.JSON, level, loggers=SERVER_LOGGERS)
    api = create_app(workflow, sessions, spenders=setup.spenders, settings=configured)
    return serving(api, engine)


def serving(api: FastAPI, engine: Engine) -> FastAPI:
    """``api`` as a server runs it: its start-up heap frozen once it has started
    (``treasury.api.heap``), and ``engine``'s connections closed at shutdown."""
    served = api.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with served(app) as state:
            heap.settle()
            yield state
        engine.dispose()

    api.router.lifespan_context = lifespan
    return api


def tcp_listener(host: str, port: int) -> socket.socket:
    """One worker's listening socket on the configured host and port, shared by ``SO_REUSEPORT``.

    Each worker gets its own (``ReusePortWorkers``), so the kernel spreads new connections evenly
    over the workers. uvicorn's workers share one socket instead, and whichever wakes first
    accepts every connection that is waiting: 50 clients connecting at once were split 48 to 2,
    and kept alive, the one worker served nearly all their requests while the other idled.

    The socket is made with ``IPPROTO_TCP`` named, so asyncio sets ``TCP_NODELAY`` on what it
    accepts (uvicorn's own has ``proto`` 0, its issue 3149: every answer after the first on a
    kept-alive connection then waited ~40 ms for the client's delayed ACK; measured, 44 ms for
    a 401 with two workers against 1 ms with one).
    """
    listener = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    listener.set_inheritable(True)
    return listener


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def worker_listeners(host: str, port: int, workers: int) -> list[socket.socket]:
    """``workers`` listeners on one port (the first one's, if ``port`` is 0 for any free one).

    ``SO_REUSEPORT`` would also let this server share a port with another process of the same
    user that asked for it, a stale server say, which would then answer half the requests; so
    the port is first bound without it, which fails if anything else holds it.
    """
    if port:
        with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    first = tcp_listener(host, port)
    port = first.getsockname()[1]
    return [first, *(tcp_listener(host, port) for _ in range(workers - 1))]


def reuse_port_workers(config: uvicorn.Config) -> Any:
    """uvicorn's worker supervisor (health checks, restarts, signals), each worker started on
    its own ``tcp_listener``; a restarted worker takes over the listener of the one it replaces."""
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors.multiprocess import Multiprocess, Process

    class ReusePortWorkers(Multiprocess):
        def __init__(self) -> None:
            self.listeners = worker_listeners(config.host, config.port, config.workers)
            super().__init__(config, sockets=[])

        def init_processes(self) -> None:
            for listener in self.listeners:
                process = Process(self.config, [listener])
                process.start()
                self.processes.append(process)

        def keep_subprocess_alive(self) -> None:
            # uvicorn's own loop, but a dead worker's replacement gets the dead one's listener.
            if self.should_exit.is_set():
                return
            for index, process in enumerate(self.processes):
                if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                    continue
                process.kill()
                process.join()
                if process.exitcode == STARTUP_FAILURE:
                    log.error("Worker %s failed to start; stopping the server.", process.pid)
                    self.should_exit.set()
                    return
                if self.should_exit.is_set():
                    return
                log.warning("Worker %s died; starting another.", process.pid)
                replacement = Process(self.config, [self.listeners[index]])
                replacement.start()
                self.processes[index] = replacement

        def restart_all(self) -> None:
            for index, old in enumerate(list(self.processes)):
                if self.should_exit.is_set():
                    return
                new = Process(self.config, [self.listeners[index]])
                new.start()
                if not new.wait_until_ready(self.config.timeout_worker_healthcheck):
                    new.kill()
                    new.join()
                    return
                old.terminate()
                old.join()
                self.processes[index] = new

    return ReusePortWorkers()


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(DEFAULT_PORT, help="TCP port to listen on."),
    workers: int = typer.Option(
        DEFAULT_WORKERS,
        min=1,
        help="Processes serving requests; on PostgreSQL, about one per core for many clients.",
    ),
) -> None:
    """Serve the API on HOST:PORT over TREASURY_DATABASE_URL and the vaults and nodes `treasury spend --help` describes, until interrupted."""
    import uvicorn  # imported here: every other command starts without it

    configured = settings()
    try:
        engine = make_engine(configured.database_url)
    except TreasuryError as exc:
        raise fail(exc) from None
    try:
        sessions = session_factory(engine)
        try:
            workflow = configured_workflow(sessions, configured)
            setup = spender_setup(sessions, configured)
        except TreasuryError as exc:
            raise fail(exc) from None
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise fail(
                f"the database refused the operation ({reason}); run `treasury db upgrade`?"
            ) from None
        for asset, problem in setup.problems.items():
            typer.secho(f"note: {asset} spends cannot be prepared: {problem}", err=True)
        log_level = invocation().log_level
        configure_logging(LogFormat.JSON, log_level, loggers=SERVER_LOGGERS)
        if workers > 1:
            engine.dispose()  # the workers open their own; nothing of this one is shared
            os.environ[WORKER_LOG_LEVEL_ENV] = str(log_level)
            config = uvicorn.Config(
                WORKER_APP, factory=True, host=host, port=port, workers=workers,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT_S, log_config=None,
            )  # fmt: skip
            try:
                supervisor = reuse_port_workers(config)
            except OSError as exc:
                raise fail(f"cannot listen on {host}:{port} ({exc})") from None
            supervisor.run()
            return
        api = create_app(workflow, sessions, spenders=setup.spenders, settings=configured)
        uvicorn.run(serving(api, engine), host=host, port=port, log_config=None)
    finally:
        engine.dispose()
