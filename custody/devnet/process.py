"""A node process that always stops: on ``stop()``, on interpreter exit, on SIGTERM, and when the
parent dies (Linux parent-death signal).

Each process gets a temp data dir and free ports; its stdout/stderr go to files in that dir (a pipe
could fill up and block the node), and the tail of stderr is quoted in any start-up error.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

from custody.exceptions import NodeStartError

log = logging.getLogger(__name__)

STOP_GRACE_S = 15.0
"""How long a node may take to shut down after SIGTERM before it is killed."""
POLL_INTERVAL_S = 0.05
_PR_SET_PDEATHSIG = 1

_live: set[ManagedProcess] = set()
_live_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the child if this process dies without stopping it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def stop_all() -> None:
    """Stop every node this process started (atexit and signal handlers call this)."""
    with _live_lock:
        running = list(_live)
    for proc in running:
        proc.stop()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    stop_all()
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """Turn SIGTERM into a clean stop of every node (SIGINT already raises KeyboardInterrupt)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


atexit.register(stop_all)


class ManagedProcess:
    """One node process with its own temp data dir; a context manager that always cleans up."""

    name = "node"

    def __init__(self, datadir: Path | None = None) -> None:
        self._owns_datadir = datadir is None
        self.datadir = datadir or Path(tempfile.mkdtemp(prefix=f"treasury-{self.name}-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop_lock = threading.Lock()

    # Subclasses say how to run and how to ask "are you ready?".
    def _argv(self) -> Sequence[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _stderr_tail(self, lines: int = 15) -> str:
        chunks = []
        for stream in ("stderr.log", "stdout.log"):
            path = self.datadir / stream
            if path.is_file():
                chunks += path.read_text(errors="replace").strip().splitlines()[-lines:]
        return "\n".join(chunks[-lines:]) or "(the node printed nothing)"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the node and return once its RPC answers; raise ``NodeStartError`` otherwise."""
        argv = list(self._argv())
        self.datadir.mkdir(parents=True, exist_ok=True)
        with (
            (self.datadir / "stdout.log").open("wb") as out,
            (self.datadir / "stderr.log").open("wb") as err,
        ):
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    preexec_fn=_die_with_parent,  # only calls prctl; takes no locks
                )
            except OSError as exc:
                self._cleanup_datadir()
                raise NodeStartError(
                    f"{self.name} could not be started: `{argv[0]}`: {exc.strerror}. "
                    "Run `treasury devnet install`, or set the binary's environment variable."
                ) from None
        with _live_lock:
            _live.add(self)
        log.info(
            "%s started", self.name, extra={"pid": self._proc.pid, "datadir": str(self.datadir)}
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                code, tail = self._proc.returncode, self._stderr_tail()
                self.stop()
                raise NodeStartError(f"{self.name} exited with code {code} while starting:\n{tail}")
            if self._ready():
                return
            if time.monotonic() > deadline:
                tail = self._stderr_tail()
                self.stop()
                raise NodeStartError(
                    f"{self.name} did not answer RPC within {timeout_s:.0f} s; its last output:\n{tail}"
                )
            time.sleep(POLL_INTERVAL_S)

    def stop(self) -> None:
        """Stop the node (SIGTERM, then SIGKILL after a grace period) and delete its temp dir."""
        with self._stop_lock:
            proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    log.warning(
                        "%s ignored SIGTERM for %.0f s; killing it", self.name, STOP_GRACE_S
                    )
                    proc.kill()
                    proc.wait(timeout=STOP_GRACE_S)
            with _live_lock:
                _live.discard(self)
            self._cleanup_datadir()

    def _cleanup_datadir(self) -> None:
        if self._owns_datadir:
            shutil.rmtree(self.datadir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
