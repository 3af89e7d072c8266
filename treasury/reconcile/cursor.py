"""Cursors and reorgs: where to resume, and which bookings left the best chain.

A cursor is a block hash plus its height. If the chain's block at the cursor's height has
another hash, the cursor's block was orphaned: every booking above the highest booked block that
is still on the best chain is reversed, and reading resumes from that block (bookings are keyed
by chain identity, so re-reading an already booked range books nothing twice).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from treasury.reconcile.observation import BlockRef

CanonicalHash = Callable[[int], str | None]
"""The best chain's block hash at a height (``None`` above the tip)."""


@dataclass(frozen=True)
class Resume:
    """Where reading resumes, and above which height bookings must be reversed (if any)."""

    start: BlockRef | None
    """The last block already read on the best chain (``None``: read from the beginning)."""
    orphaned_above: int | None


def resume_point(
    cursor: BlockRef | None, booked_blocks: Sequence[BlockRef], canonical_hash: CanonicalHash
) -> Resume:
    """Check the cursor against the best chain; on a reorg, find the highest surviving block."""
    if cursor is None:
        return Resume(None, None)
    if canonical_hash(cursor.height) == cursor.hash:
        return Resume(cursor, None)
    for block in sorted(booked_blocks, key=lambda b: b.height, reverse=True):
        if canonical_hash(block.height) == block.hash:
            return Resume(block, block.height)
    return Resume(None, -1)
