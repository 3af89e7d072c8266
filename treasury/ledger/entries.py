"""Journal entries: record (directly or pending), post or void a pending entry, reverse an entry.

Every operation takes a client-supplied idempotency key. The request is reduced to a canonical
payload hash stored on the entry: the same key with the same payload returns the original entry,
the same key with another payload raises ``IdempotencyConflictError``. Everything is validated
before the first row is written, so a refused request writes nothing; the caller owns the
transaction (these functions flush, never commit), so audit events and other records written in
the same session commit or roll back together with the entry.

Concurrency: writers are serialised per idempotency key (PostgreSQL advisory locks, taken in
hash order) and per no-overdraft account (``SELECT ... FOR UPDATE`` in id order) before anything
is checked; on SQLite the whole transaction takes the single write lock up front (``BEGIN
IMMEDIATE``). PostgreSQL must run at READ COMMITTED (its default) so that the checks made after
the locks see the work of the writer that held them.
"""

from __future__ import annotations

import enum
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, any_, bindparam, insert, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

from custody.clock import Clock, utc_now
from treasury import audit
from treasury.audit import AuditKind
from treasury.canonical import canonical_json
from treasury.db import begin_serialised_write
from treasury.exceptions import (
    IdempotencyConflictError,
    IllegalTransitionError,
    InvalidEntryError,
    OverdraftError,
    UnbalancedEntryError,
    UnknownAccountError,
    UnknownEntryError,
)
from treasury.ledger.accounts import validate_code
from treasury.ledger.amounts import validate_amount
from treasury.ledger.balances import available, totals_for
from treasury.ledger.models import (
    DESCRIPTION_MAX_CHARS,
    KEY_MAX_CHARS,
    Account,
    EntryKind,
    JournalEntry,
    Posting,
    Side,
)

MAX_LEGS_PER_ENTRY = 1000
"""Bounds an entry's size, and keeps SQLite's exact in-trigger balance sums far from overflow."""

PAYLOAD_HASH_TAG = b"treasury.ledger.entry.v1\x00"
"""Domain separator and version of the canonical payload hash."""

POSTGRES_KEY_LOCK_NAMESPACE = 0x4C47
"""First key of the (namespace, hashtext(key)) advisory locks that serialise a key's writers."""

LOOKUP_CHUNK_ROWS = 500
"""Ids or keys per ``IN (...)`` lookup, well below SQLite's bound-parameter limit."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class Leg:
    """One side of an entry: a positive amount (base units) debited or credited to an account."""

    account: str
    side: Side
    amount: int

    @classmethod
    def debit(cls, account: str, amount: int) -> Leg:
        """A debit leg."""
        return cls(account, Side.DEBIT, amount)

    @classmethod
    def credit(cls, account: str, amount: int) -> Leg:
        """A credit leg."""
        return cls(account, Side.CREDIT, amount)


@dataclass(frozen=True)
class EntryRequest:
    """What a client asks to record; ``pending`` reserves it for a later post or void."""

    key: str
    legs: tuple[Leg, ...]
    description: str = ""
    pending: bool = False


@dataclass(frozen=True)
class EntryRecord:
    """A stored entry with its legs in position order."""

    id: int
    key: str
    kind: EntryKind
    legs: tuple[Leg, ...]
    description: str
    recorded_at: datetime
    payload_hash: str
    pending_id: int | None
    reverses_id: int | None


class PendingState(enum.StrEnum):
    """Where a pending entry stands."""

    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"


@dataclass(frozen=True)
class _Draft:
    """A validated, hashed entry not yet written."""

    key: str
    kind: EntryKind
    legs: tuple[Leg, ...]
    description: str
    pending_id: int | None
    reverses_id: int | None
    payload_hash: str


# --- Validation and hashing -------------------------------------------------------------------


def _validate_key(key: object) -> str:
    if (
        not isinstance(key, str)
        or not key.strip()
        or len(key) > KEY_MAX_CHARS
        or not key.isprintable()
    ):
        raise InvalidEntryError(
            f"The idempotency key {key!r} must be printable, non-blank text of at most "
            f"{KEY_MAX_CHARS} characters."
        )
    return key


def _validate_description(description: object, field: str = "description") -> str:
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX_CHARS:
        raise InvalidEntryError(
            f"The {field} must be text of at most {DESCRIPTION_MAX_CHARS} characters."
        )
    return description


def _validate_entry_id(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidEntryError(f"The {field} must be a positive int entry id, not {value!r}.")
    return value


def _validate_legs(legs: object) -> tuple[Leg, ...]:
    if not isinstance(legs, tuple | list):
        raise InvalidEntryError("The legs must be a tuple of Leg values.")
    if not 2 <= len(legs) <= MAX_LEGS_PER_ENTRY:
        raise InvalidEntryError(
            f"An entry needs between 2 and {MAX_LEGS_PER_ENTRY} legs, not {len(legs)}."
        )
    for number, leg in enumerate(legs, start=1):
        if not isinstance(leg, Leg):
            raise InvalidEntryError(f"Leg {number} is a {type(leg).__name__}, not a Leg.")
        validate_code(leg.account, f"account of leg {number}")
        if not isinstance(leg.side, Side):
            raise InvalidEntryError(f"The side of leg {number} must be a Side, not {leg.side!r}.")
        validate_amount(leg.amount, f"amount of leg {number} ({leg.account})")
    return tuple(legs)


def payload_hash(
    kind: EntryKind,
    legs: Iterable[Leg],
    description: str,
    pending_id: int | None = None,
    reverses_id: int | None = None,
) -> str:
    """SHA-256 (hex) of the canonical request: what a repeated key must match to be a replay.

    Legs are sorted, so listing the same legs in another order is the same request; the time is
    left out, so a replay later is still a replay.
    """
    document = {
        "kind": kind.value,
        "legs": sorted([leg.account, leg.side.value, str(leg.amount)] for leg in legs),
        "description": description,
        "pending_id": pending_id,
        "reverses_id": reverses_id,
    }
    return hashlib.sha256(PAYLOAD_HASH_TAG + canonical_json(document).encode()).hexdigest()


def _draft(
    key: str,
    kind: EntryKind,
    legs: tuple[Leg, ...],
    description: str,
    pending_id: int | None = None,
    reverses_id: int | None = None,
    hashed_legs: tuple[Leg, ...] | None = None,
) -> _Draft:
    digest = payload_hash(
        kind, legs if hashed_legs is None else hashed_legs, description, pending_id, reverses_id
    )
    return _Draft(key, kind, legs, description, pending_id, reverses_id, digest)


# --- Locking, lookup, writing -----------------------------------------------------------------


def _is_postgres(session: Session) -> bool:
    return session.connection().dialect.name == "postgresql"


def _serialise_keys(session: Session, keys: Sequence[str]) -> None:
    """Make writers of the same keys wait for each other (see the module docstring)."""
    begin_serialised_write(session)
    if _is_postgres(session):
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
    if _is_postgres(session):
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


def _records(session: Session, rows: Sequence[JournalEntry]) -> dict[int, EntryRecord]:
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


def _replays(
    session: Session, drafts: Sequence[_Draft]
) -> tuple[dict[str, EntryRecord], list[_Draft]]:
    """Serialise on the drafts' keys; split them into replays (their originals) and new ones."""
    _serialise_keys(session, [draft.key for draft in drafts])
    stored = _rows_by_key(session, [draft.key for draft in drafts])
    for draft in drafts:
        row = stored.get(draft.key)
        if row is not None and row.payload_hash != draft.payload_hash:
            raise IdempotencyConflictError(
                f"The idempotency key {draft.key!r} was already used for entry #{row.id} with a "
                "different payload; use a new key for a new entry."
            )
    records = _records(session, list(stored.values()))
    originals = {row.idempotency_key: records[row.id] for row in stored.values()}
    return originals, [draft for draft in drafts if draft.key not in stored]


def _accounts(session: Session, drafts: Sequence[_Draft]) -> dict[str, Account]:
    codes = sorted({leg.account for draft in drafts for leg in draft.legs})
    found: dict[str, Account] = {}
    for chunk in _chunks(codes):
        for row in session.scalars(select(Account).where(Account.code.in_(chunk))):
            found[row.code] = row
    for code in codes:
        if code not in found:
            raise UnknownAccountError(f"The account code {code!r} in a leg names no account.")
    return found


def _check_balanced(draft: _Draft, accounts: dict[str, Account]) -> None:
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


def _check_overdrafts(
    session: Session, drafts: Sequence[_Draft], accounts: dict[str, Account]
) -> None:
    """Lock the no-overdraft accounts in id order, then apply the drafts to their availability."""
    guarded = sorted({a.id for a in accounts.values() if a.no_overdraft})
    if not guarded:
        return
    if _is_postgres(session):
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


def _write(
    session: Session, drafts: Sequence[_Draft], clock: Clock, *, check_overdraft: bool = True
) -> dict[str, EntryRecord]:
    """Check the new drafts (accounts, balance, overdraft), then insert them; records by key."""
    if not drafts:
        return {}
    accounts = _accounts(session, drafts)
    for draft in drafts:
        _check_balanced(draft, accounts)
    if check_overdraft:
        _check_overdrafts(session, drafts, accounts)
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


# --- Operations -------------------------------------------------------------------------------


def record_entries(
    session: Session, requests: Sequence[EntryRequest], *, clock: Clock = utc_now
) -> list[EntryRecord]:
    """Record a batch of entries (posted, or pending); one record per request, in order.

    All or nothing: if any request is malformed, unbalanced, overdraws, or reuses a key with a
    different payload, nothing of the batch is written. A key repeated within the batch with the
    same payload is recorded once.
    """
    drafts: dict[str, _Draft] = {}
    for number, request in enumerate(requests, start=1):
        if not isinstance(request, EntryRequest):
            raise InvalidEntryError(
                f"Request {number} is a {type(request).__name__}, not an EntryRequest."
            )
        if not isinstance(request.pending, bool):
            raise InvalidEntryError(f"The pending flag of request {number} must be a bool.")
        draft = _draft(
            _validate_key(request.key),
            EntryKind.PENDING if request.pending else EntryKind.POSTED,
            _validate_legs(request.legs),
            _validate_description(request.description),
        )
        earlier = drafts.setdefault(draft.key, draft)
        if earlier.payload_hash != draft.payload_hash:
            raise IdempotencyConflictError(
                f"The idempotency key {draft.key!r} appears twice in the batch with different payloads."
            )
    if not drafts:
        return []
    originals, new = _replays(session, list(drafts.values()))
    written = _write(session, new, clock)
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


def _locked_entry(session: Session, entry_id: int, field: str) -> JournalEntry:
    query = select(JournalEntry).where(JournalEntry.id == entry_id)
    if _is_postgres(session):
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise UnknownEntryError(f"The {field} {entry_id} names no journal entry.")
    return row


def _unresolved_pending(session: Session, pending_id: int, verb: str) -> EntryRecord:
    row = _locked_entry(session, pending_id, "pending_id")
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
    return _records(session, [row])[row.id]


def post_pending(
    session: Session, pending_id: int, key: str, *, clock: Clock = utc_now
) -> EntryRecord:
    """Post a pending entry in full: a new entry with the same legs, counted as posted."""
    pending_id = _validate_entry_id(pending_id, "pending_id")
    draft = _draft(_validate_key(key), EntryKind.POST_PENDING, (), "", pending_id)
    originals, new = _replays(session, [draft])
    if not new:
        return originals[draft.key]
    pending = _unresolved_pending(session, pending_id, "posted")
    # Availability is unchanged: the legs against no-overdraft accounts already counted as pending.
    posted = _Draft(
        draft.key,
        draft.kind,
        pending.legs,
        pending.description,
        pending_id,
        None,
        draft.payload_hash,
    )
    return _write(session, [posted], clock, check_overdraft=False)[draft.key]


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
    pending_id = _validate_entry_id(pending_id, "pending_id")
    reason = _validate_description(reason, "reason")
    draft = _draft(_validate_key(key), EntryKind.VOID_PENDING, (), reason, pending_id)
    originals, new = _replays(session, [draft])
    if not new:
        return originals[draft.key]
    _unresolved_pending(session, pending_id, "voided")
    record = _write(session, [draft], clock, check_overdraft=False)[draft.key]
    audit.append(
        session,
        kind=AuditKind.LEDGER_PENDING_VOIDED,
        actor=actor,
        refs={"entry_id": record.id, "pending_id": pending_id},
        payload={"key": record.key, "reason": reason},
        clock=clock,
    )
    return record


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
    entry_id = _validate_entry_id(entry_id, "entry_id")
    reason = _validate_description(reason, "reason")
    draft = _draft(_validate_key(key), EntryKind.POSTED, (), reason, None, entry_id)
    originals, new = _replays(session, [draft])
    if not new:
        return originals[draft.key]
    row = _locked_entry(session, entry_id, "entry_id")
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
    original = _records(session, [row])[row.id]
    mirrored = tuple(Leg(leg.account, leg.side.opposite, leg.amount) for leg in original.legs)
    reversal = _Draft(draft.key, draft.kind, mirrored, reason, None, entry_id, draft.payload_hash)
    record = _write(session, [reversal], clock)[draft.key]
    audit.append(
        session,
        kind=AuditKind.LEDGER_ENTRY_REVERSED,
        actor=actor,
        refs={"entry_id": record.id, "reverses_id": entry_id},
        payload={"key": record.key, "reason": reason},
        clock=clock,
    )
    return record


# --- Queries ----------------------------------------------------------------------------------


def get_entry(session: Session, entry_id: int) -> EntryRecord:
    """The entry ``entry_id``, or ``UnknownEntryError``."""
    row = session.get(JournalEntry, _validate_entry_id(entry_id, "entry_id"))
    if row is None:
        raise UnknownEntryError(f"The entry_id {entry_id} names no journal entry.")
    return _records(session, [row])[row.id]


def find_entry(session: Session, key: str) -> EntryRecord | None:
    """The entry recorded under idempotency key ``key``, if any."""
    row = session.scalar(select(JournalEntry).where(JournalEntry.idempotency_key == key))
    return None if row is None else _records(session, [row])[row.id]


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
    records = _records(session, rows)
    return [records[row.id] for row in rows]


def pending_state(session: Session, pending_id: int) -> PendingState:
    """Whether a pending entry is still pending, or was posted or voided."""
    row = session.get(JournalEntry, _validate_entry_id(pending_id, "pending_id"))
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
