"""Building and signing spends of a recovery vault's coins, as PSBTs (BIP-174) made with embit.

A spend names its path up front, because the path decides the transaction itself: a recovery
spend must be version 2 with every input's ``nSequence`` at least the vault's ``N`` (a block-based
BIP-68 lock), which is what ``older(N)`` checks. A primary spend uses ``nSequence`` 0xFFFFFFFD
(replaceable, no lock). Either way every input carries its witness UTXO, the vault's witness
script and the BIP-32 derivations of all its keys, so any signer (ours, a hardware wallet,
bitcoind) can tell which of its keys to use.

Signers take the keys the way ``custody.bitcoin.signer`` does (``custody.keys.SigningKeys``, from
a recombined seed) and check first that every input is this vault's coin; a recovery body's
signer also refuses a transaction whose inputs do not commit to the timelock, since its
signatures could never be used. Finalising is ``custody.bitcoin.recovery.satisfier``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from embit.ec import PublicKey
from embit.psbt import PSBT, DerivationPath, InputScope
from embit.script import Script
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput

from custody.bitcoin.approval import Payment
from custody.bitcoin.descriptor import Branch
from custody.bitcoin.recovery.policy import RecoveryVaultPolicy, SpendPath
from custody.bitcoin.recovery.timelock import (
    RELATIVE_LOCK_TX_VERSION,
    recovery_sequence,
    sequence_allows,
)
from custody.exceptions import (
    AbsurdFeeError,
    ForeignInputError,
    InvalidPaymentError,
    NotACosignerError,
    SpendApprovalMismatchError,
)
from custody.keys import SigningKeys

PRIMARY_SEQUENCE = 0xFFFFFFFD
"""Replaceable (BIP-125), no relative lock: the primary path needs none."""
DUST_LIMIT_SATS = 330
"""Below this a P2WSH change output is dust at bitcoind's default relay settings; it goes to fee."""
ECDSA_SIGNATURE_MAX_BYTES = 73
"""A DER signature (at most 72 bytes) and its sighash byte."""
WITNESS_SCALE_FACTOR = 4
OUTPOINT_BYTES = 36
SEQUENCE_BYTES = 4
VALUE_BYTES = 8
TX_FIXED_BYTES = 4 + 4
"""Version and lock time."""
SEGWIT_MARKER_FLAG_WEIGHT = 2


@dataclass(frozen=True)
class VaultCoin:
    """One unspent output of the vault: where it is, what it holds, and which address it paid."""

    txid: str
    vout: int
    amount_sats: int
    branch: Branch
    index: int


def _varint_len(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5


def witness_bytes(policy: RecoveryVaultPolicy, path: SpendPath) -> int:
    """The largest serialised witness of one input spent through ``path`` (stack count included).

    Primary: ``<> sig_1..sig_m <script>``. Recovery: ``<> rsig_1..rsig_k`` for the right branch,
    then the left ``multi``'s dissatisfaction (``m + 1`` empty items), then the script.
    """
    script_len = len(policy.witness_script(Branch.RECEIVE, 0).data)
    script_item = _varint_len(script_len) + script_len
    signature_item = 1 + ECDSA_SIGNATURE_MAX_BYTES
    if path is SpendPath.PRIMARY:
        items = 1 + policy.primary_threshold + 1
        size = 1 + policy.primary_threshold * signature_item + script_item
    else:
        items = 1 + policy.recovery_threshold + (policy.primary_threshold + 1) + 1
        size = (
            1
            + policy.recovery_threshold * signature_item
            + (policy.primary_threshold + 1)
            + script_item
        )
    return _varint_len(items) + size


def estimate_vsize(
    policy: RecoveryVaultPolicy, path: SpendPath, input_count: int, output_scripts: Sequence[Script]
) -> int:
    """An upper bound of the signed transaction's virtual size, for its fee."""
    base = (
        TX_FIXED_BYTES
        + _varint_len(input_count)
        + input_count * (OUTPOINT_BYTES + 1 + SEQUENCE_BYTES)
        + _varint_len(len(output_scripts))
        + sum(VALUE_BYTES + _varint_len(len(s.data)) + len(s.data) for s in output_scripts)
    )
    weight = (
        base * WITNESS_SCALE_FACTOR
        + SEGWIT_MARKER_FLAG_WEIGHT
        + input_count * witness_bytes(policy, path)
    )
    return math.ceil(weight / WITNESS_SCALE_FACTOR)


def _origin(key_origin: str) -> tuple[bytes, list[int]]:
    """The fingerprint and account path (as BIP-32 indices) of ``[fp/48h/1h/0h/2h]tpub...``."""
    inside = key_origin[1 : key_origin.index("]")]
    fingerprint, *steps = inside.split("/")
    return bytes.fromhex(fingerprint), [int(step[:-1]) + 0x80000000 for step in steps]


def _derivations(
    policy: RecoveryVaultPolicy, branch: Branch, index: int
) -> dict[PublicKey, DerivationPath]:
    """Every key of the vault at ``branch``/``index`` with its full BIP-32 origin, for a PSBT."""
    derived = policy.derived(branch, index)
    found = {}
    for origin, key in zip(policy.primary_keys + policy.recovery_keys, derived.keys, strict=True):
        fingerprint, account = _origin(origin)
        found[key.get_public_key()] = DerivationPath(fingerprint, [*account, int(branch), index])
    return found


def build_psbt(
    policy: RecoveryVaultPolicy,
    coins: Sequence[VaultCoin],
    payments: Sequence[Payment],
    *,
    path: SpendPath,
    fee_rate_sat_vb: int,
    change_index: int,
) -> PSBT:
    """A PSBT spending all of ``coins`` through ``path`` to ``payments``, the rest (less the fee
    at ``fee_rate_sat_vb``) to the vault's change address ``change_index``; change under
    ``DUST_LIMIT_SATS`` is left to the fee."""
    if not coins:
        raise InvalidPaymentError("A spend needs at least one vault coin as input.")
    if fee_rate_sat_vb < 1:
        raise AbsurdFeeError(f"The fee rate must be at least 1 sat/vB; got {fee_rate_sat_vb}.")
    sequence = (
        recovery_sequence(policy.recovery_delay_blocks)
        if path is SpendPath.RECOVERY
        else PRIMARY_SEQUENCE
    )
    change_script = policy.script_pubkey(Branch.CHANGE, change_index)
    payment_scripts = [payment.script_pubkey for payment in payments]
    total_in = sum(coin.amount_sats for coin in coins)
    paid = sum(payment.amount_sats for payment in payments)
    fee_with_change = fee_rate_sat_vb * estimate_vsize(
        policy, path, len(coins), [*payment_scripts, change_script]
    )
    change = total_in - paid - fee_with_change
    outputs = [TransactionOutput(p.amount_sats, p.script_pubkey) for p in payments]
    if change >= DUST_LIMIT_SATS:
        outputs.append(TransactionOutput(change, change_script))
    else:
        fee = fee_rate_sat_vb * estimate_vsize(policy, path, len(coins), payment_scripts)
        if total_in - paid < fee:
            raise InvalidPaymentError(
                f"The {len(coins)} coins hold {total_in} sats, less than the {paid} sats paid "
                f"plus a fee of {fee} sats."
            )
    tx = Transaction(
        version=RELATIVE_LOCK_TX_VERSION,
        vin=[TransactionInput(bytes.fromhex(c.txid), c.vout, sequence=sequence) for c in coins],
        vout=outputs,
        locktime=0,
    )
    psbt = PSBT(tx)
    for inp, coin in zip(psbt.inputs, coins, strict=True):
        inp.witness_utxo = TransactionOutput(
            coin.amount_sats, policy.script_pubkey(coin.branch, coin.index)
        )
        inp.witness_script = policy.witness_script(coin.branch, coin.index)
        inp.bip32_derivations.update(_derivations(policy, coin.branch, coin.index))
    if change >= DUST_LIMIT_SATS:
        out = psbt.outputs[-1]
        out.witness_script = policy.witness_script(Branch.CHANGE, change_index)
        out.bip32_derivations.update(_derivations(policy, Branch.CHANGE, change_index))
    return psbt


def locate_input(position: int, inp: InputScope, policy: RecoveryVaultPolicy) -> tuple[Branch, int]:
    """The vault branch and index input ``position`` spends; ``ForeignInputError`` unless its
    derivations, witness UTXO and witness script are all this vault's at that index."""
    where = f"Input {position} ({inp.txid.hex()}:{inp.vout})"
    located = {policy.locate(derivation) for derivation in inp.bip32_derivations.values()}
    located.discard(None)
    if len(located) != 1:
        raise ForeignInputError(
            f"{where} is not a coin of this recovery vault: its key derivations do not point to "
            "exactly one receive or change index of the vault's keys."
        )
    branch, index = located.pop()  # type: ignore[misc]
    if inp.witness_utxo is None or inp.witness_script is None:
        raise ForeignInputError(f"{where} lacks its witness UTXO or witness script.")
    if inp.witness_script != policy.witness_script(branch, index):
        raise ForeignInputError(f"{where} carries a witness script that is not the vault's.")
    if inp.witness_utxo.script_pubkey != policy.script_pubkey(branch, index):
        raise ForeignInputError(
            f"{where} does not pay to the vault's {branch.name.lower()} address {index}."
        )
    return branch, index


def signer_path(policy: RecoveryVaultPolicy, keys: SigningKeys) -> SpendPath:
    """Which quorum ``keys`` belong to, by master fingerprint; ``NotACosignerError`` if neither."""
    fingerprint = keys.bitcoin_root.my_fingerprint.hex()
    for path, fingerprints in policy.fingerprints.items():
        if fingerprint in fingerprints:
            return path
    raise NotACosignerError(
        f"Key {fingerprint} holds no key of this recovery vault (neither primary nor recovery)."
    )


def sign_vault_psbt(psbt: PSBT, policy: RecoveryVaultPolicy, keys: SigningKeys) -> int:
    """Add ``keys``' SIGHASH_ALL signature to every input, after checking every input first.

    Returns the number of signatures added. Refuses (before signing anything) an input that is
    not the vault's, a sighash other than ALL, and, for a recovery key, a transaction that does
    not commit to the recovery timelock on every input.
    """
    path = signer_path(policy, keys)
    for position, inp in enumerate(psbt.inputs):
        locate_input(position, inp, policy)
        if inp.sighash_type not in (None, SIGHASH.ALL):
            raise SpendApprovalMismatchError(
                f"Input {position} asks for sighash type {inp.sighash_type}; only SIGHASH_ALL "
                "is signed."
            )
        if path is SpendPath.RECOVERY and not sequence_allows(
            inp.sequence if inp.sequence is not None else 0xFFFFFFFF,
            psbt.tx_version or RELATIVE_LOCK_TX_VERSION,
            policy.recovery_delay_blocks,
        ):
            raise SpendApprovalMismatchError(
                f"Input {position} does not commit to the recovery timelock of "
                f"{policy.recovery_delay_blocks} blocks (version 2, nSequence >= the delay), so "
                "a recovery signature on it could never be used; refusing to sign."
            )
    added = int(psbt.sign_with(keys.bitcoin_root, SIGHASH.ALL))
    if added == 0:
        raise NotACosignerError(
            f"Key {keys.bitcoin_root.my_fingerprint.hex()} signed no input: no input names it."
        )
    return added
