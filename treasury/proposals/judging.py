"""Asking the policy engine about a step, and keeping its answer whichever way it goes.

An allowed step records its decision in the step's own transaction. A refusal is raised as
``Refused`` so the step's transaction rolls back, and is then recorded on its own by
``record_refusal``: a refusal changes nothing but the decision log.

The limits are check-then-commit: a step reads what is already committed of the asset (the
rolling 24 h and the legal basis's ceiling) and may commit its own amount on top. Two final
approvals that run at once must not both read the other as uncommitted, so ``judge`` first takes
the asset's limit lock, held until the step's transaction ends: a PostgreSQL transaction-level
advisory lock keyed by the asset code (READ COMMITTED then shows each waiter what the previous
holder committed). On SQLite every workflow step already runs under ``BEGIN IMMEDIATE``, which
serialises all writers. One lock per asset covers both limits, because a decree's ceilings are per
asset too.

The lock is held from the moment it is taken to the step's commit, and every request of the asset
waits on it, so ``judge`` takes it as late as it can: the facts that do not depend on the asset's
other spends (the officer as stored, the legal basis, the transaction, the approvals, the
allowlist, the reconciliation) are read first, and a step passes those it already read. Under the
lock come only the committed amounts, the decision, the step's own writes and its audit event
(the audit chain's lock is always taken after this one, never before, so writers cannot deadlock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.clock import Clock
from treasury import audit
from treasury.audit import AuditKind
from treasury.officers import InstitutionRow, Officer, OfficerRow
from treasury.policy import (
    ROLLING_WINDOW,
    Action,
    ActorFacts,
    ApprovalFacts,
    Decision,
    LegalBasis,
    PolicyContext,
    ReconciliationGate,
    SpendFacts,
    StoredPolicy,
    destination_allowed,
    evaluate,
    load_legal_basis,
    record_decision,
)
from treasury.proposals.actors import actor_name
from treasury.proposals.rows import current_tx, standing_approvals
from treasury.proposals.states import COMMITTED_STATES
from treasury.proposals.tables import SpendProposalRow
from treasury.workflow_exceptions import UnknownRecordError

LIMIT_LOCK_NAMESPACE = 0x4C4D
"""First key of the (namespace, hashtext(asset)) advisory locks that serialise limit checks ("LM")."""


def lock_asset_limits(session: Session, asset: str) -> None:
    """Wait for, then hold until this transaction ends, the right to judge ``asset``'s limits."""
    if session.connection().dialect.name == "postgresql":
        session.execute(
            select(func.pg_advisory_xact_lock(LIMIT_LOCK_NAMESPACE, func.hashtext(asset)))
        )


class Refused(Exception):  # noqa: N818 - internal signal, turned into PolicyRefusedError
    """Carries a refusal out of the rolled-back transaction so it can be recorded on its own."""

    def __init__(
        self,
        decision: Decision,
        spend: SpendFacts,
        approvals: Sequence[ApprovalFacts],
        context: PolicyContext,
        actor: str,
    ) -> None:
        super().__init__(decision)
        self.decision = decision
        self.spend = spend
        self.approvals = approvals
        self.context = context
        self.actor = actor


@dataclass(frozen=True)
class Judged:
    """An allowed step: the recorded decision and the facts it was taken on."""

    decision_id: int
    spend: SpendFacts
    approvals: tuple[ApprovalFacts, ...]
    context: PolicyContext


def committed_elsewhere(session: Session, row: SpendProposalRow, now: datetime) -> tuple[int, int]:
    """Amounts of other committed spends of the asset: in the last 24 h, under the same basis."""
    others = session.execute(
        select(
            SpendProposalRow.amount,
            SpendProposalRow.quorum_reached_at,
            SpendProposalRow.legal_basis_id,
        ).where(
            SpendProposalRow.asset == row.asset,
            SpendProposalRow.id != row.id,
            SpendProposalRow.state.in_([s.value for s in COMMITTED_STATES]),
        )
    )
    spent_24h = under_basis = 0
    for amount, quorum_at, basis_id in others:
        if quorum_at is not None and quorum_at > now - ROLLING_WINDOW:
            spent_24h += amount
        if basis_id == row.legal_basis_id:
            under_basis += amount
    return spent_24h, under_basis


UNSET: Any = object()
"""Marks a fact the caller did not gather, so ``judge`` reads it itself."""


def stored_actor_facts(session: Session, actor: Officer | None) -> ActorFacts | None:
    """The officer as stored now (one query): a revocation after they authenticated counts."""
    if actor is None:
        return None
    found = session.execute(
        select(OfficerRow.revoked_at, InstitutionRow.code)
        .join(InstitutionRow, InstitutionRow.id == OfficerRow.institution_id)
        .where(OfficerRow.id == actor.id)
    ).one_or_none()
    if found is None:
        raise UnknownRecordError(f"No officer has the id {actor.id}.")
    return ActorFacts(actor.id, found.code, found.revoked_at)


def judge(
    session: Session,
    policy: StoredPolicy,
    row: SpendProposalRow,
    action: Action,
    actor: Officer | None,
    *,
    clock: Clock,
    reconciliation: ReconciliationGate,
    legal_basis: LegalBasis | None = None,
    current_tx_hash: str | None = UNSET,
    approvals: Sequence[ApprovalFacts] | None = None,
) -> Judged:
    """Evaluate ``action``; record the decision if allowed, else raise ``Refused``.

    The step's caller may pass facts it already read in this transaction (the legal basis, the
    current transaction's hash, the standing approvals), so nothing is read twice. Every fact
    that does not depend on the other spends of the asset is read before the asset's limit lock
    is taken, so the lock is held only for what must be serialised: reading the committed
    amounts, and writing the decision and the step on top of them.
    """
    now = clock()
    actor_facts = stored_actor_facts(session, actor)
    if current_tx_hash is UNSET:
        current = current_tx(session, row.id)
        current_tx_hash = None if current is None else current.tx_hash
    spend = SpendFacts(
        proposal_id=row.id,
        asset=row.asset,
        amount=row.amount,
        destination=row.destination,
        proposer_id=row.proposer_id,
        legal_basis=legal_basis or load_legal_basis(session, row.legal_basis_id),
        quorum_reached_at=row.quorum_reached_at,
    )
    standing = tuple(standing_approvals(session, row.id) if approvals is None else approvals)
    allowed = destination_allowed(session, row.asset, row.destination, now=now)
    latest = reconciliation.latest(session, row.asset)
    lock_asset_limits(session, row.asset)
    spent_24h, under_basis = committed_elsewhere(session, row, now)
    context = PolicyContext(
        action=action,
        now=now,
        spent_24h=spent_24h,
        committed_under_basis=under_basis,
        destination_allowed=allowed,
        reconciliation=latest,
        current_tx_hash=current_tx_hash,
        actor=actor_facts,
    )
    decision = evaluate(policy, spend, standing, context)
    if not decision.allowed:
        raise Refused(decision, spend, standing, context, actor_name(actor))
    decision_id = record_decision(session, decision, spend, standing, context)
    return Judged(decision_id, spend, standing, context)


def record_refusal(session: Session, refused: Refused, clock: Clock) -> None:
    """Record a refused decision and its audit event, in a transaction of their own."""
    spend = refused.spend
    if spend.proposal_id is not None and session.get(SpendProposalRow, spend.proposal_id) is None:
        spend = replace(spend, proposal_id=None)  # a draft rolled back with the refusal
    decision_id = record_decision(
        session, refused.decision, spend, refused.approvals, refused.context
    )
    refs: dict[str, str | int] = {"decision_id": decision_id}
    if spend.proposal_id is not None:
        refs["proposal_id"] = spend.proposal_id
    audit.append(
        session,
        kind=AuditKind.PROPOSAL,
        actor=refused.actor,
        refs=refs,
        payload={
            "event": "policy_refused",
            "action": refused.context.action.value,
            "policy_version": refused.decision.policy_version,
            "reasons": [r.code.value for r in refused.decision.reasons],
        },
        clock=clock,
    )
