"""Reading entries back: one by id or by idempotency key, or a page of the journal.

Reads take no locks and write nothing; they return the same ``EntryRecord`` values the writers
return, so a caller cannot tell a replayed write from a read.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.exceptions import UnknownAccountError, UnknownEntryError
from treasury.ledger.entries import EntryRecord, validate_entry_id
from treasury.ledger.journal import records
from treasury.ledger.models import Account, JournalEntry, Posting


def get_entry(session: Session, entry_id: int) -> EntryRecord:
    """The entry ``entry_id``, or ``UnknownEntryError``."""
    row = session.get(JournalEntry, validate_entry_id(entry_id, "entry_id"))
    if row is None:
        raise UnknownEntryError(f"The entry_id {entry_id} names no journal entry.")
    return records(session, [row])[row.id]


def find_entry(session: Session, key: str) -> EntryRecord | None:
    """The entry recorded under idempotency key ``key``, if any."""
    row = session.scalar(select(JournalEntry).where(JournalEntry.idempotency_key == key))
    return None if row is None else records(session, [row])[row.id]


def list_entries(
    session: Session, *, account: str | None = None, after_id: int = 0, limit: int = 100
) -> list[EntryRecord]:
    """Entries with an id above ``after_id`` (touching ``account``, if given), oldest first."""
    query = select(JournalEntry).where(JournalEntry.id > after_id)
    if account is not None:
        account_id = session.scalar(select(Account.id).where(Account.code == account))
        if account_id is None:
            raise UnknownAccountError(f"The account code {account!r} names no account.")
        touching = select(Posting.entry_id).where(Posting.account_id == account_id)
        query = query.where(JournalEntry.id.in_(touching))
    rows = list(session.scalars(query.order_by(JournalEntry.id).limit(limit)))
    found = records(session, rows)
    return [found[row.id] for row in rows]
