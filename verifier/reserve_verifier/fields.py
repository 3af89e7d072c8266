"""Reading the bundle's field values (decimal strings of base units, hex) and showing totals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reserve_verifier.exceptions import VerifierError


def amount(text: Any, what: str) -> int:
    """Parse a non-negative decimal string of base units."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit():
        raise VerifierError(f"The {what} is {text!r}, not a non-negative decimal string.")
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


def percent(numerator: int, denominator: int) -> str:
    """The bundle's human ratio: a percentage truncated to two decimals, computed here."""
    hundredths = numerator * 10_000 // denominator
    return f"{hundredths // 100}.{hundredths % 100:02d}%"


def show(totals: Mapping[str, int]) -> str:
    """Per-asset amounts as ``ASSET amount`` pairs, in asset order."""
    return ", ".join(f"{asset} {total}" for asset, total in sorted(totals.items())) or "nothing"
