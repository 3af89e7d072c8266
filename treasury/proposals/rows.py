"""The proposal rows as every phase of the workflow touches them.

Locking a proposal, moving it through the state machine, finding its current transaction and
its standing approvals: the small steps the phases share, so each phase reads the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, func, select
from sqlalchemy.orm import Session

from treasury.officers import InstitutionRow, OfficerRow
from treasury.policy import (
    ApprovalFacts,
    LegalBasis,
    SpendFacts,
    StoredPolicy,
    load_legal_basis,
    veto_window_end,
)
from treasury.proposals.ports import PreparedTx
from treasury.proposals.states import ProposalState, check_transition
from treasury.proposals.tables import (
    ApprovalRow,
    ApprovalVoidRow,
    PreparedTxRow,
    SpendProposalRow,
)
from treasury.workflow_exceptions import ProposalTransitionError, UnknownRecordError


def locked(session: Session, proposal_id: int) -> SpendProposalRow:
    """The proposal, locked for the rest of the transaction."""
    row = session.scalar(
        select(SpendProposalRow).where(SpendProposalRow.id == proposal_id).with_for_update()
    )
    if row is None:
        raise UnknownRecordError(f"No spend proposal has the id {proposal_id}.")
    return row


def move(row: SpendProposalRow, target: ProposalState) -> None:
    """Move the proposal to ``target`` if the state machine allows it."""
    check_transition(row.id, ProposalState(row.state), target)
    row.state = target.value


def current_tx_of(proposal_id: int | SQLColumnExpression[int]) -> ColumnElement[bool]:
    """What makes a prepared transaction its proposal's current one: prepared for it, and not
    superseded (a proposal id, or a column to join on)."""
    return and_(PreparedTxRow.proposal_id == proposal_id, PreparedTxRow.superseded_at.is_(None))


def current_tx(session: Session, proposal_id: int) -> PreparedTxRow | None:
    """The proposal's transaction that is not superseded, if one was prepared."""
    return session.scalar(select(PreparedTxRow).where(current_tx_of(proposal_id)))


def required_tx(session: Session, row: SpendProposalRow, step: str) -> PreparedTxRow:
    """The proposal's current transaction, which ``step`` (sign, broadcast) cannot do without."""
    current = current_tx(session, row.id)
    if current is None:
        raise ProposalTransitionError(
            f"Proposal {row.id} is {row.state} but has no prepared transaction to {step}."
        )
    return current


def prepared(row: PreparedTxRow) -> PreparedTx:
    """The stored transaction as the chain spender takes it."""
    return PreparedTx(row.tx_hash, json.loads(row.summary), row.payload, row.fee)


def standing_approvals(session: Session, proposal_id: int) -> list[ApprovalFacts]:
    """The approvals not voided, with their institution and whether the officer is revoked."""
    rows = session.execute(
        select(ApprovalRow, InstitutionRow.code, OfficerRow.revoked_at)
        .join(InstitutionRow, InstitutionRow.id == ApprovalRow.institution_id)
        .join(OfficerRow, OfficerRow.id == ApprovalRow.officer_id)
        .outerjoin(ApprovalVoidRow, ApprovalVoidRow.approval_id == ApprovalRow.id)
        .where(ApprovalRow.proposal_id == proposal_id, ApprovalVoidRow.approval_id.is_(None))
        .order_by(ApprovalRow.id)
    )
    return [ApprovalFacts(a.officer_id, code, a.tx_hash, revoked) for a, code, revoked in rows]


def standing_approval_rows(session: Session, proposal_id: int) -> list[ApprovalRow]:
    """The proposal's approval rows that have no void, oldest first."""
    return list(
        session.scalars(
            select(ApprovalRow)
            .outerjoin(ApprovalVoidRow, ApprovalVoidRow.approval_id == ApprovalRow.id)
            .where(ApprovalRow.proposal_id == proposal_id, ApprovalVoidRow.approval_id.is_(None))
            .order_by(ApprovalRow.id)
        )
    )


def next_attempt(session: Session, proposal_id: int, institution_id: int) -> int:
    """The ``attempt`` number of the institution's next approval of the proposal."""
    taken = session.scalar(
        select(func.count())
        .select_from(ApprovalRow)
        .where(ApprovalRow.proposal_id == proposal_id, ApprovalRow.institution_id == institution_id)
    )
    return (taken or 0) + 1


def void_approval(session: Session, approval: ApprovalRow, at: datetime, reason: str) -> None:
    """Void ``approval`` by appending its void row (the approval row is never edited)."""
    session.add(ApprovalVoidRow(approval_id=approval.id, voided_at=at, reason=reason))


def proposal_veto_window_end(
    session: Session,
    policy: StoredPolicy,
    row: SpendProposalRow,
    *,
    legal_basis: LegalBasis | None = None,
) -> datetime | None:
    """When oversight's veto window on the proposal closes under ``policy`` (``None``: none)."""
    basis = legal_basis or load_legal_basis(session, row.legal_basis_id)
    spend = SpendFacts(
        row.id, row.asset, row.amount, row.destination, row.proposer_id,
        basis, row.quorum_reached_at,
    )  # fmt: skip
    return veto_window_end(policy.document, spend)


@dataclass(frozen=True)
class ApprovalRecord:
    """One approval of a proposal as a step and its view need it, voided or not."""

    officer_id: int
    institution_id: int
    institution: str
    tx_hash: str
    approved_at: datetime
    officer_revoked_at: datetime | None
    voided_at: datetime | None
    void_reason: str | None

    @property
    def facts(self) -> ApprovalFacts:
        """The approval as the policy counts it."""
        return ApprovalFacts(
            self.officer_id, self.institution, self.tx_hash, self.officer_revoked_at
        )


def approval_records(session: Session, proposal_id: int) -> list[ApprovalRecord]:
    """Every approval of the proposal, oldest first, with its void if any (one query).

    The standing approvals, an institution's next attempt number and the view's approvals are
    all read from this one answer, so a step does not read the approvals three times.
    """
    rows = session.execute(
        select(
            ApprovalRow.officer_id,
            ApprovalRow.institution_id,
            InstitutionRow.code,
            ApprovalRow.tx_hash,
            ApprovalRow.approved_at,
            OfficerRow.revoked_at,
            ApprovalVoidRow.voided_at,
            ApprovalVoidRow.reason,
        )
        .join(InstitutionRow, InstitutionRow.id == ApprovalRow.institution_id)
        .join(OfficerRow, OfficerRow.id == ApprovalRow.officer_id)
        .outerjoin(ApprovalVoidRow, ApprovalVoidRow.approval_id == ApprovalRow.id)
        .where(ApprovalRow.proposal_id == proposal_id)
        .order_by(ApprovalRow.id)
    )
    return [ApprovalRecord(*row) for row in rows]


def standing(records: Sequence[ApprovalRecord]) -> list[ApprovalFacts]:
    """The approvals among ``records`` that have no void, as the policy counts them."""
    return [record.facts for record in records if record.voided_at is None]


def attempt_after(records: Sequence[ApprovalRecord], institution_id: int) -> int:
    """The ``attempt`` number of the institution's next approval, given all of ``records``."""
    return 1 + sum(1 for record in records if record.institution_id == institution_id)
