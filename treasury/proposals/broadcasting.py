"""Release: sending a signed spend exactly once, tracking it to confirmation, resuming after a
restart.

Write-ahead: the broadcast intent is committed first; then the fully signed transaction and its
txid are recorded (``sealed_transactions``, the proposal's ``txid``) together with the ledger's
pending entry, and only then is it sent; the send is recorded last. So after a crash at any
point, the transaction on the chain already names its proposal: a retry, ``refresh``, ``resume``
and the reconciler (which settles a proposal's pending entry by its txid,
``treasury.reconcile.settlement``) all recognise it as this proposal's, in any order, and the
ledger holds and posts it once. A retry asks the chain (``ChainSpender.find_broadcast``) before
sending again, and adopts only its own transaction: found by the prepared hash, while the
proposal still holds its reservations (``reservations``) and no other proposal owns the txid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.audit import AuditKind
from treasury.policy import Action, current_policy
from treasury.proposals.context import WorkflowContext
from treasury.proposals.ports import ChainSpender, PreparedTx, SealedTx, SpendPosting
from treasury.proposals.reservations import holds_its_claims, release
from treasury.proposals.rows import locked, move, prepared, required_tx
from treasury.proposals.states import ProposalState, check_transition
from treasury.proposals.tables import PreparedTxRow, SealedTxRow, SpendProposalRow
from treasury.proposals.views import ProposalView, load_view
from treasury.workflow_exceptions import TransactionMismatchError, UnknownRecordError

DEFAULT_CONFIRMATIONS_REQUIRED = 1
"""Blocks after which a broadcast spend counts as confirmed, unless configured per asset."""


@dataclass(frozen=True)
class Started:
    """A broadcast under way: the transaction, what was sealed of it so far, whether a retry."""

    tx: PreparedTx
    sealed: SealedTx | None
    retry: bool


def broadcast(ctx: WorkflowContext, proposal_id: int, spender: ChainSpender) -> ProposalView:
    """Send a signed proposal's transaction exactly once, however often this is retried."""

    def begin(session: Session) -> Started | None:
        row = locked(session, proposal_id)
        if row.state in (ProposalState.BROADCAST.value, ProposalState.CONFIRMED.value):
            return None
        check_transition(row.id, ProposalState(row.state), ProposalState.BROADCAST)
        current = required_tx(session, row, "broadcast")  # signed implies prepared
        require_own_claims(session, row, current)
        if row.broadcast_started_at is not None:
            return Started(prepared(current), last_sealed(session, row.id, current.tx_hash), True)
        judged = ctx.judge(session, current_policy(session), row, Action.BROADCAST)
        ctx.ledger.ready(session, row.asset)
        row.broadcast_started_at = judged.context.now
        ctx.audit(
            session, AuditKind.BROADCAST, None, row, "broadcast_started",
            tx_hash=current.tx_hash, decision_id=judged.decision_id,
        )  # fmt: skip
        return Started(prepared(current), None, False)

    started = ctx.write(begin)
    if started is not None:
        tx = started.tx
        txid = spender.find_broadcast(tx, started.sealed) if started.retry else None
        if txid is None:
            sealed = spender.seal(tx)
            if ctx.write(lambda session: write_ahead(ctx, session, proposal_id, tx, sealed)):
                txid = spender.send(tx, sealed)
        if txid is not None:
            found = txid
            ctx.write(lambda session: record_broadcast(ctx, session, proposal_id, tx, found))
    return ctx.read(lambda session: load_view(session, proposal_id))


def require_own_claims(session: Session, row: SpendProposalRow, current: PreparedTxRow) -> None:
    """Refuse to send or adopt a transaction whose reservations the proposal no longer holds."""
    if not holds_its_claims(session, row.id, current.id):
        raise TransactionMismatchError(
            f"Proposal {row.id}'s transaction {current.tx_hash} no longer holds the Safe nonce or "
            "inputs reserved for it, so it is neither sent nor adopted from the chain."
        )


def last_sealed(session: Session, proposal_id: int, tx_hash: str) -> SealedTx | None:
    """The last signed transaction recorded for the proposal's ``tx_hash``, if any."""
    row = session.scalar(
        select(SealedTxRow)
        .where(SealedTxRow.proposal_id == proposal_id, SealedTxRow.tx_hash == tx_hash)
        .order_by(SealedTxRow.id.desc())
        .limit(1)
    )
    return None if row is None else SealedTx(row.txid, row.raw)


def claim_txid(session: Session, row: SpendProposalRow, txid: str) -> None:
    """Make ``txid`` the proposal's, refusing one another proposal owns."""
    other = session.scalar(
        select(SpendProposalRow.id).where(
            SpendProposalRow.txid == txid, SpendProposalRow.id != row.id
        )
    )
    owner = session.scalar(
        select(SealedTxRow.proposal_id).where(
            SealedTxRow.txid == txid, SealedTxRow.proposal_id != row.id
        )
    )
    if other is not None or owner is not None:
        raise TransactionMismatchError(
            f"Transaction {txid} belongs to proposal {other or owner}, not to proposal {row.id}; "
            "it is not adopted."
        )
    row.txid = txid


def hold(
    ctx: WorkflowContext, session: Session, row: SpendProposalRow, tx: PreparedTx, txid: str
) -> None:
    """Hold the spend in the ledger once (a later seal or record finds it held)."""
    ctx.ledger.hold(
        session, SpendPosting(row.id, row.asset, row.amount, tx.fee, row.destination, txid)
    )


def write_ahead(
    ctx: WorkflowContext, session: Session, proposal_id: int, tx: PreparedTx, sealed: SealedTx
) -> bool:
    """Record the signed transaction, its txid and the ledger hold before it is sent.

    ``False`` when a concurrent retry recorded the broadcast first (nothing is to be sent).
    """
    row = locked(session, proposal_id)
    if row.state != ProposalState.SIGNED.value:
        return False
    current = required_tx(session, row, "broadcast")
    if current.tx_hash != tx.tx_hash:
        raise TransactionMismatchError(
            f"Proposal {proposal_id}'s transaction is {current.tx_hash}, not {tx.tx_hash}."
        )
    require_own_claims(session, row, current)
    claim_txid(session, row, sealed.txid)
    known = session.scalar(
        select(SealedTxRow.id).where(
            SealedTxRow.proposal_id == row.id, SealedTxRow.txid == sealed.txid
        )
    )
    if known is None:
        session.add(
            SealedTxRow(
                proposal_id=row.id,
                tx_hash=tx.tx_hash,
                txid=sealed.txid,
                raw=sealed.raw,
                sealed_at=ctx.clock(),
            )
        )
        ctx.audit(session, AuditKind.BROADCAST, None, row, "sealed", txid=sealed.txid)
    hold(ctx, session, row, tx, sealed.txid)
    return True


def record_broadcast(
    ctx: WorkflowContext, session: Session, proposal_id: int, tx: PreparedTx, txid: str
) -> None:
    """Note that ``txid`` (this proposal's own) is on the chain and hold the spend, unless a
    concurrent retry did first."""
    row = locked(session, proposal_id)
    if row.state != ProposalState.SIGNED.value:
        return  # a concurrent retry recorded it first
    require_own_claims(session, row, required_tx(session, row, "broadcast"))
    claim_txid(session, row, txid)
    move(row, ProposalState.BROADCAST)
    row.broadcast_at = ctx.clock()
    hold(ctx, session, row, tx, txid)
    ctx.audit(session, AuditKind.BROADCAST, None, row, "broadcast", txid=txid)


def started_unrecorded(session: Session, proposal_id: int) -> bool:
    """Whether the proposal's broadcast began but was not recorded (a crash in between)."""
    row = session.get(SpendProposalRow, proposal_id)
    if row is None:
        raise UnknownRecordError(f"No spend proposal has the id {proposal_id}.")
    return row.state == ProposalState.SIGNED.value and row.broadcast_started_at is not None


def refresh(ctx: WorkflowContext, proposal_id: int, spender: ChainSpender) -> ProposalView:
    """Track a broadcast spend: post its ledger entry once confirmed, void it if it failed.

    A broadcast that began but was never recorded (a crash around the send) is finished first:
    its own transaction is adopted from the chain, or sent if it never got there.
    """
    if ctx.read(lambda session: started_unrecorded(session, proposal_id)):
        broadcast(ctx, proposal_id, spender)
    txid = ctx.read(lambda session: txid_if_broadcast(session, proposal_id))
    if txid is not None:
        depth = spender.confirmations(txid)
        ctx.write(lambda session: settle(ctx, session, proposal_id, depth))
    return ctx.read(lambda session: load_view(session, proposal_id))


def txid_if_broadcast(session: Session, proposal_id: int) -> str | None:
    """The proposal's txid while it is broadcast and unsettled, else ``None``."""
    row = session.get(SpendProposalRow, proposal_id)
    if row is None:
        raise UnknownRecordError(f"No spend proposal has the id {proposal_id}.")
    return row.txid if row.state == ProposalState.BROADCAST.value else None


def settle(ctx: WorkflowContext, session: Session, proposal_id: int, depth: int) -> None:
    """Confirm the spend at the asset's required depth, or fail it if the chain dropped it."""
    row = locked(session, proposal_id)
    if row.state != ProposalState.BROADCAST.value:
        return
    required = ctx.confirmations_required.get(row.asset, DEFAULT_CONFIRMATIONS_REQUIRED)
    if depth >= required:
        move(row, ProposalState.CONFIRMED)
        row.confirmed_at = ctx.clock()
        ctx.ledger.post(session, row.id)
        ctx.audit(session, AuditKind.BROADCAST, None, row, "confirmed", confirmations=depth)
    elif depth < 0:
        move(row, ProposalState.FAILED)
        now = ctx.clock()
        row.closed_at = now
        row.closed_reason = f"The chain reports transaction {row.txid} failed or was replaced."
        ctx.ledger.void(session, row.id)
        release(session, row.id, now, row.closed_reason)
        ctx.audit(session, AuditKind.BROADCAST, None, row, "failed", txid=row.txid or "")


def resume(ctx: WorkflowContext, spenders: Mapping[str, ChainSpender]) -> list[ProposalView]:
    """After a restart: finish every signed or broadcast spend whose chain is configured."""
    in_flight = ctx.read(
        lambda session: session.execute(
            select(SpendProposalRow.id, SpendProposalRow.asset, SpendProposalRow.state)
            .where(
                SpendProposalRow.state.in_(
                    [ProposalState.SIGNED.value, ProposalState.BROADCAST.value]
                )
            )
            .order_by(SpendProposalRow.id)
        ).all()
    )
    views: list[ProposalView] = []
    for proposal_id, asset, state in in_flight:
        spender = spenders.get(asset)
        if spender is None:
            continue
        if state == ProposalState.SIGNED.value:
            broadcast(ctx, proposal_id, spender)
        views.append(refresh(ctx, proposal_id, spender))
    return views
