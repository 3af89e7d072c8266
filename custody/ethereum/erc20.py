"""The one ERC-20 call the vaults make (``transfer``), the balance read, and the calls refused.

A Safe holding a token can be made to give it away in more ways than ``transfer``: ``approve``
or ``increaseAllowance`` hand a spender the right to take the tokens later (the allowance does
not show as an outflow until it is used, so nobody reviews it), and ``transferFrom`` moves tokens
someone else allowed. The signer therefore accepts exactly ``transfer(address,uint256)`` with
nothing trailing, and ``decode_token_call`` names each other call it meets with its own error.
Calldata is ABI-encoded and decoded by hand (``eth_abi``), never through a contract's ABI file.
"""

from __future__ import annotations

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address

from custody.exceptions import UnknownContractError, UnsupportedActionError

TRANSFER_SELECTOR = function_signature_to_4byte_selector("transfer(address,uint256)")
BALANCE_OF_SELECTOR = function_signature_to_4byte_selector("balanceOf(address)")
APPROVE_SELECTOR = function_signature_to_4byte_selector("approve(address,uint256)")
TRANSFER_FROM_SELECTOR = function_signature_to_4byte_selector(
    "transferFrom(address,address,uint256)"
)
INCREASE_ALLOWANCE_SELECTOR = function_signature_to_4byte_selector(
    "increaseAllowance(address,uint256)"
)
SELECTOR_BYTES = 4
TRANSFER_CALLDATA_BYTES = SELECTOR_BYTES + 32 + 32
"""A ``transfer`` call is exactly the selector and two 32-byte words: nothing may trail them."""


class TokenCallRefusedError(UnsupportedActionError):
    """A call to a registered token that is not exactly ``transfer(to, amount)`` with no value."""


class TokenApproveRefusedError(TokenCallRefusedError):
    """``approve``: it grants a spender an allowance over the Safe's tokens, outside any review."""


class TokenTransferFromRefusedError(TokenCallRefusedError):
    """``transferFrom``: it moves tokens on someone's allowance instead of paying from the Safe."""


class TokenIncreaseAllowanceRefusedError(TokenCallRefusedError):
    """``increaseAllowance``: like ``approve``, a standing right to take the Safe's tokens."""


class UnknownTokenSelectorError(TokenCallRefusedError):
    """A selector that is none of the calls the signer knows: it cannot say what it does."""


class MalformedTokenTransferError(TokenCallRefusedError):
    """A ``transfer`` selector whose arguments do not decode strictly, or with bytes trailing."""


class TokenValueRefusedError(TokenCallRefusedError):
    """A token call that also sends ether from the Safe: a second payment nobody approved."""


class TokenNotInRegistryError(UnknownContractError):
    """A call with data to a contract that is not one of the signer's registered tokens."""


def transfer_calldata(to: str, amount: int) -> bytes:
    """``transfer(to, amount)`` with ``amount`` in the token's base units."""
    return TRANSFER_SELECTOR + encode(["address", "uint256"], [to, amount])


def decode_transfer(data: bytes) -> tuple[str, int] | None:
    """``(to, amount)`` if ``data`` is exactly a ``transfer`` call, else ``None``."""
    if len(data) != TRANSFER_CALLDATA_BYTES or data[:SELECTOR_BYTES] != TRANSFER_SELECTOR:
        return None
    try:
        to, amount = decode(["address", "uint256"], data[SELECTOR_BYTES:], strict=True)
    except DecodingError:
        return None
    return to_checksum_address(to), int(amount)


_REFUSED_SELECTORS: dict[bytes, tuple[type[TokenCallRefusedError], str]] = {
    APPROVE_SELECTOR: (TokenApproveRefusedError, "approve(spender, amount)"),
    TRANSFER_FROM_SELECTOR: (TokenTransferFromRefusedError, "transferFrom(from, to, amount)"),
    INCREASE_ALLOWANCE_SELECTOR: (
        TokenIncreaseAllowanceRefusedError,
        "increaseAllowance(spender, added)",
    ),
}
"""Selectors refused by name, each with its own error: the ways a token leaves without a transfer."""


def decode_token_call(token: str, value: int, data: bytes) -> tuple[str, int]:
    """``(to, amount)`` of the call ``data`` to the registered ``token``, or the specific refusal.

    Accepted is exactly ``transfer(address,uint256)``, strictly ABI-encoded, with nothing
    trailing and no ether ``value``; every refusal names the token, and the selector it saw.
    """
    selector = "0x" + data[:SELECTOR_BYTES].hex()
    wanted = f"only transfer(to, amount) (selector 0x{TRANSFER_SELECTOR.hex()})"
    refused = _REFUSED_SELECTORS.get(data[:SELECTOR_BYTES])
    if refused is not None:
        error, call = refused
        raise error(
            f"The SafeTx calls {call} on token {token} (selector {selector}); the signer never "
            f"signs it, since it lets tokens leave the Safe without a reviewed transfer: {wanted}."
        )
    if data[:SELECTOR_BYTES] != TRANSFER_SELECTOR:
        raise UnknownTokenSelectorError(
            f"The SafeTx calls token {token} with the unknown selector {selector}; the signer "
            f"cannot say what that call does and signs {wanted}."
        )
    if value != 0:
        raise TokenValueRefusedError(
            f"The SafeTx field 'value' is {value} wei on a transfer call to token {token}; a token "
            "transfer sends no ether, so the signer only signs it with value 0."
        )
    transfer = decode_transfer(data)
    if transfer is None:
        raise MalformedTokenTransferError(
            f"The SafeTx's transfer call to token {token} (selector {selector}) is "
            f"{len(data)} bytes, not a strictly encoded transfer(to, amount) of exactly "
            f"{TRANSFER_CALLDATA_BYTES} bytes; the signer signs nothing it cannot decode whole."
        )
    return transfer


def balance_of_calldata(holder: str) -> bytes:
    return BALANCE_OF_SELECTOR + encode(["address"], [holder])


__all__ = [
    "APPROVE_SELECTOR",
    "BALANCE_OF_SELECTOR",
    "INCREASE_ALLOWANCE_SELECTOR",
    "TRANSFER_CALLDATA_BYTES",
    "TRANSFER_FROM_SELECTOR",
    "TRANSFER_SELECTOR",
    "MalformedTokenTransferError",
    "TokenApproveRefusedError",
    "TokenCallRefusedError",
    "TokenIncreaseAllowanceRefusedError",
    "TokenNotInRegistryError",
    "TokenTransferFromRefusedError",
    "TokenValueRefusedError",
    "UnknownTokenSelectorError",
    "balance_of_calldata",
    "decode_token_call",
    "decode_transfer",
    "transfer_calldata",
]
