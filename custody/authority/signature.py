"""Officers' signatures over a digest, and the one function that verifies them.

Two forms, one per key kind. A CLI key makes a compact secp256k1 signature of the digest. A
passkey cannot sign arbitrary bytes; it signs ``authenticatorData || SHA-256(clientDataJSON)``,
and the browser writes the challenge into ``clientDataJSON``. So the digest (of a statement or a
roster record) is used as the WebAuthn challenge: verifying the assertion with the digest as the
expected challenge proves the officer's authenticator approved exactly that digest, on our
origin and RP id, with the user present (and verified, by default). py_webauthn does the checks.

The same ``verify_signature`` runs on the server when it stores a signature and in the signer
before it signs, so neither trusts the other's word.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from webauthn import verify_authentication_response
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.structs import AuthenticationCredential, AuthenticatorAssertionResponse

from custody.authority import canonical, secp256k1
from custody.authority.errors import (
    EncodingError,
    MalformedSignatureError,
    WebAuthnAssertionError,
)
from custody.authority.officer_key import OfficerKeyKind, OfficerPublicKey

__all__ = [
    "OfficerSignature",
    "Secp256k1Signature",
    "WebAuthnSignature",
    "signature_from_json",
    "verify_signature",
]


@dataclass(frozen=True)
class Secp256k1Signature:
    """A CLI key's signature: 65 bytes ``r || s || v``, low S (see ``secp256k1``)."""

    signature: bytes

    def to_json(self) -> dict[str, str]:
        return {"kind": OfficerKeyKind.SECP256K1.value, "signature": self.signature.hex()}


@dataclass(frozen=True)
class WebAuthnSignature:
    """A passkey's assertion, exactly as the browser returned it (all raw bytes)."""

    credential_id: bytes
    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes
    """ES256: a DER-encoded ECDSA P-256 signature over authenticatorData || SHA-256(clientData)."""

    def to_json(self) -> dict[str, str]:
        return {
            "kind": OfficerKeyKind.WEBAUTHN_ES256.value,
            "credential_id": self.credential_id.hex(),
            "authenticator_data": self.authenticator_data.hex(),
            "client_data_json": self.client_data_json.hex(),
            "signature": self.signature.hex(),
        }


OfficerSignature = Secp256k1Signature | WebAuthnSignature
"""Any officer signature; its class says which key kind must verify it."""


def signature_from_json(obj: canonical.JsonValue) -> OfficerSignature:
    """Rebuild a signature from its ``to_json()`` object, refusing unknown or missing fields."""
    if not isinstance(obj, dict):
        raise EncodingError("A signature must be a JSON object.")
    kind = obj.get("kind")
    if kind == OfficerKeyKind.SECP256K1.value:
        if set(obj) != {"kind", "signature"}:
            raise EncodingError("A secp256k1 signature has exactly the fields kind, signature.")
        return Secp256k1Signature(canonical.decode_hex(obj["signature"], "signature"))
    if kind == OfficerKeyKind.WEBAUTHN_ES256.value:
        names = ("credential_id", "authenticator_data", "client_data_json", "signature")
        if set(obj) != {"kind", *names}:
            raise EncodingError(f"A WebAuthn signature has exactly the fields kind, {names}.")
        return WebAuthnSignature(*(canonical.decode_hex(obj[name], name) for name in names))
    raise EncodingError(f"Unknown signature kind {kind!r}.")


def verify_signature(
    key: OfficerPublicKey,
    digest: bytes,
    signature: OfficerSignature,
    *,
    require_user_verification: bool = True,
) -> None:
    """Return if ``signature`` is ``key``'s over ``digest``; otherwise raise a ``SignatureError``.

    ``require_user_verification`` (passkeys) asks that the authenticator verified the person
    (PIN or biometric), not only that someone touched it: an approval moves public money.
    """
    if len(digest) != secp256k1.DIGEST_BYTES:
        raise MalformedSignatureError("Only a 32-byte digest is verified.")
    if isinstance(signature, Secp256k1Signature):
        if key.kind is not OfficerKeyKind.SECP256K1:
            raise MalformedSignatureError("A secp256k1 signature was given for a WebAuthn key.")
        secp256k1.verify_digest(key.public, digest, signature.signature)
        return
    if key.kind is not OfficerKeyKind.WEBAUTHN_ES256:
        raise MalformedSignatureError("A WebAuthn signature was given for a secp256k1 key.")
    _verify_assertion(key, digest, signature, require_user_verification)


def _verify_assertion(
    key: OfficerPublicKey,
    digest: bytes,
    assertion: WebAuthnSignature,
    require_user_verification: bool,
) -> None:
    if assertion.credential_id != key.credential_id:
        raise WebAuthnAssertionError("The assertion was made with another passkey (credential id).")
    _refuse_cross_origin(assertion.client_data_json)
    credential = AuthenticationCredential(
        id=bytes_to_base64url(assertion.credential_id),
        raw_id=assertion.credential_id,
        response=AuthenticatorAssertionResponse(
            client_data_json=assertion.client_data_json,
            authenticator_data=assertion.authenticator_data,
            signature=assertion.signature,
        ),
    )
    try:
        verify_authentication_response(
            credential=credential,
            expected_challenge=digest,
            expected_rp_id=key.rp_id or "",
            expected_origin=key.origin or "",
            credential_public_key=key.public,
            # Statements are self-contained and idempotent: a replayed assertion re-approves the
            # same digest, so the signers need no sign-count state.
            credential_current_sign_count=0,
            require_user_verification=require_user_verification,
        )
    except Exception as exc:  # py_webauthn raises several classes on malformed input: all refuse
        raise WebAuthnAssertionError(f"The WebAuthn assertion does not verify: {exc}") from None


def _refuse_cross_origin(client_data_json: bytes) -> None:
    """Refuse an assertion made inside a frame of another site (``crossOrigin: true``)."""
    try:
        client_data = json.loads(client_data_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebAuthnAssertionError("The assertion's clientDataJSON is not JSON.") from exc
    if not isinstance(client_data, dict):
        raise WebAuthnAssertionError("The assertion's clientDataJSON is not a JSON object.")
    if client_data.get("crossOrigin") not in (None, False):
        raise WebAuthnAssertionError("The assertion was made in a cross-origin frame.")
