"""Reading EVM chains with ``web3``: balances, EIP-1271 answers, and the registry's known code.

The registry's compiled artifact ships inside this package (``AttestationRegistry.json``, a copy
of the treasury repository's committed artifact), so an auditor's installation compares the
deployed code with it without anything else from that repository.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from reserve_verifier.exceptions import VerifierError
from reserve_verifier.fields import hex_bytes
from reserve_verifier.inputs import RPC_TIMEOUT_S

EIP1271_MAGIC = bytes.fromhex("1626ba7e")
"""What ``isValidSignature(bytes32,bytes)`` returns for a valid signature (EIP-1271)."""

PUBLISHED_EVENT_SIGNATURE = b"Published(bytes32,bytes32,uint256,address)"
"""The registry event whose keccak-256 is the first topic of every publication's log."""

REGISTRY_ARTIFACT = "AttestationRegistry.json"
"""The package data file holding the registry's compiled code."""


def web3_client(url: str) -> Any:
    """A web3 client for ``url``."""
    from web3 import Web3

    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": RPC_TIMEOUT_S}))


def registry_runtime_code() -> bytes:
    """The attestation registry's runtime code, as compiled from its committed source."""
    text = resources.files("reserve_verifier").joinpath(REGISTRY_ARTIFACT).read_text("utf-8")
    return hex_bytes(json.loads(text)["bytecode_runtime"], "registry runtime code")


def eip1271_call(w3: Any, safe: str, digest: bytes, signature: bytes, block: int) -> bytes:
    """Call ``isValidSignature(bytes32,bytes)`` on ``safe`` at ``block``; return the 4-byte answer."""
    from eth_abi.abi import decode, encode

    selector = bytes(w3.keccak(text="isValidSignature(bytes32,bytes)"))[:4]
    data = selector + encode(["bytes32", "bytes"], [digest, signature])
    try:
        answer = bytes(
            w3.eth.call({"to": w3.to_checksum_address(safe), "data": "0x" + data.hex()}, block)
        )
    except Exception as error:
        raise VerifierError(f"isValidSignature on {safe} reverted or failed ({error}).") from None
    if len(answer) < 32:
        raise VerifierError(f"isValidSignature on {safe} returned {len(answer)} bytes, not 32.")
    (magic,) = decode(["bytes4"], answer[:32])
    return bytes(magic)


def evm_balance(w3: Any, holder: str, token: str | None, block: int) -> int:
    """Ether (``token`` None) or ERC-20 balance of ``holder`` at ``block``, in base units."""
    from eth_abi.abi import decode, encode

    address = w3.to_checksum_address(holder)
    if token is None:
        return int(w3.eth.get_balance(address, block))
    data = bytes(w3.keccak(text="balanceOf(address)"))[:4] + encode(["address"], [address])
    answer = bytes(
        w3.eth.call({"to": w3.to_checksum_address(token), "data": "0x" + data.hex()}, block)
    )
    (amount,) = decode(["uint256"], answer)
    return int(amount)


def token_metadata(w3: Any, token: str, block: int) -> tuple[int, str]:
    """An ERC-20's ``decimals()`` and ``symbol()`` at ``block``."""
    from eth_abi.abi import decode

    address = w3.to_checksum_address(token)
    answers = []
    for signature in ("decimals()", "symbol()"):
        selector = bytes(w3.keccak(text=signature))[:4]
        try:
            answers.append(
                bytes(w3.eth.call({"to": address, "data": "0x" + selector.hex()}, block))
            )
        except Exception as error:
            raise VerifierError(f"{signature} on {token} reverted or failed ({error}).") from None
    try:
        (decimals,) = decode(["uint8"], answers[0])
        (symbol,) = decode(["string"], answers[1])
    except Exception as error:
        raise VerifierError(
            f"The contract {token} does not answer decimals() and symbol() as an ERC-20 ({error})."
        ) from None
    return int(decimals), str(symbol)
