"""Spending from a vault: build and approve, sign per institution, combine and broadcast, bump.

Each institution's signature comes from its share holders: their quorum of shares is
recombined in memory, the recovered key must have the transcript's fingerprint (a wrong
passphrase silently yields another seed), the signer checks the PSBT against the approval and
the officers' authority, signs, and the seed is wiped. Only partially signed PSBTs (public data)
are stored.

Break-glass: an institution whose share holders signed without the officers' statements
(``BreakGlass``) leaves a mark in its signed PSBT. A spend carrying any such mark is broadcast
only with a valid signature of EVERY cosigner of the vault, whatever the threshold: in an
emergency, no officer vouches for the transaction, so all the institutions' quorums must.

A caller that reserves coins (the treasury's proposals) builds with ``avoid``: those outpoints are
locked in the watch-only wallet for the one funding call, so bitcoind's coin selection skips them.
A caller that records what it sends before sending (write-ahead) finalizes with
``finalize_spend``, sends with ``send_finalized`` and lets ``broadcast_spend`` do both otherwise.

A sweep (a vault rotation's: every coin to the new vault) is an ordinary spend whose amount
``sweep_quote`` computes first, from the coins' real sizes; ``build_spend`` then funds it with
every coin when coin selection's estimate falls a few sats short. A stuck spend is replaced by
fee with ``bump_spend`` (the same payments, less change, more fee, under its own ceiling).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.authority.gate import Authority, IncompleteBreakGlassError
from custody.authority.quorum import VerifiedAuthorization
from custody.bitcoin.approval import ApprovedSpend, FeePolicy, Payment
from custody.bitcoin.psbt import fund_psbt, parse_psbt, unsigned_txid
from custody.bitcoin.rpc import BitcoinRPC, btc_to_sats, sats_to_btc
from custody.bitcoin.signer import (
    break_glass_marks,
    check_psbt,
    cosign_psbt,
    signed_fingerprints,
)
from custody.bitcoin.vault import Vault, load_vault, vault_record
from custody.clock import Clock, utc_now
from custody.exceptions import (
    BitcoinRPCError,
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
    """Only on what ``sign_spend`` returns, when it was given the officers' evidence: whose signed
    approvals the signer verified in that call. Never stored; ``None`` when loaded."""
    break_glass: str | None = None
    """Only on what ``sign_spend`` returns, when the holders signed under break-glass: their
    reason (the signed PSBT also carries it as a mark). ``None`` when loaded."""


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


@dataclass(frozen=True, order=True)
class Outpoint:
    """A coin: the transaction that created it and the output's index."""

    txid: str
    vout: int


@dataclass(frozen=True)
class Finalized:
    """A spend's fully signed transaction, not yet sent."""

    txid: str
    raw_hex: str


def spend_inputs(psbt_text: str) -> tuple[Outpoint, ...]:
    """The coins a PSBT spends, in input order."""
    return tuple(Outpoint(inp.txid.hex(), int(inp.vout)) for inp in parse_psbt(psbt_text).inputs)


@contextmanager
def _locked_coins(wallet: BitcoinRPC, avoid: Collection[Outpoint]) -> Iterator[None]:
    """Lock the wallet's unspent ``avoid`` coins for the block, unlocking exactly those after.

    Coins already locked by someone else, or not in the wallet's unspent set, are left alone.
    """
    if not avoid:
        yield
        return
    wanted = {(o.txid, o.vout) for o in avoid}
    locked = {(c["txid"], int(c["vout"])) for c in wallet.call("listlockunspent")}
    unspent = {
        (c["txid"], int(c["vout"])) for c in wallet.call("listunspent", 0, 9999999, [], True)
    }
    ours = [{"txid": t, "vout": v} for t, v in sorted((wanted & unspent) - locked)]
    if ours:
        wallet.call("lockunspent", False, ours)
    try:
        yield
    finally:
        if ours:
            wallet.call("lockunspent", True, ours)


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


RPC_INSUFFICIENT_FUNDS_CODE = -4
"""``walletcreatefundedpsbt``: "Insufficient funds" (bitcoind's ``RPC_WALLET_ERROR``)."""
SWEEP_FEE_SLACK_SATS = 4096
"""The most a sweep's fee may exceed bitcoind's subtract-fee estimate before the quote gives up
(in practice a few sats: the two funding paths round input sizes differently)."""


def _fund_with_every_coin(
    wallet: BitcoinRPC, payments: Sequence[Payment], fee_rate_sat_vb: Decimal
) -> tuple[str, int]:
    """Fund ``payments`` with every confirmed, unlocked coin of the wallet as inputs.

    Coin selection estimates each coin's spending cost; when a payment needs every coin (a
    sweep, whose amount ``sweep_quote`` computed from the coins' real sizes) that estimate can
    fall a few sats short and bitcoind answers "Insufficient funds". With every coin preselected
    the fee is computed from the real sizes, so the sweep funds exactly (with no change). A
    payment that truly exceeds the vault still fails, with bitcoind's own error.
    """
    locked = {(c["txid"], int(c["vout"])) for c in wallet.call("listlockunspent")}
    coins = [
        {"txid": c["txid"], "vout": int(c["vout"])}
        for c in wallet.call("listunspent", 1, 9999999, [], False)
        if (c["txid"], int(c["vout"])) not in locked
    ]
    outputs = [{payment.address: sats_to_btc(payment.amount_sats)} for payment in payments]
    funded = wallet.call(
        "walletcreatefundedpsbt",
        coins,
        outputs,
        0,
        {
            "fee_rate": fee_rate_sat_vb,
            "replaceable": True,
            "includeWatching": True,
            "add_inputs": False,
        },
        True,
    )
    return str(funded["psbt"]), int(parse_psbt(str(funded["psbt"])).fee())


@dataclass(frozen=True)
class SweepQuote:
    """What sweeping every coin of a vault to one address moves: all of it, less the fee."""

    inputs: int
    """How many coins the sweep spends (every confirmed coin of the vault)."""
    total_sats: int
    fee_sats: int

    @property
    def amount_sats(self) -> int:
        """What arrives at the destination: the vault's whole balance less the fee."""
        return self.total_sats - self.fee_sats


def sweep_quote(
    session: Session,
    rpc: BitcoinRPC,
    vault_name: str,
    destination: str,
    fee_rate_sat_vb: Decimal,
    *,
    policy: FeePolicy | None = None,
) -> SweepQuote:
    """The amount a sweep of every coin of ``vault_name`` to ``destination`` pays, at this fee rate.

    A proposal names a fixed amount, so the sweep's amount is computed first: bitcoind funds a
    trial PSBT with every confirmed coin as input, one output to ``destination`` and the fee
    taken from that output. Nothing is recorded; the sweep itself is then an ordinary spend of
    that amount, which needs every coin and leaves no change. A vault with unconfirmed coins is
    refused: a sweep must leave nothing behind.
    """
    policy = policy or FeePolicy()
    _validate_fee_rate(fee_rate_sat_vb, policy)
    vault = load_vault(session, vault_name)
    wallet = rpc.wallet(vault.wallet_name)
    coins = wallet.call("listunspent", 0, 9999999, [], True)
    if not coins:
        raise InvalidPaymentError(
            f"Vault {vault_name!r} holds no coins; there is nothing to sweep."
        )
    unconfirmed = [c for c in coins if int(c["confirmations"]) < 1]
    if unconfirmed:
        raise InvalidPaymentError(
            f"Vault {vault_name!r} has {len(unconfirmed)} unconfirmed coin(s); a sweep waits until "
            "every coin is confirmed, so that none is left behind."
        )
    total = sum(btc_to_sats(Decimal(str(c["amount"]))) for c in coins)
    trial = wallet.call(
        "walletcreatefundedpsbt",
        [{"txid": c["txid"], "vout": int(c["vout"])} for c in coins],
        [{destination: sats_to_btc(total)}],
        0,
        {
            "fee_rate": fee_rate_sat_vb,
            "replaceable": True,
            "includeWatching": True,
            "add_inputs": False,
            "subtractFeeFromOutputs": [0],
        },
        True,
    )
    fee = int(parse_psbt(str(trial["psbt"])).fee())
    # Funded without subtracting the fee (as ``build_spend`` funds it), bitcoind counts a few
    # sats more; the amount is lowered until that funding succeeds, and the rest is the fee.
    network = vault.descriptor.network
    gap = 0
    while True:
        amount = total - fee - gap
        try:
            _fund_with_every_coin(wallet, [Payment(destination, amount, network)], fee_rate_sat_vb)
        except BitcoinRPCError as exc:
            if exc.code != RPC_INSUFFICIENT_FUNDS_CODE or gap >= SWEEP_FEE_SLACK_SATS:
                raise
            gap = max(1, gap * 2)
            continue
        return SweepQuote(len(coins), total, total - amount)


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
    avoid: Collection[Outpoint] = (),
) -> Spend:
    """Fund an unsigned PSBT paying ``payments`` and record its approval (the caller commits).

    ``avoid``: outpoints the coin selection must not use (coins reserved for other spends).
    """
    policy = policy or FeePolicy()
    _validate_fee_rate(fee_rate_sat_vb, policy)
    if not payments:
        raise InvalidPaymentError("A spend needs at least one payment.")
    vault = load_vault(session, vault_name)
    wallet = rpc.wallet(vault.wallet_name)
    with _locked_coins(wallet, avoid):
        try:
            psbt_text, fee = fund_psbt(wallet, payments, fee_rate_sat_vb)
        except BitcoinRPCError as exc:
            if exc.code != RPC_INSUFFICIENT_FUNDS_CODE:
                raise
            try:
                psbt_text, fee = _fund_with_every_coin(wallet, payments, fee_rate_sat_vb)
            except BitcoinRPCError:
                raise exc from None  # more than every coin pays: bitcoind's first answer
    used = set(spend_inputs(psbt_text)) & set(avoid)
    if used:
        raise InvalidPaymentError(
            f"The wallet funded the spend with reserved coin(s) {sorted(used)}; nothing was built."
        )
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
    authority: Authority,
) -> Spend:
    """Recombine ``institution``'s seed from ``shares``, check, sign and store its signatures.

    Raises before any write if the shares, the fingerprint, the PSBT, the approval or the
    authority are wrong. ``authority`` is required: with ``AuthorityEvidence`` (the roster chain
    and the officers' signed statements) the signer verifies, after recombining the seed and
    before signing, that the genesis is this institution's ceremony's, that the chain replays
    and that a quorum of statements names the spend decoded from the stored PSBT
    (``custody.bitcoin.signer.cosign_psbt``); the returned ``Spend.authorization`` names the
    approvers. With ``BreakGlass`` it signs without statements, logs a warning, and the stored
    signed PSBT carries the break-glass mark; ``Spend.break_glass`` is the reason.
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
    return replace(
        _spend_from_record(record),
        authorization=signed.authorization,
        break_glass=signed.break_glass,
    )


def break_glass_reasons(session: Session, spend_id: int) -> dict[str, str]:
    """The break-glass marks in spend ``spend_id``'s stored signatures: fingerprint -> reason."""
    marks: dict[str, str] = {}
    for signature in _record(session, spend_id).signatures:
        marks.update(break_glass_marks(parse_psbt(signature.signed_psbt)))
    return marks


def _require_every_cosigner(session: Session, record: SpendRecord, why: str) -> None:
    """Refuse unless every cosigner of the vault has a valid signature on every input."""
    vault = load_vault(session, record.vault.name)
    unsigned = parse_psbt(record.unsigned_psbt)
    signed: set[str] = set()
    for signature in record.signatures:
        signed |= signed_fingerprints(unsigned, parse_psbt(signature.signed_psbt))
    missing = tuple(t.institution for t in vault.cosigners if t.fingerprint.lower() not in signed)
    if missing:
        raise IncompleteBreakGlassError(
            f"Spend {record.id} was signed under break-glass ({why}), so it needs the signature "
            f"of every cosigner of vault {vault.name!r}, not just {vault.descriptor.threshold}; "
            f"missing: {', '.join(missing)}. Each must sign with `treasury btc spend sign "
            "--break-glass`; nothing was broadcast.",
            missing,
        )


def finalize_spend(
    session: Session,
    rpc: BitcoinRPC,
    spend_id: int,
    *,
    require_every_cosigner: bool = False,
) -> Finalized:
    """Combine the stored signatures and finalize, without sending or writing anything.

    A spend any of whose signatures carries a break-glass mark, or one the caller knows was
    signed under break-glass (``require_every_cosigner``, e.g. from the treasury's append-only
    record of break-glass signatures), is finalized only once every cosigner of the vault has
    signed every input (``IncompleteBreakGlassError`` names who is missing).
    """
    record = _record(session, spend_id)
    if record.state is not SpendState.BUILT:
        raise SpendStateError(
            f"Spend {spend_id} is {record.state.value}; it cannot be broadcast again."
        )
    marks = break_glass_reasons(session, spend_id)
    if marks or require_every_cosigner:
        why = (
            f"by the cosigner(s) with fingerprint {', '.join(sorted(marks))}"
            if marks
            else "as the treasury's break-glass record says"
        )
        _require_every_cosigner(session, record, why)
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
    raw_hex = str(finalized["hex"])
    txid = str(rpc.call("decoderawtransaction", raw_hex)["txid"])
    return Finalized(txid, raw_hex)


RPC_ALREADY_KNOWN_CODES = (-27,)
"""``sendrawtransaction``: "Transaction already in block chain" (also outputs already spent)."""


def send_finalized(
    session: Session, rpc: BitcoinRPC, spend_id: int, sent: Finalized, *, clock: Clock = utc_now
) -> str:
    """Send a finalized spend (the chain already having it is not an error) and record it."""
    _record(session, spend_id)  # an unknown spend is refused before anything is sent
    try:
        txid = str(rpc.call("sendrawtransaction", sent.raw_hex))
    except BitcoinRPCError as exc:
        if exc.code not in RPC_ALREADY_KNOWN_CODES and "already" not in exc.message.lower():
            raise
        txid = sent.txid
    if txid != sent.txid:
        raise SpendStateError(f"The node accepted {txid}, not the finalized {sent.txid}.")
    mark_broadcast(session, spend_id, txid, clock=clock)
    log.info("spend broadcast: spend_id=%d txid=%s", spend_id, txid)
    return txid


def mark_broadcast(session: Session, spend_id: int, txid: str, *, clock: Clock = utc_now) -> None:
    """Record that spend ``spend_id`` reached the network as ``txid`` (once; a later call for a
    recorded spend changes nothing), e.g. when a caller finds it on chain after a crash."""
    record = _record(session, spend_id)
    if record.state is not SpendState.BUILT:
        return
    if txid != record.unsigned_txid:
        raise SpendStateError(
            f"Spend {spend_id} is transaction {record.unsigned_txid}, not {txid}."
        )
    record.state = SpendState.BROADCAST
    record.txid = txid
    record.broadcast_at = clock()
    if record.replaces_id is not None:
        _record(session, record.replaces_id).state = SpendState.REPLACED
    session.flush()


def broadcast_spend(
    session: Session,
    rpc: BitcoinRPC,
    spend_id: int,
    *,
    clock: Clock = utc_now,
    require_every_cosigner: bool = False,
) -> str:
    """Combine the stored signatures, finalize and broadcast; returns the txid.

    The checks are ``finalize_spend``'s (break-glass spends need every cosigner).
    """
    sent = finalize_spend(session, rpc, spend_id, require_every_cosigner=require_every_cosigner)
    return send_finalized(session, rpc, spend_id, sent, clock=clock)


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
