"""The story clock: real time plus the days the story skips.

Everything that judges time (workflow, policy, reconciliation, roster records) reads it, so their
checks agree when the story jumps over the allowlist's 48-hour delay.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class StoryClock:
    """Real time plus the days the story skips; every time-judging component reads this."""

    def __init__(self, start: datetime | None = None) -> None:
        self._offset = timedelta(0)
        self._start = start

    def __call__(self) -> datetime:
        now = self._start if self._start is not None else datetime.now(UTC)
        return now + self._offset

    def advance(self, delta: timedelta) -> None:
        self._offset += delta
