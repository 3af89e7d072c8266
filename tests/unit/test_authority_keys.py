"""Officer keys: encrypted key files, strict secp256k1 signatures, and real WebAuthn assertions."""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from pathlib import Path

import pytest
from authority_support import ORIGIN, RP_ID, SoftAuthenticator, b64url, k1_public, private_key

from custody.authority import (
    HighSSignatureError,
    KeyFileError,
    KeyFileExistsError,
    MalformedSignatureError,
    OfficerKeyError,
    OfficerKeyKind,
    OfficerPublicKey,
    Secp256k1Signature,
    SignatureMismatchError,
    WebAuthnAssertionError,
    WrongPassphraseError,
    create_key_file,
    load_public_key,
    sign_digest,
    verify_signature,
)
from custody.authority import secp256k1 as k1
from custody.secret import SecretBytes

FAST_SCRYPT_N = 2**10
"""A low scrypt cost so the test runs fast; production uses the library default."""
DIGEST = hashlib.sha256(b"statement").digest()
FIXED_KEY = bytes.fromhex("42" * 32)


def _fixed_random(n: int) -> bytes:
    return FIXED_KEY[:n]


def test_key_file_round_trip(tmp_path: Path) -> None:
    """A created key file is 0600, records its public key, and signs verifiably."""
    path = tmp_path / "alice.key"
    public = create_key_file(path, "correct horse", scrypt_n=FAST_SCRYPT_N)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_public_key(path) == public
    signature = Secp256k1Signature(sign_digest(path, "correct horse", DIGEST))
    verify_signature(public, DIGEST, signature)
    assert public.key_id.startswith("k1:")


def test_key_file_refuses_overwrite_and_empty_passphrase(tmp_path: Path) -> None:
    """An existing key file is never overwritten; an empty passphrase is refused."""
    path = tmp_path / "alice.key"
    create_key_file(path, "pw", scrypt_n=FAST_SCRYPT_N)
    before = path.read_bytes()
    with pytest.raises(KeyFileExistsError):
        create_key_file(path, "pw", scrypt_n=FAST_SCRYPT_N)
    assert path.read_bytes() == before
    with pytest.raises(KeyFileError):
        create_key_file(tmp_path / "other.key", "", scrypt_n=FAST_SCRYPT_N)


def test_wrong_passphrase_is_a_specific_error(tmp_path: Path) -> None:
    """A wrong passphrase raises WrongPassphraseError, not a generic failure."""
    path = tmp_path / "alice.key"
    create_key_file(path, "right", scrypt_n=FAST_SCRYPT_N)
    with pytest.raises(WrongPassphraseError):
        sign_digest(path, "wrong", DIGEST)


def test_swapped_public_key_in_file_is_refused(tmp_path: Path) -> None:
    """A file whose clear public key was replaced does not sign with a different key."""
    path = tmp_path / "alice.key"
    create_key_file(path, "pw", scrypt_n=FAST_SCRYPT_N)
    document = json.loads(path.read_text())
    document["public_key"] = k1_public(private_key("mallory")).public.hex()
    path.write_text(json.dumps(document))
    with pytest.raises(KeyFileError, match="does not match"):
        sign_digest(path, "pw", DIGEST)


def test_private_key_never_in_file_repr_errors_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The private key reaches no clear text: file, public repr, error messages or log lines."""
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "alice.key"
    public = create_key_file(path, "pw", scrypt_n=FAST_SCRYPT_N, random_bytes=_fixed_random)
    secret_hex = FIXED_KEY.hex()
    texts = [path.read_text(), repr(public), str(public), repr(SecretBytes(FIXED_KEY))]
    for passphrase in ("wrong", "pw"):
        try:
            sign_digest(path, passphrase, b"short digest")
        except (OfficerKeyError, MalformedSignatureError) as exc:
            texts += [str(exc), repr(exc), repr(exc.__cause__), repr(exc.__context__)]
    texts.append(caplog.text)
    for text in texts:
        assert secret_hex not in text.lower()
        assert FIXED_KEY.hex().upper() not in text
    assert k1.public_key_of(SecretBytes(FIXED_KEY)) == public.public


def _high_s(signature: bytes) -> bytes:
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (k1.CURVE_ORDER - s).to_bytes(32, "big") + bytes([signature[64] ^ 1])


def test_secp256k1_refuses_high_s_and_malformed() -> None:
    """The malleated (high-S) twin of a valid signature, and malformed ones, are refused."""
    secret = private_key("alice")
    public = k1_public(secret)
    good = k1.sign_digest(SecretBytes(secret), DIGEST)
    verify_signature(public, DIGEST, Secp256k1Signature(good))
    with pytest.raises(HighSSignatureError):
        verify_signature(public, DIGEST, Secp256k1Signature(_high_s(good)))
    with pytest.raises(MalformedSignatureError):
        verify_signature(public, DIGEST, Secp256k1Signature(good[:64]))
    with pytest.raises(MalformedSignatureError):
        verify_signature(public, DIGEST, Secp256k1Signature(good[:64] + b"\x02"))
    wrong_v = good[:64] + bytes([good[64] ^ 1])
    with pytest.raises(SignatureMismatchError):
        verify_signature(public, DIGEST, Secp256k1Signature(wrong_v))
    with pytest.raises(SignatureMismatchError):
        verify_signature(k1_public(private_key("bob")), DIGEST, Secp256k1Signature(good))


def test_webauthn_assertion_verifies() -> None:
    """A real ES256 assertion whose challenge is the digest verifies for the registered key."""
    authenticator = SoftAuthenticator("carol")
    key = authenticator.public_key()
    assert key.key_id.startswith("wa:")
    verify_signature(key, DIGEST, authenticator.assert_digest(DIGEST))


def test_webauthn_assertion_over_altered_statement_fails() -> None:
    """An assertion made for one digest does not verify for another (altered statement)."""
    authenticator = SoftAuthenticator("carol")
    assertion = authenticator.assert_digest(DIGEST)
    altered = hashlib.sha256(b"statement with another amount").digest()
    with pytest.raises(WebAuthnAssertionError, match="challenge"):
        verify_signature(authenticator.public_key(), altered, assertion)


def test_webauthn_tampered_authenticator_or_client_data_fails() -> None:
    """Flipping a byte of authenticatorData, clientDataJSON or the signature fails."""
    authenticator = SoftAuthenticator("carol")
    key = authenticator.public_key()
    good = authenticator.assert_digest(DIGEST)
    counter_bumped = good.authenticator_data[:-1] + bytes([good.authenticator_data[-1] ^ 1])
    client = good.client_data_json.replace(b'"crossOrigin":false', b'"crossOrigin":false ')
    signature = bytearray(good.signature)
    signature[-1] ^= 1
    for tampered in (
        type(good)(good.credential_id, counter_bumped, good.client_data_json, good.signature),
        type(good)(good.credential_id, good.authenticator_data, client, good.signature),
        type(good)(
            good.credential_id, good.authenticator_data, good.client_data_json, bytes(signature)
        ),
    ):
        with pytest.raises(WebAuthnAssertionError):
            verify_signature(key, DIGEST, tampered)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"rp_id": "evil.example"}, "RP ID"),
        ({"flags": 0x04}, "not present"),
        ({"flags": 0x01}, "verif"),
    ],
)
def test_webauthn_wrong_origin_rp_or_flags_fail(kwargs: dict[str, object], reason: str) -> None:
    """Another origin, another RP id, no user presence, or no user verification: refused."""
    authenticator = SoftAuthenticator("carol")
    assertion = authenticator.assert_digest(DIGEST, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(WebAuthnAssertionError, match=reason):
        verify_signature(authenticator.public_key(), DIGEST, assertion)


def test_webauthn_cross_origin_frame_and_other_credential_fail() -> None:
    """An assertion from a cross-origin frame, or by another passkey, is refused."""
    authenticator = SoftAuthenticator("carol")
    framed = authenticator.assert_digest(
        DIGEST,
        client_data={
            "type": "webauthn.get",
            "challenge": b64url(DIGEST),
            "origin": ORIGIN,
            "crossOrigin": True,
        },
    )
    with pytest.raises(WebAuthnAssertionError, match="cross-origin"):
        verify_signature(authenticator.public_key(), DIGEST, framed)
    other = SoftAuthenticator("mallory").assert_digest(DIGEST)
    with pytest.raises(WebAuthnAssertionError, match="another passkey"):
        verify_signature(authenticator.public_key(), DIGEST, other)


def test_key_kinds_do_not_cross() -> None:
    """A secp256k1 signature is not accepted for a passkey, nor an assertion for a CLI key."""
    authenticator = SoftAuthenticator("carol")
    k1_signature = Secp256k1Signature(k1.sign_digest(SecretBytes(private_key("a")), DIGEST))
    with pytest.raises(MalformedSignatureError):
        verify_signature(authenticator.public_key(), DIGEST, k1_signature)
    with pytest.raises(MalformedSignatureError):
        verify_signature(k1_public(private_key("a")), DIGEST, authenticator.assert_digest(DIGEST))


def test_public_key_validation() -> None:
    """Keys that are not what their kind says are refused at construction."""
    with pytest.raises(OfficerKeyError):
        OfficerPublicKey(OfficerKeyKind.SECP256K1, b"\x02" + b"\xff" * 32)
    with pytest.raises(OfficerKeyError):
        OfficerPublicKey(
            OfficerKeyKind.WEBAUTHN_ES256, b"\xa0", rp_id=RP_ID, origin=ORIGIN, credential_id=b"x"
        )
    good = SoftAuthenticator("carol").public_key()
    assert OfficerPublicKey.from_json(good.to_json()) == good
