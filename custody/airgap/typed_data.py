"""A SafeTx as EIP-712 typed data: the JSON ``eth_signTypedData_v4`` and hardware wallets take.

The file an owner signs off-line is the standard typed-data object (``types``, ``primaryType``,
``domain``, ``message``), so any EIP-712 tool can show and hash it. Reading it back is strict:
the types must be exactly Safe v1.4.1's (``SAFE_TX_TYPES``), the primary type ``SafeTx``, every
field present and of its type; what comes out is a ``SafeTx``, whose hash custody computes itself.
Integers are written as decimal strings (uint256 does not fit a JSON number everywhere).
"""

from __future__ import annotations

from typing import Any

from custody.airgap.errors import RequestFileError
from custody.ethereum.safe_tx import SAFE_TX_TYPES, SafeTx
from custody.exceptions import SafeTxError

PRIMARY_TYPE = "SafeTx"
_UINT_FIELDS = {"value": "value", "safeTxGas": "safe_tx_gas", "baseGas": "base_gas"}
_UINT_FIELDS |= {"gasPrice": "gas_price", "nonce": "nonce"}
_ADDRESS_FIELDS = {"to": "to", "gasToken": "gas_token", "refundReceiver": "refund_receiver"}


def _types_json() -> dict[str, list[dict[str, str]]]:
    return {
        name: [{"name": field, "type": kind} for field, kind in fields]
        for name, fields in SAFE_TX_TYPES.items()
    }


def safe_tx_typed_data(safe_tx: SafeTx) -> dict[str, Any]:
    """``safe_tx`` as EIP-712 typed data; it hashes to ``safe_tx.hash`` in any EIP-712 tool."""
    message = safe_tx.message()
    return {
        "types": _types_json(),
        "primaryType": PRIMARY_TYPE,
        "domain": {"chainId": str(safe_tx.chain_id), "verifyingContract": safe_tx.safe},
        "message": {
            **{name: str(message[name]) for name in _UINT_FIELDS},
            **{name: message[name] for name in _ADDRESS_FIELDS},
            "data": "0x" + safe_tx.data.hex(),
            "operation": str(message["operation"]),
        },
    }


def _uint(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RequestFileError(f"The typed data's {where} must be a decimal integer string.")
    if isinstance(value, int):
        return value
    if not value.isdigit():
        raise RequestFileError(
            f"The typed data's {where} must be a decimal integer, not {value!r}."
        )
    return int(value)


def _object(value: object, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != keys:
        raise RequestFileError(
            f"The typed data's {where} must have exactly the fields {sorted(keys)}."
        )
    return value


def safe_tx_from_typed_data(data: object) -> SafeTx:
    """The SafeTx the typed data describes; ``RequestFileError`` unless it is exactly a Safe
    v1.4.1 SafeTx (any other type, domain or field is refused, never ignored)."""
    body = _object(data, "top level", {"types", "primaryType", "domain", "message"})
    if body["types"] != _types_json() or body["primaryType"] != PRIMARY_TYPE:
        raise RequestFileError(
            "The typed data is not a Safe v1.4.1 SafeTx: its types or primaryType differ."
        )
    domain = _object(body["domain"], "domain", {"chainId", "verifyingContract"})
    fields = {name for name, _kind in SAFE_TX_TYPES[PRIMARY_TYPE]}
    message = _object(body["message"], "message", fields)
    data_hex = message["data"]
    if not isinstance(data_hex, str) or not data_hex.startswith("0x"):
        raise RequestFileError("The typed data's message.data must be 0x-prefixed hex.")
    fields_in: dict[str, Any] = {
        attr: _uint(message[name], f"message.{name}") for name, attr in _UINT_FIELDS.items()
    }
    fields_in |= {attr: message[name] for name, attr in _ADDRESS_FIELDS.items()}
    try:
        return SafeTx(
            chain_id=_uint(domain["chainId"], "domain.chainId"),
            safe=domain["verifyingContract"],
            data=bytes.fromhex(data_hex[2:]),
            operation=_uint(message["operation"], "message.operation"),  # type: ignore[arg-type]
            **fields_in,
        )
    except (SafeTxError, ValueError) as exc:
        raise RequestFileError(f"The typed data does not describe a SafeTx: {exc}") from None
