"""What one read of a vault's chain found: plain values, so booking is testable without nodes.

A chain reader (``bitcoin.py``, ``ethereum.py``) turns custody's chain observations (wallet
transactions, Safe events, balances) into an ``Observation``; the booker (``booking.py``) turns
an observation into ledger entries in one database transaction. Blocks are custody's
``BlockRef`` (height and hash), the same value the chain reads return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from custody.blocks import BlockRef
from treasury.ledger import AssetSpec
from treasury.reconcile.records import MovementKind

__all__ = [
    "BlockRef",
    "BookedState",
    "ChainBalance",
    "Movement",
    "Observation",
    "Progress",
    "SpendEvent",
    "no_progress",
]

Progress = Callable[[str], None]
"""Where long catch-ups report how far they got (one line per call)."""


def no_progress(_line: str) -> None:
    """Discard progress lines."""


@dataclass(frozen=True)
class Movement:
    """Money into (deposit) or out of (outflow) a vault, in one confirmed block."""

    chain_key: str
    """Stable chain identity: ``btc:<txid>:<vout>``, ``btc:<txid>:out``, ``eth:<tx>:<log index>``."""
    kind: MovementKind
    asset: AssetSpec
    amount: int
    tx_ref: str
    block: BlockRef


@dataclass(frozen=True)
class SpendEvent:
    """A transaction that moved money out of a vault, with what should authorise it.

    ``evidence`` is the txid (Bitcoin) or the SafeTx hash (Safe) that the officers' verified
    statements must name (``authorisation.py``); ``None`` for an outflow with no Safe execution
    at all (e.g. a token ``transferFrom`` by someone the Safe once approved).
    """

    tx_ref: str
    evidence: str | None
    block: BlockRef
    outflow: int | None = None
    """Bitcoin: what the transaction took out of the vault, net (its payments plus its fee), as
    the wallet saw it; the fee the officers capped is checked against this, not against a stored
    PSBT's input amounts, which the txid does not cover. ``None`` on Safes (the SafeTx hash covers
    every ether it can send)."""
    native_asset: str | None = None
    """Safes: the code of their chain's native coin (``ETH``, ``BNB``), which statements name for
    a plain value transfer; ``None`` on Bitcoin."""


@dataclass(frozen=True)
class ChainBalance:
    """The vault's balance of one asset at the observation's block."""

    asset: AssetSpec
    gate_asset: str
    """The asset's name in spend proposals and the policy gate."""
    amount: int


@dataclass(frozen=True)
class Observation:
    """Everything one run learnt about one vault, up to ``target`` (a confirmed block)."""

    scope: str
    chain: str
    target: BlockRef
    orphaned_above: int | None
    """Bookings in blocks above this height left the best chain (``-1``: all of them)."""
    movements: tuple[Movement, ...]
    spend_events: tuple[SpendEvent, ...]
    balances: tuple[ChainBalance, ...]
    failed_txs: tuple[str, ...] = ()
    """In-flight spend transactions the chain reports conflicted or reverted."""
    dropped_txs: tuple[str, ...] = ()
    """In-flight spend transactions the vault's wallet knows but neither a block nor the node's
    mempool holds, and nothing conflicts (``drops.py``)."""
    live_txs: tuple[str, ...] = ()
    """In-flight spend transactions the vault's wallet knows in the mempool or in a block."""
    released_txs: tuple[str, ...] = ()
    """Dropped past the timeout and abandoned in the wallet: their proposals fail now."""
    rebroadcast_txs: tuple[str, ...] = ()
    """Dropped past the timeout, sent again by the reader and taken into the mempool."""


@dataclass(frozen=True)
class BookedState:
    """What the database says about a vault before the chain is read."""

    cursor: BlockRef | None
    booked_blocks: tuple[BlockRef, ...]
    """Distinct blocks of active bookings, highest first."""
    in_flight: tuple[str, ...]
    """Txids of broadcast spend proposals not yet settled."""
    due: tuple[str, ...] = ()
    """In-flight txids noted dropped for longer than the timeout: the reader checks each once
    more and releases it (or, by policy, rebroadcasts it)."""
