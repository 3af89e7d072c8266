"""The one canonical JSON form that every signed statement and roster record is hashed in.

A signature is over bytes, and a signer must refuse bytes that could be read two ways. So there
is exactly one encoding of a value: object keys sorted, no whitespace, UTF-8, and only strings,
``null``, arrays and objects -- no numbers at all. Integers travel as decimal strings without
leading zeros (JSON numbers invite floats, rounding and ``1e3``); times as ``YYYY-MM-DDTHH:MM:SSZ``.
``parse`` decodes and re-encodes, and refuses anything that does not come back byte for byte,
so duplicate keys, spaces, escapes or a BOM cannot smuggle a second meaning past a signature.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from custody.authority.errors import EncodingError

__all__ = [
    "JsonValue",
    "decode_hex",
    "decode_uint",
    "decode_utc",
    "encode",
    "encode_uint",
    "encode_utc",
    "parse",
]

JsonValue = Any
"""A value made of ``str``, ``None``, ``list`` and ``dict`` with ``str`` keys (checked at runtime)."""

_UINT_PATTERN = re.compile(r"0|[1-9][0-9]*")
_UTC_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_HEX_PATTERN = re.compile(r"(?:[0-9a-f]{2})*")
_UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _check(value: JsonValue, where: str) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(f"The key {key!r} at {where} is not a string.")
            _check(item, f"{where}.{key}")
        return
    raise EncodingError(
        f"The value at {where} is a {type(value).__name__}; canonical JSON holds only strings, "
        "null, arrays and objects (numbers travel as decimal strings)."
    )


def encode(value: JsonValue) -> bytes:
    """The canonical bytes of ``value``: sorted keys, no whitespace, UTF-8, no numbers."""
    _check(value, "$")
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodingError("A string holds a lone surrogate, which UTF-8 cannot encode.") from exc


def _no_duplicates(pairs: list[tuple[str, JsonValue]]) -> dict[str, JsonValue]:
    result: dict[str, JsonValue] = {}
    for key, item in pairs:
        if key in result:
            raise EncodingError(f"The key {key!r} appears twice in one object.")
        result[key] = item
    return result


def _no_number(text: str) -> JsonValue:
    raise EncodingError(f"The number {text} is not allowed; numbers travel as decimal strings.")


def parse(data: bytes) -> JsonValue:
    """Decode canonical bytes, refusing any other encoding of the same value."""
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_int=_no_number,
            parse_float=_no_number,
            parse_constant=_no_number,
        )
    except UnicodeDecodeError as exc:
        raise EncodingError("The bytes are not valid UTF-8.") from exc
    except json.JSONDecodeError as exc:
        raise EncodingError(f"The bytes are not JSON: {exc.msg} at offset {exc.pos}.") from exc
    if encode(value) != data:
        raise EncodingError(
            "The bytes are JSON but not in canonical form (sorted keys, no whitespace, "
            "minimal escapes, UTF-8); refusing a second encoding of a signed value."
        )
    return value


def encode_uint(value: int, field: str) -> str:
    """A non-negative ``int`` as a decimal string (``bool`` refused: it is not an amount)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EncodingError(f"The field {field} must be a non-negative integer, got {value!r}.")
    return str(value)


def decode_uint(text: JsonValue, field: str) -> int:
    """A decimal string without sign, spaces or leading zeros, back to ``int``."""
    if not isinstance(text, str) or not _UINT_PATTERN.fullmatch(text):
        raise EncodingError(
            f"The field {field} must be a decimal string without leading zeros, got {text!r}."
        )
    return int(text)


def encode_utc(moment: datetime, field: str) -> str:
    """A timezone-aware time to whole seconds, as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise EncodingError(f"The time {field} must be timezone-aware (UTC).")
    if moment.microsecond:
        raise EncodingError(f"The time {field} must be whole seconds (no fraction).")
    return moment.astimezone(UTC).strftime(_UTC_FORMAT)


def decode_utc(text: JsonValue, field: str) -> datetime:
    """``YYYY-MM-DDTHH:MM:SSZ`` back to an aware UTC ``datetime``; nothing else is accepted."""
    if not isinstance(text, str) or not _UTC_PATTERN.fullmatch(text):
        raise EncodingError(f"The time {field} must be written YYYY-MM-DDTHH:MM:SSZ, got {text!r}.")
    try:
        return datetime.strptime(text, _UTC_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise EncodingError(f"The time {field} is not a real date and time: {text!r}.") from exc


def decode_hex(text: JsonValue, field: str, length: int | None = None) -> bytes:
    """Lowercase hex without prefix back to bytes, optionally of an exact length."""
    if not isinstance(text, str) or not _HEX_PATTERN.fullmatch(text):
        raise EncodingError(f"The field {field} must be lowercase hex, got {text!r}.")
    raw = bytes.fromhex(text)
    if length is not None and len(raw) != length:
        raise EncodingError(f"The field {field} must be {length} bytes, got {len(raw)}.")
    return raw
