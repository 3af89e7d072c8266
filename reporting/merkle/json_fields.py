"""Strict readers of the JSON forms of leaves, roots, proofs, packages and listings.

A JSON form comes from outside (an account holder, a published listing), so every field is read
through these few checks: one place decides what a malformed field is and how the
``ProofFormatError`` that names it reads. Internal to ``reporting.merkle``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reporting.exceptions import ProofFormatError
from reporting.merkle.encoding import FORMAT_VERSION, HASH_BYTES, TreeKind


def json_field(data: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    """Return ``data[name]`` if present with the right JSON type, else a ProofFormatError."""
    if not isinstance(data, Mapping) or name not in data:
        raise ProofFormatError(f"The {what} has no {name!r} field.")
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProofFormatError(f"The {what}'s {name!r} field must be a JSON {kind.__name__}.")
    return value


def parse_int(text: Any, what: str) -> int:
    """Parse a decimal string (a leading minus allowed, so checks can name the sign)."""
    digits = text[1:] if isinstance(text, str) and text.startswith("-") else text
    if not isinstance(digits, str) or not digits.isascii() or not digits.isdigit():
        raise ProofFormatError(f"The {what} must be a decimal string of base units, not {text!r}.")
    return int(text)


def parse_hex(text: str, what: str, length: int = HASH_BYTES) -> bytes:
    """Parse lowercase or uppercase hex of exactly ``length`` bytes."""
    try:
        raw = bytes.fromhex(text)
    except ValueError as error:
        raise ProofFormatError(f"The {what} is not hexadecimal.") from error
    if len(raw) != length:
        raise ProofFormatError(f"The {what} must be {length} bytes, not {len(raw)}.")
    return raw


def check_version(data: Mapping[str, Any], what: str) -> None:
    """Refuse a JSON form of another format version."""
    version = json_field(data, "version", int, what)
    if version != FORMAT_VERSION:
        raise ProofFormatError(
            f"The {what} has format version {version}; this code reads version {FORMAT_VERSION}."
        )


def parse_kind(text: str) -> TreeKind:
    """Map a JSON tree name to its kind."""
    try:
        return TreeKind(text)
    except ValueError as error:
        raise ProofFormatError(
            f"The tree kind {text!r} is neither 'holdings' nor 'liabilities'."
        ) from error
