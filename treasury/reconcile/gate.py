"""The reconciliation side of the spend policy's gate (``treasury.policy.ReconciliationGate``).

``ReconcileGate().latest(session, asset)`` says ``mismatched`` while any alarm is open (an
unexplained outflow means keys were used outside the system, so every asset stops; warnings,
``WARNING_KINDS`` such as a relayer low on gas, do not count: stopping spends would not refill
it, and the refill is no spend), or while
the newest result of any vault holding the asset differs from the ledger; otherwise ``matched``
as of the oldest of those vaults' newest checks, so the policy's maximum age catches a stale
cursor. ``None`` (no spend allowed) until a vault holding the asset has been reconciled.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from treasury.policy import ReconciliationFacts, ReconciliationOutcome
from treasury.reconcile.records import WARNING_KINDS, AlarmRow, ResultRow


def newest_results(session: Session, gate_asset: str | None = None) -> list[ResultRow]:
    """The newest result of each vault and asset (of one proposal asset name, if given)."""
    newest = select(func.max(ResultRow.id)).group_by(ResultRow.scope, ResultRow.asset)
    if gate_asset is not None:
        newest = newest.where(ResultRow.gate_asset == gate_asset)
    return list(
        session.scalars(select(ResultRow).where(ResultRow.id.in_(newest)).order_by(ResultRow.id))
    )


class ReconcileGate:
    """Reads the reconciler's own tables; pass it as ``Workflow(..., reconciliation=...)``."""

    def latest(self, session: Session, asset: str) -> ReconciliationFacts | None:
        alarm = session.scalar(
            select(AlarmRow)
            .where(AlarmRow.cleared_at.is_(None), AlarmRow.kind.not_in(WARNING_KINDS))
            .order_by(AlarmRow.id.desc())
            .limit(1)
        )
        if alarm is not None:
            return ReconciliationFacts(ReconciliationOutcome.MISMATCHED, alarm.raised_at)
        results = newest_results(session, asset)
        if not results:
            return None
        mismatched = [r for r in results if not r.matched]
        if mismatched:
            return ReconciliationFacts(ReconciliationOutcome.MISMATCHED, mismatched[-1].checked_at)
        oldest = min(r.checked_at for r in results)
        return ReconciliationFacts(ReconciliationOutcome.MATCHED, oldest)


def reconciliation_gate() -> ReconcileGate:
    """The gate to hand to the spend workflow."""
    return ReconcileGate()
