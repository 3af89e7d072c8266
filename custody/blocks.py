"""A block named by height and hash: how custody's chain reads say where they looked.

A height alone names different blocks before and after a reorganisation; every observation that
custody's chain interfaces return (``custody.bitcoin.observe``, ``custody.ethereum.events``)
carries the hash too, so a caller can tell whether the block it read is still the best chain's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BlockRef:
    """A block by height and hash: a cursor is never a height alone."""

    height: int
    hash: str
