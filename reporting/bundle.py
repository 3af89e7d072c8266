"""The attestation bundle: canonical JSON bytes, the digest, signatures, proofs and anchors.

A bundle is ``{"body", "digest", "signatures", "proofs_of_control", "anchors"}``. Only the body is
hashed: ``digest = SHA-256(canonical(body))``. Everything that can only exist once the digest is
known (signatures, the reserve-proof PSBT committing to it, the Safe's EIP-1271 signature of it,
the anchors carrying it) sits beside the body. ``reporting/SPEC-attestation.md`` states the rules.

Stdlib only: the auditors' verifier imports this module. The errors of attestations::

    ReportingError
    └── AttestationError               building, signing, anchoring or reading a bundle
        ├── BundleFormatError          the bytes or fields are not a v1 bundle (ValueError)
        ├── SigningError               a signer's key or signature is unusable
        └── AnchorError                an anchor could not be written or located on chain
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reporting.exceptions import ReportingError

BUNDLE_FORMAT = "national-reserve-attestation"
"""The ``format`` field of every bundle body, so a digest of another kind of document never matches."""

BUNDLE_VERSION = 1
"""Version of the bundle layout this module writes and reads."""

MAX_JSON_INT = (1 << 53) - 1
"""Largest integer written as a JSON number (exact in every reader); amounts are always strings."""

DIGEST_BYTES = 32
"""Length of the attestation digest (SHA-256), in bytes."""

GENESIS_DIGEST_HEX = "00" * DIGEST_BYTES
"""The ``previous_digest`` of the first attestation of a chain."""


class AttestationError(ReportingError):
    """An attestation cannot be built, signed, anchored or read."""


class BundleFormatError(AttestationError, ValueError):
    """A bundle or one of its fields is malformed: not canonical, a float, a missing field."""


class SigningError(AttestationError):
    """A signing key or a signature cannot be used for an attestation."""


class AnchorError(AttestationError):
    """An anchor could not be written, or its transaction or event could not be found."""


def _check_json(value: Any, path: str) -> None:
    """Refuse what canonical JSON forbids: floats, big JSON numbers, non-string keys."""
    if isinstance(value, float):
        raise BundleFormatError(
            f"The field {path} is a float; amounts and ratios are decimal strings."
        )
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_JSON_INT:
            raise BundleFormatError(
                f"The field {path} is the integer {value}, too large for a JSON number; write it as a decimal string."
            )
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BundleFormatError(f"The field {path} has the non-string key {key!r}.")
            _check_json(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for position, item in enumerate(value):
            _check_json(item, f"{path}[{position}]")
        return
    raise BundleFormatError(f"The field {path} holds a {type(value).__name__}, not a JSON value.")


def canonical_json(value: Any) -> bytes:
    """Encode as canonical JSON: sorted keys, no whitespace, UTF-8, no floats, small ints only."""
    _check_json(value, "$")
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def body_digest(body: Mapping[str, Any]) -> bytes:
    """Return ``SHA-256(canonical_json(body))``: the attestation digest."""
    return hashlib.sha256(canonical_json(body)).digest()


def _refuse_floats(text: str) -> Any:
    """``parse_float`` hook: a bundle never carries a fraction as a JSON number."""
    raise BundleFormatError(f"The bundle holds the JSON number {text}; amounts are strings.")


def parse_json(data: bytes | str) -> Any:
    """Parse JSON text, refusing floats and constants such as NaN."""
    try:
        return json.loads(
            data,
            parse_float=_refuse_floats,
            parse_constant=_refuse_floats,
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleFormatError(f"The bundle is not valid UTF-8 JSON: {error}.") from error


@dataclass(frozen=True)
class Bundle:
    """A signed attestation: its body (hashed), digest, signatures, proofs of control, anchors."""

    body: Mapping[str, Any]
    signatures: Mapping[str, str] = field(default_factory=dict)
    proofs_of_control: Mapping[str, Any] = field(default_factory=dict)
    anchors: Mapping[str, Any] = field(default_factory=dict)
    stated_digest: str | None = field(default=None, compare=False)

    @property
    def digest(self) -> bytes:
        """The SHA-256 of the body's canonical bytes."""
        return body_digest(self.body)

    @property
    def sequence(self) -> int:
        """This attestation's number in the chain (1 for the first)."""
        value = self.body.get("sequence")
        if not isinstance(value, int) or isinstance(value, bool):
            raise BundleFormatError("The body's 'sequence' field must be a JSON integer.")
        return value

    def with_signature(self, role: str, signature: bytes) -> Bundle:
        """Return a copy carrying ``role``'s signature (65 bytes ``r || s || v``)."""
        return replace(self, signatures={**self.signatures, role: signature.hex()})

    def with_proof(self, name: str, proof: Any) -> Bundle:
        """Return a copy carrying one produced proof of control (PSBT, EIP-1271 signatures)."""
        return replace(self, proofs_of_control={**self.proofs_of_control, name: proof})

    def with_anchor(self, chain: str, anchor: Mapping[str, Any]) -> Bundle:
        """Return a copy recording where an anchor landed (``bitcoin`` or ``services``)."""
        return replace(self, anchors={**self.anchors, chain: dict(anchor)})

    def to_dict(self) -> dict[str, Any]:
        """Return the whole bundle as JSON-able data, the digest included for readers."""
        return {
            "body": self.body,
            "digest": self.digest.hex(),
            "signatures": dict(self.signatures),
            "proofs_of_control": dict(self.proofs_of_control),
            "anchors": dict(self.anchors),
        }

    def to_bytes(self) -> bytes:
        """Return the bundle file's bytes (canonical JSON)."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, *, strict: bool = True) -> Bundle:
        """Parse a bundle, refusing missing parts and (if ``strict``) a digest not the body's.

        The verifier parses with ``strict=False`` and reports a wrong stated digest as one
        failed check among the others, so a tampered bundle is described, not just refused.
        """
        if not isinstance(data, Mapping):
            raise BundleFormatError("The bundle is not a JSON object.")
        for name in ("body", "digest", "signatures", "proofs_of_control", "anchors"):
            if name not in data:
                raise BundleFormatError(f"The bundle has no {name!r} field.")
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
        bundle = cls(
            body=body,
            signatures=dict(data["signatures"]),
            proofs_of_control=dict(data["proofs_of_control"]),
            anchors=dict(data["anchors"]),
            stated_digest=data["digest"] if isinstance(data["digest"], str) else None,
        )
        if strict and data["digest"] != bundle.digest.hex():
            raise BundleFormatError(
                f"The bundle states digest {data['digest']} but its body hashes to {bundle.digest.hex()}."
            )
        return bundle

    @classmethod
    def from_bytes(cls, data: bytes | str, *, strict: bool = True) -> Bundle:
        """Parse a bundle file's bytes."""
        return cls.from_dict(parse_json(data), strict=strict)
