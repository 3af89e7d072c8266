"""A Safe's logged events and its tracked tokens' transfers, read and decoded from the node.

``eth_getLogs`` over a block range returns, for the Safe: ``SafeReceived`` (ether in, also from
internal calls), ``SafeMultiSigTransaction`` (the parameters of an executed SafeTx) and
``ExecutionSuccess`` (its SafeTx hash and gas payment); for each tracked ERC-20: ``Transfer`` to
or from the Safe. They are decoded here into plain values, in chain order, so a reader above
custody never handles topics or ABI data. Every log read is also reported with its block hash,
so the caller can check that each block is still the best chain's.

What a Safe execution sent in ether follows the Safe's own rules: the SafeTx's ``value`` if its
operation is a CALL (a DELEGATECALL moves no ether of the Safe's), plus the gas refund the Safe
paid in ether (``gasPrice`` set and ``gasToken`` zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from custody.blocks import BlockRef
from custody.ethereum.chain import EthChain
from custody.ethereum.safe_tx import Operation

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
_ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class LogRef:
    """Where a log was written: its transaction, its index in the block, and the block."""

    tx_hash: str
    log_index: int
    block: BlockRef
    removed: bool = False
    """The node marks the log as removed by a reorganisation."""


@dataclass(frozen=True)
class EtherReceived:
    """``SafeReceived``: ether paid to the Safe (also by an internal call)."""

    at: LogRef
    amount_wei: int


@dataclass(frozen=True)
class SafeExecuted:
    """``ExecutionSuccess``: the Safe executed a SafeTx, and what it sent in ether doing so."""

    at: LogRef
    safe_tx_hash: str
    """``0x``-prefixed lowercase hex: what the owners signed."""
    ether_sent_wei: int
    """The SafeTx's CALL value plus the ether gas refund; 0 without its parameters log."""


@dataclass(frozen=True)
class TokenTransferred:
    """``Transfer`` of a tracked ERC-20 to or from the Safe (zero amounts included)."""

    at: LogRef
    token: str
    sender: str
    receiver: str
    amount: int


SafeEvent = EtherReceived | SafeExecuted | TokenTransferred


@dataclass(frozen=True)
class SafeLogs:
    """Every log read for a Safe in a block range (chain order), and the events they mean."""

    logs: tuple[LogRef, ...]
    events: tuple[SafeEvent, ...]


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:])


def _topic_address(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


def _position(log: dict[str, Any]) -> tuple[int, int]:
    return int(log["blockNumber"], 16), int(log["logIndex"], 16)


def _raw_logs(
    chain: EthChain, safe: str, tokens: Sequence[str], start: int, end: int
) -> list[dict[str, Any]]:
    window = {"fromBlock": hex(start), "toBlock": hex(end)}
    safe_topics = [_hex(t) for t in (SAFE_RECEIVED_TOPIC, EXECUTION_SUCCESS_TOPIC)]
    found: list[dict[str, Any]] = chain.rpc.call(
        "eth_getLogs", {**window, "address": safe, "topics": [safe_topics]}
    )
    found += chain.rpc.call(
        "eth_getLogs", {**window, "address": safe, "topics": [_hex(SAFE_MULTISIG_TX_TOPIC)]}
    )
    if tokens:
        transfer, holder = _hex(TRANSFER_TOPIC), _topic_address(safe)
        for topics in ([transfer, None, holder], [transfer, holder]):
            found += chain.rpc.call(
                "eth_getLogs", {**window, "address": list(tokens), "topics": topics}
            )
    unique = {(log["transactionHash"], int(log["logIndex"], 16)): log for log in found}
    return [log for _, log in sorted(unique.items(), key=lambda item: _position(item[1]))]


def _ether_sent(params: tuple[Any, ...] | None, payment: int) -> int:
    """What an executed SafeTx sent in ether, from its ``SafeMultiSigTransaction`` parameters."""
    if params is None:
        return 0
    value, operation, gas_price, gas_token = params[1], params[3], params[6], params[7]
    sent = value if operation == Operation.CALL else 0
    if gas_price and gas_token.lower() == _ZERO_ADDRESS:
        sent += payment
    return int(sent)


def safe_logs(chain: EthChain, safe: str, tokens: Sequence[str], start: int, end: int) -> SafeLogs:
    """The Safe's events and its ``tokens``' transfers to or from it in blocks ``start..end``."""
    safe = to_checksum_address(safe)
    watched = [to_checksum_address(token) for token in tokens]
    logs: list[LogRef] = []
    events: list[SafeEvent] = []
    multisig: dict[str, tuple[Any, ...]] = {}
    for log in _raw_logs(chain, safe, watched, start, end):
        at = LogRef(
            str(log["transactionHash"]),
            int(log["logIndex"], 16),
            BlockRef(int(log["blockNumber"], 16), str(log["blockHash"])),
            bool(log.get("removed")),
        )
        logs.append(at)
        topic = _bytes(log["topics"][0])
        data = _bytes(log["data"])
        emitter = to_checksum_address(log["address"])
        if emitter == safe and topic == SAFE_RECEIVED_TOPIC:
            (value,) = decode(["uint256"], data)
            events.append(EtherReceived(at, int(value)))
        elif emitter == safe and topic == SAFE_MULTISIG_TX_TOPIC:
            multisig[at.tx_hash] = decode(_SAFE_MULTISIG_TX_TYPES, data)
        elif emitter == safe and topic == EXECUTION_SUCCESS_TOPIC:
            (payment,) = decode(["uint256"], data)
            safe_tx_hash = "0x" + log["topics"][1][2:].lower()
            sent = _ether_sent(multisig.get(at.tx_hash), payment)
            events.append(SafeExecuted(at, safe_tx_hash, sent))
        elif emitter in watched and topic == TRANSFER_TOPIC:
            sender = to_checksum_address("0x" + log["topics"][1][-40:])
            receiver = to_checksum_address("0x" + log["topics"][2][-40:])
            (amount,) = decode(["uint256"], data)
            events.append(TokenTransferred(at, emitter, sender, receiver, int(amount)))
    return SafeLogs(tuple(logs), tuple(events))
