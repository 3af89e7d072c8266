"""Batch posting: many entries in one transaction, checked as sets and inserted in bulk.

``record_entries`` is the ordinary way in and returns a full ``EntryRecord`` per request; at
tens of thousands of entries its per-entry costs (ORM inserts with ``RETURNING``, canonical JSON
with a type walk, legs read back for replays) dominate. ``record_batch`` keeps its rules and
guarantees and drops those costs:

- the same validation, payload hash (so a key recorded by either path replays on the other),
  per-key locks, account, balance and overdraft checks, all run before the first insert, so a
  refused batch writes nothing;
- idempotency as two set operations: one lookup of the batch's keys, one comparison of hashes;
- ids allocated up front (SQLite holds the write lock; PostgreSQL draws them from the entries'
  sequence), then the entries and postings inserted in bulk: ``executemany`` on SQLite, one
  ``INSERT ... SELECT FROM unnest(arrays)`` per table on PostgreSQL.

The database guarantees are the single path's: every row goes through the same triggers (the
balance and completeness checks, deferred to COMMIT on PostgreSQL; immutability), because bulk
inserts fire row triggers like any other insert. The caller owns the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import sha256
from json.encoder import encode_basestring  # a str as json.dumps(ensure_ascii=False) writes it
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from custody.clock import Clock, utc_now
from treasury.exceptions import IdempotencyConflictError, InvalidEntryError
from treasury.ledger.amounts import AMOUNT_DIGITS, AMOUNT_LIMIT
from treasury.ledger.entries import (
    MAX_LEGS_PER_ENTRY,
    PAYLOAD_HASH_TAG,
    Draft,
    EntryRequest,
    Leg,
    storable_description,
    validate_description,
    validate_key,
    validate_legs,
)
from treasury.ledger.journal import (
    accounts_of,
    check_balanced,
    check_overdrafts,
    is_postgres,
    serialise_keys,
)
from treasury.ledger.models import (
    KEY_MAX_CHARS,
    Account,
    EntryKind,
    JournalEntry,
    Side,
)

__all__ = ["BatchResult", "record_batch"]

_ENTRY_COLUMNS = "id, idempotency_key, kind, description, payload_hash, posting_count, recorded_at"
_POSTING_COLUMNS = "entry_id, position, account_id, asset_id, side, amount"

_SQLITE_INSERT_ENTRY = f"INSERT INTO ledger_entries ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - constants
_SQLITE_INSERT_POSTING = (
    f"INSERT INTO ledger_postings ({_POSTING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"  # noqa: S608 - constants
)
_SQLITE_STORED = (
    "SELECT idempotency_key, id, payload_hash FROM ledger_entries "
    "WHERE idempotency_key IN (SELECT value FROM json_each(?))"
)
_SQLITE_LAST_ID = "SELECT coalesce(max(id), 0) FROM ledger_entries"

_POSTGRES_INSERT_ENTRIES = (
    f"INSERT INTO ledger_entries ({_ENTRY_COLUMNS}) SELECT * FROM unnest("  # noqa: S608 - constants
    "CAST(%b AS bigint[]), CAST(%b AS text[]), CAST(%b AS text[]), CAST(%b AS text[]), "
    "CAST(%b AS text[]), CAST(%b AS integer[]), CAST(%b AS timestamptz[]))"
)
_POSTGRES_INSERT_POSTINGS = (
    f"INSERT INTO ledger_postings ({_POSTING_COLUMNS}) SELECT * FROM unnest("  # noqa: S608 - constants
    "CAST(%b AS bigint[]), CAST(%b AS integer[]), CAST(%b AS integer[]), CAST(%b AS integer[]), "
    "CAST(%b AS text[]), CAST(%b AS numeric[]))"
)
_POSTGRES_STORED = (
    "SELECT idempotency_key, id, payload_hash FROM ledger_entries "
    "WHERE idempotency_key = ANY(CAST(%b AS text[]))"
)
_POSTGRES_NEW_IDS = (
    "SELECT nextval(pg_get_serial_sequence('ledger_entries', 'id')) FROM generate_series(1, %s)"
)


_TEXT: dict[Side | EntryKind, str] = {member: member.value for member in (*Side, *EntryKind)}
"""Each side's and kind's stored text, looked up (an Enum's ``.value`` is a slow descriptor)."""


@dataclass(frozen=True)
class BatchResult:
    """What a batch did: every key's entry id, which keys it wrote and which were already there."""

    ids: Mapping[str, int]
    """Every distinct key of the batch -> the id of its entry (new or already stored)."""
    posted: tuple[str, ...]
    """Keys written by this call, in request order."""
    present: tuple[str, ...]
    """Keys already stored with the same payload: replays, left as they were."""
    recorded_at: datetime | None = field(default=None)
    """The time stamped on the new entries (None when nothing was new)."""


def record_batch(
    session: Session, requests: Sequence[EntryRequest], *, clock: Clock = utc_now
) -> BatchResult:
    """Record a batch of entries (posted, or pending) in the caller's transaction, all or nothing.

    A key already stored with the same payload is a no-op (listed in ``present``); with another
    payload, or repeated in the batch with another payload, it refuses the whole batch
    (``IdempotencyConflictError``). Malformed, unbalanced or overdrawing requests and unknown
    accounts refuse the whole batch too; every check runs before the first insert.
    """
    drafts = _drafts(requests)
    if not drafts:
        return BatchResult(ids={}, posted=(), present=())
    session.flush()
    keys = list(drafts)
    serialise_keys(session, keys)
    connection = session.connection()
    postgres = is_postgres(session)
    stored = _stored(connection, keys, postgres=postgres)
    for key, (entry_id, digest) in stored.items():
        if digest != drafts[key].payload_hash:
            raise IdempotencyConflictError(
                f"The idempotency key {key!r} was already used for entry #{entry_id} with a "
                "different payload; use a new key for a new entry."
            )
    new = [draft for key, draft in drafts.items() if key not in stored]
    ids = {key: entry_id for key, (entry_id, _) in stored.items()}
    if not new:
        return BatchResult(ids=ids, posted=(), present=tuple(keys))
    accounts = accounts_of(session, new)
    _check_balanced(new, accounts)
    check_overdrafts(session, new, accounts)
    recorded_at = clock()
    if recorded_at.tzinfo is None:
        raise InvalidEntryError("The clock returned a time without a timezone; use UTC.")
    new_ids = _new_ids(connection, len(new), postgres=postgres)
    if postgres:
        _insert_postgres(connection, new, new_ids, accounts, recorded_at)
    else:
        _insert_sqlite(connection, new, new_ids, accounts, recorded_at)
    ids.update((draft.key, entry_id) for draft, entry_id in zip(new, new_ids, strict=True))
    return BatchResult(
        ids={key: ids[key] for key in keys},
        posted=tuple(draft.key for draft in new),
        present=tuple(key for key in keys if key in stored),
        recorded_at=recorded_at,
    )


# --- Validation and hashing -------------------------------------------------------------------


def _drafts(requests: Sequence[EntryRequest]) -> dict[str, Draft]:
    """Validated, hashed drafts by key, in request order; a key twice must mean the same entry.

    The checks are ``record_entries``' (``validate_key``, ``validate_legs``,
    ``validate_description``), run fast on the common case: each account code and each
    description is checked once per batch, and on any doubt the original validator runs and
    raises its own message.
    """
    drafts: dict[str, Draft] = {}
    valid_codes: set[str] = set()
    valid_descriptions: set[str] = set()
    memo = _HashMemo()
    posted, pending = EntryKind.POSTED, EntryKind.PENDING
    for number, request in enumerate(requests, start=1):
        if not isinstance(request, EntryRequest):
            raise InvalidEntryError(
                f"Request {number} is a {type(request).__name__}, not an EntryRequest."
            )
        if type(request.pending) is not bool:
            raise InvalidEntryError(f"The pending flag of request {number} must be a bool.")
        key, legs, description = request.key, request.legs, request.description
        if not (
            type(key) is str and len(key) <= KEY_MAX_CHARS and key.isprintable() and key.strip()
        ):
            validate_key(key)
        if type(description) is not str or description not in valid_descriptions:
            if not storable_description(description):
                validate_description(description)
            valid_descriptions.add(description)
        legs = _legs(legs, valid_codes)
        kind = pending if request.pending else posted
        draft = Draft(
            key, kind, legs, description, None, None, _payload_hash(kind, legs, description, memo)
        )
        earlier = drafts.setdefault(key, draft)
        if earlier.payload_hash != draft.payload_hash:
            raise IdempotencyConflictError(
                f"The idempotency key {key!r} appears twice in the batch with different payloads."
            )
    return drafts


def _legs(legs: object, valid_codes: set[str]) -> tuple[Leg, ...]:
    """``validate_legs(legs)``, with each code's pattern checked once per batch."""
    if type(legs) is not tuple or not 2 <= len(legs) <= MAX_LEGS_PER_ENTRY:
        return validate_legs(legs)
    for leg in legs:
        if (
            type(leg) is not Leg
            or leg.account not in valid_codes
            or type(leg.side) is not Side
            or type(leg.amount) is not int
            or not 0 < leg.amount < AMOUNT_LIMIT
        ):
            checked = validate_legs(legs)
            valid_codes.update(leg.account for leg in checked)
            return checked
    return legs


@dataclass(frozen=True)
class _HashMemo:
    """The pieces of canonical JSON that repeat across a batch's entries, written once each."""

    heads: dict[tuple[str, EntryKind], str] = field(default_factory=dict)
    """(description, kind) -> the document up to the opening bracket of its legs."""
    legs: dict[tuple[str, str], str] = field(default_factory=dict)
    """(account, side text) -> a leg's JSON up to its amount: ``[<account>,"<side>","``."""


_TAIL = '],"pending_id":null,"reverses_id":null}'
"""The end of every batch document: neither a resolution nor a reversal."""


def _payload_hash(kind: EntryKind, legs: tuple[Leg, ...], description: str, memo: _HashMemo) -> str:
    """``entries.payload_hash(kind, legs, description)``, with the canonical JSON written directly.

    The document has a fixed shape (sorted keys: description, kind, legs, pending_id,
    reverses_id; legs as sorted ``[account, side, amount as text]``), so it is written out
    instead of walked; ``memo`` keeps each description's and each (account, side)'s JSON text
    across the batch, and two legs are ordered by one comparison. A property test holds it
    equal to ``payload_hash`` on any input.
    """
    head = memo.heads.get((description, kind))
    if head is None:
        head = memo.heads[description, kind] = (
            f'{{"description":{encode_basestring(description)},"kind":"{_TEXT[kind]}","legs":['
        )
    if len(legs) == 2:
        first, second = legs
        rows = [
            (first.account, _TEXT[first.side], str(first.amount)),
            (second.account, _TEXT[second.side], str(second.amount)),
        ]
        if rows[1] < rows[0]:
            rows.reverse()
    else:
        rows = sorted([(leg.account, _TEXT[leg.side], str(leg.amount)) for leg in legs])
    parts: list[str] = []
    fragments = memo.legs
    for account, side, amount in rows:
        fragment = fragments.get((account, side))
        if fragment is None:
            fragment = fragments[account, side] = f'[{encode_basestring(account)},"{side}","'
        parts.append(f'{fragment}{amount}"]')
    document = head + ",".join(parts) + _TAIL
    return sha256(PAYLOAD_HASH_TAG + document.encode()).hexdigest()


def _check_balanced(drafts: Sequence[Draft], accounts: Mapping[str, Account]) -> None:
    """Every draft balances per asset; a two-leg draft is checked without building sums."""
    asset_of = {code: account.asset_id for code, account in accounts.items()}
    for draft in drafts:
        legs = draft.legs
        if len(legs) == 2:
            first, second = legs
            if (
                first.amount == second.amount
                and first.side is not second.side
                and asset_of[first.account] == asset_of[second.account]
            ):
                continue
        net: dict[int, int] = {}
        for leg in legs:
            asset = asset_of[leg.account]
            net[asset] = net.get(asset, 0) + (leg.amount if leg.side is Side.DEBIT else -leg.amount)
        if any(net.values()):
            check_balanced(draft, dict(accounts))  # raises UnbalancedEntryError with the details


# --- Database ---------------------------------------------------------------------------------


def _stored(
    connection: Connection, keys: list[str], *, postgres: bool
) -> dict[str, tuple[int, str]]:
    """(id, payload hash) of every key of ``keys`` already stored: one set lookup."""
    if postgres:
        rows = connection.exec_driver_sql(_POSTGRES_STORED, (keys,))
    else:
        rows = connection.exec_driver_sql(_SQLITE_STORED, (json.dumps(keys),))
    return {key: (entry_id, digest) for key, entry_id, digest in rows}


def _new_ids(connection: Connection, count: int, *, postgres: bool) -> list[int]:
    """``count`` unused entry ids, ascending.

    PostgreSQL: drawn from the column's own sequence, as an ``INSERT`` without an id would.
    SQLite: the ones after the highest id, which stay free because the transaction holds the
    database's single write lock (``BEGIN IMMEDIATE``) from before this read until COMMIT.
    """
    if postgres:
        return sorted(row[0] for row in connection.exec_driver_sql(_POSTGRES_NEW_IDS, (count,)))
    last = connection.exec_driver_sql(_SQLITE_LAST_ID).scalar_one()
    return list(range(last + 1, last + 1 + count))


def _recorded_at_value(connection: Connection, recorded_at: datetime) -> Any:
    """``recorded_at`` as the ORM binds it on this database (one value for the whole batch)."""
    dialect = connection.dialect
    process = JournalEntry.__table__.c.recorded_at.type.dialect_impl(dialect).bind_processor(
        dialect
    )
    return recorded_at if process is None else process(recorded_at)


def _insert_sqlite(
    connection: Connection,
    drafts: Sequence[Draft],
    ids: Sequence[int],
    accounts: Mapping[str, Account],
    recorded_at: datetime,
) -> None:
    """Entries, then their postings in position order (the triggers require it), by executemany.

    Amounts are stored as 78-digit text: ``str(amount).zfill(78)`` is ``f"{amount:078d}"`` for
    the positive amounts validated before, and cheaper.
    """
    stamp = _recorded_at_value(connection, recorded_at)
    connection.exec_driver_sql(
        _SQLITE_INSERT_ENTRY,
        [
            (entry_id, d.key, _TEXT[d.kind], d.description, d.payload_hash, len(d.legs), stamp)
            for entry_id, d in zip(ids, drafts, strict=True)
        ],
    )
    target = {code: (account.id, account.asset_id) for code, account in accounts.items()}
    width = AMOUNT_DIGITS
    connection.exec_driver_sql(
        _SQLITE_INSERT_POSTING,
        [
            (
                entry_id,
                position,
                *target[leg.account],
                _TEXT[leg.side],
                str(leg.amount).zfill(width),
            )
            for entry_id, d in zip(ids, drafts, strict=True)
            for position, leg in enumerate(d.legs, start=1)
        ],
    )


def _insert_postgres(
    connection: Connection,
    drafts: Sequence[Draft],
    ids: Sequence[int],
    accounts: Mapping[str, Account],
    recorded_at: datetime,
) -> None:
    """Entries, then postings: one statement per table, the columns sent as arrays."""
    stamp = _recorded_at_value(connection, recorded_at)
    connection.exec_driver_sql(
        _POSTGRES_INSERT_ENTRIES,
        (
            list(ids),
            [d.key for d in drafts],
            [_TEXT[d.kind] for d in drafts],
            [d.description for d in drafts],
            [d.payload_hash for d in drafts],
            [len(d.legs) for d in drafts],
            [stamp] * len(drafts),
        ),
    )
    entry_ids: list[int] = []
    positions: list[int] = []
    account_ids: list[int] = []
    asset_ids: list[int] = []
    sides: list[str] = []
    amounts: list[int] = []
    for entry_id, draft in zip(ids, drafts, strict=True):
        for position, leg in enumerate(draft.legs, start=1):
            account = accounts[leg.account]
            entry_ids.append(entry_id)
            positions.append(position)
            account_ids.append(account.id)
            asset_ids.append(account.asset_id)
            sides.append(_TEXT[leg.side])
            amounts.append(leg.amount)
    connection.exec_driver_sql(
        _POSTGRES_INSERT_POSTINGS, (entry_ids, positions, account_ids, asset_ids, sides, amounts)
    )
