"""Two-phase entries: a pending entry is later posted in full or voided, exactly once.

A pending entry reserves money (it counts against a no-overdraft account's availability) while
a spend is in flight; settling it is a new entry that names it, so the journal stays append-only
and the resolution is itself idempotent and, for a void, audited.
"""

from __future__ import annotations

import enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.clock import Clock, utc_now
from treasury.audit import AuditKind
from treasury.exceptions import IllegalTransitionError, UnknownEntryError
from treasury.ledger.entries import (
    Draft,
    EntryRecord,
    make_draft,
    validate_description,
    validate_entry_id,
    validate_key,
)
from treasury.ledger.journal import audited, locked_entry, records, replay_of, write
from treasury.ledger.models import EntryKind, JournalEntry


class PendingState(enum.StrEnum):
    """Where a pending entry stands."""

    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"


def _unresolved_pending(session: Session, pending_id: int, verb: str) -> EntryRecord:
    row = locked_entry(session, pending_id, "pending_id")
    if row.kind is not EntryKind.PENDING:
        raise IllegalTransitionError(
            f"Entry #{pending_id} is a {row.kind.value} entry, not a pending one; only pending "
            f"entries can be {verb}."
        )
    resolution = session.scalar(select(JournalEntry).where(JournalEntry.pending_id == pending_id))
    if resolution is not None:
        done = "posted" if resolution.kind is EntryKind.POST_PENDING else "voided"
        raise IllegalTransitionError(
            f"Pending entry #{pending_id} was already {done} by entry #{resolution.id}; it cannot "
            f"be {verb} again."
        )
    return records(session, [row])[row.id]


def post_pending(
    session: Session, pending_id: int, key: str, *, clock: Clock = utc_now
) -> EntryRecord:
    """Post a pending entry in full: a new entry with the same legs, counted as posted."""
    pending_id = validate_entry_id(pending_id, "pending_id")
    draft = make_draft(validate_key(key), EntryKind.POST_PENDING, (), "", pending_id)
    if (original := replay_of(session, draft)) is not None:
        return original
    pending = _unresolved_pending(session, pending_id, "posted")
    # Availability is unchanged: the legs against no-overdraft accounts already counted as pending.
    posted = Draft(
        draft.key,
        draft.kind,
        pending.legs,
        pending.description,
        pending_id,
        None,
        draft.payload_hash,
    )
    return write(session, [posted], clock, check_overdraft=False)[draft.key]


def void_pending(
    session: Session,
    pending_id: int,
    key: str,
    *,
    actor: str,
    reason: str,
    clock: Clock = utc_now,
) -> EntryRecord:
    """Void a pending entry (its reservation is released) and audit who did it and why."""
    pending_id = validate_entry_id(pending_id, "pending_id")
    reason = validate_description(reason, "reason")
    draft = make_draft(validate_key(key), EntryKind.VOID_PENDING, (), reason, pending_id)
    if (original := replay_of(session, draft)) is not None:
        return original
    _unresolved_pending(session, pending_id, "voided")
    record = write(session, [draft], clock, check_overdraft=False)[draft.key]
    return audited(
        session,
        record,
        kind=AuditKind.LEDGER_PENDING_VOIDED,
        actor=actor,
        reason=reason,
        refs={"pending_id": pending_id},
        clock=clock,
    )


def pending_state(session: Session, pending_id: int) -> PendingState:
    """Whether a pending entry is still pending, or was posted or voided."""
    row = session.get(JournalEntry, validate_entry_id(pending_id, "pending_id"))
    if row is None:
        raise UnknownEntryError(f"The pending_id {pending_id} names no journal entry.")
    if row.kind is not EntryKind.PENDING:
        raise IllegalTransitionError(
            f"Entry #{pending_id} is a {row.kind.value} entry, not a pending one."
        )
    resolution = session.scalar(
        select(JournalEntry.kind).where(JournalEntry.pending_id == pending_id)
    )
    if resolution is None:
        return PendingState.PENDING
    return PendingState.POSTED if resolution is EntryKind.POST_PENDING else PendingState.VOIDED
