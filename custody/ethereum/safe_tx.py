"""The SafeTx value object and its EIP-712 hash, computed by us (Safe v1.4.1 typed data).

The hash is what owners sign; its domain (``chainId`` + ``verifyingContract``) ties it to one
Safe on one chain, and its ``nonce`` to one execution, so a signature cannot be replayed
elsewhere or twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from custody.ethereum.eip712 import StructTypes, hash_struct, typed_data_digest
from custody.exceptions import SafeTxError

Wei = int
"""Amounts of ether, always integer wei."""

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
UINT256_LIMIT = 2**256
"""Exclusive upper bound of Solidity's ``uint256``."""

SAFE_TX_TYPES: StructTypes = {
    "EIP712Domain": [("chainId", "uint256"), ("verifyingContract", "address")],
    "SafeTx": [
        ("to", "address"),
        ("value", "uint256"),
        ("data", "bytes"),
        ("operation", "uint8"),
        ("safeTxGas", "uint256"),
        ("baseGas", "uint256"),
        ("gasPrice", "uint256"),
        ("gasToken", "address"),
        ("refundReceiver", "address"),
        ("nonce", "uint256"),
    ],
}
"""Safe v1.4.1's typed data: the domain has no name or version, only chain id and the Safe."""


class Operation(IntEnum):
    """How the Safe performs the call: CALL, or DELEGATECALL (foreign code on the Safe's storage)."""

    CALL = 0
    DELEGATECALL = 1


def checksum_address(value: str, field_name: str) -> str:
    """``value`` as an EIP-55 address, or ``SafeTxError`` naming ``field_name``."""
    if not isinstance(value, str) or not is_address(value):
        raise SafeTxError(f"The field '{field_name}' must be a 20-byte hex address, not {value!r}.")
    return to_checksum_address(value)


@dataclass(frozen=True, kw_only=True)
class SafeTx:
    """One Safe transaction: the domain (chain, Safe) and the ten signed fields."""

    chain_id: int
    safe: str
    """The Safe's address: EIP-712 ``verifyingContract``."""
    to: str
    value: Wei
    data: bytes
    operation: Operation
    nonce: int
    safe_tx_gas: int = 0
    base_gas: int = 0
    gas_price: Wei = 0
    gas_token: str = ZERO_ADDRESS
    refund_receiver: str = ZERO_ADDRESS
    hash: bytes = field(init=False, repr=False, compare=False)
    """The EIP-712 digest the owners sign (32 bytes)."""

    def __post_init__(self) -> None:
        for name in ("safe", "to", "gas_token", "refund_receiver"):
            object.__setattr__(self, name, checksum_address(getattr(self, name), name))
        for name in ("chain_id", "value", "nonce", "safe_tx_gas", "base_gas", "gas_price"):
            number = getattr(self, name)
            if not isinstance(number, int) or isinstance(number, bool):
                raise SafeTxError(f"The field '{name}' must be an integer, not {number!r}.")
            if not 0 <= number < UINT256_LIMIT:
                raise SafeTxError(f"The field '{name}' must fit a uint256, not {number}.")
        if not isinstance(self.data, bytes):
            raise SafeTxError("The field 'data' must be bytes.")
        try:
            object.__setattr__(self, "operation", Operation(self.operation))
        except ValueError:
            raise SafeTxError(
                f"The field 'operation' must be 0 (CALL) or 1 (DELEGATECALL), not {self.operation!r}."
            ) from None
        object.__setattr__(self, "hash", typed_data_digest(self.domain_separator, self.struct_hash))

    def message(self) -> dict[str, Any]:
        """The SafeTx struct as EIP-712 field values."""
        return {
            "to": self.to,
            "value": self.value,
            "data": self.data,
            "operation": int(self.operation),
            "safeTxGas": self.safe_tx_gas,
            "baseGas": self.base_gas,
            "gasPrice": self.gas_price,
            "gasToken": self.gas_token,
            "refundReceiver": self.refund_receiver,
            "nonce": self.nonce,
        }

    @property
    def domain_separator(self) -> bytes:
        domain = {"chainId": self.chain_id, "verifyingContract": self.safe}
        return hash_struct("EIP712Domain", SAFE_TX_TYPES, domain)

    @property
    def struct_hash(self) -> bytes:
        return hash_struct("SafeTx", SAFE_TX_TYPES, self.message())

    @property
    def hash_hex(self) -> str:
        return "0x" + self.hash.hex()
