"""Approvals: taking them against the prepared transaction's hash, and voiding them.

An approval names the exact transaction prepared for the proposal; the quorum is counted by
the policy (``counted_approvals``). When approvals are voided (a revoked officer, a changed
transaction), ``requorum`` sends an approved proposal back to proposed if the quorum is lost.

Once the roster chain has a genesis, an approval must carry the officer's signed statement: it
is checked (``signed_statements.verified_statement``) and stored with the approval in the same
transaction, so the signers can later verify the quorum from the officers' own signatures.
Without a genesis an approval is taken as before (staging; the next release requires it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.authority import SignedStatement, StatementKind
from treasury import audit, officers
from treasury.audit import AuditKind
from treasury.authority.store import add_statement, roster_state
from treasury.officers import Officer, Role
from treasury.policy import Action, counted_approvals, current_policy, load_legal_basis
from treasury.proposals.actors import actor_name
from treasury.proposals.context import WorkflowContext
from treasury.proposals.rows import (
    ApprovalRecord,
    approval_records,
    attempt_after,
    current_tx,
    locked,
    move,
    standing,
    standing_approvals,
    void_approval,
)
from treasury.proposals.signed_statements import verified_statement
from treasury.proposals.states import ProposalState
from treasury.proposals.tables import ApprovalRow, ApprovalVoidRow, SpendProposalRow
from treasury.proposals.views import ProposalView, proposal_view, signed_institutions
from treasury.workflow_exceptions import (
    ProposalTransitionError,
    TransactionMismatchError,
    WorkflowInputError,
)


def checked_signature(
    session: Session,
    actor: Officer,
    proposal_id: int,
    signed: SignedStatement | None,
    kind: StatementKind,
    now: datetime,
    *,
    required: bool,
) -> SignedStatement | None:
    """The actor's verified statement to store with the step, or ``None`` (none needed).

    With a roster genesis, a ``required`` statement must be given and any given one must verify;
    without one, a signature cannot be verified and is refused rather than stored unchecked.
    """
    state = roster_state(session)
    if state is None:
        if signed is not None:
            raise WorkflowInputError(
                "A signed statement was given, but no roster genesis is stored, so no officer "
                "key can be verified; act without a signature until the roster is founded."
            )
        return None
    if signed is None:
        if required:
            raise WorkflowInputError(
                f"The roster chain is founded: a {kind.value} of proposal {proposal_id} must "
                "carry your signed statement (`treasury spend statement`, then sign it)."
            )
        return None
    return verified_statement(session, state, actor, proposal_id, signed, kind, now)


def approve(
    ctx: WorkflowContext,
    actor: Officer,
    proposal_id: int,
    tx_hash: str,
    signed: SignedStatement | None = None,
) -> ProposalView:
    """Approve the prepared transaction ``tx_hash`` for the actor's institution.

    Once a roster genesis exists, ``signed`` (the actor's signed APPROVE statement) is required.
    """
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
        # Everything that does not depend on the asset's other spends is read and checked here,
        # under the proposal's row lock only: the signature, the policy, the basis, the
        # approvals. ``judge`` then takes the asset's limit lock for the limits and the writes.
        statement = checked_signature(
            session, actor, row.id, signed, StatementKind.APPROVE, ctx.clock(), required=True
        )
        policy = current_policy(session)
        basis = load_legal_basis(session, row.legal_basis_id)
        records = approval_records(session, row.id)
        # Signing needs this row's lock too, so the signatures read now are those at commit.
        signed_by = signed_institutions(session, row.id, current)
        judged = ctx.judge(
            session, policy, row, Action.APPROVE, actor,
            legal_basis=basis, current_tx_hash=None if current is None else current.tx_hash,
            approvals=standing(records),
        )  # fmt: skip
        now = judged.context.now
        session.add(
            ApprovalRow(
                proposal_id=row.id,
                officer_id=actor.id,
                institution_id=actor.institution_id,
                tx_hash=tx_hash,
                approved_at=now,
                attempt=attempt_after(records, actor.institution_id),
            )
        )
        if statement is not None:
            add_statement(session, row.id, statement)
        stored = judged.context.actor
        records.append(
            ApprovalRecord(
                officer_id=actor.id,
                institution_id=actor.institution_id,
                institution=actor.institution_code if stored is None else stored.institution,
                tx_hash=tx_hash,
                approved_at=now,
                officer_revoked_at=actor.revoked_at if stored is None else stored.revoked_at,
                voided_at=None,
                void_reason=None,
            )
        )
        counted = counted_approvals(
            policy.document, row.proposer_id, standing(records), tx_hash, now
        )
        if len(counted) >= policy.document.quorum_required:
            move(row, ProposalState.APPROVED)
            row.quorum_reached_at = now
        ctx.audit(
            session, AuditKind.APPROVAL, actor, row, "approved",
            tx_hash=tx_hash, decision_id=judged.decision_id,
            institution=actor.institution_code,
            **({} if statement is None else {
                "statement_digest": statement.statement.digest().hex(),
                "key_id": statement.key_id,
            }),
        )  # fmt: skip
        return proposal_view(
            session,
            row,
            policy=policy,
            legal_basis=basis,
            current=current,
            approvals=records,
            signed_by=signed_by,
        )

    return ctx.write(work)


def revoke_officer(ctx: WorkflowContext, actor: Officer, officer_id: int) -> Officer:
    """Revoke an officer now (admin only) and void their approvals of unsigned spends."""
    actor.require(Role.ADMIN)

    def work(session: Session) -> Officer:
        now = ctx.clock()
        revoked = officers.revoke_officer(session, officer_id, actor=actor, at=now)
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
            .outerjoin(ApprovalVoidRow, ApprovalVoidRow.approval_id == ApprovalRow.id)
            .where(
                ApprovalRow.officer_id == officer_id,
                ApprovalVoidRow.approval_id.is_(None),
                SpendProposalRow.state.in_(
                    [ProposalState.PROPOSED.value, ProposalState.APPROVED.value]
                ),
            )
        ).all()
        for approval in standing:
            void_approval(
                session,
                approval,
                now,
                f"Officer {officer_id} was revoked before the spend was signed.",
            )
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
