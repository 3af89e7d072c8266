"""Proof that a quorum holds an institution's keys: both keys sign a fresh challenge.

A health check that only recombines the seed and compares public keys proves the shares are
right to whoever ran it; a signature over a challenge nobody could know in advance proves it to
anyone holding the ceremony's public record, later, without trusting the machine that ran it.
Both chains' keys sign the same challenge text:

* **Bitcoin, BIP-322 "simple"**: the key is the institution's BIP-48 account key's first receive
  child (``<account xpub>/0/0``, derivable from the recorded xpub alone), its address the
  P2WPKH of that key. The proof is the witness of BIP-322's virtual ``to_sign`` transaction
  (base64 of the serialised witness stack): an ECDSA SIGHASH_ALL signature under BIP-143 over
  ``to_sign`` spending ``to_spend``, whose input commits to the tagged hash
  ``BIP0322-signed-message`` of the challenge.
* **Safe owner, EIP-191** (``personal_sign``): the recorded Safe owner address must be the one
  recovered from the signature over ``"\\x19Ethereum Signed Message:\\n" + len + challenge``.

Verification needs only public data (the xpub and the owner address of the ceremony transcript),
so it is run here right after signing and again by whoever reads the stored record.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from embit import compact
from embit.bip32 import HDKey
from embit.ec import PrivateKey, PublicKey, Signature
from embit.script import Script, Witness, p2pkh, p2wpkh
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput
from eth_keys.datatypes import PrivateKey as EthPrivateKey
from eth_keys.datatypes import Signature as EthSignature
from eth_utils.crypto import keccak

from custody.bitcoin_network import BitcoinNetwork
from custody.exceptions import KeyMaterialError

__all__ = [
    "POSSESSION_CHILD_PATH",
    "PossessionProof",
    "bip322_message_hash",
    "bip322_sign_simple",
    "bip322_verify_simple",
    "eip191_digest",
    "eip191_recover",
    "eip191_sign",
    "possession_address",
    "prove_possession",
    "verify_possession",
]

POSSESSION_CHILD_PATH = "m/0/0"
"""Below the recorded BIP-48 account key: the child whose P2WPKH address signs challenges."""
BIP322_TAG = b"BIP0322-signed-message"
ZERO_TXID = bytes(32)
TO_SPEND_PREVOUT_INDEX = 0xFFFFFFFF
OP_RETURN = b"\x6a"
EIP191_PREFIX = b"\x19Ethereum Signed Message:\n"


class PossessionProofError(KeyMaterialError, ValueError):
    """A possession proof that cannot be made or read (never names key material)."""


def bip322_message_hash(message: bytes) -> bytes:
    """BIP-340 tagged hash of ``message`` with the tag ``BIP0322-signed-message``."""
    tag = hashlib.sha256(BIP322_TAG).digest()
    return hashlib.sha256(tag + tag + message).digest()


def _to_spend(script_pubkey: Script, message: bytes) -> Transaction:
    script_sig = Script(b"\x00\x20" + bip322_message_hash(message))
    return Transaction(
        version=0,
        vin=[TransactionInput(ZERO_TXID, TO_SPEND_PREVOUT_INDEX, script_sig, sequence=0)],
        vout=[TransactionOutput(0, script_pubkey)],
        locktime=0,
    )


def _to_sign(to_spend: Transaction) -> Transaction:
    return Transaction(
        version=0,
        vin=[TransactionInput(to_spend.txid(), 0, sequence=0)],
        vout=[TransactionOutput(0, Script(OP_RETURN))],
        locktime=0,
    )


def _p2wpkh_sighash(to_sign: Transaction, pubkey: PublicKey) -> bytes:
    return bytes(to_sign.sighash_segwit(0, p2pkh(pubkey), 0, SIGHASH.ALL))


def bip322_sign_simple(message: bytes, key: PrivateKey) -> str:
    """The BIP-322 simple signature of ``message`` by ``key``'s P2WPKH address (base64)."""
    pubkey = key.get_public_key()
    to_sign = _to_sign(_to_spend(p2wpkh(pubkey), message))
    signature = key.sign(_p2wpkh_sighash(to_sign, pubkey))
    witness = Witness([signature.serialize() + bytes([SIGHASH.ALL]), pubkey.sec()])
    return base64.b64encode(witness.serialize()).decode("ascii")


def _witness_items(signature_b64: str) -> list[bytes]:
    try:
        raw = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        raise PossessionProofError("The BIP-322 signature is not base64.") from None
    items: list[bytes] = []
    try:
        count, pos = _read_compact(raw, 0)
        for _ in range(count):
            length, pos = _read_compact(raw, pos)
            if pos + length > len(raw):
                raise PossessionProofError("The BIP-322 witness is truncated.")
            items.append(raw[pos : pos + length])
            pos += length
    except IndexError:
        raise PossessionProofError("The BIP-322 witness is truncated.") from None
    if pos != len(raw):
        raise PossessionProofError("The BIP-322 witness has bytes after its last item.")
    return items


def _read_compact(raw: bytes, pos: int) -> tuple[int, int]:
    first = raw[pos]
    width = {0xFD: 2, 0xFE: 4, 0xFF: 8}.get(first, 0)
    if width == 0:
        return first, pos + 1
    return int(compact.from_bytes(raw[pos : pos + 1 + width])), pos + 1 + width


def bip322_verify_simple(
    address: str, message: bytes, signature_b64: str, network: BitcoinNetwork
) -> bool:
    """Whether ``signature_b64`` is a valid BIP-322 simple signature of ``message`` by the
    P2WPKH ``address`` on ``network`` (any other address type is refused)."""
    items = _witness_items(signature_b64)
    if len(items) != 2 or not items[0] or items[0][-1] != SIGHASH.ALL:
        return False
    try:
        pubkey = PublicKey.parse(items[1])
        signature = Signature.parse(items[0][:-1])
    except Exception:  # embit raises assorted errors on malformed keys and DER
        return False
    if p2wpkh(pubkey).address(network.params) != address:
        return False
    to_sign = _to_sign(_to_spend(p2wpkh(pubkey), message))
    return bool(pubkey.verify(signature, _p2wpkh_sighash(to_sign, pubkey)))


def eip191_digest(message: bytes) -> bytes:
    """``keccak256("\\x19Ethereum Signed Message:\\n" + len(message) + message)``."""
    return bytes(keccak(EIP191_PREFIX + str(len(message)).encode("ascii") + message))


def eip191_sign(message: bytes, key: EthPrivateKey) -> str:
    """The 65-byte ``personal_sign`` signature (r, s, v with v in {27, 28}), as 0x-hex."""
    signature = key.sign_msg_hash(eip191_digest(message))
    raw = signature.to_bytes()
    return "0x" + (raw[:64] + bytes([raw[64] + 27])).hex()


def eip191_recover(message: bytes, signature_hex: str) -> str | None:
    """The EIP-55 address that signed ``message`` (``None`` for an unreadable signature)."""
    try:
        raw = bytes.fromhex(signature_hex.removeprefix("0x"))
        if len(raw) != 65 or raw[64] not in (27, 28):
            return None
        signature = EthSignature(raw[:64] + bytes([raw[64] - 27]))
        public = signature.recover_public_key_from_msg_hash(eip191_digest(message))
    except Exception:  # eth_keys raises its own errors on invalid points
        return None
    return str(public.to_checksum_address())


def possession_address(account_xpub: str, network: BitcoinNetwork) -> str:
    """The P2WPKH address of ``<account xpub>/0/0``: the Bitcoin key that signs challenges."""
    try:
        account = HDKey.from_string(account_xpub)
    except Exception:
        raise PossessionProofError("The recorded account xpub cannot be read.") from None
    return str(p2wpkh(account.derive(POSSESSION_CHILD_PATH).key).address(network.params))


@dataclass(frozen=True)
class PossessionProof:
    """Both keys' signatures over one challenge: public data, safe to store and publish."""

    challenge: str
    bitcoin_address: str
    bip322_signature: str
    """Base64 BIP-322 simple signature by ``bitcoin_address``."""
    eth_address: str
    eip191_signature: str
    """0x-hex ``personal_sign`` signature by ``eth_address``."""


def prove_possession(
    challenge: str, account_key: HDKey, eth_key: EthPrivateKey, network: BitcoinNetwork
) -> PossessionProof:
    """Sign ``challenge`` with the account key's ``/0/0`` child and the Safe owner key.

    ``account_key`` is the PRIVATE BIP-48 account key of a recombined seed (from the caller's
    ``custody.keys.signing_keys`` block); nothing here keeps it.
    """
    message = challenge.encode("utf-8")
    child = account_key.derive(POSSESSION_CHILD_PATH)
    return PossessionProof(
        challenge=challenge,
        bitcoin_address=str(p2wpkh(child.key.get_public_key()).address(network.params)),
        bip322_signature=bip322_sign_simple(message, child.key),
        eth_address=eth_key.public_key.to_checksum_address(),
        eip191_signature=eip191_sign(message, eth_key),
    )


def verify_possession(
    proof: PossessionProof,
    *,
    account_xpub: str,
    eth_address: str,
    challenge: str,
    network: BitcoinNetwork,
) -> str | None:
    """``None`` if ``proof`` answers ``challenge`` with the recorded keys, else why not (a sentence)."""
    if proof.challenge != challenge:
        return "The proof answers another challenge than the one issued."
    expected = possession_address(account_xpub, network)
    if proof.bitcoin_address != expected:
        return (
            f"The Bitcoin proof is by {proof.bitcoin_address}, not the recorded key's {expected}."
        )
    message = challenge.encode("utf-8")
    if not bip322_verify_simple(expected, message, proof.bip322_signature, network):
        return f"The BIP-322 signature does not verify for {expected}."
    recovered = eip191_recover(message, proof.eip191_signature)
    if recovered is None or recovered.lower() != eth_address.lower():
        return f"The EIP-191 signature recovers {recovered}, not the recorded Safe owner {eth_address}."
    return None
