"""Read a Safe vault's ether and ERC-20 movements and balances at a confirmed block.

Logs come from ``eth_getLogs`` over block ranges ending at the confirmed block; every log's block
hash is checked against the chain's block at that number, and balances are read at the
confirmed block by hash (EIP-1898), so a reorg during the read is detected, not booked.

Movements: ``SafeReceived`` (ether in, also from internal calls), ``Transfer`` to the Safe
(tokens in), an ``ExecutionSuccess`` with its ``SafeMultiSigTransaction`` (ether out: value plus
an ether gas refund), ``Transfer`` from the Safe (tokens out). Each execution's SafeTx hash is
the evidence an approved Safe record must name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from custody.ethereum.rpc import EvmRPC
from custody.exceptions import EvmRPCError
from treasury.ledger import ETH, AssetSpec, erc20_asset
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

DEFAULT_MIN_CONFIRMATIONS_ETH = 1
LOG_RANGE_BLOCKS = 2000
"""Blocks per ``eth_getLogs`` request (and per progress line)."""

SAFE_RECEIVED_TOPIC = keccak(text="SafeReceived(address,uint256)")
EXECUTION_SUCCESS_TOPIC = keccak(text="ExecutionSuccess(bytes32,uint256)")
SAFE_MULTISIG_TX_TOPIC = keccak(
    text="SafeMultiSigTransaction(address,uint256,bytes,uint8,uint256,uint256,uint256,address,"
    "address,bytes,bytes)"
)
TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")
_SAFE_MULTISIG_TX_TYPES = [
    "address", "uint256", "bytes", "uint8", "uint256", "uint256", "uint256", "address",
    "address", "bytes", "bytes",
]  # fmt: skip
_BALANCE_OF = keccak(text="balanceOf(address)")[:4]
_ZERO_ADDRESS = "0x" + "00" * 20
_CALL_OPERATION = 0


def eth_scope(chain_id: int, vault_name: str) -> str:
    """The reconciliation scope of a Safe vault (by its name, unique per database)."""
    return f"eth:{chain_id}:{vault_name}"


@dataclass(frozen=True)
class TrackedToken:
    """An ERC-20 watched in every Safe: its contract, proposal symbol and decimals."""

    address: str
    symbol: str
    decimals: int

    @property
    def asset(self) -> AssetSpec:
        return erc20_asset(to_checksum_address(self.address), self.decimals)


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _topic_address(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


def _bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:])


class EthereumReader(ConfirmedReader):
    """Observations of Safe vaults from one EVM node."""

    chain = "ethereum"

    def __init__(
        self,
        rpc: EvmRPC,
        *,
        min_confirmations: int = DEFAULT_MIN_CONFIRMATIONS_ETH,
        progress: Progress = no_progress,
    ) -> None:
        super().__init__(min_confirmations=min_confirmations, progress=progress)
        self._rpc = rpc

    def _call(self, method: str, *params: Any) -> Any:
        try:
            return self._rpc.call(method, *params)
        except EvmRPCError as exc:
            if exc.code is None:
                raise NodeUnavailableError(
                    f"The EVM node at {self._rpc.url} did not answer {method}: {exc}"
                ) from None
            raise

    def chain_id(self) -> int:
        return int(self._call("eth_chainId"), 16)

    def _canonical(self, height: int) -> str | None:
        block = self._call("eth_getBlockByNumber", hex(height), False)
        return None if block is None else str(block["hash"])

    def observe(
        self, scope: str, safe: str, tokens: Sequence[TrackedToken], state: BookedState
    ) -> Observation:
        """Read the Safe up to the confirmed block; ``ChainMovedError`` if it reorganised meanwhile."""
        safe = to_checksum_address(safe)
        height, resume = self._window(state, int(self._call("eth_blockNumber"), 16))
        if (idle := self._nothing_new(scope, height, resume)) is not None:
            return idle
        target = BlockRef(height, str(self._canonical(height)))
        first = 0 if resume.start is None else resume.start.height + 1
        logs: list[dict[str, Any]] = []
        for start in range(first, height + 1, LOG_RANGE_BLOCKS):
            end = min(start + LOG_RANGE_BLOCKS - 1, height)
            logs += self._logs(safe, tokens, start, end)
            self._progress(f"{scope}: read blocks {start}..{end} of {height}")
        self._check_hashes(logs, target)
        movements, events = self._movements(safe, tokens, logs)
        balances = self._balances(safe, tokens, target)
        failed = tuple(tx for tx in state.in_flight if self._reverted(tx))
        if self._canonical(height) != target.hash:
            raise ChainMovedError(f"Block {height} changed while vault {scope} was read.")
        return Observation(
            scope, self.chain, target, resume.orphaned_above, movements, events, balances, failed
        )

    def _logs(
        self, safe: str, tokens: Sequence[TrackedToken], start: int, end: int
    ) -> list[dict[str, Any]]:
        window = {"fromBlock": hex(start), "toBlock": hex(end)}
        safe_topics = [_hex(t) for t in (SAFE_RECEIVED_TOPIC, EXECUTION_SUCCESS_TOPIC)]
        found: list[dict[str, Any]] = self._call(
            "eth_getLogs", {**window, "address": safe, "topics": [safe_topics]}
        )
        found += self._call(
            "eth_getLogs",
            {**window, "address": safe, "topics": [_hex(SAFE_MULTISIG_TX_TOPIC)]},
        )
        if tokens:
            addresses = [to_checksum_address(t.address) for t in tokens]
            transfer, holder = _hex(TRANSFER_TOPIC), _topic_address(safe)
            for topics in ([transfer, None, holder], [transfer, holder]):
                found += self._call(
                    "eth_getLogs", {**window, "address": addresses, "topics": topics}
                )
        unique = {(log["transactionHash"], int(log["logIndex"], 16)): log for log in found}
        return [log for _, log in sorted(unique.items(), key=lambda item: _position(item[1]))]

    def _check_hashes(self, logs: list[dict[str, Any]], target: BlockRef) -> None:
        seen: dict[int, str] = {target.height: target.hash}
        for log in logs:
            number = int(log["blockNumber"], 16)
            if number not in seen:
                seen[number] = str(self._canonical(number))
            if log.get("removed") or seen[number] != log["blockHash"]:
                raise ChainMovedError(
                    f"A log of transaction {log['transactionHash']} names block {log['blockHash']}, "
                    f"which is not the chain's block {number} any more."
                )

    def _movements(
        self, safe: str, tokens: Sequence[TrackedToken], logs: list[dict[str, Any]]
    ) -> tuple[tuple[Movement, ...], tuple[SpendEvent, ...]]:
        by_token = {to_checksum_address(t.address): t.asset for t in tokens}
        movements: list[Movement] = []
        events: list[SpendEvent] = []
        multisig: dict[str, tuple[Any, ...]] = {}
        for log in logs:
            tx = str(log["transactionHash"])
            key = f"eth:{tx}:{int(log['logIndex'], 16)}"
            block = BlockRef(int(log["blockNumber"], 16), str(log["blockHash"]))
            topic = _bytes(log["topics"][0])
            data = _bytes(log["data"])
            emitter = to_checksum_address(log["address"])
            if emitter == safe and topic == SAFE_RECEIVED_TOPIC:
                (value,) = decode(["uint256"], data)
                if value:
                    movements.append(Movement(key, MovementKind.DEPOSIT, ETH, value, tx, block))
            elif emitter == safe and topic == SAFE_MULTISIG_TX_TOPIC:
                multisig[tx] = decode(_SAFE_MULTISIG_TX_TYPES, data)
            elif emitter == safe and topic == EXECUTION_SUCCESS_TOPIC:
                events.append(SpendEvent(tx, "0x" + log["topics"][1][2:].lower(), block))
                (payment,) = decode(["uint256"], data)
                params = multisig.get(tx)
                sent = 0
                if params is not None:
                    value, operation, gas_price, gas_token = (
                        params[1],
                        params[3],
                        params[6],
                        params[7],
                    )
                    sent = value if operation == _CALL_OPERATION else 0
                    if gas_price and gas_token.lower() == _ZERO_ADDRESS:
                        sent += payment
                if sent:
                    movements.append(Movement(key, MovementKind.OUTFLOW, ETH, sent, tx, block))
            elif emitter in by_token and topic == TRANSFER_TOPIC:
                sender = to_checksum_address("0x" + log["topics"][1][-40:])
                receiver = to_checksum_address("0x" + log["topics"][2][-40:])
                (amount,) = decode(["uint256"], data)
                if not amount or sender == receiver:
                    continue
                kind = MovementKind.DEPOSIT if receiver == safe else MovementKind.OUTFLOW
                movements.append(Movement(key, kind, by_token[emitter], amount, tx, block))
                if kind is MovementKind.OUTFLOW and not any(e.tx_ref == tx for e in events):
                    events.append(SpendEvent(tx, None, block))
        return tuple(movements), _explained(events)

    def _balances(
        self, safe: str, tokens: Sequence[TrackedToken], target: BlockRef
    ) -> tuple[ChainBalance, ...]:
        at = {"blockHash": target.hash, "requireCanonical": True}
        balances = [ChainBalance(ETH, "ETH", int(self._call("eth_getBalance", safe, at), 16))]
        for token in tokens:
            data = _hex(_BALANCE_OF + encode(["address"], [safe]))
            answer = self._call(
                "eth_call", {"to": to_checksum_address(token.address), "data": data}, at
            )
            balances.append(ChainBalance(token.asset, token.symbol, int(answer, 16)))
        return tuple(balances)

    def _reverted(self, tx_hash: str) -> bool:
        receipt = self._call("eth_getTransactionReceipt", tx_hash)
        return receipt is not None and int(receipt["status"], 16) == 0


def _position(log: dict[str, Any]) -> tuple[int, int]:
    return int(log["blockNumber"], 16), int(log["logIndex"], 16)


def _explained(events: list[SpendEvent]) -> tuple[SpendEvent, ...]:
    """Drop the placeholder of a token outflow whose transaction also executed a SafeTx."""
    executed = {e.tx_ref for e in events if e.evidence is not None}
    return tuple(e for e in events if e.evidence is not None or e.tx_ref not in executed)
