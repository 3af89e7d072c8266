"""What officers, auditors, the CLI and the API see of a proposal, and how it is read.

Views are frozen snapshots built from the tables inside one session, so nothing outside the
workflow holds an ORM row that could change under it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.officers import InstitutionRow
from treasury.policy import LegalBasis, StoredPolicy, current_policy, load_legal_basis
from treasury.proposals.rows import (
    ApprovalRecord,
    approval_records,
    current_tx,
    current_tx_of,
    proposal_veto_window_end,
)
from treasury.proposals.states import ProposalState
from treasury.proposals.tables import PreparedTxRow, SignatureRow, SpendProposalRow
from treasury.workflow_exceptions import NotConfiguredError, UnknownRecordError


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
    """The view of the proposal ``proposal_id``; ``UnknownRecordError`` if there is none.

    The proposal and its current transaction (``current_tx_of``) are read in one round trip,
    by an outer join.
    """
    found = session.execute(
        select(SpendProposalRow, PreparedTxRow)
        .outerjoin(PreparedTxRow, current_tx_of(SpendProposalRow.id))
        .where(SpendProposalRow.id == proposal_id)
        .limit(1)
    ).first()
    if found is None:
        raise UnknownRecordError(f"No spend proposal has the id {proposal_id}.")
    row, current = found
    return proposal_view(session, row, current=current)


_UNSET: Any = object()
"""Marks a fact the caller did not pass, so ``proposal_view`` reads it itself."""


def proposal_view(
    session: Session,
    row: SpendProposalRow,
    *,
    policy: StoredPolicy | None = None,
    legal_basis: LegalBasis | None = None,
    current: PreparedTxRow | None = _UNSET,
    approvals: Sequence[ApprovalRecord] | None = None,
    signed_by: Sequence[str] | None = None,
) -> ProposalView:
    """The view of ``row`` as it stands in this session (pending changes flushed first).

    A step that already read the current policy, the legal basis, the current transaction or
    every approval in this transaction passes them, so the view reads none of them again.
    """
    session.flush()
    if current is _UNSET:
        current = current_tx(session, row.id)
    if approvals is None:
        approvals = approval_records(session, row.id)
    if signed_by is None:
        signed_by = signed_institutions(session, row.id, current)
    if legal_basis is None:
        legal_basis = load_legal_basis(session, row.legal_basis_id)
    if policy is None:
        policy = latest_policy(session)
    ends = None
    if policy is not None:
        ends = proposal_veto_window_end(session, policy, row, legal_basis=legal_basis)
    return ProposalView(
        id=row.id,
        state=ProposalState(row.state),
        asset=row.asset,
        amount=row.amount,
        destination=row.destination,
        purpose=row.purpose,
        legal_basis=legal_basis.reference,
        proposer_id=row.proposer_id,
        created_at=row.created_at,
        tx_hash=None if current is None else current.tx_hash,
        tx_summary=None if current is None else json.loads(current.summary),
        fee=None if current is None else current.fee,
        approvals=tuple(
            ApprovalView(
                a.officer_id, a.institution, a.tx_hash, a.approved_at, a.voided_at, a.void_reason
            )
            for a in approvals
        ),
        signed_by=tuple(signed_by),
        quorum_reached_at=row.quorum_reached_at,
        veto_window_ends_at=ends,
        txid=row.txid,
        closed_reason=row.closed_reason,
    )


def latest_policy(session: Session) -> StoredPolicy | None:
    """The newest policy version, or ``None`` before any policy is set (one query)."""
    try:
        return current_policy(session)
    except NotConfiguredError:
        return None


def signed_institutions(
    session: Session, proposal_id: int, current: PreparedTxRow | None
) -> Sequence[str]:
    """Codes of the institutions that signed the proposal's current transaction, sorted."""
    if current is None:
        return ()
    return session.scalars(
        select(InstitutionRow.code)
        .join(SignatureRow, SignatureRow.institution_id == InstitutionRow.id)
        .where(SignatureRow.proposal_id == proposal_id, SignatureRow.tx_hash == current.tx_hash)
        .order_by(InstitutionRow.code)
    ).all()
