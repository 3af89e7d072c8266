"""The proposal state machine: the allowed transitions and nothing else."""

from __future__ import annotations

import itertools

import pytest

from treasury.proposals import ALLOWED_TRANSITIONS, ProposalState, SpendPosting, check_transition
from treasury.workflow_exceptions import ProposalTransitionError

S = ProposalState
HAPPY_PATH = [S.DRAFT, S.PROPOSED, S.APPROVED, S.SIGNED, S.BROADCAST, S.CONFIRMED]
TERMINAL = {S.REJECTED, S.EXPIRED, S.FAILED}


def test_the_happy_path_is_allowed_step_by_step() -> None:
    """draft -> proposed -> approved -> signed -> broadcast -> confirmed is a chain of legal steps."""
    for current, target in itertools.pairwise(HAPPY_PATH):
        check_transition(1, current, target)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_other_transition_is_refused(current: ProposalState, target: ProposalState) -> None:
    """Any pair outside the table (skips, going backwards, leaving a terminal state) is refused."""
    if target in ALLOWED_TRANSITIONS[current]:
        check_transition(1, current, target)
    else:
        with pytest.raises(
            ProposalTransitionError, match=f"is {current.value} and cannot become {target.value}"
        ):
            check_transition(1, current, target)


def test_the_table_has_the_intended_shape() -> None:
    """Terminal states lead nowhere; nothing skips signing; once signed, only broadcast or failure remain."""
    assert all(not ALLOWED_TRANSITIONS[state] for state in TERMINAL)
    # A reorg that removes a confirmed spend sends it back to broadcast (treasury.reconcile).
    assert ALLOWED_TRANSITIONS[S.CONFIRMED] == {S.BROADCAST}
    assert S.BROADCAST not in ALLOWED_TRANSITIONS[S.APPROVED]
    assert ALLOWED_TRANSITIONS[S.SIGNED] == {S.BROADCAST, S.FAILED}
    assert S.REJECTED not in ALLOWED_TRANSITIONS[S.SIGNED]
    assert ALLOWED_TRANSITIONS[S.APPROVED] >= {S.PROPOSED}  # voided approvals send it back


def test_the_ledger_idempotency_key_is_one_per_proposal() -> None:
    """Retries of the same proposal's broadcast reuse one ledger key; different proposals differ."""
    a = SpendPosting(5, "BTC", 10, 1, "dest", "txid-a")
    again = SpendPosting(5, "BTC", 10, 1, "dest", "txid-a")
    b = SpendPosting(6, "BTC", 10, 1, "dest", "txid-b")
    assert a.idempotency_key == again.idempotency_key == SpendPosting.key_for(5)
    assert a.idempotency_key != b.idempotency_key
