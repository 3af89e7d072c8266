"""The destination allowlist: an address is spendable only after its own quorum and a delay.

The requesting officer may not approve; each quorum institution approves once; when the policy's
``allowlist.required`` institutions have approved, the address becomes active after the policy's
``allowlist.delay_seconds``, which gives the other officers time to notice a bad address. The
activation is a row of its own (``allowlist_activations``): entries are never edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.officers import InstitutionRow, Officer, Role
from treasury.policy.change_audit import audit_policy_change
from treasury.policy.document import StoredPolicy
from treasury.policy.tables import (
    ADDRESS_MAX_CHARS,
    AllowlistActivationRow,
    AllowlistApprovalRow,
    AllowlistEntryRow,
)
from treasury.workflow_exceptions import NotAuthorisedError, UnknownRecordError, WorkflowInputError


@dataclass(frozen=True)
class AllowlistEntry:
    id: int
    asset: str
    address: str
    label: str
    requested_by: int
    approving_institutions: tuple[str, ...]
    active_from: datetime | None
    """``None`` until the allowlist quorum is reached; then quorum time plus the policy's delay."""


def request_destination(
    session: Session, actor: Officer, asset: str, address: str, label: str, *, now: datetime
) -> AllowlistEntry:
    """Ask for ``address`` to become an allowed destination for ``asset`` (proposer or admin)."""
    actor.require(Role.PROPOSER, Role.ADMIN)
    if not address or len(address) > ADDRESS_MAX_CHARS:
        raise WorkflowInputError(
            f"The destination address must be 1 to {ADDRESS_MAX_CHARS} characters."
        )
    row = AllowlistEntryRow(
        asset=asset, address=address, label=label, requested_by=actor.id, requested_at=now
    )
    session.add(row)
    session.flush()
    audit_policy_change(
        session, actor, {"allowlist_entry_id": row.id}, "destination_requested", now,
        asset=asset, address=address,
    )  # fmt: skip
    return _entry(session, row)


def approve_destination(
    session: Session, actor: Officer, entry_id: int, policy: StoredPolicy, *, now: datetime
) -> AllowlistEntry:
    """Approve an allowlist request for the actor's institution; the quorum starts the delay."""
    actor.require(Role.APPROVER)
    row = session.get(AllowlistEntryRow, entry_id)
    if row is None:
        raise UnknownRecordError(f"No allowlist request has the id {entry_id}.")
    document = policy.document
    if not actor.is_active(now):
        raise NotAuthorisedError(f"Officer {actor.id} is revoked and cannot approve destinations.")
    if actor.id == row.requested_by:
        raise NotAuthorisedError("The officer who requested a destination may not approve it.")
    if actor.institution_code not in document.quorum_institutions:
        raise NotAuthorisedError(
            f"Institution {actor.institution_code} is not one of the policy's quorum institutions."
        )
    existing = session.get(AllowlistApprovalRow, (entry_id, actor.institution_id))
    if existing is not None:
        raise WorkflowInputError(
            f"Institution {actor.institution_code} has already approved allowlist request {entry_id}."
        )
    session.add(
        AllowlistApprovalRow(
            entry_id=entry_id,
            institution_id=actor.institution_id,
            officer_id=actor.id,
            approved_at=now,
        )
    )
    session.flush()
    entry = _entry(session, row)
    if (
        entry.active_from is None
        and len(entry.approving_institutions) >= document.allowlist_required
    ):
        session.add(
            AllowlistActivationRow(
                entry_id=entry_id,
                active_from=now + timedelta(seconds=document.allowlist_delay_seconds),
            )
        )
        session.flush()
        entry = _entry(session, row)
    audit_policy_change(
        session, actor, {"allowlist_entry_id": entry_id}, "destination_approved", now,
        institution=actor.institution_code,
        active_from=None if entry.active_from is None else entry.active_from.isoformat(),
    )  # fmt: skip
    return entry


def _entry(session: Session, row: AllowlistEntryRow) -> AllowlistEntry:
    codes = session.scalars(
        select(InstitutionRow.code)
        .join(AllowlistApprovalRow, AllowlistApprovalRow.institution_id == InstitutionRow.id)
        .where(AllowlistApprovalRow.entry_id == row.id)
        .order_by(InstitutionRow.code)
    )
    active_from = session.scalar(
        select(AllowlistActivationRow.active_from).where(AllowlistActivationRow.entry_id == row.id)
    )
    return AllowlistEntry(
        id=row.id,
        asset=row.asset,
        address=row.address,
        label=row.label,
        requested_by=row.requested_by,
        approving_institutions=tuple(codes),
        active_from=active_from,
    )


def destination_allowed(session: Session, asset: str, address: str, *, now: datetime) -> bool:
    """Whether ``address`` is an active allowlisted destination for ``asset`` at ``now``."""
    found = session.scalar(
        select(AllowlistEntryRow.id)
        .join(AllowlistActivationRow, AllowlistActivationRow.entry_id == AllowlistEntryRow.id)
        .where(
            AllowlistEntryRow.asset == asset,
            AllowlistEntryRow.address == address,
            AllowlistActivationRow.active_from <= now,
        )
        .limit(1)
    )
    return found is not None
