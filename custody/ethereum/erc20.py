"""The one ERC-20 call the vaults make (``transfer``) and the balance read, ABI-encoded by hand."""

from __future__ import annotations

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address

TRANSFER_SELECTOR = function_signature_to_4byte_selector("transfer(address,uint256)")
BALANCE_OF_SELECTOR = function_signature_to_4byte_selector("balanceOf(address)")
TRANSFER_CALLDATA_BYTES = 4 + 32 + 32


def transfer_calldata(to: str, amount: int) -> bytes:
    """``transfer(to, amount)`` with ``amount`` in the token's base units."""
    return TRANSFER_SELECTOR + encode(["address", "uint256"], [to, amount])


def decode_transfer(data: bytes) -> tuple[str, int] | None:
    """``(to, amount)`` if ``data`` is exactly a ``transfer`` call, else ``None``."""
    if len(data) != TRANSFER_CALLDATA_BYTES or data[:4] != TRANSFER_SELECTOR:
        return None
    try:
        to, amount = decode(["address", "uint256"], data[4:], strict=True)
    except DecodingError:
        return None
    return to_checksum_address(to), int(amount)


def balance_of_calldata(holder: str) -> bytes:
    return BALANCE_OF_SELECTOR + encode(["address"], [holder])
