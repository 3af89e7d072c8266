"""An officer's CLI signing key: a secp256k1 key in a passphrase-encrypted file.

The private key is encrypted with the Web3 Secret Storage (V3 keystore) format through
eth_account -- scrypt to stretch the passphrase, AES-128-CTR, a MAC that tells a wrong
passphrase from a right one -- a format many tools read and audit. We wrap it with the public key
in clear, so the key can be registered and checked without the passphrase::

    {"format": "national-reserve/officer-key/1", "public_key": "<33-byte hex>",
     "keystore": {...V3 keystore...}}

The decrypted key lives in ``SecretBytes`` for the one signing call and is wiped after it; it
never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account

from custody.authority import secp256k1
from custody.authority.errors import KeyFileError, KeyFileExistsError, WrongPassphraseError
from custody.authority.officer_key import OfficerKeyKind, OfficerPublicKey
from custody.secret import SecretBytes

__all__ = [
    "DEFAULT_SCRYPT_N",
    "KEY_FILE_FORMAT",
    "KEY_FILE_MODE",
    "create_key_file",
    "load_public_key",
    "sign_digest",
]

KEY_FILE_FORMAT = "national-reserve/officer-key/1"
KEY_FILE_MODE = 0o600
"""Owner read/write only: the file is encrypted, but there is no reason to let others copy it."""
DEFAULT_SCRYPT_N = 2**18
"""scrypt's cost parameter (eth_account's default): about a second and 256 MiB per attempt."""
PRIVATE_KEY_BYTES = 32

RandomBytes = Callable[[int], bytes]


def create_key_file(
    path: Path,
    passphrase: str,
    *,
    scrypt_n: int = DEFAULT_SCRYPT_N,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> OfficerPublicKey:
    """Create a new key, write it encrypted to ``path`` (mode 0600), and return its public key.

    Refuses to overwrite an existing file: it may be the only copy of a registered key.
    """
    if not passphrase:
        raise KeyFileError("An empty passphrase would leave the key unprotected; choose one.")
    while True:
        secret = SecretBytes(random_bytes(PRIVATE_KEY_BYTES))
        if 0 < int.from_bytes(secret.reveal(), "big") < secp256k1.CURVE_ORDER:
            break
        secret.wipe()
    with secret:
        public = secp256k1.public_key_of(secret)
        keystore = Account.encrypt(secret.reveal(), passphrase, kdf="scrypt", iterations=scrypt_n)
    document = {"format": KEY_FILE_FORMAT, "public_key": public.hex(), "keystore": keystore}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError as exc:
        raise KeyFileExistsError(
            f"A key file already exists at {path}; it is not overwritten. Choose another path."
        ) from exc
    except OSError as exc:
        raise KeyFileError(f"Cannot create the key file {path}: {exc.strerror}.") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(path, KEY_FILE_MODE)  # O_CREAT's mode is filtered by the umask; make it exact
    return OfficerPublicKey(kind=OfficerKeyKind.SECP256K1, public=public)


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise KeyFileError(f"No key file at {path}.") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyFileError(f"The key file {path} is unreadable or not JSON.") from exc
    if (
        not isinstance(document, dict)
        or document.get("format") != KEY_FILE_FORMAT
        or not isinstance(document.get("keystore"), dict)
        or not isinstance(document.get("public_key"), str)
    ):
        raise KeyFileError(f"The file {path} is not an officer key file ({KEY_FILE_FORMAT}).")
    return document


def load_public_key(path: Path) -> OfficerPublicKey:
    """The public key recorded in a key file (no passphrase needed)."""
    document = _read(path)
    try:
        public = bytes.fromhex(document["public_key"])
        return OfficerPublicKey(kind=OfficerKeyKind.SECP256K1, public=public)
    except ValueError as exc:
        raise KeyFileError(f"The public key in {path} is malformed.") from exc


def sign_digest(path: Path, passphrase: str, digest: bytes) -> bytes:
    """Open the key file with ``passphrase`` and sign ``digest`` (65 bytes, low-S).

    The decrypted key must match the file's recorded public key, so a file whose clear part was
    swapped cannot make an officer sign with a key other than the one they registered.
    """
    document = _read(path)
    try:
        raw = Account.decrypt(document["keystore"], passphrase)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPassphraseError(
                f"The passphrase does not open the key file {path}."
            ) from None
        raise KeyFileError(f"The keystore in {path} cannot be decrypted.") from None
    except (KeyError, TypeError):
        raise KeyFileError(f"The keystore in {path} is malformed.") from None
    with SecretBytes(raw) as secret:
        del raw
        if secp256k1.public_key_of(secret).hex() != document["public_key"]:
            raise KeyFileError(f"The key in {path} does not match the public key the file records.")
        return secp256k1.sign_digest(secret, digest)
