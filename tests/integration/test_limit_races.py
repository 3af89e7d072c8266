"""Concurrent final approvals never commit more than the daily limit or a decree's ceiling.

The limits are check-then-commit: a final approval reads what is already committed for the asset
(last 24 h) and under the legal basis, and commits its own amount only if the sum fits. Without a
lock, two approvals that run at once each read the other's amount as not yet committed, and both
commit (issue 13: six 4 ETH approvals at once all passed a 20 ETH daily limit on PostgreSQL).

Each repetition starts ``PARALLEL`` proposals that each need one last approval, releases all the
final approvals at one barrier, and counts what was committed. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import func, select
from workflow_support import DESTINATION, World

from treasury.policy import LegalBasis, add_legal_basis
from treasury.policy.rules import PolicyRefusedError
from treasury.policy.tables import LegalBasisRow
from treasury.proposals import ProposalState, SpendProposalRow

BTC = 100_000_000
PARALLEL = 8
REPETITIONS = 10
"""Each race is run this many times: with the limit's lock taken out, eight racing approvals
pass the limit in the first repetition or two, so ten are a margin, not a lottery."""
DAILY_LIMIT = 15 * BTC
"""The world's policy: a rolling 24 h limit of 15 BTC (``workflow_support.POLICY``)."""


def _new_decree(world: World, reference: str, ceiling: int) -> None:
    with world.sessions.begin() as session:
        add_legal_basis(
            session,
            world.officers["admin"],
            LegalBasis(
                reference,
                "Concurrent approvals",
                world.clock() + timedelta(days=30),
                {"BTC": ceiling},
            ),
            now=world.clock(),
        )


def _race_final_approvals(world: World, amount: int, decree: str) -> list[int]:
    """``PARALLEL`` proposals approved by CB, then all final (PARL) approvals at once.

    Returns the ids of the proposals whose final approval was accepted.
    """
    wf = world.workflow()
    ready: list[tuple[int, str]] = []
    for _ in range(PARALLEL):
        view = wf.propose(
            world.officers["proposer"],
            asset="BTC",
            amount=amount,
            destination=DESTINATION,
            purpose="Concurrent spend",
            legal_basis=decree,
        )
        view = wf.prepare(world.officers["proposer"], view.id, world.chain)
        assert view.tx_hash is not None
        wf.approve(world.officers["cb_approver"], view.id, view.tx_hash)
        ready.append((view.id, view.tx_hash))
    barrier = threading.Barrier(PARALLEL)

    def final(item: tuple[int, str]) -> int | None:
        proposal_id, tx_hash = item
        barrier.wait(timeout=30)
        try:
            view = world.workflow().approve(world.officers["parl_approver"], proposal_id, tx_hash)
        except PolicyRefusedError:
            return None
        return proposal_id if view.state is ProposalState.APPROVED else None

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(final, ready))
    return [r for r in results if r is not None]


def _committed(world: World, decree_id: str | None = None) -> int:
    """Sum of amounts in committed (approved) proposals, optionally under one decree reference."""
    with world.sessions() as session:
        query = select(func.coalesce(func.sum(SpendProposalRow.amount), 0)).where(
            SpendProposalRow.state == ProposalState.APPROVED.value
        )
        if decree_id is not None:
            query = query.join(
                LegalBasisRow, LegalBasisRow.id == SpendProposalRow.legal_basis_id
            ).where(LegalBasisRow.reference == decree_id)
        return int(session.scalar(query) or 0)


def _next_day(world: World) -> None:
    world.clock.advance(hours=25)
    world.reconcile()


def test_concurrent_final_approvals_never_exceed_the_daily_limit(world: World) -> None:
    """Eight final approvals of 4 BTC at once against 15 BTC a day: exactly 3 pass, 10 times."""
    amount = 4 * BTC
    for repetition in range(REPETITIONS):
        decree = f"RACE-DAILY-{repetition}"
        _new_decree(world, decree, 1_000 * BTC)
        before = _committed(world)
        accepted = _race_final_approvals(world, amount, decree)
        assert len(accepted) * amount <= DAILY_LIMIT, f"repetition {repetition}: {accepted}"
        assert len(accepted) == DAILY_LIMIT // amount, f"repetition {repetition}: {accepted}"
        assert _committed(world) - before == len(accepted) * amount
        _next_day(world)


def test_concurrent_final_approvals_never_exceed_a_decree_ceiling(world: World) -> None:
    """Eight final approvals of 3 BTC at once under a 10 BTC decree: exactly 3 pass, 10 times."""
    amount, ceiling = 3 * BTC, 10 * BTC
    for repetition in range(REPETITIONS):
        decree = f"RACE-CEILING-{repetition}"
        _new_decree(world, decree, ceiling)
        accepted = _race_final_approvals(world, amount, decree)
        assert _committed(world, decree) <= ceiling, f"repetition {repetition}: {accepted}"
        assert len(accepted) == ceiling // amount, f"repetition {repetition}: {accepted}"
        _next_day(world)


def _race_proposals_and_approvals(world: World, decree: str) -> list[str]:
    """Half the threads give final approvals, half propose anew, all released at one barrier."""
    wf = world.workflow()
    ready: list[tuple[int, str]] = []
    for _ in range(PARALLEL // 2):
        view = wf.propose(
            world.officers["proposer"], asset="BTC", amount=BTC, destination=DESTINATION,
            purpose="Concurrent spend", legal_basis=decree,
        )  # fmt: skip
        view = wf.prepare(world.officers["proposer"], view.id, world.chain)
        assert view.tx_hash is not None
        wf.approve(world.officers["cb_approver"], view.id, view.tx_hash)
        ready.append((view.id, view.tx_hash))
    barrier = threading.Barrier(PARALLEL)

    def approve(item: tuple[int, str]) -> str:
        barrier.wait(timeout=30)
        world.workflow().approve(world.officers["parl_approver"], *item)
        return "approved"

    def propose(_: int) -> str:
        barrier.wait(timeout=30)
        world.workflow().propose(
            world.officers["proposer"], asset="BTC", amount=BTC, destination=DESTINATION,
            purpose="Concurrent proposal", legal_basis=decree,
        )  # fmt: skip
        return "proposed"

    with ThreadPoolExecutor(PARALLEL) as pool:
        approvals = [pool.submit(approve, item) for item in ready]
        proposals = [pool.submit(propose, n) for n in range(PARALLEL // 2)]
        return [future.result(timeout=60) for future in approvals + proposals]


def test_proposals_and_final_approvals_at_once_never_deadlock(world: World) -> None:
    """New proposals and final approvals of the same asset at once: every call succeeds (each
    fits the limits). Proposing once took the audit lock before the asset's limit lock, and
    approving the other way round, so PostgreSQL killed one side of such a pair as a deadlock
    (a 500 under ``bench/api_load.py``)."""
    for repetition in range(REPETITIONS // 2):
        decree = f"RACE-MIXED-{repetition}"
        _new_decree(world, decree, 1_000 * BTC)
        outcomes = _race_proposals_and_approvals(world, decree)
        assert outcomes.count("approved") == PARALLEL // 2, f"repetition {repetition}"
        assert outcomes.count("proposed") == PARALLEL // 2, f"repetition {repetition}"
        _next_day(world)
