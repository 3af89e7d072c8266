"""Legal bases: the decrees or acts a spend cites, each with a ceiling per asset and an expiry.

The policy refuses a spend whose basis has expired or whose ceiling it would exceed; the basis is
loaded here and judged in ``treasury.policy.rules``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from treasury.officers import Officer, Role
from treasury.policy.change_audit import audit_policy_change
from treasury.policy.tables import REFERENCE_MAX_CHARS, LegalBasisCeilingRow, LegalBasisRow
from treasury.workflow_exceptions import UnknownRecordError, WorkflowInputError


@dataclass(frozen=True)
class LegalBasis:
    """A decree or act that authorises spending, up to a ceiling per asset, until it expires."""

    reference: str
    title: str
    expires_at: datetime
    ceilings: Mapping[str, int]
    """Asset code to the most that may be committed under this basis, in base units."""


def add_legal_basis(
    session: Session,
    actor: Officer,
    basis: LegalBasis,
    *,
    now: datetime,
) -> int:
    """Register a legal basis (admin only) and return its row id."""
    actor.require(Role.ADMIN)
    reference = basis.reference.strip()
    if not reference or len(reference) > REFERENCE_MAX_CHARS:
        raise WorkflowInputError(
            f"The legal basis reference must be 1 to {REFERENCE_MAX_CHARS} characters."
        )
    if basis.expires_at <= now:
        raise WorkflowInputError(
            f"The legal basis {reference!r} expired at {basis.expires_at.isoformat()}, before it "
            "was registered; an expired decree authorises nothing."
        )
    if not basis.ceilings:
        raise WorkflowInputError("A legal basis needs at least one ceiling (ceilings is empty).")
    for asset, ceiling in basis.ceilings.items():
        if isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling <= 0:
            raise WorkflowInputError(
                f"The ceiling for {asset} must be a positive integer in base units."
            )
    if session.scalar(select(LegalBasisRow.id).where(LegalBasisRow.reference == reference)):
        raise WorkflowInputError(f"The legal basis {reference!r} is already registered.")
    row = LegalBasisRow(
        reference=reference, title=basis.title, expires_at=basis.expires_at, created_at=now
    )
    session.add(row)
    session.flush()
    session.add_all(
        LegalBasisCeilingRow(legal_basis_id=row.id, asset=asset, ceiling=ceiling)
        for asset, ceiling in basis.ceilings.items()
    )
    session.flush()
    audit_policy_change(
        session, actor, {"legal_basis_id": row.id}, "legal_basis_added", now,
        reference=reference, expires_at=basis.expires_at.isoformat(),
        ceilings={asset: str(ceiling) for asset, ceiling in basis.ceilings.items()},
    )  # fmt: skip
    return row.id


def legal_basis_by_reference(session: Session, reference: str) -> tuple[int, LegalBasis]:
    """The row id and content of the legal basis registered as ``reference`` (one query)."""
    found = _load(session, LegalBasisRow.reference == reference)
    if found is None:
        raise UnknownRecordError(f"No legal basis is registered under the reference {reference!r}.")
    return found


def load_legal_basis(session: Session, legal_basis_id: int) -> LegalBasis:
    """The legal basis with row id ``legal_basis_id`` and its ceilings (one query)."""
    found = _load(session, LegalBasisRow.id == legal_basis_id)
    if found is None:
        raise UnknownRecordError(f"No legal basis has the id {legal_basis_id}.")
    return found[1]


def _load(session: Session, where: ColumnElement[bool]) -> tuple[int, LegalBasis] | None:
    """The basis matching ``where`` with its ceilings, read in one round trip (an outer join)."""
    rows = session.execute(
        select(
            LegalBasisRow.id,
            LegalBasisRow.reference,
            LegalBasisRow.title,
            LegalBasisRow.expires_at,
            LegalBasisCeilingRow.asset,
            LegalBasisCeilingRow.ceiling,
        )
        .outerjoin(LegalBasisCeilingRow, LegalBasisCeilingRow.legal_basis_id == LegalBasisRow.id)
        .where(where)
    ).all()
    if not rows:
        return None
    first = rows[0]
    ceilings = {r.asset: r.ceiling for r in rows if r.asset is not None}
    return first.id, LegalBasis(first.reference, first.title, first.expires_at, ceilings)
