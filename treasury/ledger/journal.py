"""The journal's storage: serialised, idempotent, checked reads and writes of entries.

Every operation reduces its request to a ``Draft`` (``treasury.ledger.entries``) and comes here
to write it: the same key with the same payload returns the original entry, the same key with
another payload raises ``IdempotencyConflictError``; a new draft is checked (accounts exist, it
balances per asset, no no-overdraft account goes below zero) and inserted. The caller owns the
transaction (these functions flush, never commit), so audit events and other records written in
the same session commit or roll back together with the entry.

Concurrency: writers are serialised per idempotency key (PostgreSQL advisory locks, taken in
hash order) and per no-overdraft account (``SELECT ... FOR UPDATE`` in id order) before anything
is checked; on SQLite the whole transaction takes the single write lock up front (``BEGIN
IMMEDIATE``). PostgreSQL must run at READ COMMITTED (its default) so that the checks made after
the locks see the work of the writer that held them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy import ColumnElement, any_, bindparam, insert, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

from custody.clock import Clock
from treasury import audit
from treasury.audit import AuditKind
from treasury.db import begin_serialised_write
from treasury.exceptions import (
    IdempotencyConflictError,
    InvalidEntryError,
    OverdraftError,
    UnbalancedEntryError,
    UnknownAccountError,
    UnknownEntryError,
)
from treasury.ledger.balances import available, totals_for
from treasury.ledger.entries import Draft, EntryRecord, Leg
from treasury.ledger.models import Account, EntryKind, JournalEntry, Posting, Side

POSTGRES_KEY_LOCK_NAMESPACE = 0x4C47
"""First key of the (namespace, hashtext(key)) advisory locks that serialise a key's writers."""

LOOKUP_CHUNK_ROWS = 500
"""Ids or keys per ``IN (...)`` lookup, well below SQLite's bound-parameter limit."""

_T = TypeVar("_T")


# --- Locking and lookup -----------------------------------------------------------------------


def is_postgres(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (row locks and array parameters are used there)."""
    return session.connection().dialect.name == "postgresql"


def serialise_keys(session: Session, keys: Sequence[str]) -> None:
    """Make writers of the same keys wait for each other (see the module docstring)."""
    begin_serialised_write(session)
    if is_postgres(session):
        session.execute(
            text(
                "SELECT count(pg_advisory_xact_lock(:namespace, h)) FROM "
                "(SELECT DISTINCT hashtext(k) AS h FROM unnest(CAST(:keys AS text[])) AS k "
                "ORDER BY h) AS locks"
            ),
            {"namespace": POSTGRES_KEY_LOCK_NAMESPACE, "keys": list(keys)},
        )


def _chunks(items: Sequence[_T]) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), LOOKUP_CHUNK_ROWS):
        yield items[start : start + LOOKUP_CHUNK_ROWS]


def _among(
    session: Session, column: InstrumentedAttribute[_T], values: Sequence[_T]
) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL one array parameter, which the planner can hash.

    (Separate ``IN ($1, ..., $n)`` parameters are compared one by one against every row once
    the table is large enough for a sequential scan: quadratic batches.)
    """
    if is_postgres(session):
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _rows_by_key(session: Session, keys: Sequence[str]) -> dict[str, JournalEntry]:
    found: dict[str, JournalEntry] = {}
    for chunk in _chunks(keys):
        for row in session.scalars(
            select(JournalEntry).where(_among(session, JournalEntry.idempotency_key, chunk))
        ):
            found[row.idempotency_key] = row
    return found


def records(session: Session, rows: Sequence[JournalEntry]) -> dict[int, EntryRecord]:
    """Records of stored entries, keyed by id, legs read back from the database."""
    legs: dict[int, list[Leg]] = defaultdict(list)
    for chunk in _chunks([row.id for row in rows]):
        query = (
            select(Posting.entry_id, Account.code, Posting.side, Posting.amount)
            .join(Account, Account.id == Posting.account_id)
            .where(_among(session, Posting.entry_id, chunk))
            .order_by(Posting.entry_id, Posting.position)
        )
        for entry_id, code, side, amount in session.execute(query):
            legs[entry_id].append(Leg(code, side, amount))
    return {
        row.id: EntryRecord(
            id=row.id,
            key=row.idempotency_key,
            kind=row.kind,
            legs=tuple(legs[row.id]),
            description=row.description,
            recorded_at=row.recorded_at,
            payload_hash=row.payload_hash,
            pending_id=row.pending_id,
            reverses_id=row.reverses_id,
        )
        for row in rows
    }


def replays(
    session: Session, drafts: Sequence[Draft]
) -> tuple[dict[str, EntryRecord], list[Draft]]:
    """Serialise on the drafts' keys; split them into replays (their originals) and new ones."""
    serialise_keys(session, [draft.key for draft in drafts])
    stored = _rows_by_key(session, [draft.key for draft in drafts])
    for draft in drafts:
        row = stored.get(draft.key)
        if row is not None and row.payload_hash != draft.payload_hash:
            raise IdempotencyConflictError(
                f"The idempotency key {draft.key!r} was already used for entry #{row.id} with a "
                "different payload; use a new key for a new entry."
            )
    found = records(session, list(stored.values()))
    originals = {row.idempotency_key: found[row.id] for row in stored.values()}
    return originals, [draft for draft in drafts if draft.key not in stored]


def replay_of(session: Session, draft: Draft) -> EntryRecord | None:
    """Serialise on one draft's key; the entry already recorded under it, or None if it is new."""
    originals, _new = replays(session, [draft])
    return originals.get(draft.key)


def locked_entry(session: Session, entry_id: int, field: str) -> JournalEntry:
    """The entry ``entry_id``, row-locked on PostgreSQL until the transaction ends."""
    query = select(JournalEntry).where(JournalEntry.id == entry_id)
    if is_postgres(session):
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise UnknownEntryError(f"The {field} {entry_id} names no journal entry.")
    return row


# --- Checks and writing -----------------------------------------------------------------------


def accounts_of(session: Session, drafts: Sequence[Draft]) -> dict[str, Account]:
    """The accounts the drafts' legs name, by code; ``UnknownAccountError`` for a missing one."""
    codes = sorted({leg.account for draft in drafts for leg in draft.legs})
    found: dict[str, Account] = {}
    for chunk in _chunks(codes):
        for row in session.scalars(select(Account).where(Account.code.in_(chunk))):
            found[row.code] = row
    for code in codes:
        if code not in found:
            raise UnknownAccountError(f"The account code {code!r} in a leg names no account.")
    return found


def check_balanced(draft: Draft, accounts: dict[str, Account]) -> None:
    """``UnbalancedEntryError`` unless the draft's debits equal its credits in every asset."""
    net: dict[str, int] = defaultdict(int)
    for leg in draft.legs:
        asset = accounts[leg.account].asset.code
        net[asset] += leg.amount if leg.side is Side.DEBIT else -leg.amount
    for asset, difference in sorted(net.items()):
        if difference:
            debits = sum(
                leg.amount
                for leg in draft.legs
                if leg.side is Side.DEBIT and accounts[leg.account].asset.code == asset
            )
            raise UnbalancedEntryError(
                f"Entry {draft.key!r} does not balance in {asset}: debits {debits} and credits "
                f"{debits - difference} (base units) must be equal."
            )


def check_overdrafts(
    session: Session, drafts: Sequence[Draft], accounts: dict[str, Account]
) -> None:
    """Lock the no-overdraft accounts in id order, then apply the drafts to their availability."""
    guarded = sorted({a.id for a in accounts.values() if a.no_overdraft})
    if not guarded:
        return
    if is_postgres(session):
        session.execute(
            select(Account.id)
            .where(Account.id.in_(guarded))
            .order_by(Account.id)
            .with_for_update(key_share=True)
        )
    by_id = {a.id: a for a in accounts.values()}
    current = totals_for(session, guarded)
    left = {
        account_id: available(current[account_id], by_id[account_id].type.normal_side)
        if account_id in current
        else 0
        for account_id in guarded
    }
    for draft in drafts:
        delta: dict[int, int] = defaultdict(int)
        for leg in draft.legs:
            account = accounts[leg.account]
            if not account.no_overdraft:
                continue
            if leg.side is not account.type.normal_side:
                delta[account.id] -= leg.amount
            elif draft.kind is EntryKind.POSTED:
                delta[account.id] += leg.amount  # pending legs toward the normal side don't count
        for account_id, change in delta.items():
            after = left[account_id] + change
            if change < 0 and after < 0:
                raise OverdraftError(
                    f"Entry {draft.key!r} would take the no-overdraft account "
                    f"{by_id[account_id].code!r} to an available balance of {after} "
                    f"{by_id[account_id].asset.code} base units."
                )
            left[account_id] = after


def write(
    session: Session, drafts: Sequence[Draft], clock: Clock, *, check_overdraft: bool = True
) -> dict[str, EntryRecord]:
    """Check the new drafts (accounts, balance, overdraft), then insert them; records by key."""
    if not drafts:
        return {}
    accounts = accounts_of(session, drafts)
    for draft in drafts:
        check_balanced(draft, accounts)
    if check_overdraft:
        check_overdrafts(session, drafts, accounts)
    recorded_at = clock()
    if recorded_at.tzinfo is None:
        raise InvalidEntryError("The clock returned a time without a timezone; use UTC.")
    ids = session.scalars(
        insert(JournalEntry).returning(JournalEntry.id, sort_by_parameter_order=True),
        [
            {
                "idempotency_key": draft.key,
                "kind": draft.kind,
                "description": draft.description,
                "payload_hash": draft.payload_hash,
                "posting_count": len(draft.legs) if draft.legs else None,
                "pending_id": draft.pending_id,
                "reverses_id": draft.reverses_id,
                "recorded_at": recorded_at,
            }
            for draft in drafts
        ],
    ).all()
    postings = [
        {
            "entry_id": entry_id,
            "position": position,
            "account_id": accounts[leg.account].id,
            "asset_id": accounts[leg.account].asset_id,
            "side": leg.side,
            "amount": leg.amount,
        }
        for entry_id, draft in zip(ids, drafts, strict=True)
        for position, leg in enumerate(draft.legs, start=1)
    ]
    if postings:
        session.execute(insert(Posting), postings)
    return {
        draft.key: EntryRecord(
            id=entry_id,
            key=draft.key,
            kind=draft.kind,
            legs=draft.legs,
            description=draft.description,
            recorded_at=recorded_at,
            payload_hash=draft.payload_hash,
            pending_id=draft.pending_id,
            reverses_id=draft.reverses_id,
        )
        for entry_id, draft in zip(ids, drafts, strict=True)
    }


def audited(
    session: Session,
    record: EntryRecord,
    *,
    kind: AuditKind,
    actor: str,
    reason: str,
    refs: Mapping[str, int],
    clock: Clock,
) -> EntryRecord:
    """Audit who voided or reversed an entry and why, in the entry's transaction; return it."""
    audit.append(
        session,
        kind=kind,
        actor=actor,
        refs={"entry_id": record.id, **refs},
        payload={"key": record.key, "reason": reason},
        clock=clock,
    )
    return record
