"""The Ethereum node as the vaults see it: reads, simulated-then-sent transactions, receipts.

Every state-changing call is first simulated with ``eth_call``: a revert then surfaces as a typed
exception (``custody.ethereum.errors``) before anything is broadcast, so bad input changes
nothing on chain, not even the relayer's nonce. Gas is paid by a relayer account the node holds
(on the devnet: one of anvil's funded development accounts, test money only).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address

from custody.ethereum.errors import revert_error
from custody.ethereum.rpc import EvmRPC
from custody.exceptions import EthereumError, EvmRPCError

log = logging.getLogger(__name__)

RECEIPT_TIMEOUT_S = 60.0
"""How long to wait for a broadcast transaction to be mined."""
RECEIPT_POLL_INTERVAL_S = 0.05
GAS_LIMIT_MARGIN_PERCENT = 20
"""Head-room over ``eth_estimateGas``: the Safe's signature checks cost slightly more at the edges."""

_REVERT_REASON = re.compile(r"execution reverted:?\s*(.*)$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class LogEntry:
    address: str
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class Receipt:
    """A mined transaction: where, whether it succeeded, what it logged."""

    tx_hash: str
    block_number: int
    succeeded: bool
    gas_used: int
    logs: tuple[LogEntry, ...]


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


class EthChain:
    """Typed reads and writes against one EVM node."""

    def __init__(
        self,
        rpc: EvmRPC,
        *,
        receipt_timeout_s: float = RECEIPT_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rpc = rpc
        self._receipt_timeout_s = receipt_timeout_s
        self._clock = clock
        self._sleep = sleep
        self._chain_id: int | None = None

    def __repr__(self) -> str:
        return f"EthChain(url={self.rpc.url!r})"

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.rpc.chain_id()
        return self._chain_id

    def block_number(self) -> int:
        """The node's latest block number."""
        return self.rpc.block_number()

    def block_hash(self, number: int) -> str | None:
        """The best chain's block hash at ``number`` (``None`` above the tip)."""
        block = self.rpc.call("eth_getBlockByNumber", hex(number), False)
        return None if block is None else str(block["hash"])

    def reverted(self, tx_hash: str) -> bool:
        """Whether ``tx_hash`` was mined and failed (status 0); ``False`` while it is not mined."""
        receipt = self.rpc.call("eth_getTransactionReceipt", tx_hash)
        return receipt is not None and int(receipt["status"], 16) == 0

    def code(self, address: str) -> bytes:
        return _bytes(self.rpc.call("eth_getCode", address, "latest"))

    def balance(self, address: str) -> int:
        """Ether balance in wei."""
        return int(self.rpc.call("eth_getBalance", address, "latest"), 16)

    def accounts(self) -> list[str]:
        """Accounts the node signs for (anvil's development accounts: test money, gas only)."""
        return [to_checksum_address(a) for a in self.rpc.call("eth_accounts")]

    def set_code(self, address: str, code: bytes) -> None:
        """Place ``code`` at ``address`` (``anvil_setCode``: development nodes only)."""
        self.rpc.call("anvil_setCode", address, _hex(code))

    def _call_object(self, sender: str | None, to: str, data: bytes, value: int) -> dict[str, Any]:
        call: dict[str, Any] = {"to": to, "data": _hex(data), "value": hex(value)}
        if sender is not None:
            call["from"] = sender
        return call

    def call(
        self, to: str, data: bytes, *, action: str, sender: str | None = None, value: int = 0
    ) -> bytes:
        """Run a call without changing state; a revert raises its typed exception."""
        try:
            result = self.rpc.call("eth_call", self._call_object(sender, to, data, value), "latest")
        except EvmRPCError as exc:
            raise self._as_revert(exc, action) from None
        return _bytes(result)

    def transact(
        self, sender: str, to: str | None, data: bytes, *, action: str, value: int = 0
    ) -> Receipt:
        """Simulate, then broadcast from ``sender`` and wait for the receipt.

        ``to=None`` creates a contract from ``data``. A revert in simulation raises before anything
        is sent; a mined failure (status 0) raises too.
        """
        call = (
            self._call_object(sender, to, data, value)
            if to
            else {"from": sender, "data": _hex(data), "value": hex(value)}
        )
        try:
            self.rpc.call("eth_call", call, "latest")
            estimate = int(self.rpc.call("eth_estimateGas", call), 16)
        except EvmRPCError as exc:
            raise self._as_revert(exc, action) from None
        call["gas"] = hex(estimate * (100 + GAS_LIMIT_MARGIN_PERCENT) // 100)
        tx_hash = self.rpc.call("eth_sendTransaction", call)
        receipt = self.wait_for_receipt(tx_hash)
        log.info("transaction mined", extra={"tx_hash": tx_hash, "action": action})
        if not receipt.succeeded:
            raise EthereumError(
                f"The transaction {tx_hash} to {action} was mined but failed (status 0)."
            )
        return receipt

    def wait_for_receipt(self, tx_hash: str) -> Receipt:
        deadline = self._clock() + self._receipt_timeout_s
        while True:
            raw = self.rpc.call("eth_getTransactionReceipt", tx_hash)
            if raw is not None:
                return Receipt(
                    tx_hash=raw["transactionHash"],
                    block_number=int(raw["blockNumber"], 16),
                    succeeded=int(raw["status"], 16) == 1,
                    gas_used=int(raw["gasUsed"], 16),
                    logs=tuple(
                        LogEntry(
                            address=to_checksum_address(entry["address"]),
                            topics=tuple(_bytes(t) for t in entry["topics"]),
                            data=_bytes(entry["data"]),
                        )
                        for entry in raw["logs"]
                    ),
                )
            if self._clock() > deadline:
                raise EthereumError(
                    f"The transaction {tx_hash} was not mined within "
                    f"{self._receipt_timeout_s:.0f} s; check that the node is mining."
                )
            self._sleep(RECEIPT_POLL_INTERVAL_S)

    @staticmethod
    def _as_revert(exc: EvmRPCError, action: str) -> EthereumError:
        matched = _REVERT_REASON.search(exc.message)
        if matched is None:
            return EthereumError(f"The node refused to {action}: {exc.message}")
        return revert_error(matched.group(1).strip() or None, action)
