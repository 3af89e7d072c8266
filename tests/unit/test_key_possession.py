"""Proof of possession for key health checks: BIP-322 simple and EIP-191, against their vectors.

The BIP-322 vectors are the BIP's own (P2WPKH ``bc1q9vza...``, messages "" and "Hello World"):
our signatures are byte for byte the BIP's and verify; EIP-191 signatures are checked against
eth_account's ``encode_defunct`` as an independent implementation. Every tampering fails.
"""

from __future__ import annotations

import base64

import pytest
from embit.bip32 import HDKey
from embit.ec import PrivateKey
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.datatypes import PrivateKey as EthPrivateKey

from custody.bitcoin_network import BitcoinNetwork
from custody.key_possession import (
    PossessionProofError,
    bip322_message_hash,
    bip322_sign_simple,
    bip322_verify_simple,
    eip191_recover,
    eip191_sign,
    possession_address,
    prove_possession,
    verify_possession,
)

VECTOR_WIF = "L3VFeEujGtevx9w18HD1fhRbCH67Az2dpCymeRE1SoPK6XQtaN2k"
VECTOR_ADDRESS = "bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l"
VECTORS = {
    b"": (
        "c90c269c4f8fcbe6880f72a721ddfbf1914268a794cbb21cfafee13770ae19f1",
        "AkcwRAIgM2gBAQqvZX15ZiysmKmQpDrG83avLIT492QBzLnQIxYCIBaTpOaD20qRlEylyxFSeEA2ba9YOixpX8z46T"
        "SDtS40ASECx/EgAxlkQpQ9hYjgGu6EBCPMVPwVIVJqO4XCsMvViHI=",
    ),
    b"Hello World": (
        "f0eb03b1a75ac6d9847f55c624a99169b5dccba2a31f5b23bea77ba270de0a7a",
        "AkcwRAIgZRfIY3p7/DoVTty6YZbWS71bc5Vct9p9Fia83eRmw2QCICK/ENGfwLtptFluMGs2KsqoNSk89pO7F29zJL"
        "Ux9a/sASECx/EgAxlkQpQ9hYjgGu6EBCPMVPwVIVJqO4XCsMvViHI=",
    ),
}
MAIN = BitcoinNetwork.MAIN


@pytest.mark.parametrize("message", list(VECTORS))
def test_bip322_vectors_hash_sign_and_verify_as_the_bip_says(message: bytes) -> None:
    """The tagged message hash, our deterministic signature and verification match the BIP."""
    digest, signature = VECTORS[message]
    assert bip322_message_hash(message).hex() == digest
    assert bip322_sign_simple(message, PrivateKey.from_wif(VECTOR_WIF)) == signature
    assert bip322_verify_simple(VECTOR_ADDRESS, message, signature, MAIN)


def test_bip322_refuses_another_message_address_network_or_garbage() -> None:
    """A vector's signature fails for the other message, another address or network, and a
    flipped byte; unreadable input is a typed error or a plain failure, never a pass."""
    signature = VECTORS[b"Hello World"][1]
    assert not bip322_verify_simple(VECTOR_ADDRESS, b"Hello world", signature, MAIN)
    assert not bip322_verify_simple(VECTOR_ADDRESS, b"Hello World", signature, BitcoinNetwork.TEST)
    other = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    assert not bip322_verify_simple(other, b"Hello World", signature, MAIN)
    raw = bytearray(base64.b64decode(signature))
    raw[10] ^= 1
    assert not bip322_verify_simple(
        VECTOR_ADDRESS, b"Hello World", base64.b64encode(bytes(raw)).decode(), MAIN
    )
    with pytest.raises(PossessionProofError):
        bip322_verify_simple(VECTOR_ADDRESS, b"", "not base64!", MAIN)
    with pytest.raises(PossessionProofError):
        bip322_verify_simple(VECTOR_ADDRESS, b"", base64.b64encode(b"\x02\x47").decode(), MAIN)


def test_eip191_signatures_are_eth_accounts_and_recover_the_owner() -> None:
    """Our personal_sign signature equals eth_account's and recovers the key's address; another
    message or a damaged signature recovers someone else or nothing."""
    key = EthPrivateKey(bytes(range(1, 33)))
    owner = key.public_key.to_checksum_address()
    signature = eip191_sign(b"challenge", key)
    theirs = Account.sign_message(encode_defunct(b"challenge"), key.to_bytes()).signature
    assert bytes.fromhex(signature[2:]) == bytes(theirs)
    assert eip191_recover(b"challenge", signature) == owner
    assert Account.recover_message(encode_defunct(b"challenge"), signature=signature) == owner
    assert eip191_recover(b"challengf", signature) != owner
    assert eip191_recover(b"challenge", signature[:-2] + "1f") is None
    assert eip191_recover(b"challenge", "0x1234") is None


def test_a_proof_verifies_only_for_its_challenge_and_the_recorded_keys() -> None:
    """Signed by an account key's /0/0 child and an EIP-191 key, a proof verifies against the
    public xpub and owner; another challenge, xpub or owner is named."""
    root = HDKey.from_seed(bytes(32), version=BitcoinNetwork.REGTEST.params["xprv"])
    account = root.derive("m/48h/1h/0h/2h")
    xpub = account.to_public().to_base58(version=BitcoinNetwork.REGTEST.params["xpub"])
    eth = EthPrivateKey(bytes(range(2, 34)))
    owner = eth.public_key.to_checksum_address()
    proof = prove_possession("fresh", account, eth, BitcoinNetwork.REGTEST)
    assert proof.bitcoin_address == possession_address(xpub, BitcoinNetwork.REGTEST)
    check = {"account_xpub": xpub, "eth_address": owner, "network": BitcoinNetwork.REGTEST}
    assert verify_possession(proof, challenge="fresh", **check) is None  # type: ignore[arg-type]
    assert "another challenge" in str(
        verify_possession(proof, challenge="stale", **check)  # type: ignore[arg-type]
    )
    other = HDKey.from_seed(bytes([1]) * 32, version=BitcoinNetwork.REGTEST.params["xprv"])
    other_xpub = (
        other.derive("m/48h/1h/0h/2h")
        .to_public()
        .to_base58(version=BitcoinNetwork.REGTEST.params["xpub"])
    )
    wrong_key = {**check, "account_xpub": other_xpub}
    assert "not the recorded key" in str(
        verify_possession(proof, challenge="fresh", **wrong_key)  # type: ignore[arg-type]
    )
    wrong_owner = {**check, "eth_address": "0x000000000000000000000000000000000000bEEF"}
    assert "EIP-191" in str(
        verify_possession(proof, challenge="fresh", **wrong_owner)  # type: ignore[arg-type]
    )
    assert "xprv" not in repr(proof)
    assert "tprv" not in repr(proof)
