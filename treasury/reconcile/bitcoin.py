"""Read a Bitcoin vault's watch-only descriptor wallet up to a confirmed block.

The wallet is read through ``custody.bitcoin.observe``: its confirmed transactions since the
resume block become movements (one deposit per output paid to the vault; a transaction spending
vault coins is one outflow, or a net deposit, plus the spend event its txid evidences), and its
balance at the confirmed block becomes the chain balance the booker compares.

Each in-flight spend the vault's wallet knows is classed once per read: conflicted by a block
(failed), live (in a block or in the node's mempool), or dropped (neither, and nothing conflicts
with it). A spend dropped for longer than the timeout (``BookedState.due``, ``drops.py``) is
abandoned in the wallet, so its inputs are free again, or first sent again by policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from custody.bitcoin import observe
from custody.bitcoin.rpc import BitcoinRPC, RPCCall
from custody.exceptions import BitcoinRPCError, RPCError
from treasury.ledger import BTC
from treasury.reconcile.drops import DropPolicy
from treasury.reconcile.errors import ChainMovedError
from treasury.reconcile.observation import (
    BlockRef,
    BookedState,
    ChainBalance,
    Movement,
    Observation,
    Progress,
    SpendEvent,
    no_progress,
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
        events.append(SpendEvent(tx.txid, tx.txid, tx.block, outflow=-net))
    return tuple(movements), tuple(events)


@dataclass(frozen=True)
class InFlight:
    """What the node says about the broadcast spends a vault's wallet knows."""

    failed: tuple[str, ...] = ()
    live: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    released: tuple[str, ...] = ()
    rebroadcast: tuple[str, ...] = ()


def _unreachable(exc: RPCError) -> bool:
    """bitcoind could not be reached, or answered with an HTTP error page."""
    return isinstance(exc, BitcoinRPCError) and not observe.node_answered(exc)


class BitcoinReader(ConfirmedReader[BitcoinRPC]):
    """Observations of Bitcoin vaults from one bitcoind."""

    kind = ChainNode("bitcoin", "bitcoind", DEFAULT_MIN_CONFIRMATIONS_BTC, _unreachable)

    def __init__(
        self,
        rpc: BitcoinRPC,
        *,
        min_confirmations: int | None = None,
        progress: Progress = no_progress,
        drop_policy: DropPolicy = DropPolicy.VOID,
    ) -> None:
        super().__init__(rpc, min_confirmations=min_confirmations, progress=progress)
        self._drop_policy = drop_policy

    @property
    def rpc(self) -> BitcoinRPC:
        """The node this reader reads (the refresh watch reads recovery vaults' coins from it)."""
        return self._rpc

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
                    found = self._in_flight(wallet, state)
                    return replace(
                        observation,
                        failed_txs=found.failed,
                        live_txs=found.live,
                        dropped_txs=found.dropped,
                        released_txs=found.released,
                        rebroadcast_txs=found.rebroadcast,
                    )
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
        return Observation(
            scope=scope,
            chain=self.chain,
            target=target,
            orphaned_above=resume.orphaned_above,
            movements=movements,
            spend_events=events,
            balances=(ChainBalance(BTC, "BTC", balance),),
        )

    def _in_flight(self, wallet: BitcoinRPC, state: BookedState) -> InFlight:
        """Class every in-flight spend this wallet knows; act on those dropped past the timeout.

        The wallet's view of every spend, then the mempool's of those still unconfirmed, are read
        in one batch each.
        """
        failed: list[str] = []
        live: list[str] = []
        dropped: list[str] = []
        released: list[str] = []
        rebroadcast: list[str] = []
        known = self._wallet_txs(wallet, state.in_flight)
        pooled = self._in_mempool([t for t, f in known.items() if int(f["confirmations"]) == 0])
        for txid, found in known.items():
            confirmations = int(found["confirmations"])
            if confirmations < 0:
                failed.append(txid)
            elif confirmations > 0 or txid in pooled:
                live.append(txid)
            elif found.get("walletconflicts") or found.get("mempoolconflicts"):
                continue  # replaced or double-spent: the chain will say which one wins
            elif txid not in state.due:
                dropped.append(txid)
            elif self._drop_policy is DropPolicy.REBROADCAST and self._resend(found):
                live.append(txid)
                rebroadcast.append(txid)
            else:
                wallet.call("abandontransaction", txid)
                released.append(txid)
        return InFlight(
            tuple(failed), tuple(live), tuple(dropped), tuple(released), tuple(rebroadcast)
        )

    @staticmethod
    def _wallet_txs(wallet: BitcoinRPC, txids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The wallet's ``gettransaction`` of each txid it knows (another vault's spend it does
        not), in the order given."""
        replies = wallet.batch([RPCCall("gettransaction", (txid, True)) for txid in txids])
        known: dict[str, dict[str, Any]] = {}
        for txid, reply in zip(txids, replies, strict=True):
            if reply.error is not None and reply.error.code == observe.RPC_NOT_FOUND_CODE:
                continue  # another vault's spend
            known[txid] = reply.value()
        return known

    def _in_mempool(self, txids: Sequence[str]) -> set[str]:
        """Those of ``txids`` the node's mempool holds."""
        replies = self._rpc.batch([RPCCall("getmempoolentry", (txid,)) for txid in txids])
        pooled: set[str] = set()
        for txid, reply in zip(txids, replies, strict=True):
            if reply.error is not None and reply.error.code == observe.RPC_NOT_FOUND_CODE:
                continue
            reply.value()
            pooled.add(txid)
        return pooled

    def _resend(self, found: dict[str, Any]) -> bool:
        """Send the wallet's copy of the signed transaction again; whether the node took it."""
        try:
            self._rpc.call("sendrawtransaction", found["hex"])
        except BitcoinRPCError as exc:
            if not observe.node_answered(exc):
                raise
            return False  # refused (fee too low now, inputs gone...): released instead
        return True
