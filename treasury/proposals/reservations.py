"""Reservations: the chain-level identity a prepared transaction consumes, held for its proposal.

Two proposals with the same amount and destination could otherwise be prepared at the same Safe
nonce (the same SafeTx hash) or from the same Bitcoin coins: only one transaction can then reach
the chain, and both proposals would claim it. So ``prepare`` reserves what its transaction
consumes (``PreparedTx.claims``: the Safe nonce, each Bitcoin input) in ``spend_reservations``,
whose unique constraint admits one live reservation per claim whatever the requests' timing.

A reservation is released (``live`` set to NULL, never deleted) when its transaction is
superseded by a new prepare, or its proposal is rejected, vetoed, expired or failed. A proposal
that reached the chain keeps its reservations: the nonce is used and the inputs are spent.
Closed proposals are also swept before each prepare, so a proposal failed by another component
(the reconciler's drop handling) frees its claims without that component knowing of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from treasury.proposals.states import ProposalState
from treasury.proposals.tables import PreparedTxRow, ReservationRow, SpendProposalRow
from treasury.workflow_exceptions import ProposalTransitionError

RESERVE_ATTEMPTS = 3
"""How often ``prepare`` builds again when a concurrent prepare took a claim first."""


class ReservationConflictError(ProposalTransitionError):
    """Another proposal holds a resource the transaction would consume (its Safe nonce, an
    input); nothing was recorded, and preparing again builds around it."""


RELEASING_STATES = (
    ProposalState.REJECTED.value,
    ProposalState.EXPIRED.value,
    ProposalState.FAILED.value,
)
"""States in which a proposal's transaction can no longer reach the chain through it."""


def claims_of_others(session: Session, proposal_id: int) -> frozenset[str]:
    """Every live claim held by a proposal other than ``proposal_id``."""
    return frozenset(
        session.scalars(
            select(ReservationRow.claim).where(
                ReservationRow.live.is_(True), ReservationRow.proposal_id != proposal_id
            )
        )
    )


def live_claims(session: Session, proposal_id: int) -> frozenset[str]:
    """The claims ``proposal_id`` holds now."""
    return frozenset(
        session.scalars(
            select(ReservationRow.claim).where(
                ReservationRow.live.is_(True), ReservationRow.proposal_id == proposal_id
            )
        )
    )


def reserve(
    session: Session, prepared: PreparedTxRow, claims: Iterable[str], now: datetime
) -> None:
    """Reserve ``claims`` for ``prepared``'s proposal; the flush raises ``IntegrityError`` if
    another proposal holds one of them (the caller's transaction then rolls back)."""
    for claim in sorted(set(claims)):
        session.add(
            ReservationRow(
                proposal_id=prepared.proposal_id,
                prepared_tx_id=prepared.id,
                claim=claim,
                live=True,
                reserved_at=now,
            )
        )
    session.flush()


def release(session: Session, proposal_id: int, now: datetime, reason: str) -> None:
    """Release every live reservation of ``proposal_id``."""
    session.execute(
        update(ReservationRow)
        .where(ReservationRow.proposal_id == proposal_id, ReservationRow.live.is_(True))
        .values(live=None, released_at=now, released_reason=reason[:500])
        .execution_options(synchronize_session=False)
    )


def sweep_closed(session: Session, now: datetime) -> None:
    """Release the reservations of every proposal that closed without reaching the chain."""
    closed = select(SpendProposalRow.id).where(SpendProposalRow.state.in_(RELEASING_STATES))
    session.execute(
        update(ReservationRow)
        .where(ReservationRow.live.is_(True), ReservationRow.proposal_id.in_(closed))
        .values(live=None, released_at=now, released_reason="The proposal was closed.")
        .execution_options(synchronize_session=False)
    )


def holds_its_claims(session: Session, proposal_id: int, prepared_tx_id: int) -> bool:
    """Whether the proposal's current transaction still holds every claim it reserved.

    A transaction prepared with no claims (a chain without reservations) holds trivially.
    """
    rows = session.scalars(
        select(ReservationRow).where(ReservationRow.prepared_tx_id == prepared_tx_id)
    ).all()
    return all(r.live is True and r.proposal_id == proposal_id for r in rows)
