"""BIP-143 signature digests of segwit v0 inputs, with the transaction-wide hashes computed once.

A BIP-143 digest commits to three hashes over the whole transaction (``hashPrevouts``,
``hashSequence``, ``hashOutputs``) and to the one input being signed. embit's PSBT rebuilds its
transaction, and with it those three hashes, for every input it signs, so a cosigner's work
grows with the square of the input count. ``Bip143Sighasher`` hashes the transaction once; each
``digest`` then hashes only its own input's fields, so signing n inputs costs O(n).

The digest follows BIP-143 for the six standard sighash types (``ALL``, ``NONE``, ``SINGLE``,
each with or without ``ANYONECANPAY``) so it can be checked against every example of the BIP;
which types a cosigner is willing to sign is the signer's decision, not this module's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from embit import compact
from embit.transaction import SIGHASH, Transaction

from custody.exceptions import SighashError

ANYONECANPAY_FLAG = SIGHASH.ANYONECANPAY
"""The sighash flag that commits to the signed input alone, not to the other inputs."""
SIGHASH_BASE_MASK = 0x1F
"""The bits of a sighash type that select ALL, NONE or SINGLE (as Bitcoin Core masks them)."""
STANDARD_SIGHASH_TYPES = frozenset(
    base | flag
    for base in (SIGHASH.ALL, SIGHASH.NONE, SIGHASH.SINGLE)
    for flag in (0, ANYONECANPAY_FLAG)
)
"""The six sighash types BIP-143 signers use; any other byte is refused."""
ZERO_HASH = bytes(32)
"""What BIP-143 puts in place of a transaction-wide hash the sighash type does not commit to."""
OUTPOINT_BYTES = 36
"""A serialised outpoint: the 32-byte txid (internal byte order) and the 4-byte output index."""


def double_sha256(data: bytes) -> bytes:
    """Bitcoin's hash: SHA-256 applied twice."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


@dataclass(frozen=True)
class Bip143Sighasher:
    """One transaction's BIP-143 digests: its hashes over all inputs and outputs, made once.

    Build it with ``from_transaction``; it keeps only what the digests need, as bytes, so it is
    independent of the embit objects it was made from (changing them later changes nothing).
    """

    version: int
    locktime: int
    outpoints: tuple[bytes, ...]
    """Each input's serialised outpoint (36 bytes), in input order."""
    sequences: tuple[int, ...]
    """Each input's ``nSequence``, in input order."""
    outputs: tuple[bytes, ...]
    """Each output serialised (amount and script), in output order: ``SINGLE`` hashes one."""
    hash_prevouts: bytes
    """dSHA256 of every outpoint: ``hashPrevouts`` for types without ``ANYONECANPAY``."""
    hash_sequence: bytes
    """dSHA256 of every ``nSequence``: ``hashSequence`` for ``ALL`` without ``ANYONECANPAY``."""
    hash_outputs: bytes
    """dSHA256 of every output: ``hashOutputs`` for ``ALL``."""

    @classmethod
    def from_transaction(cls, tx: Transaction) -> Bip143Sighasher:
        """Hash ``tx``'s inputs and outputs once, in O(size of ``tx``)."""
        outpoints = tuple(
            bytes(reversed(vin.txid)) + vin.vout.to_bytes(4, "little") for vin in tx.vin
        )
        sequences = tuple(int(vin.sequence) for vin in tx.vin)
        outputs = tuple(bytes(vout.serialize()) for vout in tx.vout)
        return cls(
            version=int(tx.version),
            locktime=int(tx.locktime),
            outpoints=outpoints,
            sequences=sequences,
            outputs=outputs,
            hash_prevouts=double_sha256(b"".join(outpoints)),
            hash_sequence=double_sha256(b"".join(s.to_bytes(4, "little") for s in sequences)),
            hash_outputs=double_sha256(b"".join(outputs)),
        )

    def digest(
        self,
        index: int,
        script_code: bytes,
        amount_sats: int,
        sighash_type: int = SIGHASH.ALL,
    ) -> bytes:
        """The BIP-143 digest that signs input ``index`` with ``sighash_type``.

        ``script_code`` is the script being executed, without its length prefix: for a P2WSH
        input its witness script (from the last executed ``OP_CODESEPARATOR`` on, if any), for
        P2WPKH the P2PKH script of its key. ``amount_sats`` is the value of the coin it spends.
        """
        if not 0 <= index < len(self.outpoints):
            raise SighashError(
                f"Input {index} does not exist; the transaction has {len(self.outpoints)} inputs."
            )
        if sighash_type not in STANDARD_SIGHASH_TYPES:
            raise SighashError(
                f"Sighash type {sighash_type:#x} is not one of ALL, NONE or SINGLE, with or "
                "without ANYONECANPAY."
            )
        base = sighash_type & SIGHASH_BASE_MASK
        anyone_can_pay = bool(sighash_type & ANYONECANPAY_FLAG)
        hash_prevouts = ZERO_HASH if anyone_can_pay else self.hash_prevouts
        hash_sequence = (
            self.hash_sequence if base == SIGHASH.ALL and not anyone_can_pay else ZERO_HASH
        )
        if base == SIGHASH.ALL:
            hash_outputs = self.hash_outputs
        elif base == SIGHASH.SINGLE and index < len(self.outputs):
            hash_outputs = double_sha256(self.outputs[index])
        else:
            hash_outputs = ZERO_HASH
        preimage = b"".join(
            (
                self.version.to_bytes(4, "little"),
                hash_prevouts,
                hash_sequence,
                self.outpoints[index],
                bytes(compact.to_bytes(len(script_code))),
                script_code,
                amount_sats.to_bytes(8, "little"),
                self.sequences[index].to_bytes(4, "little"),
                hash_outputs,
                self.locktime.to_bytes(4, "little"),
                sighash_type.to_bytes(4, "little"),
            )
        )
        return double_sha256(preimage)
