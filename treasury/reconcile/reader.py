"""What the Bitcoin and Ethereum readers share: the confirmation depth, and what is left to read.

Both read a vault up to the confirmed height (tip minus ``min_confirmations`` plus one), from
where the cursor says to resume; when nothing new is confirmed the read is an empty observation
that still carries the reorg finding, so orphaned bookings are reversed even on a quiet chain.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from treasury.reconcile.cursor import Resume, resume_point
from treasury.reconcile.errors import ReconcileError
from treasury.reconcile.observation import BlockRef, BookedState, Observation, Progress


class ConfirmedReader(ABC):
    """A chain reader that books only blocks with ``min_confirmations`` (at least 1)."""

    chain: ClassVar[str]
    """The chain named in this reader's observations."""

    def __init__(self, *, min_confirmations: int, progress: Progress) -> None:
        if min_confirmations < 1:
            raise ReconcileError("The min_confirmations setting must be at least 1.")
        self._min_conf = min_confirmations
        self._progress = progress

    @abstractmethod
    def _canonical(self, height: int) -> str | None:
        """The best chain's block hash at ``height`` (``None`` above the tip)."""

    def _window(self, state: BookedState, tip: int) -> tuple[int, Resume]:
        """The confirmed height to read up to, and where reading resumes below it."""
        height = tip - self._min_conf + 1
        return height, resume_point(state.cursor, state.booked_blocks, self._canonical)

    def _nothing_new(self, scope: str, height: int, resume: Resume) -> Observation | None:
        """An empty observation at the resume block if no block above it is confirmed yet."""
        if height >= 0 and (resume.start is None or resume.start.height < height):
            return None
        target = resume.start or BlockRef(-1, "")
        return Observation(scope, self.chain, target, resume.orphaned_above, (), (), ())
