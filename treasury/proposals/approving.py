"""Approvals: taking them against the prepared transaction's hash, and voiding them.

An approval names the exact transaction prepared for the proposal; the quorum is counted by
the policy (``counted_approvals``). When approvals are voided (a revoked officer, a changed
transaction), ``requorum`` sends an approved proposal back to proposed if the quorum is lost.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury import audit, officers
from treasury.audit import AuditKind
from treasury.officers import Officer, Role
from treasury.policy import Action, counted_approvals, current_policy
from treasury.proposals.actors import actor_name
from treasury.proposals.context import WorkflowContext
from treasury.proposals.rows import current_tx, locked, move, standing_approvals
from treasury.proposals.states import ProposalState
from treasury.proposals.tables import ApprovalRow, SpendProposalRow
from treasury.proposals.views import ProposalView, proposal_view
from treasury.workflow_exceptions import ProposalTransitionError, TransactionMismatchError


def approve(ctx: WorkflowContext, actor: Officer, proposal_id: int, tx_hash: str) -> ProposalView:
    """Approve the prepared transaction ``tx_hash`` for the actor's institution."""
    actor.require(Role.APPROVER)

    def work(session: Session) -> ProposalView:
        row = locked(session, proposal_id)
        if row.state != ProposalState.PROPOSED.value:
            raise ProposalTransitionError(
                f"Proposal {proposal_id} is {row.state}; approvals are taken only while it is proposed."
            )
        current = current_tx(session, row.id)
        if current is not None and current.tx_hash != tx_hash:
            raise TransactionMismatchError(
                f"The approval names transaction {tx_hash}, but proposal {proposal_id}'s "
                f"prepared transaction is {current.tx_hash}; review it and approve that hash."
            )
        policy = current_policy(session)
        judged = ctx.judge(session, policy, row, Action.APPROVE, actor)
        now = judged.context.now
        session.add(
            ApprovalRow(
                proposal_id=row.id,
                officer_id=actor.id,
                institution_id=actor.institution_id,
                tx_hash=tx_hash,
                approved_at=now,
            )
        )
        session.flush()
        counted = counted_approvals(
            policy.document,
            row.proposer_id,
            standing_approvals(session, row.id),
            tx_hash,
            now,
        )
        if len(counted) >= policy.document.quorum_required:
            move(row, ProposalState.APPROVED)
            row.quorum_reached_at = now
        ctx.audit(
            session, AuditKind.APPROVAL, actor, row, "approved",
            tx_hash=tx_hash, decision_id=judged.decision_id,
            institution=actor.institution_code,
        )  # fmt: skip
        return proposal_view(session, row)

    return ctx.write(work)


def revoke_officer(ctx: WorkflowContext, actor: Officer, officer_id: int) -> Officer:
    """Revoke an officer now (admin only) and void their approvals of unsigned spends."""
    actor.require(Role.ADMIN)

    def work(session: Session) -> Officer:
        now = ctx.clock()
        revoked = officers.revoke_officer(session, officer_id, at=now)
        audit.append(
            session,
            kind=AuditKind.POLICY_CHANGE,
            actor=actor_name(actor),
            refs={"officer_id": officer_id},
            payload={"event": "officer_revoked", "revoked_at": now.isoformat()},
            clock=ctx.clock,
        )
        standing = session.scalars(
            select(ApprovalRow)
            .join(SpendProposalRow, SpendProposalRow.id == ApprovalRow.proposal_id)
            .where(
                ApprovalRow.officer_id == officer_id,
                ApprovalRow.voided_at.is_(None),
                SpendProposalRow.state.in_(
                    [ProposalState.PROPOSED.value, ProposalState.APPROVED.value]
                ),
            )
        ).all()
        for approval in standing:
            approval.voided_at = now
            approval.void_reason = f"Officer {officer_id} was revoked before the spend was signed."
            row = locked(session, approval.proposal_id)
            requorum(ctx, session, row, actor, "approval_voided", officer_id=officer_id)
        return revoked

    return ctx.write(work)


def requorum(
    ctx: WorkflowContext,
    session: Session,
    row: SpendProposalRow,
    actor: Officer | None,
    event: str,
    **extra: Any,
) -> None:
    """After approvals were voided: fall back to proposed if the quorum no longer holds."""
    session.flush()
    if row.state == ProposalState.APPROVED.value:
        policy = current_policy(session)
        current = current_tx(session, row.id)
        counted = counted_approvals(
            policy.document,
            row.proposer_id,
            standing_approvals(session, row.id),
            None if current is None else current.tx_hash,
            ctx.clock(),
        )
        if len(counted) < policy.document.quorum_required:
            move(row, ProposalState.PROPOSED)
            row.quorum_reached_at = None
    ctx.audit(session, AuditKind.APPROVAL, actor, row, event, **extra)
