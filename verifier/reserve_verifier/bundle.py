"""The attestation bundle as the verifier reads it, written from ``SPEC-attestation.md`` alone.

A bundle file is ``{"body", "digest", "signatures", "proofs_of_control", "anchors"}``; only the
body is hashed: ``digest = SHA-256(canonical JSON of body)``. Canonical JSON is UTF-8 with raw
non-ASCII characters, keys sorted by code point, no whitespace, no fractions, NaN or infinities,
and JSON integers only up to ``2**53 - 1`` in magnitude (amounts are decimal strings).

This is the verifier's own reading of the format: it shares no code with the treasury's writer,
so a bug in one is caught by the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from reserve_verifier.exceptions import BundleFormatError
from reserve_verifier.grammar import check_grammar

BUNDLE_FORMAT = "national-reserve-attestation"
"""The ``format`` field of every bundle body."""

BUNDLE_VERSION = 1
"""The bundle layout version this verifier reads."""

MAX_JSON_INT = (1 << 53) - 1
"""Largest magnitude a JSON integer may have in canonical JSON (exact in every reader)."""

GENESIS_DIGEST_HEX = "00" * 32
"""The ``previous_digest`` of the first attestation of a chain."""

BUNDLE_PARTS = ("body", "digest", "signatures", "proofs_of_control", "anchors")
"""The top-level fields of a bundle file."""


class BundleLike(Protocol):
    """Anything holding a bundle's parts (this module's :class:`Bundle`, or the producer's)."""

    @property
    def body(self) -> Mapping[str, Any]: ...

    @property
    def signatures(self) -> Mapping[str, str]: ...

    @property
    def proofs_of_control(self) -> Mapping[str, Any]: ...

    @property
    def anchors(self) -> Mapping[str, Any]: ...

    @property
    def stated_digest(self) -> str | None: ...


def _refuse_non_canonical(value: Any, path: str) -> None:
    """Refuse what canonical JSON cannot hold: fractions, big integers, non-string keys."""
    if isinstance(value, float):
        raise BundleFormatError(
            f"The field {path} is a float; amounts and ratios are decimal strings."
        )
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_JSON_INT:
        raise BundleFormatError(
            f"The field {path} is the integer {value}, too large for a JSON number; write it as a decimal string."
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BundleFormatError(f"The field {path} has the non-string key {key!r}.")
            _refuse_non_canonical(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            _refuse_non_canonical(item, f"{path}[{position}]")
    elif not (value is None or isinstance(value, bool | int | str)):
        raise BundleFormatError(
            f"The field {path} holds a {type(value).__name__}, not a JSON value."
        )


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON bytes (refusing what the format forbids)."""
    _refuse_non_canonical(value, "$")
    text = json.dumps(
        value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return text.encode("utf-8")


def body_digest(body: Mapping[str, Any]) -> bytes:
    """The attestation digest: SHA-256 of the body's canonical JSON."""
    return hashlib.sha256(canonical_json(body)).digest()


def _no_fractions(text: str) -> NoReturn:
    """JSON hook: a bundle never holds a fraction (or NaN) as a JSON number."""
    raise BundleFormatError(f"The bundle holds the JSON number {text}; amounts are strings.")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON hook: refuse an object naming one key twice.

    Readers disagree on which of two duplicates wins (first, last, error), so a bundle with one
    could show the auditor one value while another reader, or the signer, saw the other.
    """
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise BundleFormatError(
                f"The bundle repeats the key {key!r} in one JSON object; every key must appear once."
            )
        found[key] = value
    return found


def parse_json(data: bytes | str) -> Any:
    """Parse JSON text, refusing fractions, NaN and Infinity, and duplicate keys.

    Bytes are read as UTF-8 only, and a byte-order mark is refused: Python's JSON reader would
    otherwise detect UTF-16 and UTF-32 too, and a file that one reader decodes and another
    refuses is two files (SPEC-attestation R-JSON-1).
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BundleFormatError(f"The bundle is not UTF-8 text: {error}.") from None
    if data.startswith("\ufeff"):
        raise BundleFormatError(
            "The bundle starts with a byte-order mark; a bundle is UTF-8 JSON without one."
        )
    try:
        return json.loads(
            data,
            parse_float=_no_fractions,
            parse_constant=_no_fractions,
            object_pairs_hook=_unique_keys,
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleFormatError(f"The bundle is not valid UTF-8 JSON: {error}.") from error


@dataclass(frozen=True)
class Bundle:
    """A bundle's parts as read: the hashed body and what sits beside it."""

    body: Mapping[str, Any]
    signatures: Mapping[str, str] = field(default_factory=dict)
    proofs_of_control: Mapping[str, Any] = field(default_factory=dict)
    anchors: Mapping[str, Any] = field(default_factory=dict)
    stated_digest: str | None = field(default=None, compare=False)

    @property
    def digest(self) -> bytes:
        """The digest recomputed from the body (the stated one is only compared with it)."""
        return body_digest(self.body)

    @property
    def sequence(self) -> int:
        """This attestation's number in the chain (1 for the first)."""
        value = self.body.get("sequence")
        if not isinstance(value, int) or isinstance(value, bool):
            raise BundleFormatError("The body's 'sequence' field must be a JSON integer.")
        return value

    @classmethod
    def of(cls, bundle: BundleLike) -> Bundle:
        """Take the parts of any bundle object as they are, without checking them."""
        if isinstance(bundle, Bundle):
            return bundle
        return cls(
            body=bundle.body,
            signatures=bundle.signatures,
            proofs_of_control=bundle.proofs_of_control,
            anchors=bundle.anchors,
            stated_digest=bundle.stated_digest,
        )

    @classmethod
    def from_dict(cls, data: Any, *, strict: bool = True) -> Bundle:
        """Read a parsed bundle file strictly, refusing (if ``strict``) a wrong digest too.

        Every field's grammar is enforced here (``grammar.check_grammar``): unknown fields,
        non-canonical values and offline-detectable inconsistencies refuse the file. The verifier
        reads with ``strict=False`` and reports a wrong stated digest as one failed check among
        the others, so a re-signed tamper is described, not just refused.
        """
        if not isinstance(data, Mapping):
            raise BundleFormatError("The bundle is not a JSON object.")
        for name in BUNDLE_PARTS:
            if name not in data:
                raise BundleFormatError(f"The bundle has no {name!r} field.")
        check_grammar(data)
        for name in ("body", "signatures", "proofs_of_control", "anchors"):
            if not isinstance(data[name], Mapping):
                raise BundleFormatError(f"The bundle's {name!r} field must be a JSON object.")
        body = data["body"]
        if body.get("format") != BUNDLE_FORMAT or body.get("version") != BUNDLE_VERSION:
            raise BundleFormatError(
                f"The body is not a {BUNDLE_FORMAT} version {BUNDLE_VERSION} document."
            )
        for role, signature in data["signatures"].items():
            if not isinstance(signature, str):
                raise BundleFormatError(f"The signature of role {role!r} must be a hex string.")
        stated = data["digest"]
        bundle = cls(
            body=body,
            signatures=dict(data["signatures"]),
            proofs_of_control=dict(data["proofs_of_control"]),
            anchors=dict(data["anchors"]),
            stated_digest=stated if isinstance(stated, str) else None,
        )
        if strict and stated != bundle.digest.hex():
            raise BundleFormatError(
                f"The bundle states digest {stated} but its body hashes to {bundle.digest.hex()}."
            )
        return bundle

    @classmethod
    def from_bytes(cls, data: bytes | str, *, strict: bool = True) -> Bundle:
        """Read a bundle file's bytes."""
        return cls.from_dict(parse_json(data), strict=strict)
