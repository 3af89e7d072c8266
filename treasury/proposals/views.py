"""What officers, auditors, the CLI and the API see of a proposal, and how it is read.

Views are frozen snapshots built from the tables inside one session, so nothing outside the
workflow holds an ORM row that could change under it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.officers import InstitutionRow
from treasury.policy import LegalBasisRow, PolicyVersionRow, current_policy
from treasury.proposals.rows import current_tx, proposal_veto_window_end
from treasury.proposals.states import ProposalState
from treasury.proposals.tables import ApprovalRow, ApprovalVoidRow, SignatureRow, SpendProposalRow
from treasury.workflow_exceptions import UnknownRecordError


@dataclass(frozen=True)
class ApprovalView:
    officer_id: int
    institution: str
    tx_hash: str
    approved_at: datetime
    voided_at: datetime | None
    void_reason: str | None


@dataclass(frozen=True)
class ProposalView:
    """A proposal as officers, auditors, the CLI and the API see it."""

    id: int
    state: ProposalState
    asset: str
    amount: int
    destination: str
    purpose: str
    legal_basis: str
    proposer_id: int
    created_at: datetime
    tx_hash: str | None
    tx_summary: Mapping[str, Any] | None
    fee: int | None
    approvals: tuple[ApprovalView, ...]
    signed_by: tuple[str, ...]
    """Institutions that signed the current transaction."""
    quorum_reached_at: datetime | None
    veto_window_ends_at: datetime | None
    txid: str | None
    closed_reason: str | None


def load_view(session: Session, proposal_id: int) -> ProposalView:
    """The view of the proposal ``proposal_id``; ``UnknownRecordError`` if there is none."""
    row = session.get(SpendProposalRow, proposal_id)
    if row is None:
        raise UnknownRecordError(f"No spend proposal has the id {proposal_id}.")
    return proposal_view(session, row)


def proposal_view(session: Session, row: SpendProposalRow) -> ProposalView:
    """The view of ``row`` as it stands in this session (pending changes flushed first)."""
    session.flush()
    current = current_tx(session, row.id)
    approvals = session.execute(
        select(ApprovalRow, InstitutionRow.code, ApprovalVoidRow.voided_at, ApprovalVoidRow.reason)
        .join(InstitutionRow, InstitutionRow.id == ApprovalRow.institution_id)
        .outerjoin(ApprovalVoidRow, ApprovalVoidRow.approval_id == ApprovalRow.id)
        .where(ApprovalRow.proposal_id == row.id)
        .order_by(ApprovalRow.id)
    ).all()
    signed_by: Iterable[str] = ()
    if current is not None:
        signed_by = session.scalars(
            select(InstitutionRow.code)
            .join(SignatureRow, SignatureRow.institution_id == InstitutionRow.id)
            .where(SignatureRow.proposal_id == row.id, SignatureRow.tx_hash == current.tx_hash)
            .order_by(InstitutionRow.code)
        ).all()
    basis = session.get(LegalBasisRow, row.legal_basis_id)
    has_policy = session.scalar(select(PolicyVersionRow.version).limit(1)) is not None
    ends = proposal_veto_window_end(session, current_policy(session), row) if has_policy else None
    return ProposalView(
        id=row.id,
        state=ProposalState(row.state),
        asset=row.asset,
        amount=row.amount,
        destination=row.destination,
        purpose=row.purpose,
        legal_basis="" if basis is None else basis.reference,
        proposer_id=row.proposer_id,
        created_at=row.created_at,
        tx_hash=None if current is None else current.tx_hash,
        tx_summary=None if current is None else json.loads(current.summary),
        fee=None if current is None else current.fee,
        approvals=tuple(
            ApprovalView(a.officer_id, code, a.tx_hash, a.approved_at, voided_at, reason)
            for a, code, voided_at, reason in approvals
        ),
        signed_by=tuple(signed_by),
        quorum_reached_at=row.quorum_reached_at,
        veto_window_ends_at=ends,
        txid=row.txid,
        closed_reason=row.closed_reason,
    )
