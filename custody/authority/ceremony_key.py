"""An institution's ceremony key: the key only a quorum of its share holders can use.

The roster chain starts at a genesis record that no database writer may invent. Its anchor is a
secp256k1 key derived from the institution's cosigner seed -- the seed that exists only split
among the share holders (SLIP-39) and is recombined only for a signing call. Each institution's
ceremony signs the genesis hash; the ceremony publishes the public key (with the seed's master
fingerprint) so anyone can check the genesis, and a signer that has just recombined its seed
re-derives the key and checks that the genesis carries it (``roster.verify_genesis_for``).

The key sits at ``CEREMONY_KEY_PATH``, a dedicated hardened path: hardened so no published xpub
(the BIP-48 account, the Ethereum owner key) derives it, and distinct from every wallet path so a
ceremony signature can never be a transaction signature. It signs only roster genesis digests,
which are domain-separated (``roster_record.RECORD_DOMAIN_TAG``).
"""

from __future__ import annotations

from embit.bip32 import HDKey

from custody.authority import secp256k1
from custody.secret import SecretBytes

__all__ = ["CEREMONY_KEY_PATH", "ceremony_public_key", "sign_with_ceremony_key"]

CEREMONY_KEY_PATH = "m/7707h/0h/0h"
"""Hardened purpose 7707' (not a BIP-43/SLIP-44 wallet purpose), account 0', key 0'.

Changing it changes every institution's ceremony key and so invalidates every genesis: it is part
of the format, like a domain tag.
"""


def _ceremony_secret(root: HDKey) -> SecretBytes:
    return SecretBytes(root.derive(CEREMONY_KEY_PATH).key.secret)


def ceremony_public_key(root: HDKey) -> bytes:
    """The 33-byte compressed public key the ceremony publishes for this seed's root."""
    with _ceremony_secret(root) as secret:
        return secp256k1.public_key_of(secret)


def sign_with_ceremony_key(root: HDKey, digest: bytes) -> bytes:
    """Sign a 32-byte digest (a genesis record hash) with the ceremony key: 65 bytes, low S."""
    with _ceremony_secret(root) as secret:
        return secp256k1.sign_digest(secret, digest)
