"""The proposal state machine: the states a spend passes through and the moves between them.

Kept apart from the workflow so that readers (the CLI, the API, the reconciler, the site) can
name a state without importing the service that moves proposals::

    draft -> proposed -> approved -> signed -> broadcast -> confirmed
       \\        \\           \\          \\          \\
        rejected/expired   (back to proposed when approvals are voided)   failed

A confirmed spend goes back to broadcast when a reorg removes its transaction (the reconciler
reverses its posting and audits the move, ``treasury.reconcile.settlement``), and is confirmed
again when the transaction is mined again.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from treasury.workflow_exceptions import ProposalTransitionError


class ProposalState(StrEnum):
    DRAFT = "draft"
    PROPOSED = "proposed"
    APPROVED = "approved"
    SIGNED = "signed"
    BROADCAST = "broadcast"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"


ALLOWED_TRANSITIONS: Mapping[ProposalState, frozenset[ProposalState]] = {
    ProposalState.DRAFT: frozenset(
        {ProposalState.PROPOSED, ProposalState.REJECTED, ProposalState.EXPIRED}
    ),
    ProposalState.PROPOSED: frozenset(
        {ProposalState.APPROVED, ProposalState.REJECTED, ProposalState.EXPIRED}
    ),
    ProposalState.APPROVED: frozenset(
        {
            ProposalState.PROPOSED,
            ProposalState.SIGNED,
            ProposalState.REJECTED,
            ProposalState.EXPIRED,
        }
    ),
    ProposalState.SIGNED: frozenset({ProposalState.BROADCAST, ProposalState.FAILED}),
    ProposalState.BROADCAST: frozenset({ProposalState.CONFIRMED, ProposalState.FAILED}),
    ProposalState.CONFIRMED: frozenset({ProposalState.BROADCAST}),
    ProposalState.REJECTED: frozenset(),
    ProposalState.EXPIRED: frozenset(),
    ProposalState.FAILED: frozenset(),
}
"""The state machine; ``check_transition`` refuses everything else."""

COMMITTED_STATES = frozenset(
    {
        ProposalState.APPROVED,
        ProposalState.SIGNED,
        ProposalState.BROADCAST,
        ProposalState.CONFIRMED,
    }
)
"""States whose amount counts against the 24 h limit and the decree ceiling."""


def check_transition(proposal_id: int, current: ProposalState, target: ProposalState) -> None:
    """Raise unless the state machine allows ``current -> target``."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise ProposalTransitionError(
            f"Proposal {proposal_id} is {current.value} and cannot become {target.value}."
        )
