"""Spending from a vault: build and approve, sign per institution, combine and broadcast, bump.

Each institution's signature comes from its share holders: their quorum of shares is
recombined in memory, the recovered key must have the transcript's fingerprint (a wrong
passphrase silently yields another seed), the signer checks the PSBT against the approval,
signs, and the seed is wiped. Only partially signed PSBTs (public data) are stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.authority.gate import AuthorityEvidence
from custody.authority.quorum import VerifiedAuthorization
from custody.bitcoin.approval import ApprovedSpend, FeePolicy, Payment
from custody.bitcoin.psbt import fund_psbt, parse_psbt, unsigned_txid
from custody.bitcoin.rpc import BitcoinRPC
from custody.bitcoin.signer import check_psbt, cosign_psbt
from custody.bitcoin.vault import Vault, load_vault, vault_record
from custody.clock import Clock, utc_now
from custody.exceptions import (
    InvalidPaymentError,
    NotACosignerError,
    SpendStateError,
    UnknownSpendError,
)
from custody.keys import signing_keys
from custody.records import SpendRecord, SpendSignatureRecord, SpendState
from custody.shamir import ShareMnemonic, combine_shares

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Spend:
    """A spend as stored: the unsigned PSBT, its approval, and who has signed."""

    id: int
    vault_name: str
    state: SpendState
    unsigned_psbt: str
    approval: ApprovedSpend
    fee_sats: int
    fee_rate_sat_vb: Decimal
    signed_by: tuple[str, ...]
    txid: str | None
    replaces_id: int | None
    authorization: VerifiedAuthorization | None = None
    """Only on what ``sign_spend`` returns, and only if it was given the officers' authority:
    whose signed approvals the signer verified in that call. Never stored; ``None`` when loaded."""


def _spend_from_record(record: SpendRecord) -> Spend:
    return Spend(
        id=record.id,
        vault_name=record.vault.name,
        state=record.state,
        unsigned_psbt=record.unsigned_psbt,
        approval=approval_of(record),
        fee_sats=record.fee_sats,
        fee_rate_sat_vb=record.fee_rate_sat_vb,
        signed_by=tuple(s.ceremony.institution for s in record.signatures),
        txid=record.txid,
        replaces_id=record.replaces_id,
    )


def approval_of(record: SpendRecord) -> ApprovedSpend:
    return ApprovedSpend(
        vault_name=record.vault.name,
        payments=tuple(Payment(p["address"], int(p["amount_sats"])) for p in record.payments),
        max_fee_sats=record.max_fee_sats,
        unsigned_txid=record.unsigned_txid,
    )


def _record(session: Session, spend_id: int) -> SpendRecord:
    record = session.get(SpendRecord, spend_id)
    if record is None:
        raise UnknownSpendError(f"No spend with id {spend_id} exists.")
    return record


def load_spend(session: Session, spend_id: int) -> Spend:
    return _spend_from_record(_record(session, spend_id))


def _validate_fee_rate(fee_rate_sat_vb: Decimal, policy: FeePolicy) -> None:
    if not 0 < fee_rate_sat_vb <= policy.max_fee_rate_sat_vb:
        raise InvalidPaymentError(
            f"The fee rate must be above 0 and at most {policy.max_fee_rate_sat_vb} sat/vB; "
            f"got {fee_rate_sat_vb}."
        )


def _add_spend(
    session: Session,
    vault: Vault,
    psbt_text: str,
    payments: Sequence[Payment],
    fee_sats: int,
    fee_rate_sat_vb: Decimal,
    max_fee_sats: int,
    policy: FeePolicy,
    clock: Clock,
    replaces: SpendRecord | None = None,
) -> Spend:
    approval = ApprovedSpend(
        vault_name=vault.name,
        payments=tuple(payments),
        max_fee_sats=max_fee_sats,
        unsigned_txid=unsigned_txid(parse_psbt(psbt_text)),
    )
    # What signers will check, checked once here so a bad build never reaches them.
    check_psbt(parse_psbt(psbt_text), vault.descriptor, approval, policy)
    record = SpendRecord(
        vault_id=vault_record(session, vault.name).id,
        state=SpendState.BUILT,
        unsigned_psbt=psbt_text,
        unsigned_txid=approval.unsigned_txid,
        payments=[p.as_dict() for p in payments],
        fee_sats=fee_sats,
        max_fee_sats=max_fee_sats,
        fee_rate_sat_vb=fee_rate_sat_vb,
        replaces_id=replaces.id if replaces is not None else None,
        created_at=clock(),
    )
    session.add(record)
    session.flush()
    log.info(
        "spend built: spend_id=%d vault=%s unsigned_txid=%s fee_sats=%d",
        record.id,
        vault.name,
        approval.unsigned_txid,
        fee_sats,
    )
    return _spend_from_record(record)


def build_spend(
    session: Session,
    rpc: BitcoinRPC,
    vault_name: str,
    payments: Sequence[Payment],
    fee_rate_sat_vb: Decimal,
    max_fee_sats: int,
    *,
    policy: FeePolicy | None = None,
    clock: Clock = utc_now,
) -> Spend:
    """Fund an unsigned PSBT paying ``payments`` and record its approval (the caller commits)."""
    policy = policy or FeePolicy()
    _validate_fee_rate(fee_rate_sat_vb, policy)
    if not payments:
        raise InvalidPaymentError("A spend needs at least one payment.")
    vault = load_vault(session, vault_name)
    psbt_text, fee = fund_psbt(rpc.wallet(vault.wallet_name), payments, fee_rate_sat_vb)
    return _add_spend(
        session, vault, psbt_text, payments, fee, fee_rate_sat_vb, max_fee_sats, policy, clock
    )


def sign_spend(
    session: Session,
    spend_id: int,
    institution: str,
    shares: Sequence[ShareMnemonic],
    passphrase: str = "",
    *,
    policy: FeePolicy | None = None,
    clock: Clock = utc_now,
    authority: AuthorityEvidence | None = None,
) -> Spend:
    """Recombine ``institution``'s seed from ``shares``, check, sign and store its signatures.

    Raises before any write if the shares, the fingerprint, the PSBT or the approval are wrong.
    With ``authority`` (the roster chain and the officers' signed statements), the signer also
    verifies, after recombining the seed and before signing, that the genesis is this
    institution's ceremony's, that the chain replays and that a quorum of statements names the
    spend decoded from the stored PSBT (``custody.bitcoin.signer.cosign_psbt``); the returned
    ``Spend.authorization`` names the approvers. ``authority`` is optional for this release only
    (staging): it becomes mandatory once every flow produces statements.
    """
    record = _record(session, spend_id)
    if record.state is not SpendState.BUILT:
        raise SpendStateError(
            f"Spend {spend_id} is {record.state.value}; only a built spend can be signed."
        )
    vault = load_vault(session, record.vault.name)
    cosigner = next((t for t in vault.cosigners if t.institution == institution), None)
    if cosigner is None:
        raise NotACosignerError(
            f"{institution!r} is not a cosigner of vault {vault.name!r} "
            f"(cosigners: {', '.join(t.institution for t in vault.cosigners)})."
        )
    if any(s.ceremony.institution == institution for s in record.signatures):
        raise SpendStateError(f"{institution!r} has already signed spend {spend_id}.")
    seed = combine_shares(shares, passphrase)
    with signing_keys(seed, cosigner.fingerprint) as keys:
        signed = cosign_psbt(
            record.unsigned_psbt,
            vault.descriptor,
            approval_of(record),
            keys,
            policy,
            authority=authority,
            clock=clock,
        )
    ceremony_id = next(
        c.ceremony_id
        for c in vault_record(session, vault.name).cosigners
        if c.ceremony.institution == institution
    )
    record.signatures.append(
        SpendSignatureRecord(ceremony_id=ceremony_id, signed_psbt=signed.psbt, signed_at=clock())
    )
    session.flush()
    log.info("spend signed: spend_id=%d institution=%s", spend_id, institution)
    return replace(_spend_from_record(record), authorization=signed.authorization)


def broadcast_spend(
    session: Session, rpc: BitcoinRPC, spend_id: int, *, clock: Clock = utc_now
) -> str:
    """Combine the stored signatures, finalize and broadcast; returns the txid."""
    record = _record(session, spend_id)
    if record.state is not SpendState.BUILT:
        raise SpendStateError(
            f"Spend {spend_id} is {record.state.value}; it cannot be broadcast again."
        )
    threshold = record.vault.threshold
    if len(record.signatures) < threshold:
        raise SpendStateError(
            f"Spend {spend_id} has {len(record.signatures)} of the {threshold} institutions' "
            "signatures it needs; collect more with `treasury btc spend sign`."
        )
    combined = rpc.call("combinepsbt", [s.signed_psbt for s in record.signatures])
    finalized = rpc.call("finalizepsbt", combined)
    if not finalized["complete"]:
        raise SpendStateError(f"Spend {spend_id}'s signatures do not complete the transaction.")
    txid = str(rpc.call("sendrawtransaction", finalized["hex"]))
    record.state = SpendState.BROADCAST
    record.txid = txid
    record.broadcast_at = clock()
    if record.replaces_id is not None:
        _record(session, record.replaces_id).state = SpendState.REPLACED
    session.flush()
    log.info("spend broadcast: spend_id=%d txid=%s", spend_id, txid)
    return txid


def bump_spend(
    session: Session,
    rpc: BitcoinRPC,
    spend_id: int,
    fee_rate_sat_vb: Decimal,
    max_fee_sats: int,
    *,
    policy: FeePolicy | None = None,
    clock: Clock = utc_now,
) -> Spend:
    """Build a replace-by-fee successor of a broadcast spend; it needs its own signatures.

    The new PSBT pays the same approved payments (less change, more fee); its approval is bound
    to its own unsigned transaction's hash.
    """
    policy = policy or FeePolicy()
    _validate_fee_rate(fee_rate_sat_vb, policy)
    original = _record(session, spend_id)
    if original.state is not SpendState.BROADCAST or original.txid is None:
        raise SpendStateError(
            f"Spend {spend_id} is {original.state.value}; only a broadcast, unconfirmed spend "
            "can be fee-bumped."
        )
    vault = load_vault(session, original.vault.name)
    bumped = rpc.wallet(vault.wallet_name).call(
        "psbtbumpfee", original.txid, {"fee_rate": fee_rate_sat_vb}
    )
    psbt_text = str(bumped["psbt"])
    fee = int(parse_psbt(psbt_text).fee())
    payments = approval_of(original).payments
    return _add_spend(
        session,
        vault,
        psbt_text,
        payments,
        fee,
        fee_rate_sat_vb,
        max_fee_sats,
        policy,
        clock,
        replaces=original,
    )


def list_spends(session: Session, vault_name: str) -> list[Spend]:
    vault_id = vault_record(session, vault_name).id
    records = session.scalars(
        select(SpendRecord).where(SpendRecord.vault_id == vault_id).order_by(SpendRecord.id)
    )
    return [_spend_from_record(r) for r in records]
