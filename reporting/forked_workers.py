"""Run a few hashing tasks at once in forked worker processes that write into shared memory.

Hashing a large tree is CPU-bound Python (one ``hashlib`` call per node), so threads do not help
and only processes use more than one core. Forking lets a worker read the parent's inputs
(account ids, amounts, salts) without copying or pickling them, and every array a worker writes
lives in an anonymous shared mapping (``MAP_SHARED | MAP_ANONYMOUS``) made before the fork: it
has no name, so nothing can be left behind in ``/dev/shm``, and the kernel frees it with the
last array that views it. A worker reports only success or failure (its exit status); a task
whose worker failed is run again in the parent, so its outcome (values or the error it raises)
is exactly the one-process outcome. Where ``fork`` does not exist everything runs in the parent.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import sys
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

Task = Callable[[], None]
"""A unit of work that writes its results into shared arrays and returns nothing."""

MAX_WORKERS = 8
"""Most processes one call uses: past this, start-up and memory bandwidth outweigh the gain."""

_CHILD_FAILED_EXIT_CODE = 70
"""Exit status of a worker whose task raised (EX_SOFTWARE); the parent then redoes the task."""


def can_fork() -> bool:
    """Tell whether worker processes can be forked here (POSIX, not Windows)."""
    return hasattr(os, "fork") and sys.platform != "win32"


def available_cores() -> int:
    """Return the cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def shared_array(shape: tuple[int, ...], *, shared: bool) -> npt.NDArray[np.uint8]:
    """Return a zeroed ``uint8`` array, in memory that forked workers share if ``shared``.

    A shared array is a view of an anonymous shared mapping: writes by any forked process are
    seen by all, and the mapping is released when the last view of it is garbage-collected.
    """
    size = 1
    for extent in shape:
        size *= extent
    if not shared or size == 0:
        return np.zeros(shape, dtype=np.uint8)
    region = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    return np.frombuffer(region, dtype=np.uint8, count=size).reshape(shape)


def run_tasks(tasks: Sequence[Task]) -> None:
    """Run every task, all but the first in forked workers, and return when all are done.

    The parent runs the first task itself, then waits for the workers. A worker that fails
    (its task raised, or it was killed) has its task run again here, so an error in the inputs
    is raised in the parent, in task order, exactly as a one-process run raises it. If the
    parent's own task raises, the workers are killed and reaped before the error propagates.
    """
    if len(tasks) <= 1 or not can_fork():
        for task in tasks:
            task()
        return
    pending: list[tuple[int, Task]] = []
    failed: list[Task] = []
    try:
        for task in tasks[1:]:
            pending.append((_fork(task), task))
        tasks[0]()
        while pending:
            pid, task = pending[0]
            if _reap(pid) != 0:
                failed.append(task)
            pending.pop(0)
    finally:
        for pid, _ in pending:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid, _ in pending:
            _reap(pid)
    for task in failed:
        task()


def _fork(task: Task) -> int:
    """Start one worker running ``task``; return its process id."""
    pid = os.fork()
    if pid:
        return pid
    code = _CHILD_FAILED_EXIT_CODE
    try:
        task()
        code = 0
    except BaseException:  # the parent redoes the task, so it raises the error itself
        code = _CHILD_FAILED_EXIT_CODE
    finally:
        os._exit(code)  # never returns into the parent's code, runs no atexit handler


def _reap(pid: int) -> int:
    """Wait for a worker to end and return its exit status (a negative signal number if killed)."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return -1
    return os.waitstatus_to_exitcode(status)
