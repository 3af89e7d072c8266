"""How many blocks remain before a vault coin's recovery path opens (BIP-68 / BIP-112).

``older(N)`` in the vault's script is ``<N> OP_CHECKSEQUENCEVERIFY``: a spend through the recovery
path is valid only in a block at least ``N`` blocks above the block that confirmed the coin, and
only from a version-2 transaction whose input's ``nSequence`` is a block-based relative lock of
at least ``N``. A coin with ``c`` confirmations was confirmed at height ``tip - c + 1``; a spend
can go into the next block (height ``tip + 1``, which is also what the node's mempool checks
against) once ``c >= N``. So ``N - c`` blocks are left, never fewer than zero; an unconfirmed coin
(``c = 0``) has all ``N`` ahead of it. Every coin moved by the primary quorum starts the count
again, which is what a "refresh" (a self-transfer back into the vault) is for.

Pure functions over integers, so the reconciler's alarm and the site can show the same number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from custody.bitcoin.recovery.errors import RecoveryPolicyError, RecoveryWindowError

MIN_RECOVERY_DELAY_BLOCKS = 1
MAX_RECOVERY_DELAY_BLOCKS = 0xFFFF
"""BIP-68 holds a block-based relative lock in the low 16 bits of ``nSequence``."""
SEQUENCE_DISABLE_FLAG = 1 << 31
"""BIP-68: with this bit set, ``nSequence`` carries no relative lock at all."""
SEQUENCE_TYPE_FLAG = 1 << 22
"""BIP-68: with this bit set, the lock counts 512-second units instead of blocks."""
SEQUENCE_LOCKTIME_MASK = 0x0000FFFF
"""BIP-68: the lock value's bits."""
RELATIVE_LOCK_TX_VERSION = 2
"""BIP-68 applies (and ``OP_CHECKSEQUENCEVERIFY`` passes) only from this transaction version."""
PERCENT = 100


def check_recovery_delay(delay_blocks: int) -> int:
    """``delay_blocks`` if it is a valid block-based relative lock, else ``RecoveryPolicyError``."""
    if isinstance(delay_blocks, bool) or not isinstance(delay_blocks, int):
        raise RecoveryPolicyError("The recovery delay must be an integer number of blocks.")
    if not MIN_RECOVERY_DELAY_BLOCKS <= delay_blocks <= MAX_RECOVERY_DELAY_BLOCKS:
        raise RecoveryPolicyError(
            f"The recovery delay must be between {MIN_RECOVERY_DELAY_BLOCKS} and "
            f"{MAX_RECOVERY_DELAY_BLOCKS} blocks (a BIP-68 block lock); got {delay_blocks}."
        )
    return delay_blocks


def blocks_until_recovery(confirmations: int, delay_blocks: int) -> int:
    """Blocks still to be mined before a coin with ``confirmations`` can be spent by recovery.

    0 means a recovery spend is accepted now (into the mempool and the next block).
    """
    check_recovery_delay(delay_blocks)
    if isinstance(confirmations, bool) or not isinstance(confirmations, int) or confirmations < 0:
        raise RecoveryWindowError(
            f"Confirmations must be a non-negative integer; got {confirmations!r}."
        )
    return max(0, delay_blocks - confirmations)


def refresh_due(blocks_left: int, delay_blocks: int, alarm_percent_left: int) -> bool:
    """Whether a coin with ``blocks_left`` should be refreshed: at most ``alarm_percent_left``
    percent of the delay remains (``refresh_due(20, 100, 20)`` is due). Integer arithmetic only."""
    check_recovery_delay(delay_blocks)
    if not 0 <= alarm_percent_left <= PERCENT:
        raise RecoveryPolicyError(
            f"The alarm share must be a percentage between 0 and {PERCENT}; "
            f"got {alarm_percent_left}."
        )
    if not 0 <= blocks_left <= delay_blocks:
        raise RecoveryWindowError(
            f"Blocks left ({blocks_left}) must lie between 0 and the delay ({delay_blocks})."
        )
    return blocks_left * PERCENT <= delay_blocks * alarm_percent_left


def recovery_sequence(delay_blocks: int) -> int:
    """The ``nSequence`` of a recovery input: a block-based relative lock of ``delay_blocks``."""
    return check_recovery_delay(delay_blocks)


def sequence_allows(sequence: int, tx_version: int, delay_blocks: int) -> bool:
    """Whether an input with ``sequence`` in a ``tx_version`` transaction satisfies ``older``.

    The script check of BIP-112: version at least 2, relative lock enabled, block-based, and at
    least ``delay_blocks``. (Whether enough blocks have passed is the node's BIP-68 check.)
    """
    return (
        tx_version >= RELATIVE_LOCK_TX_VERSION
        and not sequence & SEQUENCE_DISABLE_FLAG
        and not sequence & SEQUENCE_TYPE_FLAG
        and (sequence & SEQUENCE_LOCKTIME_MASK) >= delay_blocks
    )


@dataclass(frozen=True)
class CoinRecoveryWindow:
    """One vault coin's standing against its recovery timelock, at one chain tip."""

    txid: str
    vout: int
    confirmations: int
    delay_blocks: int

    @property
    def blocks_left(self) -> int:
        """Blocks to be mined before the recovery path can spend this coin (0: open now)."""
        return blocks_until_recovery(self.confirmations, self.delay_blocks)

    @property
    def recovery_open(self) -> bool:
        return self.blocks_left == 0

    def refresh_due(self, alarm_percent_left: int) -> bool:
        """Whether at most ``alarm_percent_left`` percent of the delay remains for this coin."""
        return refresh_due(self.blocks_left, self.delay_blocks, alarm_percent_left)


def coin_windows(
    unspent: Sequence[Mapping[str, Any]], delay_blocks: int
) -> list[CoinRecoveryWindow]:
    """Each coin of a ``listunspent`` answer (a watch-only wallet of one recovery vault) with
    the blocks left before its recovery path opens, soonest first."""
    check_recovery_delay(delay_blocks)
    windows = [
        CoinRecoveryWindow(
            txid=str(coin["txid"]),
            vout=int(coin["vout"]),
            confirmations=int(coin["confirmations"]),
            delay_blocks=delay_blocks,
        )
        for coin in unspent
    ]
    return sorted(windows, key=lambda w: (w.blocks_left, w.txid, w.vout))
