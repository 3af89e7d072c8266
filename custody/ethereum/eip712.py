"""Our own EIP-712 encoder: typed structured data to the 32-byte digest an owner signs.

Written from the specification (``encodeType``, ``hashStruct``, ``encodeData``) so that the
SafeTx hash we sign is computed without trusting the contract or a third-party library; tests
check it against the specification's ``Mail`` vector and against the Safe contract itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from eth_utils.address import to_canonical_address
from eth_utils.crypto import keccak

StructTypes = Mapping[str, Sequence[tuple[str, str]]]
"""Struct name -> ordered ``(field name, field type)`` pairs, as in the specification."""

WORD_BYTES = 32
EIP712_PREFIX = b"\x19\x01"
"""``\\x19`` makes the payload an invalid RLP transaction; ``\\x01`` is EIP-712's version byte."""

_ARRAY = re.compile(r"^(.*)\[(\d*)\]$")
_UINT = re.compile(r"^uint(\d+)$")
_INT = re.compile(r"^int(\d+)$")
_BYTES_N = re.compile(r"^bytes(\d+)$")


def _dependencies(primary: str, types: StructTypes, found: set[str]) -> set[str]:
    base = _ARRAY.sub(r"\1", primary)
    while _ARRAY.match(base):
        base = _ARRAY.sub(r"\1", base)
    if base in found or base not in types:
        return found
    found.add(base)
    for _name, field_type in types[base]:
        _dependencies(field_type, types, found)
    return found


def encode_type(primary: str, types: StructTypes) -> str:
    """``Name(type field,...)`` followed by the referenced structs in alphabetical order."""
    deps = _dependencies(primary, types, set()) - {primary}
    return "".join(
        f"{name}({','.join(f'{t} {n}' for n, t in types[name])})"
        for name in [primary, *sorted(deps)]
    )


def type_hash(primary: str, types: StructTypes) -> bytes:
    return keccak(text=encode_type(primary, types))


def _encode_value(field_type: str, value: object, types: StructTypes) -> bytes:
    """One 32-byte word of ``encodeData`` for a value of ``field_type``."""
    if field_type in types:
        if not isinstance(value, Mapping):
            raise TypeError(f"EIP-712 field of struct type {field_type} needs a mapping.")
        return hash_struct(field_type, types, value)
    array = _ARRAY.match(field_type)
    if array:
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            raise TypeError(f"EIP-712 field of type {field_type} needs a sequence.")
        if array.group(2) and len(value) != int(array.group(2)):
            raise ValueError(f"EIP-712 field of type {field_type} needs {array.group(2)} items.")
        return keccak(b"".join(_encode_value(array.group(1), item, types) for item in value))
    if field_type == "string":
        if not isinstance(value, str):
            raise TypeError("EIP-712 string fields need a str.")
        return keccak(value.encode())
    if field_type == "bytes":
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError("EIP-712 bytes fields need bytes.")
        return keccak(bytes(value))
    if field_type == "address":
        if not isinstance(value, str):
            raise TypeError("EIP-712 address fields need a hex str.")
        return to_canonical_address(value).rjust(WORD_BYTES, b"\0")
    if field_type == "bool":
        if not isinstance(value, bool):
            raise TypeError("EIP-712 bool fields need a bool.")
        return int(value).to_bytes(WORD_BYTES, "big")
    fixed = _BYTES_N.match(field_type)
    if fixed:
        if not isinstance(value, (bytes, bytearray)) or len(value) != int(fixed.group(1)):
            raise TypeError(f"EIP-712 {field_type} fields need exactly {fixed.group(1)} bytes.")
        return bytes(value).ljust(WORD_BYTES, b"\0")
    unsigned = _UINT.match(field_type)
    integer = unsigned or _INT.match(field_type)
    if integer:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"EIP-712 {field_type} fields need an int.")
        bits = int(integer.group(1))
        low, high = (0, 2**bits) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1))
        if not low <= value < high:
            raise ValueError(f"EIP-712 value {value} does not fit {field_type}.")
        return value.to_bytes(WORD_BYTES, "big", signed=value < 0)
    raise ValueError(f"EIP-712 type {field_type!r} is neither atomic, dynamic nor a known struct.")


def hash_struct(primary: str, types: StructTypes, data: Mapping[str, object]) -> bytes:
    """``keccak256(typeHash || encodeData(data))``."""
    words = [_encode_value(t, data[name], types) for name, t in types[primary]]
    return keccak(type_hash(primary, types) + b"".join(words))


def typed_data_digest(domain_separator: bytes, message_hash: bytes) -> bytes:
    """``keccak256("\\x19\\x01" || domainSeparator || hashStruct(message))``: what is signed."""
    return keccak(EIP712_PREFIX + domain_separator + message_hash)
