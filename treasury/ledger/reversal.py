"""Reversal: a posted entry is corrected by its mirror image, once, never edited or deleted.

The journal is append-only, so a mistake is undone by a new entry with every side swapped that
names the one it reverses; the reversal is idempotent like any entry, and audited.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.clock import Clock, utc_now
from treasury.audit import AuditKind
from treasury.exceptions import IllegalTransitionError
from treasury.ledger.entries import (
    Draft,
    EntryRecord,
    Leg,
    make_draft,
    validate_description,
    validate_entry_id,
    validate_key,
)
from treasury.ledger.journal import audited, locked_entry, records, replay_of, write
from treasury.ledger.models import EntryKind, JournalEntry


def reverse(
    session: Session,
    entry_id: int,
    key: str,
    *,
    actor: str,
    reason: str,
    clock: Clock = utc_now,
) -> EntryRecord:
    """Correct a posted entry with its mirror image (every side swapped), once, and audit it."""
    entry_id = validate_entry_id(entry_id, "entry_id")
    reason = validate_description(reason, "reason")
    draft = make_draft(validate_key(key), EntryKind.POSTED, (), reason, None, entry_id)
    if (original := replay_of(session, draft)) is not None:
        return original
    row = locked_entry(session, entry_id, "entry_id")
    if row.kind not in (EntryKind.POSTED, EntryKind.POST_PENDING):
        hint = "void it instead" if row.kind is EntryKind.PENDING else "it moved no money"
        raise IllegalTransitionError(
            f"Entry #{entry_id} is a {row.kind.value} entry and cannot be reversed; {hint}."
        )
    earlier = session.scalar(select(JournalEntry.id).where(JournalEntry.reverses_id == entry_id))
    if earlier is not None:
        raise IllegalTransitionError(
            f"Entry #{entry_id} was already reversed by entry #{earlier}; reverse it only once."
        )
    reversed_entry = records(session, [row])[row.id]
    mirrored = tuple(Leg(leg.account, leg.side.opposite, leg.amount) for leg in reversed_entry.legs)
    reversal = Draft(draft.key, draft.kind, mirrored, reason, None, entry_id, draft.payload_hash)
    record = write(session, [reversal], clock)[draft.key]
    return audited(
        session,
        record,
        kind=AuditKind.LEDGER_ENTRY_REVERSED,
        actor=actor,
        reason=reason,
        refs={"reverses_id": entry_id},
        clock=clock,
    )
