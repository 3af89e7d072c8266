"""The gated signer of a recovery vault: decode, compare with the approval, verify the officers.

The plain vaults' signer (``custody.bitcoin.signer``) checks a ``wsh(sortedmulti)`` PSBT; this is
the same discipline for the miniscript vault, composed from the same parts, so a spend of a
recovery vault through the treasury's workflow (a payment, or a "refresh" back into the vault)
gets no weaker check than any other:

1. the unsigned transaction is the approved one (its txid), every input is a coin of THIS vault
   (``locate_input``: derivations, witness UTXO and witness script all the vault's), and every
   output is an approved payment or the vault's own change (its change branch, by derivation
   and script); the fee is under the approval's maximum and the signer's caps;
2. the key is one of the vault's (either quorum, ``signer_path``);
3. the officers' authority is checked with the seed just recombined
   (``custody.authority.gate.check_before_signing``) against what the PSBT itself does
   (``spend_under_review``): chain, vault id (the receive descriptor with its checksum, which
   pins both quorums and ``N``), amount, destination, txid, fee.

Only then are signatures added (``sign_vault_psbt``). There is no break-glass path here: the
recovery bodies' emergency spend after ``N`` blocks is the vault's own break-glass, and it is
made with ``sign_vault_psbt`` directly, outside the workflow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from embit.psbt import PSBT, OutputScope

from custody.authority.gate import AuthorityEvidence, approvers_line, check_before_signing
from custody.authority.quorum import SpendUnderReview, VerifiedAuthorization
from custody.bitcoin.approval import ApprovedSpend, FeePolicy
from custody.bitcoin.descriptor import Branch
from custody.bitcoin.psbt import parse_psbt
from custody.bitcoin.recovery.policy import RecoveryVaultPolicy, SpendPath
from custody.bitcoin.recovery.spending import (
    estimate_vsize,
    locate_input,
    sign_vault_psbt,
    signer_path,
)
from custody.bitcoin.signer import (
    check_approved_txid,
    check_outputs_and_fee,
    review_single_payment,
)
from custody.clock import Clock, utc_now
from custody.keys import SigningKeys

log = logging.getLogger(__name__)

BITCOIN_ASSET = "BTC"
"""The asset code statements name for bitcoin (amounts in sats), as for the plain vaults."""


def recovery_vault_id(policy: RecoveryVaultPolicy) -> str:
    """The ``vault_id`` a statement names: the receive descriptor with its checksum (the full
    miniscript, so an approval pins both quorums and the timelock)."""
    return policy.text_with_checksum(Branch.RECEIVE)


def is_vault_change(out: OutputScope, policy: RecoveryVaultPolicy) -> bool:
    """Whether ``out`` pays the vault's own change branch (by its derivations AND its script)."""
    for derivation in out.bip32_derivations.values():
        located = policy.locate(derivation)
        if located is not None and located[0] is Branch.CHANGE:
            return bool(out.script_pubkey == policy.script_pubkey(Branch.CHANGE, located[1]))
    return False


@dataclass(frozen=True)
class CheckedRecoverySpend:
    """What the signer checked in the PSBT before signing it."""

    unsigned_txid: str
    input_count: int
    paid_sats: int
    change_sats: int
    fee_sats: int


def check_recovery_psbt(
    psbt: PSBT, policy: RecoveryVaultPolicy, approval: ApprovedSpend, fee_policy: FeePolicy
) -> CheckedRecoverySpend:
    """Refuse, with a specific error, anything in ``psbt`` that the approval does not cover: the
    vault signer's own output and fee checks, with this vault's inputs, change and size."""
    txid = check_approved_txid(psbt, approval)
    for position, inp in enumerate(psbt.inputs):
        locate_input(position, inp, policy)
    vsize = estimate_vsize(
        policy, SpendPath.PRIMARY, len(psbt.inputs), [out.script_pubkey for out in psbt.outputs]
    )
    outputs = check_outputs_and_fee(
        psbt,
        approval,
        fee_policy,
        is_change=lambda out: is_vault_change(out, policy),
        change_name="the recovery vault's change",
        vsize=vsize,
        network=policy.network,
    )
    return CheckedRecoverySpend(
        txid, len(psbt.inputs), outputs.paid_sats, outputs.change_sats, outputs.fee_sats
    )


def spend_under_review(psbt: PSBT, policy: RecoveryVaultPolicy) -> SpendUnderReview:
    """What ``psbt`` does, read from its bytes alone: its one payment (a refresh pays one of the
    vault's own receive addresses), txid and fee. Call after ``check_recovery_psbt``."""
    return review_single_payment(
        psbt,
        is_change=lambda out: is_vault_change(out, policy),
        vault_id=recovery_vault_id(policy),
        network=policy.network,
    )


@dataclass(frozen=True)
class SignedRecoveryPsbt:
    """One quorum member's signing call: the PSBT with its signatures, what was checked, whose
    statements the signer verified."""

    psbt: str
    checked: CheckedRecoverySpend
    path: SpendPath
    authorization: VerifiedAuthorization


def cosign_recovery_psbt(
    psbt_text: str,
    policy: RecoveryVaultPolicy,
    approval: ApprovedSpend,
    keys: SigningKeys,
    fee_policy: FeePolicy | None = None,
    *,
    authority: AuthorityEvidence,
    clock: Clock = utc_now,
) -> SignedRecoveryPsbt:
    """Check ``psbt_text`` (the PSBT, the key, the officers' statements), then sign every input.

    Any failure raises before anything is signed. ``authority`` must be ``AuthorityEvidence``:
    there is no unchecked path through this function.
    """
    if not isinstance(authority, AuthorityEvidence):
        raise TypeError(
            "The recovery vault's signer needs the officers' AuthorityEvidence, not "
            f"{type(authority).__name__}."
        )
    psbt = parse_psbt(psbt_text)
    checked = check_recovery_psbt(psbt, policy, approval, fee_policy or FeePolicy())
    path = signer_path(policy, keys)
    authorization = check_before_signing(
        keys.bitcoin_root, authority, spend_under_review(psbt, policy), clock()
    )
    log.info(
        "recovery vault spend authorised: vault=%s txid=%s proposal_id=%s approvers=%s",
        approval.vault_name,
        checked.unsigned_txid,
        authorization.proposal_id,
        approvers_line(authorization),
    )
    sign_vault_psbt(psbt, policy, keys)
    log.info(
        "signed recovery vault spend: vault=%s txid=%s cosigner=%s path=%s inputs=%d fee_sats=%d",
        approval.vault_name,
        checked.unsigned_txid,
        keys.bitcoin_root.my_fingerprint.hex(),
        path.value,
        checked.input_count,
        checked.fee_sats,
    )
    return SignedRecoveryPsbt(str(psbt.to_string()), checked, path, authorization)
