"""Proof of control for Bitcoin vaults: a BIP-127 reserve-proof PSBT, built, checked and signed here.

The ordinary signer (``custody.bitcoin.signer``) signs only approved spends. A reserve proof is
not a spend: it is a transaction that can never be mined, because its first input spends the
outpoint ``SHA-256("Proof-of-Reserves: " || message)``:0, which does not exist. Its other inputs
are exactly the claimed coins, and its one output returns their whole sum to the vault.

Custody signs the bytes it is given: a ``ReserveClaim`` is the commitment message and the coins
it covers. What the message says (for an attestation, ``reporting/SPEC-attestation.md``'s
``national-reserve-attestation:<digest>``) is decided above custody, by the caller that derives
it from the document (``treasury.attest.proofs``).

This module is the only path that signs such a PSBT, and it is narrow whatever the message:
it refuses a PSBT whose first input is anything but the commitment to the claim's message (it
could then be broadcast), any input that is not a coin of the given vaults or not in the claim,
and any output but the one vault output worth the inputs' sum. Each institution signs with
SIGHASH_ALL, which commits to every input, so a signature cannot be lifted into a real spend.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from embit.ec import PublicKey, Signature
from embit.psbt import PSBT, DerivationPath, InputScope
from embit.script import Script, Witness
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput

from custody.bitcoin.descriptor import Branch, VaultDescriptor
from custody.bitcoin.psbt import parse_psbt
from custody.exceptions import (
    BroadcastableReserveProofError,
    ForeignInputError,
    NotACosignerError,
    ReserveProofError,
    ReserveProofMismatchError,
)
from custody.keys import SigningKeys, signing_keys
from custody.shamir import ShareMnemonic, combine_shares

log = logging.getLogger(__name__)

BIP127_PREFIX = b"Proof-of-Reserves: "
"""BIP-127's prefix of the commitment message whose SHA-256 is the commitment input's txid."""
COMMITMENT_VOUT = 0
"""BIP-127: the commitment input spends index 0 of the commitment hash."""
PSBT_IN_POR_COMMITMENT = b"\x09"
"""BIP-127's PSBT input key carrying the commitment message (on the commitment input)."""
RESERVE_PROOF_TX_VERSION = 2
FINAL_SEQUENCE = 0xFFFFFFFF
SIGHASH_ALL_BYTE = bytes((SIGHASH.ALL,))


@dataclass(frozen=True)
class VaultCoin:
    """Where a snapshot coin sits in a vault: its outpoint, the vault's name, branch and index."""

    txid: str
    vout: int
    vault_name: str
    branch: Branch
    index: int


@dataclass(frozen=True)
class CheckedReserveProof:
    """What the checker verified: safe to log and show."""

    commitment_txid: str
    coin_count: int
    total_sats: int


@dataclass(frozen=True)
class ProvenCoin:
    """A coin a reserve proof must spend: its outpoint, amount and script."""

    txid: str
    vout: int
    amount_sats: int
    script_pubkey: bytes


@dataclass(frozen=True)
class ReserveClaim:
    """What a reserve proof commits to: the BIP-127 commitment message and exactly its coins."""

    message: bytes
    """The commitment message (written into the PSBT; its hash names the commitment input)."""
    proven: tuple[ProvenCoin, ...]

    def __post_init__(self) -> None:
        if not self.message:
            raise ReserveProofError("A reserve proof needs a commitment message; it is empty.")
        if not self.proven:
            raise ReserveProofError("The claim lists no Bitcoin UTXOs: there is nothing to prove.")

    @cached_property
    def coins(self) -> Mapping[tuple[str, int], tuple[int, bytes]]:
        """``(txid, vout) -> (amount in sats, script_pubkey)``."""
        return {(c.txid, c.vout): (c.amount_sats, c.script_pubkey) for c in self.proven}

    @property
    def commitment_txid(self) -> str:
        """The commitment input's txid for this claim's message."""
        return commitment_txid(self.message)


def commitment_txid(message: bytes) -> str:
    """BIP-127: the commitment input's txid (RPC display order) for ``message``.

    The outpoint's hash is ``SHA-256("Proof-of-Reserves: " || message)``; those 32 bytes are the
    serialised (internal-order) hash, so the display txid is them reversed.
    """
    return hashlib.sha256(BIP127_PREFIX + message).digest()[::-1].hex()


def _outpoint(inp: InputScope) -> tuple[str, int]:
    return inp.txid.hex(), int(inp.vout)


def _proof_output_script(vaults: Mapping[str, VaultDescriptor]) -> Script:
    """The single output pays the first vault (by name) its receive address 0: never a stranger."""
    return vaults[min(vaults)].script_pubkey(Branch.RECEIVE, 0)


def _derivations(vault: VaultDescriptor, branch: Branch, index: int) -> dict[PublicKey, Any]:
    """Each cosigner's public key at ``branch``/``index`` with its BIP-32 origin, for signers."""
    derived = vault.parsed(branch).derive(index)
    return {
        key.get_public_key(): DerivationPath(key.origin.fingerprint, list(key.origin.derivation))
        for key in derived.keys
    }


def build_reserve_proof(
    claim: ReserveClaim, coins: Sequence[VaultCoin], vaults: Mapping[str, VaultDescriptor]
) -> str:
    """Build the unsigned reserve-proof PSBT (base64) for ``claim``.

    ``coins`` places every claimed UTXO in its vault (from the watch-only wallet's descriptors);
    each must derive to the claimed script. The result passes :func:`check_reserve_proof`.
    """
    attested = claim.coins
    placed = {(coin.txid, coin.vout): coin for coin in coins}
    if set(placed) != set(attested) or len(placed) != len(coins):
        raise ReserveProofMismatchError(
            "The vault coins given do not match the claimed UTXOs one for one."
        )
    commitment = TransactionInput(bytes.fromhex(claim.commitment_txid), COMMITMENT_VOUT)
    ordered = sorted(placed)
    inputs = [commitment] + [TransactionInput(bytes.fromhex(t), v) for t, v in ordered]
    total = sum(amount for amount, _ in attested.values())
    output = TransactionOutput(total, _proof_output_script(vaults))
    psbt = PSBT(Transaction(version=RESERVE_PROOF_TX_VERSION, vin=inputs, vout=[output]))
    psbt.inputs[0].unknown = {PSBT_IN_POR_COMMITMENT: claim.message}
    for inp, outpoint in zip(psbt.inputs[1:], ordered, strict=True):
        coin = placed[outpoint]
        vault = vaults.get(coin.vault_name)
        if vault is None:
            raise ForeignInputError(
                f"The coin {outpoint[0]}:{outpoint[1]} is placed in vault {coin.vault_name!r}, "
                "which is not among the vaults proven."
            )
        amount, script = attested[outpoint]
        if vault.script_pubkey(coin.branch, coin.index).data != script:
            raise ForeignInputError(
                f"The coin {outpoint[0]}:{outpoint[1]} does not pay vault {coin.vault_name!r}'s "
                f"{coin.branch.name.lower()} address {coin.index}."
            )
        inp.witness_utxo = TransactionOutput(amount, Script(script))
        inp.witness_script = vault.witness_script(coin.branch, coin.index)
        inp.bip32_derivations = _derivations(vault, coin.branch, coin.index)
        inp.sighash_type = SIGHASH.ALL
    check_reserve_proof(psbt, claim, vaults)
    return str(psbt.to_string())


def _locate(
    position: int, inp: InputScope, vaults: Mapping[str, VaultDescriptor]
) -> tuple[str, Branch, int]:
    """The vault, branch and index an input spends from, or ``ForeignInputError``."""
    outpoint = _outpoint(inp)
    where = f"Input {position} ({outpoint[0]}:{outpoint[1]})"
    if inp.witness_utxo is None or inp.witness_script is None:
        raise ForeignInputError(
            f"{where} carries no witness UTXO or script, so it is not a coin of the vaults proven."
        )
    for name, vault in sorted(vaults.items()):
        located = {vault.locate(derivation) for derivation in inp.bip32_derivations.values()}
        located.discard(None)
        if len(located) != 1:
            continue
        branch, index = located.pop()  # type: ignore[misc]
        if (
            inp.witness_utxo.script_pubkey == vault.script_pubkey(branch, index)
            and inp.witness_script == vault.witness_script(branch, index)
            and {pub.sec() for pub in inp.bip32_derivations}
            <= vault.derived_public_keys(branch, index)
        ):
            return name, branch, index
    raise ForeignInputError(
        f"{where} is not a coin of the vaults proven: its script, witness script or key "
        "derivations are not one vault's at one index."
    )


def check_reserve_proof(
    psbt: PSBT, claim: ReserveClaim, vaults: Mapping[str, VaultDescriptor]
) -> CheckedReserveProof:
    """Refuse, with a specific error, anything in ``psbt`` but the claim's reserve proof."""
    attested = claim.coins
    commitment = claim.commitment_txid
    if not psbt.inputs or _outpoint(psbt.inputs[0]) != (commitment, COMMITMENT_VOUT):
        raise BroadcastableReserveProofError(
            "The PSBT's first input is not the commitment to this claim's message "
            f"({commitment}:{COMMITMENT_VOUT}); without it the transaction could be broadcast, "
            "so it is not signed."
        )
    first = psbt.inputs[0]
    if first.bip32_derivations or first.partial_sigs or first.witness_utxo is not None:
        raise BroadcastableReserveProofError(
            "The PSBT's commitment input carries keys, signatures or a UTXO; it must stay empty."
        )
    spent: list[tuple[str, int]] = []
    for position, inp in enumerate(psbt.inputs[1:], start=1):
        outpoint = _outpoint(inp)
        if outpoint[0] == commitment:
            raise BroadcastableReserveProofError(
                f"Input {position} spends the commitment hash again; only input 0 may."
            )
        _locate(position, inp, vaults)
        if outpoint not in attested:
            raise ReserveProofMismatchError(
                f"Input {position} spends {outpoint[0]}:{outpoint[1]}, a vault coin the "
                "claim does not list."
            )
        amount, script = attested[outpoint]
        if inp.witness_utxo.value != amount or inp.witness_utxo.script_pubkey.data != script:
            raise ReserveProofMismatchError(
                f"Input {position} states {inp.witness_utxo.value} sats, but the claim "
                f"lists {amount} sats to another or the same script for {outpoint[0]}:{outpoint[1]}."
            )
        if inp.sighash_type not in (None, SIGHASH.ALL):
            raise ReserveProofError(
                f"Input {position} asks for sighash type {inp.sighash_type}; only SIGHASH_ALL "
                "is signed."
            )
        spent.append(outpoint)
    if sorted(spent) != sorted(attested) or len(set(spent)) != len(spent):
        missing = sorted(set(attested) - set(spent))
        raise ReserveProofMismatchError(
            f"The PSBT does not spend exactly the claimed UTXOs once each (missing {missing})."
        )
    total = sum(amount for amount, _ in attested.values())
    outputs = psbt.tx.vout
    if (
        len(outputs) != 1
        or outputs[0].value != total
        or outputs[0].script_pubkey != _proof_output_script(vaults)
    ):
        raise ReserveProofMismatchError(
            f"A reserve proof has one output of exactly {total} sats (no fee) back to the vault; "
            "this PSBT pays something else."
        )
    return CheckedReserveProof(commitment, len(spent), total)


def _sighash(psbt: PSBT, position: int) -> bytes:
    inp = psbt.inputs[position]
    return bytes(
        psbt.tx.sighash_segwit(position, inp.witness_script, inp.witness_utxo.value, SIGHASH.ALL)
    )


def sign_reserve_proof(
    psbt_text: str,
    claim: ReserveClaim,
    vaults: Mapping[str, VaultDescriptor],
    keys: SigningKeys,
) -> str:
    """Check ``psbt_text`` as the claim's reserve proof, then add this cosigner's signatures.

    Signs every input whose key derivations name this key's fingerprint, with SIGHASH_ALL, and
    nothing else; raises before signing anything if a check fails.
    """
    psbt = parse_psbt(psbt_text)
    checked = check_reserve_proof(psbt, claim, vaults)
    root = keys.bitcoin_root
    fingerprint = root.my_fingerprint
    signed = 0
    for position, inp in enumerate(psbt.inputs[1:], start=1):
        for public_key, derivation in inp.bip32_derivations.items():
            if derivation.fingerprint != fingerprint:
                continue
            child = root.derive(derivation.derivation)
            if child.get_public_key().sec() != public_key.sec():
                raise NotACosignerError(
                    f"The key with fingerprint {fingerprint.hex()} does not derive the public key "
                    f"input {position} lists for it."
                )
            signature = child.key.sign(_sighash(psbt, position))
            inp.partial_sigs[public_key] = signature.serialize() + SIGHASH_ALL_BYTE
            signed += 1
    if signed < checked.coin_count:
        raise NotACosignerError(
            f"The key with fingerprint {fingerprint.hex()} could sign only {signed} of the "
            f"{checked.coin_count} vault inputs; it is not a cosigner of every vault proven."
        )
    log.info(
        "signed reserve proof: commitment=%s cosigner=%s inputs=%d total_sats=%d",
        checked.commitment_txid,
        fingerprint.hex(),
        signed,
        checked.total_sats,
    )
    return str(psbt.to_string())


def sign_reserve_proof_with_shares(
    psbt_text: str,
    claim: ReserveClaim,
    vaults: Mapping[str, VaultDescriptor],
    shares: Sequence[ShareMnemonic],
    passphrase: str,
    fingerprint: str,
) -> str:
    """Check the proof, then recombine the seed, check its fingerprint, sign and wipe.

    The PSBT is checked before any share is touched, so a refused proof never recombines a seed.
    """
    check_reserve_proof(parse_psbt(psbt_text), claim, vaults)
    seed = combine_shares(shares, passphrase)
    with signing_keys(seed, fingerprint) as keys:
        return sign_reserve_proof(psbt_text, claim, vaults, keys)


def finalize_reserve_proof(
    signed_psbts: Sequence[str],
    claim: ReserveClaim,
    vaults: Mapping[str, VaultDescriptor],
) -> str:
    """Merge the institutions' signatures and finalise every vault input (base64 PSBT).

    Each input needs its vault's threshold of valid signatures; they are placed in the witness
    in the witness script's key order, as ``OP_CHECKMULTISIG`` requires.
    """
    if not signed_psbts:
        raise ReserveProofError("No signed reserve proofs were given to finalise.")
    psbts = [parse_psbt(text) for text in signed_psbts]
    merged = psbts[0]
    check_reserve_proof(merged, claim, vaults)
    for other in psbts[1:]:
        if other.tx.txid() != merged.tx.txid():
            raise ReserveProofMismatchError(
                "The signed reserve proofs are of different transactions; they cannot be merged."
            )
        for mine, theirs in zip(merged.inputs, other.inputs, strict=True):
            mine.partial_sigs.update(theirs.partial_sigs)
    for position, inp in enumerate(merged.inputs[1:], start=1):
        name, _, _ = _locate(position, inp, vaults)
        sighash = _sighash(merged, position)
        valid = {}
        for public_key, signature in inp.partial_sigs.items():
            if signature[-1:] == SIGHASH_ALL_BYTE and public_key.verify(
                Signature.parse(signature[:-1]), sighash
            ):
                valid[public_key.sec()] = signature
        threshold = vaults[name].threshold
        ordered = [valid[item] for item in _witness_keys(inp.witness_script) if item in valid][
            :threshold
        ]
        if len(ordered) < threshold:
            raise ReserveProofError(
                f"Input {position} has {len(ordered)} valid signature(s); vault {name!r} needs "
                f"{threshold}."
            )
        inp.final_scriptwitness = Witness([b"", *ordered, inp.witness_script.data])
        inp.partial_sigs.clear()
        inp.bip32_derivations.clear()
        inp.witness_script = None
        inp.sighash_type = None
    return str(merged.to_string())


def _witness_keys(witness_script: Script) -> list[bytes]:
    """The public keys of a ``sortedmulti`` witness script, in script order."""
    data = witness_script.data
    keys = []
    offset = 1
    while offset < len(data) and data[offset] == 33:
        keys.append(data[offset + 1 : offset + 34])
        offset += 34
    return keys
