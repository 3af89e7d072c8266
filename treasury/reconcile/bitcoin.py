"""Read a Bitcoin vault's watch-only descriptor wallet up to a confirmed block.

The wallet is read through ``custody.bitcoin.observe``: its confirmed transactions since the
resume block become movements (one deposit per output paid to the vault; a transaction spending
vault coins is one outflow, or a net deposit, plus the spend event its txid evidences), and its
balance at the confirmed block becomes the chain balance the booker compares.
"""

from __future__ import annotations

from custody.bitcoin import observe
from custody.bitcoin.rpc import BitcoinRPC
from custody.exceptions import BitcoinRPCError, RPCError
from treasury.ledger import BTC
from treasury.reconcile.errors import ChainMovedError
from treasury.reconcile.observation import (
    BlockRef,
    BookedState,
    ChainBalance,
    Movement,
    Observation,
    SpendEvent,
)
from treasury.reconcile.reader import ChainNode, ConfirmedReader
from treasury.reconcile.records import MovementKind

DEFAULT_MIN_CONFIRMATIONS_BTC = 1
"""Blocks on top of (and including) a block before its transactions are booked."""
READ_ATTEMPTS = 3
"""Reads of one vault retried when a block arrives mid-read, before the run gives up on it."""


def btc_scope(vault_name: str) -> str:
    """The reconciliation scope of a Bitcoin vault."""
    return f"btc:{vault_name}"


def _movement(
    tx: observe.WalletTransaction, suffix: str, kind: MovementKind, amount: int
) -> Movement:
    return Movement(f"btc:{tx.txid}:{suffix}", kind, BTC, amount, tx.txid, tx.block)


def _movements(
    transactions: tuple[observe.WalletTransaction, ...],
) -> tuple[tuple[Movement, ...], tuple[SpendEvent, ...]]:
    """Deposits per output paid to the vault; a spending transaction's net, and its spend event."""
    movements: list[Movement] = []
    events: list[SpendEvent] = []
    for tx in transactions:
        net = tx.spent_net_sats
        if net is None:
            movements += [
                _movement(tx, str(out.vout), MovementKind.DEPOSIT, out.amount_sats)
                for out in tx.received
            ]
            continue
        if net < 0:
            movements.append(_movement(tx, "out", MovementKind.OUTFLOW, -net))
        elif net > 0:
            movements.append(_movement(tx, "net", MovementKind.DEPOSIT, net))
        events.append(SpendEvent(tx.txid, tx.txid, tx.block))
    return tuple(movements), tuple(events)


def _unreachable(exc: RPCError) -> bool:
    """bitcoind could not be reached, or answered with an HTTP error page."""
    return isinstance(exc, BitcoinRPCError) and not observe.node_answered(exc)


class BitcoinReader(ConfirmedReader[BitcoinRPC]):
    """Observations of Bitcoin vaults from one bitcoind."""

    kind = ChainNode("bitcoin", "bitcoind", DEFAULT_MIN_CONFIRMATIONS_BTC, _unreachable)

    def _canonical(self, height: int) -> str | None:
        return observe.block_hash(self._rpc, height)

    def observe(self, scope: str, wallet_name: str, state: BookedState) -> Observation:
        """Read the vault's wallet up to the confirmed block; retried if a block lands mid-read."""
        with self._node_answers():
            wallet = observe.open_wallet(self._rpc, wallet_name)
            for _attempt in range(READ_ATTEMPTS):
                last = observe.last_processed_block(wallet)
                observation = self._observe_at(scope, wallet, state, last.height)
                if observe.last_processed_block(wallet).hash == last.hash:
                    return observation
        raise ChainMovedError(
            f"Blocks kept arriving while vault {scope} was read; the next run reads it again."
        )

    def _observe_at(
        self, scope: str, wallet: BitcoinRPC, state: BookedState, tip: int
    ) -> Observation:
        height, resume = self._window(state, tip)
        if (idle := self._nothing_new(scope, height, resume)) is not None:
            return idle
        confirmed = observe.block_hash(self._rpc, height)
        if confirmed is None:
            raise ChainMovedError(f"Block {height} left the chain while vault {scope} was read.")
        target = BlockRef(height, confirmed)
        listed = observe.wallet_transactions(wallet, resume.start, height, self._progress)
        movements, events = _movements(listed)
        balance = observe.balance_at(wallet, target, self._min_conf)
        failed = tuple(txid for txid in state.in_flight if observe.conflicted(wallet, txid))
        return Observation(
            scope=scope,
            chain=self.chain,
            target=target,
            orphaned_above=resume.orphaned_above,
            movements=movements,
            spend_events=events,
            balances=(ChainBalance(BTC, "BTC", balance),),
            failed_txs=failed,
        )
