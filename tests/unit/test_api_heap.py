"""A serving process freezes its start-up heap once it has started (``treasury.api.heap``).

What is frozen leaves the generations a full collection walks (``gc.get_objects()`` lists exactly
those): a full pass after ``settle`` walks only what was allocated since. The server's lifespan
(``treasury.cli.api.serving``) settles once it has started and closes its engine at shutdown.
Every test unfreezes afterwards, so the rest of the suite's process collects as before.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event

from treasury.api import heap
from treasury.cli.api import serving


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class Node:
    """A collector-tracked object that can hold a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def test_settle_takes_what_exists_out_of_full_collections() -> None:
    before = Node()
    walked_before = len(gc.get_objects())
    assert gc.get_freeze_count() == 0

    frozen = heap.settle()

    assert frozen == gc.get_freeze_count()
    assert frozen > walked_before // 2
    assert len(gc.get_objects()) < walked_before // 10
    assert not any(item is before for item in gc.get_objects())
    after = Node()
    assert any(item is after for item in gc.get_objects())


def test_after_settle_new_reference_cycles_are_still_collected() -> None:
    heap.settle()
    first, second = Node(), Node()
    first.other, second.other = second, first
    marker = id(first)
    del first, second

    assert gc.collect() >= 2
    assert not any(id(item) == marker for item in gc.get_objects())


def test_settle_logs_how_many_objects_it_froze(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=heap.__name__):
        frozen = heap.settle()
    (record,) = [r for r in caplog.records if r.name == heap.__name__]
    assert record.frozen_objects == frozen  # type: ignore[attr-defined]


def test_the_served_app_settles_once_started_and_closes_its_engine_at_shutdown() -> None:
    engine = create_engine("sqlite://")
    disposed: list[bool] = []
    event.listen(engine.pool, "close", lambda *_: disposed.append(True))
    with engine.connect():
        pass
    started: list[int] = []
    api = FastAPI()

    @api.get("/frozen")
    def frozen() -> int:
        return gc.get_freeze_count()

    served = serving(api, engine)
    assert gc.get_freeze_count() == 0
    with TestClient(served) as client:
        started.append(client.get("/frozen").json())
        assert disposed == []
    assert started[0] > 0
    assert disposed, "the engine's pooled connection was not closed at shutdown"
