"""The reconciliation gate: no spend while the chain and the ledger are not known to agree.

Contract: the reconciliation job appends one row per asset and run to
``reconciliation_checkpoints`` through ``record_reconciliation``; ``TableReconciliationGate``
reads the newest row per asset. The policy refuses spends when there is no row, when the newest
row says ``mismatched``, or when it is older than ``reconciliation_max_age_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.policy.tables import ReconciliationCheckpointRow


class ReconciliationOutcome(StrEnum):
    MATCHED = "matched"
    MISMATCHED = "mismatched"


@dataclass(frozen=True)
class ReconciliationFacts:
    """The newest reconciliation of one asset: did the chain match the ledger, and when."""

    outcome: ReconciliationOutcome
    checked_at: datetime


class ReconciliationGate(Protocol):
    """Where the policy learns the newest reconciliation of an asset (``None``: never run)."""

    def latest(self, session: Session, asset: str) -> ReconciliationFacts | None: ...


class TableReconciliationGate:
    """The default gate: the newest ``reconciliation_checkpoints`` row for the asset."""

    def latest(self, session: Session, asset: str) -> ReconciliationFacts | None:
        row = session.scalar(
            select(ReconciliationCheckpointRow)
            .where(ReconciliationCheckpointRow.asset == asset)
            .order_by(
                ReconciliationCheckpointRow.checked_at.desc(), ReconciliationCheckpointRow.id.desc()
            )
        )
        if row is None:
            return None
        return ReconciliationFacts(ReconciliationOutcome(row.outcome), row.checked_at)


def record_reconciliation(
    session: Session,
    asset: str,
    outcome: ReconciliationOutcome,
    *,
    checked_at: datetime,
    detail: str = "",
) -> None:
    """Append a reconciliation result for ``asset`` (called by the reconciliation job)."""
    session.add(
        ReconciliationCheckpointRow(
            asset=asset, outcome=outcome.value, checked_at=checked_at, detail=detail
        )
    )
    session.flush()
