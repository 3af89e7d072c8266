"""The clock every layer is given: a callable returning the current UTC time.

Time is injected rather than read, so that tests are deterministic and property tests can
shrink; ``utc_now`` is the real clock that production passes in at the edge.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utc_now"]

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware; injected so tests are deterministic."""


def utc_now() -> datetime:
    """The real clock: the current time in UTC."""
    return datetime.now(UTC)
