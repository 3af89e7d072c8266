"""The miniscript satisfier for the recovery vault's two spending paths, and extraction.

embit 0.8 signs any script but finalises none beyond single keys and bare multisig, so the
witness for ``or_d(multi(k,P..),and_v(v:multi(m,R..),older(N)))`` is assembled here from the
policy's two known satisfactions (stack listed bottom to top, the witness script last):

* primary, the left branch satisfied: ``<> sig_P.. <script>``. ``CHECKMULTISIG`` leaves 1,
  ``IFDUP NOTIF`` skips the right branch and the 1 stays as the result.
* recovery, the left branch dissatisfied and the right one satisfied:
  ``<> sig_R.. <> <>{k} <script>``. The ``k + 1`` empty items make the primary
  ``CHECKMULTISIG`` return 0 (BIP-147 dummy, and empty signatures as NULLFAIL requires), so
  ``NOTIF`` runs ``CHECKMULTISIGVERIFY`` over the recovery signatures, then ``<N> CSV`` checks
  the input's ``nSequence`` and leaves ``N`` (true) on the stack.

Signatures go in the order of their keys in the script (``multi`` matches them in order). Each
partial signature is verified against the input's BIP-143 sighash before it is used, so a bad
signature is named here rather than refused by the node. The primary path wins when both are
possible: it is smaller and has no timelock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from embit.ec import PublicKey, Signature
from embit.psbt import PSBT, InputScope
from embit.script import Witness
from embit.transaction import SIGHASH, Transaction

from custody.bitcoin.recovery.errors import RecoveryTimelockError, UnsatisfiableInputError
from custody.bitcoin.recovery.policy import RecoveryVaultPolicy, SpendPath
from custody.bitcoin.recovery.spending import locate_input
from custody.bitcoin.recovery.timelock import RELATIVE_LOCK_TX_VERSION, sequence_allows

EMPTY = b""
"""An empty stack item: the ``CHECKMULTISIG`` dummy, or a signature that is not given."""


@dataclass(frozen=True)
class InputSatisfaction:
    """The witness stack of one input and the path it satisfies."""

    path: SpendPath
    stack: tuple[bytes, ...]
    """Bottom to top, the witness script last."""


def _valid_signatures(
    psbt: PSBT, position: int, inp: InputScope, keys: Sequence[bytes], threshold: int
) -> list[bytes]:
    """The first ``threshold`` valid SIGHASH_ALL signatures over ``keys``, in key order."""
    by_key = {bytes(pub.sec()): sig for pub, sig in inp.partial_sigs.items()}
    digest = psbt.sighash(position, sighash=SIGHASH.ALL)
    chosen: list[bytes] = []
    for key in keys:
        signature = by_key.get(key)
        if signature is None:
            continue
        if signature[-1] != SIGHASH.ALL:
            raise UnsatisfiableInputError(
                f"Input {position} has a signature with sighash type {signature[-1]}; only "
                "SIGHASH_ALL signatures are finalised."
            )
        try:
            valid = PublicKey.parse(key).verify(Signature.parse(signature[:-1]), digest)
        except Exception:  # embit raises assorted types for malformed DER
            valid = False
        if not valid:
            raise UnsatisfiableInputError(
                f"Input {position} has a signature for key {key.hex()} that does not verify "
                "against this transaction; it was made for another one."
            )
        chosen.append(bytes(signature))
        if len(chosen) == threshold:
            break
    return chosen


def satisfy_input(
    psbt: PSBT, position: int, policy: RecoveryVaultPolicy, path: SpendPath | None = None
) -> InputSatisfaction:
    """The witness of input ``position``, through ``path`` or (``None``) whichever is possible,
    primary first. ``UnsatisfiableInputError`` names what is missing."""
    inp = psbt.inputs[position]
    branch, index = locate_input(position, inp, policy)
    script = bytes(inp.witness_script.data)
    primary = _valid_signatures(
        psbt,
        position,
        inp,
        policy.path_keys(SpendPath.PRIMARY, branch, index),
        policy.primary_threshold,
    )
    if path in (None, SpendPath.PRIMARY) and len(primary) == policy.primary_threshold:
        return InputSatisfaction(SpendPath.PRIMARY, (EMPTY, *primary, script))
    if path is SpendPath.PRIMARY:
        raise UnsatisfiableInputError(
            f"Input {position} has {len(primary)} valid primary signatures; the primary path "
            f"needs {policy.primary_threshold}."
        )
    recovery = _valid_signatures(
        psbt,
        position,
        inp,
        policy.path_keys(SpendPath.RECOVERY, branch, index),
        policy.recovery_threshold,
    )
    if len(recovery) < policy.recovery_threshold:
        raise UnsatisfiableInputError(
            f"Input {position} has {len(primary)} of {policy.primary_threshold} primary and "
            f"{len(recovery)} of {policy.recovery_threshold} recovery signatures: neither path "
            "can spend it."
        )
    sequence = inp.sequence if inp.sequence is not None else 0xFFFFFFFF
    version = psbt.tx_version or RELATIVE_LOCK_TX_VERSION
    if not sequence_allows(sequence, version, policy.recovery_delay_blocks):
        raise RecoveryTimelockError(
            f"Input {position} has nSequence {sequence:#x} in a version {version} transaction; "
            f"the recovery path needs version 2 and a block lock of at least "
            f"{policy.recovery_delay_blocks}."
        )
    dissatisfy_primary = (EMPTY,) * (policy.primary_threshold + 1)
    return InputSatisfaction(SpendPath.RECOVERY, (EMPTY, *recovery, *dissatisfy_primary, script))


def finalize_psbt(
    psbt: PSBT, policy: RecoveryVaultPolicy, path: SpendPath | None = None
) -> tuple[SpendPath, ...]:
    """Finalise every input in place (BIP-174 finaliser role) and return each one's path.

    All inputs are satisfied before any is changed, so a failure leaves ``psbt`` as it was.
    The partial signatures, derivations and scripts are removed, as BIP-174 asks.
    """
    satisfactions = [satisfy_input(psbt, i, policy, path) for i in range(len(psbt.inputs))]
    for inp, satisfaction in zip(psbt.inputs, satisfactions, strict=True):
        inp.final_scriptwitness = Witness(list(satisfaction.stack))
        inp.partial_sigs.clear()
        inp.bip32_derivations.clear()
        inp.witness_script = None
        inp.sighash_type = None
    return tuple(s.path for s in satisfactions)


def extract_transaction(psbt: PSBT) -> Transaction:
    """The network transaction of a finalised PSBT (BIP-174 extractor role)."""
    tx = psbt.tx
    for position, (vin, inp) in enumerate(zip(tx.vin, psbt.inputs, strict=True)):
        if inp.final_scriptwitness is None:
            raise UnsatisfiableInputError(
                f"Input {position} is not finalised; run finalize_psbt first."
            )
        vin.witness = inp.final_scriptwitness
    return tx
