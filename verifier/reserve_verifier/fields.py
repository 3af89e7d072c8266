"""Reading the bundle's field values (decimal strings, hex, addresses, signatures) strictly.

Each value has exactly one accepted spelling (SPEC-attestation "Canonical JSON"): a decimal
string without sign, padding or leading zeros; lowercase hex; EIP-55 addresses; low-S
signatures. One spelling per value means a bundle cannot carry two byte-different texts that a
lenient reader takes for the same figure, nor a malleated signature of the same digest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from eth_utils.address import to_checksum_address

from reserve_verifier.exceptions import BundleFormatError, VerifierError

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The order ``n`` of the secp256k1 group."""

SECP256K1_HALF_ORDER = SECP256K1_ORDER // 2
"""The largest ``s`` a low-S signature may carry (``n / 2``): the other of each pair is refused."""

SIGNATURE_BYTES = 65
"""A digest signature is ``r (32) || s (32) || v (1)``."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_LOWER_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")

ACCEPT_LOWERCASE_ADDRESSES = False
"""Whether an all-lowercase address (EIP-55's "no checksum" form) is read: no longer.

The producer writes every address (Safe, token, registry, publisher, signers) in EIP-55 form,
so a bundle's address has exactly one accepted spelling, and a lowercase one is refused as
non-canonical. (Kept as a named switch so the rule is stated in one place.)
"""


def amount(text: Any, what: str) -> int:
    """Parse a non-negative decimal string of base units in its one canonical spelling.

    Refused: leading zeros (``"007"``), signs (``"+7"``, ``"-0"``), padding (``" 7"``),
    underscores, non-ASCII digits, the empty string, and JSON numbers.
    """
    if not isinstance(text, str) or _DECIMAL.fullmatch(text) is None:
        raise BundleFormatError(
            f"The {what} is {text!r}, not a canonical decimal string (digits only, no sign, padding or leading zeros)."
        )
    return int(text)


def amounts(mapping: Any, what: str) -> dict[str, int]:
    """Parse a ``{asset: decimal string}`` map."""
    if not isinstance(mapping, Mapping):
        raise VerifierError(f"The {what} is not a JSON object.")
    return {asset: amount(text, f"{what} of {asset}") for asset, text in mapping.items()}


def hex_bytes(text: Any, what: str) -> bytes:
    """Parse hex, with or without a ``0x`` prefix."""
    if not isinstance(text, str):
        raise VerifierError(f"The {what} is not a hex string.")
    try:
        return bytes.fromhex(text[2:] if text.startswith("0x") else text)
    except ValueError as error:
        raise VerifierError(f"The {what} is not hexadecimal.") from error


def lower_hex(text: Any, what: str, *, size: int | None = None, prefix: bool = False) -> bytes:
    """Parse canonical hex: lowercase, whole bytes, ``size`` bytes if given, ``0x`` iff ``prefix``."""
    body = text[2:] if prefix and isinstance(text, str) and text.startswith("0x") else text
    if (
        not isinstance(text, str)
        or (prefix and body is text)
        or not isinstance(body, str)
        or _LOWER_HEX.fullmatch(body) is None
        or (size is not None and len(body) != 2 * size)
    ):
        spelled = f"{size} bytes of " if size is not None else ""
        marker = "0x-prefixed " if prefix else "bare "
        raise BundleFormatError(f"The {what} is {text!r}, not {spelled}{marker}lowercase hex.")
    return bytes.fromhex(body)


def checksum_address(text: Any, what: str) -> str:
    """Accept only an EIP-55 checksummed address (see ``ACCEPT_LOWERCASE_ADDRESSES``).

    A wrong-case letter is how EIP-55 catches a mistyped address; one that fails it may not be
    the address the signers meant, so it is refused rather than normalised.
    """
    if not isinstance(text, str) or _ADDRESS.fullmatch(text) is None:
        raise BundleFormatError(f"The {what} {text!r} is not a 0x-prefixed 20-byte address.")
    expected = str(to_checksum_address(text))
    if text != expected and not (ACCEPT_LOWERCASE_ADDRESSES and text == text.lower()):
        raise BundleFormatError(
            f"The {what} {text} is not in EIP-55 checksum form (expected {expected})."
        )
    return text


def signature_bytes(text: Any, what: str) -> bytes:
    """Parse a digest signature ``r || s || v`` (65 bytes, lowercase hex), refusing high S.

    For every ECDSA signature ``(r, s)`` the pair ``(r, n - s)`` verifies too; accepting only
    ``s <= n/2`` gives each signer's signature of a digest one form, so a signature cannot be
    altered into another valid one by someone without the key.
    """
    data = lower_hex(text, what, size=SIGNATURE_BYTES)
    r = int.from_bytes(data[:32], "big")
    s = int.from_bytes(data[32:64], "big")
    if not (0 < r < SECP256K1_ORDER and 0 < s < SECP256K1_ORDER) or data[64] not in (0, 1):
        raise BundleFormatError(f"The {what} is out of range (r and s in 1..n-1, v 0 or 1).")
    if s > SECP256K1_HALF_ORDER:
        raise BundleFormatError(
            f"The {what} has a high S value (above secp256k1 n/2); only low-S signatures are accepted."
        )
    return data


def percent(numerator: int, denominator: int) -> str:
    """The bundle's human ratio: a percentage truncated to two decimals, computed here."""
    hundredths = numerator * 10_000 // denominator
    return f"{hundredths // 100}.{hundredths % 100:02d}%"


def show(totals: Mapping[str, int]) -> str:
    """Per-asset amounts as ``ASSET amount`` pairs, in asset order."""
    return ", ".join(f"{asset} {total}" for asset, total in sorted(totals.items())) or "nothing"
