"""A cosigner's signatures on a PSBT's P2WSH multisig inputs, in time linear in the input count.

This is the signing step of ``signer.cosign_psbt``, in place of embit's ``PSBT.sign_with``,
which recomputes the transaction-wide BIP-143 hashes and derives every key from the master key
for each input: quadratic in the number of inputs. Here the transaction is hashed once
(``Bip143Sighasher``) and each BIP-32 parent key is derived once and reused. The signatures are
embit's own (``embit.ec.PrivateKey.sign``: libsecp256k1, RFC 6979 nonces, low S, the nonce
re-drawn with a counter until R is low), so the result is byte for byte what ``sign_with`` adds.

It signs only what the vaults are: native P2WSH inputs whose witness script is a bare
``OP_CHECKMULTISIG`` over compressed keys, asked for with ``SIGHASH_ALL`` (or no type, which
means ALL). Anything else is refused before any input is signed; it does not fall back to embit.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from embit.bip32 import HARDENED_INDEX, HDKey
from embit.ec import PrivateKey, PublicKey
from embit.psbt import PSBT, InputScope
from embit.transaction import SIGHASH
from embit.util import secp256k1

from custody.bitcoin.sighash import Bip143Sighasher
from custody.exceptions import ForeignInputError, SpendApprovalMismatchError

OP_CHECKMULTISIG = 0xAE
OP_1 = 0x51
"""``OP_1`` .. ``OP_16`` push the numbers 1 .. 16: the threshold and the key count."""
OP_16 = 0x60
COMPRESSED_PUBKEY_BYTES = 33
P2WSH_PROGRAM_PREFIX = b"\x00\x20"
"""A P2WSH output script: witness version 0, then a 32-byte push of the script's SHA-256."""


def multisig_keys(witness_script: bytes) -> tuple[bytes, ...] | None:
    """The public keys of a bare ``M <keys> N OP_CHECKMULTISIG`` script, or ``None`` if it is not.

    Strict on purpose: only 1 <= M <= N <= 16 compressed keys, each a 33-byte push, which is
    what ``wsh(sortedmulti(...))`` writes.
    """
    if len(witness_script) < 3 or witness_script[-1] != OP_CHECKMULTISIG:
        return None
    threshold_op, count_op = witness_script[0], witness_script[-2]
    if not (OP_1 <= threshold_op <= count_op <= OP_16):
        return None
    count = count_op - OP_1 + 1
    if len(witness_script) != 3 + count * (1 + COMPRESSED_PUBKEY_BYTES):
        return None
    keys = []
    for position in range(count):
        start = 1 + position * (1 + COMPRESSED_PUBKEY_BYTES)
        if witness_script[start] != COMPRESSED_PUBKEY_BYTES:
            return None
        key = witness_script[start + 1 : start + 1 + COMPRESSED_PUBKEY_BYTES]
        if key[0] not in (2, 3):
            return None
        keys.append(bytes(key))
    return tuple(keys)


def _checked_witness_script(position: int, inp: InputScope) -> tuple[bytes, frozenset[bytes]]:
    """Input ``position``'s witness script and its keys, if it is a P2WSH multisig ALL input."""
    where = f"Input {position} ({inp.txid.hex()}:{inp.vout})"
    if inp.sighash_type not in (None, SIGHASH.ALL):
        raise SpendApprovalMismatchError(
            f"{where} asks for sighash type {inp.sighash_type}; only SIGHASH_ALL is signed."
        )
    if inp.witness_utxo is None or inp.witness_script is None:
        raise ForeignInputError(
            f"{where} lacks its witness UTXO or witness script; only P2WSH multisig vault "
            "inputs are signed."
        )
    if inp.redeem_script is not None:
        raise ForeignInputError(
            f"{where} is wrapped in P2SH; only native P2WSH vault inputs are signed."
        )
    script = bytes(inp.witness_script.data)
    expected = P2WSH_PROGRAM_PREFIX + hashlib.sha256(script).digest()
    if bytes(inp.witness_utxo.script_pubkey.data) != expected:
        raise ForeignInputError(
            f"{where} does not pay to the P2WSH of its witness script; refusing to sign."
        )
    keys = multisig_keys(script)
    if keys is None:
        raise ForeignInputError(
            f"{where} has a witness script that is not a bare OP_CHECKMULTISIG of compressed "
            "keys; only multisig vault inputs are signed."
        )
    return script, frozenset(keys)


@dataclass(frozen=True)
class _ChildKey:
    """A derived private key with what deriving its children needs."""

    key: PrivateKey = field(repr=False)
    chain_code: bytes = field(repr=False)
    sec: bytes
    """The compressed public key: the HMAC input of non-hardened children, and what is checked."""


class _DerivedKeys:
    """BIP-32 private keys below one root, each parent derived once and kept for this call.

    A vault input's key is ``root/48h/1h/0h/2h/branch/index``: the hardened account part is the
    same for every input, so after the first input each one costs a single child derivation.
    The derivation is BIP-32's CKDpriv with embit's own primitives (HMAC-SHA512, and
    ``ec_privkey_add``, which refuses an out-of-range tweak as the BIP requires); it skips
    embit's ``HDKey`` objects, whose constructor base58-encodes every key it makes.
    """

    def __init__(self, root: HDKey) -> None:
        secret = bytes(root.key.secret)
        key = PrivateKey(secret)
        self._keys: dict[tuple[int, ...], _ChildKey] = {
            (): _ChildKey(key, bytes(root.chain_code), bytes(key.sec()))
        }

    def at(self, path: Sequence[int]) -> _ChildKey:
        """The key at ``path`` below the root, deriving only what is not known yet."""
        path = tuple(path)
        known = len(path)
        while path[:known] not in self._keys:
            known -= 1
        key = self._keys[path[:known]]
        for depth in range(known + 1, len(path) + 1):
            key = self._keys[path[:depth]] = _child(key, path[depth - 1])
        return key


def _child(parent: _ChildKey, index: int) -> _ChildKey:
    """BIP-32 CKDpriv: the child private key ``index`` of ``parent``."""
    if index >= HARDENED_INDEX:
        data = b"\x00" + bytes(parent.key.secret) + index.to_bytes(4, "big")
    else:
        data = parent.sec + index.to_bytes(4, "big")
    raw = hmac.new(parent.chain_code, data, digestmod="sha512").digest()
    key = PrivateKey(secp256k1.ec_privkey_add(raw[:32], bytes(parent.key.secret)))
    return _ChildKey(key, raw[32:], bytes(key.sec()))


def sign_multisig_inputs(psbt: PSBT, root: HDKey) -> int:
    """Add ``root``'s SIGHASH_ALL signature to every input of ``psbt`` it has a key in.

    Returns how many signatures were added, as ``PSBT.sign_with`` does. A key is used when an
    input's BIP-32 derivation names ``root``'s fingerprint; its derived public key must be the
    one the derivation claims and one of the witness script's keys. Every input is checked first
    (``ForeignInputError`` / ``SpendApprovalMismatchError``), so a refusal leaves ``psbt``
    without any new signature.
    """
    fingerprint = root.my_fingerprint
    scripts = [_checked_witness_script(i, inp) for i, inp in enumerate(psbt.inputs)]
    sighasher = Bip143Sighasher.from_transaction(psbt.tx)
    keys = _DerivedKeys(root)
    signatures: list[tuple[InputScope, PublicKey, bytes]] = []
    for position, (inp, (script, script_keys)) in enumerate(zip(psbt.inputs, scripts, strict=True)):
        ours = [
            (pub, derivation)
            for pub, derivation in inp.bip32_derivations.items()
            if derivation.fingerprint == fingerprint
        ]
        if not ours:
            continue
        digest = sighasher.digest(position, script, int(inp.witness_utxo.value), SIGHASH.ALL)
        for pub, derivation in ours:
            private = keys.at(derivation.derivation)
            if private.sec != bytes(pub.sec()) or private.sec not in script_keys:
                raise ForeignInputError(
                    f"Input {position} ({inp.txid.hex()}:{inp.vout}) names a key derivation of "
                    "this cosigner that does not give one of its witness script's keys."
                )
            der = bytes(private.key.sign(digest).serialize())
            signatures.append((inp, pub, der + bytes([SIGHASH.ALL])))
    for inp, pub, signature in signatures:
        inp.partial_sigs[pub] = signature
    return len(signatures)
