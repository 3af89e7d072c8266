"""``WorkflowContext``: what every phase of the workflow shares, and how each step runs.

The phases (proposing, preparing, approving, signing, broadcasting, closing) are plain
functions that take this context; it owns the database sessions, the ledger port, the clock,
the reconciliation gate and the per-asset confirmation depths, and gives every step the same
serialised transaction, policy judgement and audit event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from custody.clock import Clock
from treasury import audit
from treasury.audit import AuditKind
from treasury.db import begin_serialised_write
from treasury.officers import Officer
from treasury.policy import Action, ApprovalFacts, LegalBasis, ReconciliationGate, StoredPolicy
from treasury.policy.rules import PolicyRefusedError
from treasury.proposals.actors import actor_name
from treasury.proposals.judging import UNSET, Judged, Refused, judge, record_refusal
from treasury.proposals.ports import SpendLedger
from treasury.proposals.tables import SpendProposalRow

T = TypeVar("T")


@dataclass(frozen=True)
class WorkflowContext:
    """The workflow's collaborators, and the transaction, judgement and audit every step uses."""

    sessions: sessionmaker[Session]
    ledger: SpendLedger
    clock: Clock
    reconciliation: ReconciliationGate
    confirmations_required: Mapping[str, int]
    """Blocks after which a broadcast spend of the asset counts as confirmed."""

    def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one serialised transaction; record a policy refusal on its own."""
        try:
            with self.sessions.begin() as session:
                begin_serialised_write(session)
                return work(session)
        except Refused as refused:
            with self.sessions.begin() as session:
                begin_serialised_write(session)
                record_refusal(session, refused, self.clock)
            raise PolicyRefusedError(refused.decision) from None

    def read(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a session that writes nothing."""
        with self.sessions() as session:
            return work(session)

    def audit(
        self,
        session: Session,
        kind: AuditKind,
        actor: Officer | None,
        row: SpendProposalRow,
        event: str,
        *,
        state: str | None = None,
        **payload: Any,
    ) -> None:
        """Append the audit event of a step on ``row``, in the step's transaction.

        ``state`` is the proposal's state the event records, when not the row's present one (a
        step that writes its events last records each at the state it was taken in).
        """
        refs: dict[str, str | int] = {"proposal_id": row.id}
        if actor is not None:
            refs["officer_id"] = actor.id
        audit.append(
            session,
            kind=kind,
            actor=actor_name(actor),
            refs=refs,
            payload={"event": event, "state": state or row.state, **payload},
            clock=self.clock,
        )

    def judge(
        self,
        session: Session,
        policy: StoredPolicy,
        row: SpendProposalRow,
        action: Action,
        actor: Officer | None = None,
        *,
        legal_basis: LegalBasis | None = None,
        current_tx_hash: str | None = UNSET,
        approvals: Sequence[ApprovalFacts] | None = None,
    ) -> Judged:
        """Evaluate ``action``; record the decision if allowed, else raise ``Refused``.

        The facts the step already read in this transaction are passed on (``judge``).
        """
        return judge(
            session,
            policy,
            row,
            action,
            actor,
            clock=self.clock,
            reconciliation=self.reconciliation,
            legal_basis=legal_basis,
            current_tx_hash=current_tx_hash,
            approvals=approvals,
        )
