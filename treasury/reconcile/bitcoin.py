"""Read a Bitcoin vault's watch-only descriptor wallet up to a confirmed block (no -txindex).

Deposits come from ``listsinceblock`` (one entry per output paid to the vault, so several
outputs of one transaction are several deposits). A transaction that spends vault coins is read
whole with ``gettransaction(txid, true, true)``: its net effect on the wallet is one outflow.

The chain balance at the confirmed height H is the wallet's coins with at least the minimum
confirmations (``listunspent``), plus the coins confirmed at or below H that a later or
unconfirmed wallet transaction spends (``listunspent`` already counts them as gone).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from custody.bitcoin.rpc import BitcoinRPC, btc_to_sats
from custody.exceptions import BitcoinRPCError
from treasury.ledger import BTC
from treasury.reconcile.errors import ChainMovedError, NodeUnavailableError
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
from treasury.reconcile.reader import ConfirmedReader
from treasury.reconcile.records import MovementKind

DEFAULT_MIN_CONFIRMATIONS_BTC = 1
"""Blocks on top of (and including) a block before its transactions are booked."""
READ_ATTEMPTS = 3
"""Reads of one vault retried when a block arrives mid-read, before the run gives up on it."""
MAX_CONFIRMATIONS = 9_999_999
RPC_NOT_FOUND_CODE = -5
RPC_WALLET_NOT_LOADED_CODE = -18
PROGRESS_EVERY_TXS = 1000


def btc_scope(vault_name: str) -> str:
    """The reconciliation scope of a Bitcoin vault."""
    return f"btc:{vault_name}"


class BitcoinReader(ConfirmedReader):
    """Observations of Bitcoin vaults from one bitcoind."""

    chain = "bitcoin"

    def __init__(
        self,
        rpc: BitcoinRPC,
        *,
        min_confirmations: int = DEFAULT_MIN_CONFIRMATIONS_BTC,
        progress: Progress = no_progress,
    ) -> None:
        super().__init__(min_confirmations=min_confirmations, progress=progress)
        self._rpc = rpc

    def _call(self, rpc: BitcoinRPC, method: str, *params: Any) -> Any:
        try:
            return rpc.call(method, *params)
        except BitcoinRPCError as exc:
            if exc.code is None or (isinstance(exc.code, int) and exc.code >= 400):
                raise NodeUnavailableError(
                    f"bitcoind at {self._rpc.url} did not answer {method}: {exc}"
                ) from None
            raise

    def _canonical(self, height: int) -> str | None:
        try:
            return str(self._call(self._rpc, "getblockhash", height))
        except BitcoinRPCError:
            return None  # above the tip

    def _wallet(self, wallet_name: str) -> BitcoinRPC:
        wallet = self._rpc.wallet(wallet_name)
        try:
            self._call(wallet, "getwalletinfo")
        except BitcoinRPCError as exc:
            if exc.code != RPC_WALLET_NOT_LOADED_CODE:
                raise
            self._call(self._rpc, "loadwallet", wallet_name)
        return wallet

    def observe(self, scope: str, wallet_name: str, state: BookedState) -> Observation:
        """Read the vault's wallet up to the confirmed block; retried if a block lands mid-read."""
        wallet = self._wallet(wallet_name)
        for _attempt in range(READ_ATTEMPTS):
            last = self._call(wallet, "getwalletinfo")["lastprocessedblock"]
            observation = self._observe_at(scope, wallet, state, int(last["height"]))
            if self._call(wallet, "getwalletinfo")["lastprocessedblock"]["hash"] == last["hash"]:
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
        target = BlockRef(height, str(self._call(self._rpc, "getblockhash", height)))
        since = self._call(
            wallet, "listsinceblock", resume.start.hash if resume.start else "", 1, True, False
        )
        movements, events = self._movements(wallet, since["transactions"], height)
        balance = self._balance(wallet, target)
        failed = tuple(txid for txid in state.in_flight if self._conflicted(wallet, txid))
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

    def _movements(
        self, wallet: BitcoinRPC, listed: list[dict[str, Any]], height: int
    ) -> tuple[tuple[Movement, ...], tuple[SpendEvent, ...]]:
        by_tx: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in listed:
            confirmed_at = entry.get("blockheight")
            if confirmed_at is not None and confirmed_at <= height and entry["confirmations"] > 0:
                by_tx[entry["txid"]].append(entry)
        ordered = sorted(by_tx.items(), key=lambda item: (item[1][0]["blockheight"], item[0]))
        movements: list[Movement] = []
        events: list[SpendEvent] = []
        for count, (txid, entries) in enumerate(ordered, start=1):
            block = BlockRef(int(entries[0]["blockheight"]), str(entries[0]["blockhash"]))
            if any(entry["category"] == "send" for entry in entries):
                detail = self._call(wallet, "gettransaction", txid, True, True)
                net = btc_to_sats(detail["amount"]) + btc_to_sats(detail.get("fee", 0))
                if net < 0:
                    key = f"btc:{txid}:out"
                    movements.append(Movement(key, MovementKind.OUTFLOW, BTC, -net, txid, block))
                elif net > 0:
                    key = f"btc:{txid}:net"
                    movements.append(Movement(key, MovementKind.DEPOSIT, BTC, net, txid, block))
                events.append(SpendEvent(txid, txid, block))
            else:
                for entry in entries:
                    if entry["category"] == "receive":
                        key, amount = f"btc:{txid}:{entry['vout']}", btc_to_sats(entry["amount"])
                        movements.append(
                            Movement(key, MovementKind.DEPOSIT, BTC, amount, txid, block)
                        )
            if count % PROGRESS_EVERY_TXS == 0:
                self._progress(
                    f"read {count} of {len(ordered)} transactions (block {block.height})"
                )
        return tuple(movements), tuple(events)

    def _balance(self, wallet: BitcoinRPC, target: BlockRef) -> int:
        unspent = self._call(wallet, "listunspent", self._min_conf, MAX_CONFIRMATIONS, [], True)
        total = sum(btc_to_sats(coin["amount"]) for coin in unspent)
        later = self._call(wallet, "listsinceblock", target.hash, 1, True, False)["transactions"]
        spending = sorted(
            {t["txid"] for t in later if t["category"] == "send" and t["confirmations"] >= 0}
        )
        for txid in spending:
            decoded = self._call(wallet, "gettransaction", txid, True, True)["decoded"]
            for spent in decoded["vin"]:
                total += self._own_coin_at_or_below(wallet, spent, target.height)
        return total

    def _own_coin_at_or_below(self, wallet: BitcoinRPC, spent: dict[str, Any], height: int) -> int:
        """The value of a spent coin if it was the vault's and confirmed at or below ``height``."""
        try:
            previous = self._call(wallet, "gettransaction", spent["txid"], True, True)
        except BitcoinRPCError as exc:
            if exc.code == RPC_NOT_FOUND_CODE:
                return 0  # not a wallet transaction: not the vault's coin
            raise
        confirmed_at = previous.get("blockheight")
        if confirmed_at is None or confirmed_at > height:
            return 0
        output = previous["decoded"]["vout"][spent["vout"]]
        address = output["scriptPubKey"].get("address")
        if address is None or not self._call(wallet, "getaddressinfo", address)["ismine"]:
            return 0
        return btc_to_sats(output["value"])

    def _conflicted(self, wallet: BitcoinRPC, txid: str) -> bool:
        try:
            found = self._call(wallet, "gettransaction", txid, True)
        except BitcoinRPCError as exc:
            if exc.code == RPC_NOT_FOUND_CODE:
                return False
            raise
        return int(found["confirmations"]) < 0
