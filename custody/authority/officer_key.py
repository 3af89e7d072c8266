"""An officer's public signing key: a secp256k1 key (CLI key file) or a WebAuthn ES256 passkey.

The server and the roster store only these public keys; the signers verify statements against
them. A key's id is derived from its own bytes (never chosen by whoever writes the row), so the
same id cannot name two keys. For a passkey the relying party id and origin are part of the key:
an assertion made for another site, or by a page on another origin, does not count.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from webauthn.helpers import decode_credential_public_key
from webauthn.helpers.cose import COSECRV, COSEKTY, COSEAlgorithmIdentifier
from webauthn.helpers.decode_credential_public_key import DecodedEC2PublicKey

from custody.authority import canonical, secp256k1
from custody.authority.errors import EncodingError, OfficerKeyError

__all__ = ["KEY_ID_BYTES", "OfficerKeyKind", "OfficerPublicKey"]

KEY_ID_BYTES = 8
"""A key id is this many bytes of SHA-256 of the key (hex, with a kind prefix)."""

_ORIGIN_PATTERN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class OfficerKeyKind(StrEnum):
    """How an officer's key signs: a CLI key file, or a browser passkey."""

    SECP256K1 = "secp256k1"
    WEBAUTHN_ES256 = "webauthn-es256"


@dataclass(frozen=True)
class OfficerPublicKey:
    """A public key an officer signs with; safe to store, print and publish."""

    kind: OfficerKeyKind
    public: bytes
    """secp256k1: the 33-byte compressed point. WebAuthn: the COSE_Key from registration."""
    rp_id: str | None = None
    """WebAuthn only: the relying party id (a domain) the passkey is bound to."""
    origin: str | None = None
    """WebAuthn only: the exact origin the console is served from (``https://host[:port]``)."""
    credential_id: bytes | None = None
    """WebAuthn only: the credential id the authenticator returns with each assertion."""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, OfficerKeyKind):
            raise OfficerKeyError("The key kind must be an OfficerKeyKind.")
        if self.kind is OfficerKeyKind.SECP256K1:
            if self.rp_id is not None or self.origin is not None or self.credential_id is not None:
                raise OfficerKeyError("A secp256k1 key has no rp_id, origin or credential id.")
            try:
                secp256k1.validate_public_key(self.public)
            except ValueError as exc:
                raise OfficerKeyError(str(exc)) from exc
            return
        if not self.rp_id or not self.origin or not self.credential_id:
            raise OfficerKeyError("A WebAuthn key needs its rp_id, origin and credential id.")
        if not _ORIGIN_PATTERN.fullmatch(self.origin):
            raise OfficerKeyError(
                f"The WebAuthn origin {self.origin!r} is not scheme://host[:port]."
            )
        _check_es256(self.public)

    @property
    def key_id(self) -> str:
        """``k1:<hex>`` or ``wa:<hex>``, from SHA-256 of the public key or credential id."""
        if self.kind is OfficerKeyKind.SECP256K1:
            return "k1:" + hashlib.sha256(self.public).digest()[:KEY_ID_BYTES].hex()
        return "wa:" + hashlib.sha256(self.credential_id or b"").digest()[:KEY_ID_BYTES].hex()

    def to_json(self) -> dict[str, str | None]:
        """The key as a canonical-JSON object (bytes as lowercase hex)."""
        return {
            "kind": self.kind.value,
            "public": self.public.hex(),
            "rp_id": self.rp_id,
            "origin": self.origin,
            "credential_id": None if self.credential_id is None else self.credential_id.hex(),
        }

    @classmethod
    def from_json(cls, obj: canonical.JsonValue) -> OfficerPublicKey:
        """Build from ``to_json()``'s object, refusing unknown or missing fields."""
        expected = {"kind", "public", "rp_id", "origin", "credential_id"}
        if not isinstance(obj, dict) or set(obj) != expected:
            raise EncodingError(f"An officer key is an object with exactly {sorted(expected)}.")
        try:
            kind = OfficerKeyKind(obj["kind"])
        except ValueError as exc:
            raise EncodingError(f"Unknown officer key kind {obj['kind']!r}.") from exc
        credential = obj["credential_id"]
        for name in ("rp_id", "origin"):
            if obj[name] is not None and not isinstance(obj[name], str):
                raise EncodingError(f"The key field {name} must be a string or null.")
        return cls(
            kind=kind,
            public=canonical.decode_hex(obj["public"], "public"),
            rp_id=obj["rp_id"],
            origin=obj["origin"],
            credential_id=None
            if credential is None
            else canonical.decode_hex(credential, "credential_id"),
        )


def _check_es256(cose_key: bytes) -> None:
    """Accept only an EC2 P-256 COSE key for ES256: the one algorithm the signers verify."""
    try:
        decoded = decode_credential_public_key(cose_key)
    except Exception as exc:  # py_webauthn raises assorted errors for bad CBOR: all refuse
        raise OfficerKeyError("The WebAuthn public key is not a decodable COSE key.") from exc
    if (
        not isinstance(decoded, DecodedEC2PublicKey)
        or decoded.kty != COSEKTY.EC2
        or decoded.alg != COSEAlgorithmIdentifier.ECDSA_SHA_256
        or decoded.crv != COSECRV.P256
    ):
        raise OfficerKeyError("Only ES256 (EC2, P-256) WebAuthn keys are accepted.")
