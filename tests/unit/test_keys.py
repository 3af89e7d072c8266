"""Cosigner key derivation against BIP-32 test vector 1, and the signing-key fingerprint gate."""

from __future__ import annotations

import pytest
from embit.networks import NETWORKS

from custody.exceptions import FingerprintMismatchError, SecretWipedError
from custody.keys import cosigner_keys, signing_keys
from custody.secret import SecretBytes

BIP32_VECTOR1_SEED = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
BIP32_VECTOR1 = {
    "m": (
        "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8",
        "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi",
    ),
    "m/0h": (
        "xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw",
        "xprv9uHRZZhk6KAJC1avXpDAp4MDc3sQKNxDiPvvkX8Br5ngLNv1TxvUxt4cV1rGL5hj6KCesnDYUhd7oWgT11eZG7XnxHrnYeSvkzY7d2bhkJ7",
    ),
}
BIP32_VECTOR1_FINGERPRINT = "3442193e"
MAINNET = NETWORKS["main"]


def test_master_fingerprint_matches_bip32_vector_1() -> None:
    """The transcript fingerprint of the vector-1 seed is the published 3442193e."""
    keys = cosigner_keys(SecretBytes(BIP32_VECTOR1_SEED))
    assert keys.fingerprint == BIP32_VECTOR1_FINGERPRINT
    assert keys.key_origin.startswith("[3442193e/48h/1h/0h/2h]tpub")


@pytest.mark.parametrize("path", list(BIP32_VECTOR1))
def test_signing_root_derives_bip32_vector_1(path: str) -> None:
    """The signing root of the vector-1 seed derives the published xprv/xpub chain."""
    xpub, xprv = BIP32_VECTOR1[path]
    with signing_keys(SecretBytes(BIP32_VECTOR1_SEED), BIP32_VECTOR1_FINGERPRINT) as keys:
        node = keys.bitcoin_root.derive(path) if path != "m" else keys.bitcoin_root
        assert node.to_base58(version=MAINNET["xprv"]) == xprv
        assert node.to_public().to_base58(version=MAINNET["xpub"]) == xpub
        assert repr(keys) == "SigningKeys(<redacted>)"


def test_a_seed_of_another_fingerprint_is_refused_and_wiped() -> None:
    """A recombined seed whose fingerprint differs is refused, and the seed is wiped either way."""
    seed = SecretBytes(BIP32_VECTOR1_SEED)
    with pytest.raises(FingerprintMismatchError, match="transcript records 00000000"):  # noqa: SIM117
        with signing_keys(seed, "00000000"):
            pytest.fail("signing keys must not be yielded for a wrong seed")
    with pytest.raises(SecretWipedError):
        seed.reveal()
    used = SecretBytes(BIP32_VECTOR1_SEED)
    with signing_keys(used, BIP32_VECTOR1_FINGERPRINT):
        pass
    assert used.wiped
