"""What bitcoind and a vault's watch-only wallet say about the vault, as plain values.

Reads only, no ``-txindex``: blocks by height, the wallet's last processed block, its
transactions since a block (``listsinceblock``), its coins (``listunspent``) and its balance at
a confirmed height. Amounts become integer satoshis at once. The reconciler
(``treasury.reconcile.bitcoin``) and the attestation snapshot (``treasury.attest.snapshot``)
build on these; neither handles bitcoind's JSON.

A transaction that spends vault coins is read whole with ``gettransaction(txid, true, true)``:
its net effect on the wallet (fee included) is what it moved. Other transactions are the
outputs they paid to the vault, one per output.

The balance at a confirmed height H is the wallet's balance of coins with at least the minimum
confirmations (``getbalance``, which the wallet keeps cached per transaction, so it costs
milliseconds where listing ten thousand coins costs seconds, and which counts coins a spend being
prepared has locked), plus the coins confirmed at or below H that a later or unconfirmed wallet
transaction spends (``getbalance`` already counts them as gone).

Reads of many transactions or addresses go to bitcoind as one JSON-RPC batch (``BitcoinRPC.batch``)
rather than one HTTP round trip each.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from custody.bitcoin.descriptor import Branch
from custody.bitcoin.rpc import BitcoinRPC, RPCCall, RPCReply, btc_to_sats
from custody.blocks import BlockRef
from custody.exceptions import BitcoinRPCError

MAX_CONFIRMATIONS = 9_999_999
"""``listunspent``'s upper bound on confirmations: no upper bound in practice."""
RPC_NOT_FOUND_CODE = -5
RPC_WALLET_NOT_LOADED_CODE = -18
HTTP_ERROR_CODE_MIN = 400
"""HTTP status codes (401, 500...) arrive as codes from here up; JSON-RPC codes are below."""
PROGRESS_EVERY_TXS = 1000

_PATH_AFTER_ACCOUNT = re.compile(r"\[[0-9a-f]{8}(?:/\d+['h]){4}/(\d+)/(\d+)\]")
"""``[fingerprint/48h/1h/0h/2h/BRANCH/INDEX]`` in the ``desc`` bitcoind reports for a coin."""


def node_answered(exc: BitcoinRPCError) -> bool:
    """Whether bitcoind answered the call with a JSON-RPC error (it was reachable and working).

    ``False`` for a node that could not be reached or answered with an HTTP error page.
    """
    code = exc.code
    return code is not None and not (isinstance(code, int) and code >= HTTP_ERROR_CODE_MIN)


def block_hash(rpc: BitcoinRPC, height: int) -> str | None:
    """The best chain's block hash at ``height`` (``None`` above the tip)."""
    try:
        return str(rpc.call("getblockhash", height))
    except BitcoinRPCError as exc:
        if node_answered(exc):
            return None
        raise


def tip_height(rpc: BitcoinRPC) -> int:
    """The height of the node's best block."""
    return int(rpc.call("getblockcount"))


def open_wallet(rpc: BitcoinRPC, wallet_name: str) -> BitcoinRPC:
    """A client of the watch-only wallet ``wallet_name``, loaded first if bitcoind has not."""
    wallet = rpc.wallet(wallet_name)
    try:
        wallet.call("getwalletinfo")
    except BitcoinRPCError as exc:
        if exc.code != RPC_WALLET_NOT_LOADED_CODE:
            raise
        rpc.call("loadwallet", wallet_name)
    return wallet


def last_processed_block(wallet: BitcoinRPC) -> BlockRef:
    """The block the wallet has scanned up to."""
    last = wallet.call("getwalletinfo")["lastprocessedblock"]
    return BlockRef(int(last["height"]), str(last["hash"]))


@dataclass(frozen=True)
class ReceivedOutput:
    """An output of a transaction paying the vault."""

    vout: int
    amount_sats: int


@dataclass(frozen=True)
class WalletTransaction:
    """A confirmed wallet transaction: its block, and what it moved for the vault."""

    txid: str
    block: BlockRef
    spent_net_sats: int | None
    """For a transaction spending vault coins: its net effect on the wallet, fee included
    (negative: money left the vault); ``None`` for one that only pays the vault."""
    received: tuple[ReceivedOutput, ...] = ()
    """For a transaction that only pays the vault: the outputs it paid (``receive`` entries)."""


def wallet_transactions(
    wallet: BitcoinRPC,
    since: BlockRef | None,
    height: int,
    progress: Callable[[str], None],
) -> tuple[WalletTransaction, ...]:
    """The wallet's transactions confirmed above ``since`` and at or below ``height``.

    Ordered by block height, then txid; ``progress`` hears every ``PROGRESS_EVERY_TXS``-th.
    """
    listed = wallet.call("listsinceblock", since.hash if since else "", 1, True, False)
    by_tx: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in listed["transactions"]:
        confirmed_at = entry.get("blockheight")
        if confirmed_at is not None and confirmed_at <= height and entry["confirmations"] > 0:
            by_tx[entry["txid"]].append(entry)
    ordered = sorted(by_tx.items(), key=lambda item: (item[1][0]["blockheight"], item[0]))
    sends = [txid for txid, entries in ordered if any(e["category"] == "send" for e in entries)]
    details = dict(zip(sends, _wallet_txs(wallet, sends), strict=True))
    found: list[WalletTransaction] = []
    for count, (txid, entries) in enumerate(ordered, start=1):
        block = BlockRef(int(entries[0]["blockheight"]), str(entries[0]["blockhash"]))
        if txid in details:
            detail = details[txid].value()
            net = btc_to_sats(detail["amount"]) + btc_to_sats(detail.get("fee", 0))
            found.append(WalletTransaction(txid, block, net))
        else:
            received = tuple(
                ReceivedOutput(int(entry["vout"]), btc_to_sats(entry["amount"]))
                for entry in entries
                if entry["category"] == "receive"
            )
            found.append(WalletTransaction(txid, block, None, received))
        if count % PROGRESS_EVERY_TXS == 0:
            progress(f"read {count} of {len(ordered)} transactions (block {block.height})")
    return tuple(found)


def _wallet_txs(wallet: BitcoinRPC, txids: list[str]) -> tuple[RPCReply, ...]:
    """``gettransaction(txid, true, true)`` of every txid, in one batch."""
    return wallet.batch([RPCCall("gettransaction", (txid, True, True)) for txid in txids])


def balance_at(wallet: BitcoinRPC, target: BlockRef, min_confirmations: int) -> int:
    """The vault's balance in sats at the confirmed block ``target`` (see the module docstring)."""
    total = btc_to_sats(wallet.call("getbalance", "*", min_confirmations, True, False))
    later = wallet.call("listsinceblock", target.hash, 1, True, False)["transactions"]
    spending = sorted(
        {t["txid"] for t in later if t["category"] == "send" and t["confirmations"] >= 0}
    )
    spent = [
        coin for reply in _wallet_txs(wallet, spending) for coin in reply.value()["decoded"]["vin"]
    ]
    previous = _wallet_txs(wallet, [coin["txid"] for coin in spent])
    candidates: list[tuple[str, int]] = []
    for coin, reply in zip(spent, previous, strict=True):
        found = _own_output_at_or_below(reply, coin["vout"], target.height)
        if found is not None:
            candidates.append(found)
    owned = wallet.batch([RPCCall("getaddressinfo", (address,)) for address, _ in candidates])
    return total + sum(
        sats for (_, sats), info in zip(candidates, owned, strict=True) if info.value()["ismine"]
    )


def _own_output_at_or_below(reply: RPCReply, vout: int, height: int) -> tuple[str, int] | None:
    """A spent coin's address and value if its transaction is the wallet's and confirmed at or
    below ``height`` (the caller still asks whether the address is the wallet's own)."""
    if reply.error is not None:
        if reply.error.code == RPC_NOT_FOUND_CODE:
            return None  # not a wallet transaction: not the vault's coin
        raise reply.error
    previous = reply.result
    confirmed_at = previous.get("blockheight")
    if confirmed_at is None or confirmed_at > height:
        return None
    output = previous["decoded"]["vout"][vout]
    address = output["scriptPubKey"].get("address")
    if address is None:
        return None
    return str(address), btc_to_sats(output["value"])


def conflicted(wallet: BitcoinRPC, txid: str) -> bool:
    """Whether the wallet transaction ``txid`` conflicts with the best chain (never if unknown)."""
    try:
        found = wallet.call("gettransaction", txid, True)
    except BitcoinRPCError as exc:
        if exc.code == RPC_NOT_FOUND_CODE:
            return False
        raise
    return int(found["confirmations"]) < 0


@dataclass(frozen=True)
class UnspentCoin:
    """A wallet coin as ``listunspent`` lists it, with where the wallet's descriptor places it."""

    txid: str
    vout: int
    amount_sats: int
    script_pubkey: bytes
    path: tuple[Branch, int] | None
    """The receive or change branch and index of the vault's descriptor; ``None`` if the wallet
    does not solve the coin at such a path."""


def _coin_path(desc: str) -> tuple[Branch, int] | None:
    found = _PATH_AFTER_ACCOUNT.search(desc)
    if found is None or int(found.group(1)) not in (0, 1):
        return None
    return Branch(int(found.group(1))), int(found.group(2))


def unspent_coins(wallet: BitcoinRPC, min_confirmations: int) -> tuple[UnspentCoin, ...]:
    """The wallet's coins with at least ``min_confirmations``."""
    return tuple(
        UnspentCoin(
            txid=str(entry["txid"]),
            vout=int(entry["vout"]),
            amount_sats=btc_to_sats(entry["amount"]),
            script_pubkey=bytes.fromhex(entry["scriptPubKey"]),
            path=_coin_path(str(entry.get("desc", ""))),
        )
        for entry in wallet.call("listunspent", min_confirmations, MAX_CONFIRMATIONS)
    )


def confirming_block(wallet: BitcoinRPC, txid: str) -> BlockRef | None:
    """The block that confirmed the wallet transaction ``txid`` (``None`` while unconfirmed)."""
    found = wallet.call("gettransaction", txid, True)
    height = int(found.get("blockheight", -1))
    return None if height < 0 else BlockRef(height, str(found["blockhash"]))
