"""The relayer: the account that sends a Safe's ``execTransaction`` and pays its gas.

A Safe pays no gas itself: an externally owned account sends its ``execTransaction`` and pays
for it. The treasury names that account per chain in its settings; without one, the node's own
first account is used, which on a devnet is a funded development account. Choosing it is an EVM
concern, so it lives here and the treasury only asks.

The treasury also books what the relayer spends. A node keeps no index of an account's
transactions (anvil has none; ``eth_getLogs`` sees only contracts' events, and a plain transfer
to the relayer emits none), so ``relayer_activity`` reads every block of a range with its
transactions and keeps those sent by or to the relayer, each with what it cost the relayer
(``gasUsed * effectiveGasPrice`` from its receipt) and the Safe whose execution it was, if its
receipt holds that Safe's ``ExecutionSuccess``/``ExecutionFailure`` event. Nothing here decides
whether a transaction is the treasury's: that is the reconciler's, which knows its Safes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from custody.blocks import BlockRef
from custody.ethereum.chain import EthChain
from custody.exceptions import EthereumError

EXECUTION_SUCCESS_TOPIC = keccak(text="ExecutionSuccess(bytes32,uint256)")
EXECUTION_FAILURE_TOPIC = keccak(text="ExecutionFailure(bytes32,uint256)")
"""A Safe emits one of these two at the end of every ``execTransaction`` (v1.3+, v1.4.1)."""


def node_gas_payer(chain: EthChain) -> str | None:
    """The first account the node signs for, or ``None`` when it signs for none."""
    accounts = chain.accounts()
    return accounts[0] if accounts else None


@dataclass(frozen=True)
class RelayerTx:
    """One transaction of a block that moved the relayer's coin: sent by it, or paying it.

    Amounts are integers in the chain's base unit (wei).
    """

    tx_hash: str
    block: BlockRef
    sender: str
    to: str | None
    value_wei: int
    fee_wei: int
    """What the sender paid for gas (``gasUsed * effectiveGasPrice``); 0 for a received one."""
    sent: bool
    """Sent by the relayer (else received by it)."""
    executed_safe: str | None = None
    """The Safe whose ``execTransaction`` this was (its event in the receipt, sent to it)."""


def _int(value: str | int) -> int:
    return value if isinstance(value, int) else int(value, 16)


def _executed_safe(receipt: dict[str, object], to: str | None) -> str | None:
    """The Safe ``to`` if the receipt holds its execution event, else ``None``."""
    if to is None:
        return None
    logs = receipt.get("logs")
    for log in logs if isinstance(logs, list) else []:
        topics = log.get("topics") or []
        if not topics or to_checksum_address(log["address"]) != to:
            continue
        topic = bytes.fromhex(str(topics[0])[2:])
        if topic in (EXECUTION_SUCCESS_TOPIC, EXECUTION_FAILURE_TOPIC):
            return to
    return None


def relayer_activity(chain: EthChain, relayer: str, start: int, end: int) -> Iterator[RelayerTx]:
    """Every transaction in blocks ``start``..``end`` sent by ``relayer`` or paying it ether.

    One ``eth_getBlockByNumber`` per block, and one receipt per transaction the relayer sent. A
    coin reaching the relayer through a contract's internal call is not seen here (no node
    reports it without tracing): the reconciler's balance comparison catches it.
    """
    relayer = to_checksum_address(relayer)
    for number in range(start, end + 1):
        block = chain.rpc.call("eth_getBlockByNumber", hex(number), True)
        if block is None:
            raise EthereumError(f"The node has no block {number} (its tip moved back).")
        at = BlockRef(number, str(block["hash"]))
        for tx in block["transactions"]:
            sender = to_checksum_address(tx["from"])
            to = None if tx.get("to") is None else to_checksum_address(tx["to"])
            value = _int(tx["value"])
            if sender == relayer:
                receipt = chain.rpc.call("eth_getTransactionReceipt", tx["hash"])
                if receipt is None:
                    raise EthereumError(f"The node has no receipt of {tx['hash']}.")
                price = receipt.get("effectiveGasPrice") or tx.get("gasPrice")
                fee = _int(receipt["gasUsed"]) * _int(price)
                yield RelayerTx(
                    str(tx["hash"]).lower(),
                    at,
                    sender,
                    to,
                    value,
                    fee,
                    sent=True,
                    executed_safe=_executed_safe(receipt, to),
                )
            elif to == relayer and value:
                yield RelayerTx(str(tx["hash"]).lower(), at, sender, to, value, 0, sent=False)


__all__ = [
    "EXECUTION_FAILURE_TOPIC",
    "EXECUTION_SUCCESS_TOPIC",
    "RelayerTx",
    "node_gas_payer",
    "relayer_activity",
]
