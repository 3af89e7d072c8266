"""Compact secp256k1 signatures over a 32-byte digest: ``r || s || v``, low-S, recovery id 0/1.

Officers' CLI keys and the institutions' ceremony keys both sign this way. The form is strict on
purpose: ``s`` must be at most n/2 (the other half is a second valid signature of the same
message, which would let a relay change signature bytes without a key) and ``v`` must be the
recovery id that actually recovers the signing key, so every (key, digest) pair has exactly one
accepted signature. libsecp256k1 does the curve arithmetic, through embit's bindings (the same
library custody signs Bitcoin transactions with; its signer emits low-S, RFC 6979 nonces).
"""

from __future__ import annotations

from embit.util import secp256k1 as libsecp

from custody.authority.errors import (
    HighSSignatureError,
    MalformedSignatureError,
    SignatureMismatchError,
)
from custody.secret import SecretBytes

__all__ = [
    "COMPRESSED_PUBLIC_KEY_BYTES",
    "CURVE_ORDER",
    "DIGEST_BYTES",
    "SIGNATURE_BYTES",
    "public_key_of",
    "sign_digest",
    "validate_public_key",
    "verify_digest",
]

CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""n, the order of secp256k1's group."""
SIGNATURE_BYTES = 65
"""r (32) || s (32) || v (1, the recovery id 0 or 1)."""
COMPRESSED_PUBLIC_KEY_BYTES = 33
DIGEST_BYTES = 32


def _private_key(secret: SecretBytes) -> bytes:
    raw = secret.reveal()
    if len(raw) != 32 or not 0 < int.from_bytes(raw, "big") < CURVE_ORDER:
        raise MalformedSignatureError("The private key is not a valid secp256k1 scalar.")
    return raw


def public_key_of(secret: SecretBytes) -> bytes:
    """The 33-byte compressed public key of a private key held in ``SecretBytes``."""
    return bytes(libsecp.ec_pubkey_serialize(libsecp.ec_pubkey_create(_private_key(secret))))


def validate_public_key(public: bytes) -> None:
    """Raise ``MalformedSignatureError`` unless ``public`` is a compressed point on the curve."""
    if len(public) != COMPRESSED_PUBLIC_KEY_BYTES or public[0] not in (2, 3):
        raise MalformedSignatureError("A secp256k1 public key must be 33 bytes (compressed).")
    try:
        libsecp.ec_pubkey_parse(public)
    except ValueError as exc:
        raise MalformedSignatureError(
            "The secp256k1 public key is not a point on the curve."
        ) from exc


def sign_digest(secret: SecretBytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest: 65 bytes ``r || s || v`` with low S (deterministic, RFC 6979)."""
    if len(digest) != DIGEST_BYTES:
        raise MalformedSignatureError("Only a 32-byte digest is signed.")
    recoverable = libsecp.ecdsa_sign_recoverable(digest, _private_key(secret))
    compact, recovery_id = libsecp.ecdsa_recoverable_signature_serialize_compact(recoverable)
    if int.from_bytes(compact[32:], "big") > CURVE_ORDER // 2:  # libsecp256k1 never does this
        raise MalformedSignatureError("The signer produced a high-S signature; refusing it.")
    return bytes(compact) + bytes([recovery_id])


def verify_digest(public: bytes, digest: bytes, signature: bytes) -> None:
    """Return if ``signature`` is the one low-S signature of ``digest`` by ``public``; else raise."""
    validate_public_key(public)
    if len(digest) != DIGEST_BYTES:
        raise MalformedSignatureError("Only a 32-byte digest is verified.")
    if len(signature) != SIGNATURE_BYTES:
        raise MalformedSignatureError(
            f"A secp256k1 signature is {SIGNATURE_BYTES} bytes (r || s || v), got {len(signature)}."
        )
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if not (0 < r < CURVE_ORDER and 0 < s < CURVE_ORDER) or v not in (0, 1):
        raise MalformedSignatureError("The signature's r, s or recovery id is out of range.")
    if s > CURVE_ORDER // 2:
        raise HighSSignatureError(
            "The signature has a high S value; only the low-S form is accepted (malleability)."
        )
    try:
        parsed = libsecp.ecdsa_recoverable_signature_parse_compact(signature[:64], v)
        recovered = bytes(libsecp.ec_pubkey_serialize(libsecp.ecdsa_recover(parsed, digest)))
    except ValueError as exc:
        raise SignatureMismatchError("The signature does not recover to any key.") from exc
    if recovered != public:
        raise SignatureMismatchError("The signature is not by this officer's key over this digest.")
