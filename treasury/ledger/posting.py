"""Recording entries: a batch (or one) posted directly, or pending for a later post or void.

This is the ledger's ordinary way in: every booking of a spend, a receipt or an adjustment
arrives here with a client-supplied idempotency key, and the batch is written all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from custody.clock import Clock, utc_now
from treasury.exceptions import IdempotencyConflictError, InvalidEntryError
from treasury.ledger.entries import (
    Draft,
    EntryRecord,
    EntryRequest,
    Leg,
    make_draft,
    validate_description,
    validate_key,
    validate_legs,
)
from treasury.ledger.journal import replays, write
from treasury.ledger.models import EntryKind


def record_entries(
    session: Session, requests: Sequence[EntryRequest], *, clock: Clock = utc_now
) -> list[EntryRecord]:
    """Record a batch of entries (posted, or pending); one record per request, in order.

    All or nothing: if any request is malformed, unbalanced, overdraws, or reuses a key with a
    different payload, nothing of the batch is written. A key repeated within the batch with the
    same payload is recorded once.
    """
    drafts: dict[str, Draft] = {}
    for number, request in enumerate(requests, start=1):
        if not isinstance(request, EntryRequest):
            raise InvalidEntryError(
                f"Request {number} is a {type(request).__name__}, not an EntryRequest."
            )
        if not isinstance(request.pending, bool):
            raise InvalidEntryError(f"The pending flag of request {number} must be a bool.")
        draft = make_draft(
            validate_key(request.key),
            EntryKind.PENDING if request.pending else EntryKind.POSTED,
            validate_legs(request.legs),
            validate_description(request.description),
        )
        earlier = drafts.setdefault(draft.key, draft)
        if earlier.payload_hash != draft.payload_hash:
            raise IdempotencyConflictError(
                f"The idempotency key {draft.key!r} appears twice in the batch with different payloads."
            )
    if not drafts:
        return []
    originals, new = replays(session, list(drafts.values()))
    written = write(session, new, clock)
    return [originals.get(request.key) or written[request.key] for request in requests]


def record_entry(
    session: Session,
    key: str,
    legs: Sequence[Leg],
    *,
    description: str = "",
    pending: bool = False,
    clock: Clock = utc_now,
) -> EntryRecord:
    """Record one entry, posted directly or (``pending=True``) reserved for a later post/void."""
    request = EntryRequest(key, tuple(legs), description, pending)
    (record,) = record_entries(session, [request], clock=clock)
    return record
