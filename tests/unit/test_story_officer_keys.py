"""The demo's officer keys: private files, passphrases kept out of every repr, real signatures."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from custody.authority import KeyFileExistsError, SignatureError, verify_signature
from treasury.story.officer_keys import OfficerKeyring

CHEAP_SCRYPT_N = 2**10
"""Tests only: the story's own cost is higher."""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_each_officer_gets_a_private_key_file_and_passphrase_file(tmp_path: Path) -> None:
    """Key file and passphrase file are created 0600 in a 0700 folder, named after the officer."""
    keys = OfficerKeyring(tmp_path / "officer-keys", scrypt_n=CHEAP_SCRYPT_N)
    key = keys.create("Elmira Asanova (NBKR)")
    assert key.key_file.name == "elmira-asanova-nbkr.key"
    assert key.passphrase_file.name == "elmira-asanova-nbkr.passphrase"
    assert _mode(key.key_file) == 0o600
    assert _mode(key.passphrase_file) == 0o600
    assert _mode(keys.folder) == 0o700
    assert "Elmira Asanova (NBKR)" in keys
    assert len(keys) == 1


def test_a_signature_verifies_under_the_registered_public_key_only(tmp_path: Path) -> None:
    """What the key signs verifies with its public key, and not with another officer's."""
    keys = OfficerKeyring(tmp_path, scrypt_n=CHEAP_SCRYPT_N)
    elmira = keys.create("Elmira Asanova (NBKR)")
    ilyas = keys.create("Ilyas Omurov (ACH)")
    digest = hashlib.sha256(b"a roster record").digest()
    signature = elmira.sign(digest)
    verify_signature(elmira.public, digest, signature)
    with pytest.raises(SignatureError):
        verify_signature(ilyas.public, digest, signature)
    with pytest.raises(SignatureError):
        verify_signature(elmira.public, hashlib.sha256(b"another").digest(), signature)


def test_no_passphrase_or_key_appears_in_a_repr(tmp_path: Path) -> None:
    """The reprs name files and public keys, never the passphrase or the encrypted keystore."""
    keys = OfficerKeyring(tmp_path, scrypt_n=CHEAP_SCRYPT_N)
    key = keys.create("Ilyas Omurov (ACH)")
    passphrase = key.passphrase_file.read_text(encoding="utf-8")
    keystore = key.key_file.read_text(encoding="utf-8")
    for shown in (repr(keys), repr(key), str(key)):
        assert passphrase not in shown
        assert '"keystore"' not in shown
    assert passphrase not in keystore


def test_an_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    """Creating the same officer's key again is refused, and the first key file is kept."""
    keys = OfficerKeyring(tmp_path, scrypt_n=CHEAP_SCRYPT_N)
    first = keys.create("Ilyas Omurov (ACH)")
    before = first.key_file.read_bytes()
    with pytest.raises((FileExistsError, KeyFileExistsError)):
        keys.create("Ilyas Omurov (ACH)")
    assert first.key_file.read_bytes() == before
