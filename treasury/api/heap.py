"""A serving process's start-up heap, kept out of the garbage collector's full passes.

CPython's cyclic collector stops the whole process (its event loop and every worker thread)
while it runs, and a full (generation 2) pass walks every tracked object. A worker that has
imported the treasury and built its application holds about 280 thousand of them: the
framework's routes and schemas, the ORM's mappers, the policy and translation tables. They live
as long as the process, yet every full pass walked them again, and under load each pass took
20 to 170 ms (measured with ``gc.callbacks`` in ``bench/api_load.py``'s server): every request in
flight then waited that long, which was most of the API's p99.

``settle`` runs once, when the server has started: one full collection, then ``gc.freeze()``
moves every surviving object to the permanent generation, which the collector no longer walks.
Objects that requests allocate are collected as before. Frozen objects are still freed when
their reference count drops to zero; only a reference cycle among them would be kept, and the
start-up heap is not garbage. This is CPython's documented use of ``gc.freeze``; the test suite
builds many applications in one process and does not call it.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def settle() -> int:
    """Collect once, then freeze what survives; the number of objects now frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("start-up heap frozen out of full collections", extra={"frozen_objects": frozen})
    return frozen
