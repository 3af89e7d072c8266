"""The story's officer keys: one encrypted key file per officer, its passphrase in a file beside it.

A real officer creates their key on their own machine (`treasury roster keygen`) and types its
passphrase at each signature. The scripted story has no one to type, so each officer's passphrase
is drawn at random and kept in a file next to the key file, both mode 0600 in the story's
``officer-keys/`` folder. Neither the passphrase nor the key is ever printed, logged or held in a
``repr``; only the public key leaves this module.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from custody.authority import (
    ApprovalStatement,
    OfficerPublicKey,
    Secp256k1Signature,
    SignedStatement,
    create_key_file,
    sign_digest,
)
from custody.authority.key_file import KEY_FILE_MODE

__all__ = ["OFFICER_KEY_SCRYPT_N", "OfficerKey", "OfficerKeyring"]

OFFICER_KEY_SCRYPT_N = 2**15
"""scrypt cost of the story's key files: an eighth of `treasury roster keygen`'s default (2^18,
about a second per signature). Each passphrase lies beside its key here, so a higher cost would
protect nothing and only add some twenty seconds to the demo."""
PASSPHRASE_BYTES = 24
"""Randomness in each generated passphrase (192 bits, URL-safe text)."""
FOLDER_MODE = 0o700


def _slug(name: str) -> str:
    """``Elmira Asanova (NBKR)`` -> ``elmira-asanova-nbkr``: a file name for the officer."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 (never overwriting) and write ``text`` to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@dataclass(frozen=True)
class OfficerKey:
    """One officer's key file, the file holding its passphrase, and the public key."""

    officer: str
    key_file: Path
    passphrase_file: Path
    public: OfficerPublicKey

    def sign(self, digest: bytes) -> Secp256k1Signature:
        """Open the key file with its passphrase and sign ``digest`` (a record or statement hash)."""
        passphrase = self.passphrase_file.read_text(encoding="utf-8")
        return Secp256k1Signature(sign_digest(self.key_file, passphrase, digest))

    def sign_statement(self, statement: ApprovalStatement) -> SignedStatement:
        """``statement`` signed with this key, as the officer's CLI would sign it."""
        return SignedStatement(statement, self.public.key_id, self.sign(statement.digest()))


class OfficerKeyring:
    """The story's officers' key files in one folder, by officer name."""

    def __init__(self, folder: Path, *, scrypt_n: int = OFFICER_KEY_SCRYPT_N) -> None:
        self.folder = folder
        self._scrypt_n = scrypt_n
        self._keys: dict[str, OfficerKey] = {}

    def __repr__(self) -> str:
        return f"OfficerKeyring(folder={self.folder!r}, officers={len(self._keys)})"

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, officer: str) -> OfficerKey:
        return self._keys[officer]

    def __contains__(self, officer: object) -> bool:
        return officer in self._keys

    def create(self, officer: str) -> OfficerKey:
        """A new key for ``officer``: ``<name>.key`` and ``<name>.passphrase``, both 0600."""
        self.folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        stem = _slug(officer)
        passphrase_file = self.folder / f"{stem}.passphrase"
        key_file = self.folder / f"{stem}.key"
        passphrase = secrets.token_urlsafe(PASSPHRASE_BYTES)
        _write_private(passphrase_file, passphrase)
        public = create_key_file(key_file, passphrase, scrypt_n=self._scrypt_n)
        key = OfficerKey(officer, key_file, passphrase_file, public)
        self._keys[officer] = key
        return key
