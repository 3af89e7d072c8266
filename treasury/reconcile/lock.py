"""One reconciliation at a time across processes.

PostgreSQL: a session-level ``pg_try_advisory_lock`` on a dedicated connection, held for the
whole run and released when the run ends (or when the connection dies with its process).

SQLite: an exclusive ``flock`` on a file next to the database (``<db>.reconcile.lock``). A lock
row under ``BEGIN IMMEDIATE`` would hold SQLite's single write lock for the whole run and stall
every other writer (spends, the API); the file lock excludes only other reconcilers, and the
kernel drops it when its process exits, so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, func, select

from treasury.reconcile.errors import ReconcileConfigError

POSTGRES_RUN_LOCK_KEY = 0x5245434F4E43
"""The advisory lock key of reconciliation runs ("RECONC")."""


@contextlib.contextmanager
def run_lock(engine: Engine) -> Iterator[bool]:
    """Try to take the run lock without waiting; yields whether this process holds it."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            held = bool(connection.scalar(select(func.pg_try_advisory_lock(POSTGRES_RUN_LOCK_KEY))))
            try:
                yield held
            finally:
                if held:
                    connection.scalar(select(func.pg_advisory_unlock(POSTGRES_RUN_LOCK_KEY)))
        return
    database = engine.url.database
    if not database or database == ":memory:":
        raise ReconcileConfigError(
            "The reconciler needs a file database (or PostgreSQL): an in-memory SQLite database "
            "cannot be shared between scheduler processes."
        )
    path = Path(f"{database}.reconcile.lock")
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
