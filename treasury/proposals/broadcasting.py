"""Release: sending a signed spend exactly once, tracking it to confirmation, resuming after a
restart.

The broadcast intent, the txid and the confirmation are each committed before the next step
starts. A retry after a crash asks the chain (``ChainSpender.find_broadcast``) whether the
transaction was already sent before sending it, so a proposal is broadcast at most once. The
ledger holds a pending entry from broadcast on, posted at confirmation or voided on failure.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.audit import AuditKind
from treasury.policy import Action, current_policy
from treasury.proposals.context import WorkflowContext
from treasury.proposals.ports import ChainSpender, PreparedTx, SpendPosting
from treasury.proposals.rows import locked, move, prepared, required_tx
from treasury.proposals.states import ProposalState, check_transition
from treasury.proposals.tables import SpendProposalRow
from treasury.proposals.views import ProposalView, load_view
from treasury.workflow_exceptions import UnknownRecordError

DEFAULT_CONFIRMATIONS_REQUIRED = 1
"""Blocks after which a broadcast spend counts as confirmed, unless configured per asset."""


def broadcast(ctx: WorkflowContext, proposal_id: int, spender: ChainSpender) -> ProposalView:
    """Send a signed proposal's transaction exactly once, however often this is retried."""

    def begin(session: Session) -> tuple[PreparedTx, bool] | None:
        row = locked(session, proposal_id)
        if row.state in (ProposalState.BROADCAST.value, ProposalState.CONFIRMED.value):
            return None
        check_transition(row.id, ProposalState(row.state), ProposalState.BROADCAST)
        current = required_tx(session, row, "broadcast")  # signed implies prepared
        if row.broadcast_started_at is not None:
            return prepared(current), True
        judged = ctx.judge(session, current_policy(session), row, Action.BROADCAST)
        ctx.ledger.ready(session, row.asset)
        row.broadcast_started_at = judged.context.now
        ctx.audit(
            session, AuditKind.BROADCAST, None, row, "broadcast_started",
            tx_hash=current.tx_hash, decision_id=judged.decision_id,
        )  # fmt: skip
        return prepared(current), False

    started = ctx.write(begin)
    if started is not None:
        tx, retry = started
        txid = spender.find_broadcast(tx) if retry else None
        if txid is None:
            txid = spender.broadcast(tx)
        ctx.write(lambda session: record_broadcast(ctx, session, proposal_id, tx, txid))
    return ctx.read(lambda session: load_view(session, proposal_id))


def record_broadcast(
    ctx: WorkflowContext, session: Session, proposal_id: int, tx: PreparedTx, txid: str
) -> None:
    """Note the txid and hold the spend in the ledger, unless a concurrent retry did first."""
    row = locked(session, proposal_id)
    if row.state != ProposalState.SIGNED.value:
        return  # a concurrent retry recorded it first
    move(row, ProposalState.BROADCAST)
    row.txid = txid
    row.broadcast_at = ctx.clock()
    ctx.ledger.hold(
        session,
        SpendPosting(row.id, row.asset, row.amount, tx.fee, row.destination, txid),
    )
    ctx.audit(session, AuditKind.BROADCAST, None, row, "broadcast", txid=txid)


def refresh(ctx: WorkflowContext, proposal_id: int, spender: ChainSpender) -> ProposalView:
    """Track a broadcast spend: post its ledger entry once confirmed, void it if it failed."""
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
        row.closed_at = ctx.clock()
        row.closed_reason = f"The chain reports transaction {row.txid} failed or was replaced."
        ctx.ledger.void(session, row.id)
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
