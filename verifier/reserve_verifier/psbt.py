"""The BIP-127 reserve proof: a hand-written BIP-174 reader and the proof's checks.

The PSBT's key-value maps are read here (stdlib); the transaction inside, and the signatures,
are decoded and verified with ``bitcoinlib``, not with the custody code's ``embit``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

from reserve_verifier.bitcoin_tx import bcl_network, hash160, transactions
from reserve_verifier.exceptions import VerifierError

BIP127_PREFIX = b"Proof-of-Reserves: "
"""BIP-127's prefix of the commitment message."""

RESERVE_MESSAGE_PREFIX = "national-reserve-attestation:"
"""The commitment message is this prefix and the digest's hex (SPEC-attestation.md)."""

SIGHASH_ALL = 0x01
"""The only signature hash type accepted in a reserve proof (it commits to every input)."""

PSBT_MAGIC = b"psbt\xff"
"""BIP-174's magic bytes that start every PSBT."""

PSBT_GLOBAL_UNSIGNED_TX = 0x00
"""Global key type of the unsigned transaction."""

PSBT_IN_WITNESS_UTXO = 0x01
"""Input key type of the spent output (amount and script) of a segwit input."""

PSBT_IN_FINAL_SCRIPTSIG = 0x07
"""Input key type of a finalised scriptSig (a segwit v0 input has none)."""

PSBT_IN_FINAL_SCRIPTWITNESS = 0x08
"""Input key type of a finalised witness."""

PSBT_IN_POR_COMMITMENT = 0x09
"""Input key type of BIP-127's commitment message."""

Utxo = tuple[str, int, int, bytes]
"""An attested UTXO: txid (display order), vout, amount in sats, scriptPubKey."""


def _compact_size(data: bytes, offset: int) -> tuple[int, int]:
    """Read a Bitcoin CompactSize integer at ``offset``; return it and the next offset."""
    first = data[offset]
    if first < 0xFD:
        return first, offset + 1
    width = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return int.from_bytes(data[offset + 1 : offset + 1 + width], "little"), offset + 1 + width


def psbt_maps(data: bytes) -> Iterator[dict[bytes, bytes]]:
    """Yield the key-value maps of a PSBT (global first, then inputs, then outputs)."""
    if not data.startswith(PSBT_MAGIC):
        raise VerifierError("The reserve proof is not a PSBT (bad magic bytes).")
    offset = len(PSBT_MAGIC)
    while offset < len(data):
        entries: dict[bytes, bytes] = {}
        while True:
            key_length, offset = _compact_size(data, offset)
            if key_length == 0:
                break
            key = data[offset : offset + key_length]
            offset += key_length
            value_length, offset = _compact_size(data, offset)
            if offset + value_length > len(data):
                raise VerifierError("The reserve proof PSBT is truncated.")
            if key in entries:
                raise VerifierError("The reserve proof PSBT repeats a key.")
            entries[key] = data[offset : offset + value_length]
            offset += value_length
        yield entries


def check_reserve_psbt(psbt: bytes, digest: bytes, utxos: Sequence[Utxo], network: str) -> bytes:
    """Check a BIP-127 reserve proof and return its finalised transaction bytes.

    The PSBT must spend, first, the commitment input ``SHA-256("Proof-of-Reserves: " ||
    message)`` index 0 with the digest's message, then exactly the attested ``(txid, vout,
    amount, script)`` UTXOs in any order, each listed once (a set comparison would let a
    duplicated outpoint with another amount inflate the holdings); have a single output worth
    their sum (no fee); leave the commitment input without witness or scriptSig; and carry, for
    every attested input, a witness UTXO equal to the attested amount and script, no scriptSig,
    and a final witness whose key or script is the UTXO's and whose SIGHASH_ALL signatures verify
    (bitcoinlib). Raises :class:`VerifierError` naming the first failure.
    """
    library = transactions()
    network_name = bcl_network(network)
    maps = list(psbt_maps(psbt))
    unsigned = maps[0].get(bytes((PSBT_GLOBAL_UNSIGNED_TX,)))
    if unsigned is None:
        raise VerifierError("The reserve proof PSBT has no unsigned transaction.")
    transaction = library.Transaction.parse_bytes(unsigned, network=network_name)
    inputs = maps[1 : 1 + len(transaction.inputs)]
    if len(inputs) != len(transaction.inputs) or not transaction.inputs:
        raise VerifierError("The reserve proof PSBT lacks an input map per input.")
    _check_commitment(transaction.inputs[0], inputs[0], digest)
    if inputs[0].get(bytes((PSBT_IN_FINAL_SCRIPTWITNESS,))) or inputs[0].get(
        bytes((PSBT_IN_FINAL_SCRIPTSIG,))
    ):
        raise VerifierError(
            "The reserve proof's commitment input carries a witness or scriptSig; it spends nothing and is left unsigned."
        )
    attested: dict[tuple[str, int], tuple[int, bytes]] = {}
    for txid, vout, value, script in utxos:
        if (txid, vout) in attested:
            raise VerifierError(
                f"The attestation lists the outpoint {txid}:{vout} twice (with {attested[txid, vout][0]} and {value} sats); a UTXO is held once, so holdings would be counted twice."
            )
        attested[txid, vout] = (value, script)
    spent = [(bytes(item.prev_txid).hex(), item.output_n_int) for item in transaction.inputs[1:]]
    if sorted(spent) != sorted(attested) or len(set(spent)) != len(spent):
        missing = sorted(set(attested) - set(spent))
        extra = sorted(set(spent) - set(attested))
        raise VerifierError(
            f"The reserve proof does not spend exactly the attested UTXOs (missing {missing}, extra {extra})."
        )
    total = sum(value for value, _ in attested.values())
    if len(transaction.outputs) != 1 or transaction.outputs[0].value != total:
        raise VerifierError(
            f"The reserve proof must have one output of exactly {total} sats (no fee)."
        )
    witnesses = []
    for position, (outpoint, fields) in enumerate(zip(spent, inputs[1:], strict=True), start=1):
        witness = fields.get(bytes((PSBT_IN_FINAL_SCRIPTWITNESS,)))
        if witness is None or fields.get(bytes((PSBT_IN_FINAL_SCRIPTSIG,))):
            raise VerifierError(
                f"The reserve proof's input {outpoint[0]}:{outpoint[1]} is not signed and finalised (segwit witness)."
            )
        witnesses.append(witness)
        value, script = attested[outpoint]
        witness_utxo = fields.get(bytes((PSBT_IN_WITNESS_UTXO,)))
        if witness_utxo is None:
            raise VerifierError(
                f"The reserve proof's input {position} has no witness UTXO (the spent amount and script it signs)."
            )
        if witness_utxo != value.to_bytes(8, "little") + bytes((len(script),)) + script:
            raise VerifierError(
                f"The reserve proof states another amount or script for input {position} than attested."
            )
    final = (
        unsigned[:4] + b"\x00\x01" + unsigned[4:-4] + b"\x00" + b"".join(witnesses) + unsigned[-4:]
    )
    signed = library.Transaction.parse_bytes(final, network=network_name)
    for position, outpoint in enumerate(spent, start=1):
        _check_signed_input(signed, position, outpoint, attested[outpoint])
    return bytes(final)


def _check_commitment(first: Any, fields: dict[bytes, bytes], digest: bytes) -> None:
    """The first input spends BIP-127's commitment to this digest, index 0."""
    message = (RESERVE_MESSAGE_PREFIX + digest.hex()).encode()
    commitment = hashlib.sha256(BIP127_PREFIX + message).digest()[::-1].hex()
    if bytes(first.prev_txid).hex() != commitment or first.output_n_int != 0:
        raise VerifierError(
            "The reserve proof's first input is not the commitment to this digest (BIP-127)."
        )
    stated = fields.get(bytes((PSBT_IN_POR_COMMITMENT,)))
    if stated is not None and stated != message:
        raise VerifierError("The reserve proof's commitment message is not this digest's.")


def _check_signed_input(
    signed: Any, position: int, outpoint: tuple[str, int], utxo: tuple[int, bytes]
) -> None:
    """The input's witness is by the UTXO's key or script, SIGHASH_ALL, and verifies."""
    value, script = utxo
    item = signed.inputs[position]
    _check_witness_binding(item, script, outpoint)
    if item.hash_type != SIGHASH_ALL:
        raise VerifierError(
            f"The reserve proof's input {outpoint[0]}:{outpoint[1]} is not signed with SIGHASH_ALL."
        )
    item.value = value
    sighash = signed.signature_hash(position, item.hash_type, item.witness_type)
    if not item.signatures or not item.verify(sighash):
        raise VerifierError(
            f"The reserve proof's signature on input {outpoint[0]}:{outpoint[1]} does not verify."
        )


def _check_witness_binding(item: Any, script: bytes, outpoint: tuple[str, int]) -> None:
    """Refuse a witness whose key or script is not the one the attested UTXO locks to."""
    where = f"{outpoint[0]}:{outpoint[1]}"
    if len(script) == 22 and script[:2] == b"\x00\x14":
        if len(item.keys) != 1 or hash160(item.keys[0].public_byte) != script[2:]:
            raise VerifierError(f"The witness of input {where} is not by the UTXO's key.")
    elif len(script) == 34 and script[:2] == b"\x00\x20":
        redeem = bytes(item.redeemscript or b"")
        if hashlib.sha256(redeem).digest() != script[2:]:
            raise VerifierError(f"The witness script of input {where} is not the UTXO's script.")
    else:
        raise VerifierError(
            f"The UTXO {where} is neither P2WPKH nor P2WSH; this verifier checks segwit v0 only."
        )
