"""Ending a spend before it is signed: rejection, oversight's veto, and expiry.

Every way out of the open states closes the proposal the same way (state, time, who, why)
and leaves an audit event, and releases what the proposal's transaction reserved on the chain
(its Safe nonce, its inputs: ``reservations``); a signed spend can no longer be closed here. A veto may carry the
oversight officer's signed VETO statement (checked and stored with it once the roster chain has
a genesis), so the signers refuse the spend on the officer's own word, not on a database row.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.authority import SignedStatement, StatementKind
from treasury.audit import AuditKind
from treasury.authority.store import add_statement
from treasury.officers import Officer, Role
from treasury.policy import current_policy, load_legal_basis
from treasury.proposals.approving import checked_signature
from treasury.proposals.context import WorkflowContext
from treasury.proposals.proposing import checked_text
from treasury.proposals.reservations import release
from treasury.proposals.rows import locked, move, proposal_veto_window_end
from treasury.proposals.states import ProposalState
from treasury.proposals.tables import SpendProposalRow
from treasury.proposals.views import ProposalView, proposal_view
from treasury.workflow_exceptions import ProposalTransitionError

REASON_MAX_CHARS = 2000


def reject(ctx: WorkflowContext, actor: Officer, proposal_id: int, reason: str) -> ProposalView:
    """Reject an unsigned proposal (an approver, an admin, or its own proposer withdrawing)."""
    reason = checked_text(reason, "reason", REASON_MAX_CHARS, multiline=True)

    def work(session: Session) -> ProposalView:
        row = locked(session, proposal_id)
        if row.proposer_id != actor.id:
            actor.require(Role.APPROVER, Role.ADMIN)
        return close(ctx, session, row, actor, ProposalState.REJECTED, "rejected", reason)

    return ctx.write(work)


def veto(
    ctx: WorkflowContext,
    actor: Officer,
    proposal_id: int,
    reason: str,
    signed: SignedStatement | None = None,
) -> ProposalView:
    """Cancel a spend (oversight only) before approval or during its veto window.

    ``signed``, the actor's signed VETO statement, is verified and stored with the veto.
    """
    actor.require(Role.OVERSIGHT)
    reason = checked_text(reason, "reason", REASON_MAX_CHARS, multiline=True)

    def work(session: Session) -> ProposalView:
        row = locked(session, proposal_id)
        if row.state == ProposalState.APPROVED.value:
            policy = current_policy(session)
            ends = proposal_veto_window_end(session, policy, row)
            if ends is None or ctx.clock() >= ends:
                raise ProposalTransitionError(
                    f"Proposal {proposal_id} is approved and has no open veto window"
                    + ("" if ends is None else f" (it closed at {ends.isoformat()})")
                    + "; oversight can no longer cancel it."
                )
        elif row.state not in (ProposalState.DRAFT.value, ProposalState.PROPOSED.value):
            raise ProposalTransitionError(
                f"Proposal {proposal_id} is {row.state} and can no longer be vetoed."
            )
        statement = checked_signature(
            session, actor, row.id, signed, StatementKind.VETO, ctx.clock(), required=False
        )
        extra: dict[str, str] = {}
        if statement is not None:
            add_statement(session, row.id, statement)
            session.flush()
            # The audit chain keeps which signed statement vetoed: ``veto_record`` checks it stays.
            extra["statement_digest"] = statement.statement.digest().hex()
        return close(ctx, session, row, actor, ProposalState.REJECTED, "vetoed", reason, **extra)

    return ctx.write(work)


def close(
    ctx: WorkflowContext,
    session: Session,
    row: SpendProposalRow,
    actor: Officer | None,
    target: ProposalState,
    event: str,
    reason: str,
    **payload: str,
) -> ProposalView:
    """Move ``row`` to the closed state ``target``, noting when, by whom and why."""
    move(row, target)
    now = ctx.clock()
    row.closed_at = now
    row.closed_by = None if actor is None else actor.id
    row.closed_reason = reason
    release(session, row.id, now, f"The proposal was {target.value}.")
    ctx.audit(session, AuditKind.PROPOSAL, actor, row, event, reason=reason, **payload)
    return proposal_view(session, row)


def expire_due(ctx: WorkflowContext) -> list[int]:
    """Expire unsigned proposals past the policy's time-to-live or their legal basis."""

    def work(session: Session) -> list[int]:
        now = ctx.clock()
        ttl = timedelta(seconds=current_policy(session).document.proposal_ttl_seconds)
        open_states = [
            ProposalState.DRAFT.value,
            ProposalState.PROPOSED.value,
            ProposalState.APPROVED.value,
        ]
        expired: list[int] = []
        for row in session.scalars(
            select(SpendProposalRow)
            .where(SpendProposalRow.state.in_(open_states))
            .order_by(SpendProposalRow.id)
            .with_for_update()
        ):
            basis = load_legal_basis(session, row.legal_basis_id)
            if now >= row.created_at + ttl or now >= basis.expires_at:
                why = "legal basis expired" if now >= basis.expires_at else "time-to-live passed"
                close(ctx, session, row, None, ProposalState.EXPIRED, "expired", why)
                expired.append(row.id)
        return expired

    return ctx.write(work)
