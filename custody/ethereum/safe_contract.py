"""What we say to a deployed Safe and its proxy factory: the calls, their ABI and their answers.

The vault operations never trust the database alone: they read owners, threshold and nonce back
from the Safe, ask the contract for its own SafeTx hash, and execute through it. Those calls and
their encodings (function selectors, argument types, the ``ExecutionSuccess`` event) are kept
here, apart from the bookkeeping, so each is written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi.abi import decode, encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address

from custody.ethereum.chain import EthChain, Receipt
from custody.ethereum.deploy import SafeDeployment
from custody.ethereum.events import EXECUTION_SUCCESS_TOPIC
from custody.ethereum.safe_tx import ZERO_ADDRESS, SafeTx
from custody.exceptions import VaultStateMismatchError

_GET_OWNERS = function_signature_to_4byte_selector("getOwners()")
_GET_THRESHOLD = function_signature_to_4byte_selector("getThreshold()")
_NONCE = function_signature_to_4byte_selector("nonce()")
_SAFE_TX_ARGS = "address,uint256,bytes,uint8,uint256,uint256,uint256,address,address"
_GET_TRANSACTION_HASH = function_signature_to_4byte_selector(
    f"getTransactionHash({_SAFE_TX_ARGS},uint256)"
)
_EXEC_TRANSACTION = function_signature_to_4byte_selector(f"execTransaction({_SAFE_TX_ARGS},bytes)")
_SETUP = function_signature_to_4byte_selector(
    "setup(address[],uint256,address,bytes,address,address,uint256,address)"
)
_CREATE_PROXY = function_signature_to_4byte_selector("createProxyWithNonce(address,bytes,uint256)")

_SAFE_TX_TYPES = ["address", "uint256", "bytes", "uint8", "uint256", "uint256", "uint256"]
_SAFE_TX_TYPES += ["address", "address"]


@dataclass(frozen=True)
class SafeState:
    """Owners (in the Safe's linked-list order), threshold and nonce as read from the chain."""

    owners: tuple[str, ...]
    threshold: int
    nonce: int


def _safe_tx_args(safe_tx: SafeTx) -> list[object]:
    return [
        safe_tx.to,
        safe_tx.value,
        safe_tx.data,
        int(safe_tx.operation),
        safe_tx.safe_tx_gas,
        safe_tx.base_gas,
        safe_tx.gas_price,
        safe_tx.gas_token,
        safe_tx.refund_receiver,
    ]


def read_safe_state(chain: EthChain, address: str) -> SafeState:
    """Owners, threshold and nonce of the Safe at ``address``, from the chain."""
    if not chain.code(address):
        raise VaultStateMismatchError(
            f"There is no contract at {address} on chain {chain.chain_id}."
        )
    read = "read the Safe's state"
    (owners,) = decode(["address[]"], chain.call(address, _GET_OWNERS, action=read))
    (threshold,) = decode(["uint256"], chain.call(address, _GET_THRESHOLD, action=read))
    (nonce,) = decode(["uint256"], chain.call(address, _NONCE, action=read))
    return SafeState(tuple(to_checksum_address(o) for o in owners), int(threshold), int(nonce))


def contract_tx_hash(chain: EthChain, safe_tx: SafeTx) -> bytes:
    """The Safe contract's own ``getTransactionHash`` for ``safe_tx``."""
    data = _GET_TRANSACTION_HASH + encode(
        [*_SAFE_TX_TYPES, "uint256"], [*_safe_tx_args(safe_tx), safe_tx.nonce]
    )
    return chain.call(safe_tx.safe, data, action="compute the SafeTx hash")


def exec_transaction_data(safe_tx: SafeTx, signatures: bytes) -> bytes:
    """Calldata of ``execTransaction`` for ``safe_tx`` with packed owner ``signatures``."""
    return _EXEC_TRANSACTION + encode(
        [*_SAFE_TX_TYPES, "bytes"], [*_safe_tx_args(safe_tx), signatures]
    )


def execution_succeeded(receipt: Receipt, safe_tx: SafeTx) -> bool:
    """Whether ``receipt`` holds the Safe's ``ExecutionSuccess`` event for ``safe_tx``."""
    return any(
        entry.address == safe_tx.safe
        and entry.topics[:2] == (EXECUTION_SUCCESS_TOPIC, safe_tx.hash)
        for entry in receipt.logs
    )


def create_proxy_data(
    deployment: SafeDeployment, owners: Sequence[str], threshold: int, salt_nonce: int
) -> bytes:
    """Calldata of the proxy factory's ``createProxyWithNonce`` for a new, set-up Safe."""
    setup = _SETUP + encode(
        ["address[]", "uint256", "address", "bytes", "address", "address", "uint256", "address"],
        [list(owners), threshold, ZERO_ADDRESS, b"",
         deployment.fallback_handler, ZERO_ADDRESS, 0, ZERO_ADDRESS],
    )  # fmt: skip
    return _CREATE_PROXY + encode(
        ["address", "bytes", "uint256"], [deployment.singleton, setup, salt_nonce]
    )
