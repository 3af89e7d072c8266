"""The treasury's and the state audit office's attestation keys: separate files, never the database.

A key file holds one secp256k1 private key as 64 hex characters. It must be readable by its owner
only (mode 0600); a file others could read is refused, not used. On a devnet a fresh key can be
generated straight into a new 0600 file; in production each office brings its own.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from reporting.attestation import KeySigner, SignerRole
from reporting.bundle import SigningError
from treasury.attest.errors import RoleKeyError

KEY_FILE_MODE = 0o600
"""Owner read/write only."""
PRIVATE_KEY_BYTES = 32
_GROUP_OR_OTHER_BITS = stat.S_IRWXG | stat.S_IRWXO


def load_role_key(path: Path, role: SignerRole) -> KeySigner:
    """The ``role``'s signing key from ``path``; ``RoleKeyError`` if missing, unsafe or malformed."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise RoleKeyError(
            f"The {role.value} key file {path} cannot be read ({exc.strerror})."
        ) from None
    if mode & _GROUP_OR_OTHER_BITS:
        raise RoleKeyError(
            f"The {role.value} key file {path} is accessible to group or others "
            f"(mode {stat.S_IMODE(mode):04o}); restrict it with chmod 600 before use."
        )
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != PRIVATE_KEY_BYTES:
        raise RoleKeyError(
            f"The {role.value} key file {path} must hold one private key as "
            f"{2 * PRIVATE_KEY_BYTES} hex characters."
        )
    try:
        return KeySigner(role, key)
    except SigningError as exc:
        raise RoleKeyError(f"The {role.value} key file {path}: {exc}") from None


def generate_role_key(
    path: Path, role: SignerRole, *, random_bytes: Callable[[int], bytes] = secrets.token_bytes
) -> KeySigner:
    """Create a new key in a new 0600 file (refusing to overwrite one) and return its signer."""
    key = random_bytes(PRIVATE_KEY_BYTES)
    signer = KeySigner(role, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        raise RoleKeyError(
            f"The {role.value} key file {path} already exists; it is used, never overwritten."
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
    return signer


def role_key(path: Path, role: SignerRole, *, generate: bool) -> KeySigner:
    """Load ``path``; if it does not exist and ``generate`` is set (devnets), create it first."""
    if generate and not path.exists():
        return generate_role_key(path, role)
    return load_role_key(path, role)
