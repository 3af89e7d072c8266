"""The cosigner's signer: it decodes the PSBT itself and signs only what was approved.

Lessons of real thefts: a signer that trusts its coordinator signs whatever it is shown. Before
any signature this module checks, from the PSBT bytes alone, that the unsigned transaction is
the approved one (hash), that every input is a coin of the vault's descriptors, that every
output is an approved payment or the vault's own change, and that the fee is sane.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from embit.psbt import PSBT, InputScope, OutputScope
from embit.transaction import SIGHASH

from custody.bitcoin.approval import ApprovedSpend, FeePolicy
from custody.bitcoin.descriptor import Branch, VaultDescriptor
from custody.bitcoin.psbt import estimate_vsize, parse_psbt, unsigned_txid
from custody.exceptions import (
    AbsurdFeeError,
    ForeignChangeError,
    ForeignInputError,
    NotACosignerError,
    SpendApprovalMismatchError,
)
from custody.keys import SigningKeys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckedSpend:
    """What the signer verified: safe to log and show."""

    unsigned_txid: str
    input_count: int
    paid_sats: int
    change_sats: int
    fee_sats: int
    vsize: int

    @property
    def fee_rate_sat_vb(self) -> Decimal:
        """For display only: the fee checks compare integers."""
        return Decimal(self.fee_sats) / self.vsize


def _outpoint(inp: InputScope) -> str:
    return f"{inp.txid.hex()}:{inp.vout}"


def _check_input(position: int, inp: InputScope, vault: VaultDescriptor) -> None:
    where = f"Input {position} ({_outpoint(inp)})"
    if inp.witness_utxo is None:
        raise ForeignInputError(f"{where} carries no witness UTXO; a vault coin always has one.")
    if inp.non_witness_utxo is not None:
        previous = inp.non_witness_utxo
        if previous.txid() != inp.txid or inp.vout >= len(previous.vout):
            raise ForeignInputError(
                f"{where} comes with a previous transaction that is not its own."
            )
        spent = previous.vout[inp.vout]
        if (
            spent.value != inp.witness_utxo.value
            or spent.script_pubkey != inp.witness_utxo.script_pubkey
        ):
            raise ForeignInputError(
                f"{where} claims {inp.witness_utxo.value} sats but its previous transaction says "
                f"{spent.value}: the amount was forged."
            )
    if inp.sighash_type not in (None, SIGHASH.ALL):
        raise SpendApprovalMismatchError(
            f"{where} asks for sighash type {inp.sighash_type}; only SIGHASH_ALL is signed."
        )
    located = {vault.locate(derivation) for derivation in inp.bip32_derivations.values()}
    located.discard(None)
    if len(located) != 1:
        raise ForeignInputError(
            f"{where} is not a coin of this vault: its key derivations do not point to exactly "
            "one receive or change index of the vault's cosigner keys."
        )
    branch, index = located.pop()  # type: ignore[misc]
    expected_script = vault.script_pubkey(branch, index)
    if inp.witness_utxo.script_pubkey != expected_script:
        raise ForeignInputError(
            f"{where} pays to {inp.witness_utxo.script_pubkey.address(vault.network.params)}, "
            f"not to the vault's {branch.name.lower()} address {index}; it is not a vault coin."
        )
    if inp.witness_script != vault.witness_script(branch, index):
        raise ForeignInputError(f"{where} carries a witness script that is not the vault's.")
    if not set(pub.sec() for pub in inp.bip32_derivations) <= vault.derived_public_keys(
        branch, index
    ):
        raise ForeignInputError(f"{where} lists keys that are not the vault's at that index.")


def _is_vault_change(out: OutputScope, vault: VaultDescriptor) -> bool:
    for derivation in out.bip32_derivations.values():
        located = vault.locate(derivation)
        if located is not None and located[0] is Branch.CHANGE:
            return bool(out.script_pubkey == vault.script_pubkey(Branch.CHANGE, located[1]))
    return False


def check_psbt(
    psbt: PSBT, vault: VaultDescriptor, approval: ApprovedSpend, policy: FeePolicy
) -> CheckedSpend:
    """Refuse, with a specific error, anything in ``psbt`` that the approval does not cover."""
    txid = unsigned_txid(psbt)
    if txid != approval.unsigned_txid:
        raise SpendApprovalMismatchError(
            f"The PSBT's unsigned transaction is {txid}, but the approval is for "
            f"{approval.unsigned_txid}: it was altered after approval; approve it again."
        )
    for position, inp in enumerate(psbt.inputs):
        _check_input(position, inp, vault)
    expected = Counter((p.script_pubkey.data, p.amount_sats) for p in approval.payments)
    paid = change = 0
    for position, out in enumerate(psbt.outputs):
        key = (out.script_pubkey.data, out.value)
        if expected[key] > 0:
            expected[key] -= 1
            paid += out.value
        elif _is_vault_change(out, vault):
            change += out.value
        else:
            raise ForeignChangeError(
                f"Output {position} pays {out.value} sats to "
                f"{out.script_pubkey.address(vault.network.params)}, which is neither an approved "
                "payment nor the vault's change descriptor; refusing to sign."
            )
    missing = [p for p in approval.payments if expected[(p.script_pubkey.data, p.amount_sats)] > 0]
    if missing:
        raise SpendApprovalMismatchError(
            f"The approved payment of {missing[0].amount_sats} sats to {missing[0].address} is "
            "missing from the PSBT."
        )
    fee = int(psbt.fee())
    vsize = estimate_vsize(psbt, vault.threshold)
    if fee > approval.max_fee_sats:
        raise AbsurdFeeError(
            f"The fee of {fee} sats exceeds the approved maximum of {approval.max_fee_sats} sats."
        )
    if fee > policy.max_fee_sats:
        raise AbsurdFeeError(
            f"The fee of {fee} sats exceeds the signer's absolute cap of {policy.max_fee_sats} sats."
        )
    if fee > policy.max_fee_rate_sat_vb * vsize:
        raise AbsurdFeeError(
            f"The fee of {fee} sats for about {vsize} vB exceeds the signer's cap of "
            f"{policy.max_fee_rate_sat_vb} sat/vB."
        )
    return CheckedSpend(txid, len(psbt.inputs), paid, change, fee, vsize)


def sign_psbt(
    psbt_text: str,
    vault: VaultDescriptor,
    approval: ApprovedSpend,
    keys: SigningKeys,
    policy: FeePolicy | None = None,
) -> str:
    """Check ``psbt_text`` against the vault and the approval, then add this cosigner's signatures.

    Returns the PSBT with one signature per input from ``keys``; raises before signing anything
    if a check fails.
    """
    psbt = parse_psbt(psbt_text)
    checked = check_psbt(psbt, vault, approval, policy or FeePolicy())
    fingerprint = keys.bitcoin_root.my_fingerprint.hex()
    if fingerprint not in vault.fingerprints:
        raise NotACosignerError(
            f"The key with fingerprint {fingerprint} is not a cosigner of vault "
            f"{approval.vault_name!r}."
        )
    signatures = psbt.sign_with(keys.bitcoin_root)
    if signatures != len(psbt.inputs):
        raise NotACosignerError(
            f"The key with fingerprint {fingerprint} could sign only {signatures} of "
            f"{len(psbt.inputs)} inputs; the PSBT lacks its key derivations."
        )
    log.info(
        "signed spend: vault=%s txid=%s cosigner=%s inputs=%d fee_sats=%d",
        approval.vault_name,
        checked.unsigned_txid,
        fingerprint,
        checked.input_count,
        checked.fee_sats,
    )
    return str(psbt.to_string())
