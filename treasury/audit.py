"""The append-only, hash-chained audit log.

Each event commits to its predecessor: ``hash = SHA-256(tag || fields)`` where the tag
``treasury.audit.event.v1`` separates this encoding from every other hash in the system (and
versions it), and each field is length-prefixed so no two events encode alike. The fields are,
in order: sequence (decimal), time (UTC ISO-8601 with microseconds), actor, kind, refs (canonical
JSON), payload (canonical JSON), and the previous event's hash (``GENESIS_HASH`` for the first).

Database triggers refuse UPDATE and DELETE; ``verify`` catches anyone who bypasses them, and the
exported ``head`` (anchored on chain by reporting) catches a rewrite of the whole tail.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, SmallInteger, String, Text, event, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from custody.clock import Clock, utc_now
from treasury.canonical import canonical_json
from treasury.db import Base, UtcDateTime, begin_serialised_write
from treasury.exceptions import (
    AuditError,
    ImmutableRecordError,
    InvalidAuditEventError,
)

__all__ = [
    "GENESIS_HASH",
    "HASH_VERSION",
    "AuditChainBrokenError",
    "AuditEvent",
    "AuditEventRecord",
    "AuditKind",
    "BreakKind",
    "ChainBreak",
    "ChainHead",
    "ChainVerdict",
    "append",
    "check_chain",
    "event_hash",
    "events",
    "head",
    "verify",
    "verify_or_raise",
]

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first event: no predecessor."""

HASH_VERSION = 1
"""Version of the event encoding below; stored per event so a future encoding can coexist."""

HASH_DOMAIN_TAG = b"treasury.audit.event.v1\x00"
"""Domain separator: an audit-event hash can never collide with another structure's hash."""

ACTOR_MAX_CHARS = 200
KIND_MAX_CHARS = 64
REF_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
POSTGRES_AUDIT_LOCK_KEY = 0x7472_6561_7375_7279
"""Advisory-lock key ('treasury') that serialises appends on PostgreSQL."""
VERIFY_BATCH_ROWS = 1000


class AuditKind(enum.StrEnum):
    """What an event records. Stored as text, so adding a kind needs no migration."""

    LEDGER_ASSET_REGISTERED = "ledger.asset_registered"
    LEDGER_ACCOUNT_OPENED = "ledger.account_opened"
    LEDGER_ENTRY_REVERSED = "ledger.entry_reversed"
    LEDGER_PENDING_VOIDED = "ledger.pending_voided"
    CEREMONY = "custody.ceremony"
    PROPOSAL = "spend.proposal"
    APPROVAL = "spend.approval"
    POLICY_CHANGE = "policy.change"
    BROADCAST = "spend.broadcast"
    RECONCILIATION = "reconciliation.result"
    REGISTRY_PUBLISHER = "attestation.registry_publisher"
    TRANSLATION = "data.translation"
    CUSTODY_HEALTH_CHECK = "custody.health_check"


# --- Model ------------------------------------------------------------------------------------


class AuditEvent(Base):
    """One event of the chain; never updated or deleted (database triggers refuse it)."""

    __tablename__ = "audit_events"

    sequence: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(ACTOR_MAX_CHARS))
    kind: Mapped[str] = mapped_column(String(KIND_MAX_CHARS))
    refs: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash_version: Mapped[int] = mapped_column(SmallInteger)


def _refuse_orm_change(_mapper: Any, _connection: Any, target: Any) -> None:
    raise ImmutableRecordError(
        f"{type(target).__name__} records are immutable; append a new record instead."
    )


event.listen(AuditEvent, "before_update", _refuse_orm_change)
event.listen(AuditEvent, "before_delete", _refuse_orm_change)


# --- Values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEventRecord:
    """An audit event as read or written; ``refs`` and ``payload`` are canonical JSON text."""

    sequence: int
    recorded_at: datetime
    actor: str
    kind: str
    refs: str
    payload: str
    prev_hash: str
    hash: str
    hash_version: int = HASH_VERSION

    @classmethod
    def of(cls, row: AuditEvent) -> AuditEventRecord:
        """The value of a stored row."""
        return cls(
            sequence=row.sequence,
            recorded_at=row.recorded_at,
            actor=row.actor,
            kind=row.kind,
            refs=row.refs,
            payload=row.payload,
            prev_hash=row.prev_hash,
            hash=row.hash,
            hash_version=row.hash_version,
        )


@dataclass(frozen=True)
class ChainHead:
    """The newest event's sequence and hash (``0`` and ``GENESIS_HASH`` for an empty log)."""

    sequence: int
    hash: str


class BreakKind(enum.StrEnum):
    """How the chain is broken."""

    EDITED = "edited"
    DELETED = "deleted"
    REORDERED = "reordered"


@dataclass(frozen=True)
class ChainBreak:
    """The first broken link: what happened, at which sequence, in a sentence."""

    kind: BreakKind
    sequence: int
    message: str


class AuditChainBrokenError(AuditError):
    """The audit hash chain does not verify; ``brk`` says where and how."""

    def __init__(self, brk: ChainBreak) -> None:
        super().__init__(brk.message)
        self.brk = brk


@dataclass(frozen=True)
class ChainVerdict:
    """The result of walking the chain: ``ok`` with the head, or the first break."""

    events_checked: int
    head: ChainHead
    brk: ChainBreak | None

    @property
    def ok(self) -> bool:
        """Whether every link verified."""
        return self.brk is None


# --- Hashing ----------------------------------------------------------------------------------


def _timestamp_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    sequence: int,
    recorded_at: datetime,
    actor: str,
    kind: str,
    refs: str,
    payload: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the versioned, domain-separated, length-prefixed event encoding."""
    fields = (str(sequence), _timestamp_text(recorded_at), actor, kind, refs, payload, prev_hash)
    digest = hashlib.sha256(HASH_DOMAIN_TAG)
    for field in fields:
        encoded = field.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def _recomputed(record: AuditEventRecord) -> str:
    return event_hash(
        sequence=record.sequence,
        recorded_at=record.recorded_at,
        actor=record.actor,
        kind=record.kind,
        refs=record.refs,
        payload=record.payload,
        prev_hash=record.prev_hash,
    )


# --- Operations -------------------------------------------------------------------------------


def _validated_refs(refs: Mapping[str, str | int]) -> str:
    for name, value in refs.items():
        if not isinstance(name, str) or not REF_NAME_PATTERN.match(name):
            raise InvalidAuditEventError(
                f"The refs key {name!r} is not a snake_case business id name such as 'entry_id'."
            )
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidAuditEventError(
                f"The refs value for {name!r} must be a string or an int id, not {type(value).__name__}."
            )
    return canonical_json(dict(refs))


def append(
    session: Session,
    *,
    kind: AuditKind,
    actor: str,
    refs: Mapping[str, str | int],
    payload: Mapping[str, Any],
    clock: Clock = utc_now,
) -> AuditEventRecord:
    """Append an event in the caller's transaction (commit is the caller's); returns it.

    Appends are serialised (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and
    the unique sequence and ``prev_hash`` columns refuse a fork even if that were bypassed.
    """
    if not isinstance(kind, AuditKind):
        raise InvalidAuditEventError(f"The kind {kind!r} is not an AuditKind.")
    if not isinstance(actor, str) or not actor.strip() or len(actor) > ACTOR_MAX_CHARS:
        raise InvalidAuditEventError(
            f"The actor must be a non-empty name of at most {ACTOR_MAX_CHARS} characters."
        )
    refs_json = _validated_refs(refs)
    payload_json = canonical_json(dict(payload))
    recorded_at = clock()
    if recorded_at.tzinfo is None:
        raise InvalidAuditEventError("The clock returned a time without a timezone; use UTC.")
    recorded_at = recorded_at.astimezone(UTC)

    previous = _locked_head(session)
    sequence = previous.sequence + 1
    digest = event_hash(
        sequence=sequence,
        recorded_at=recorded_at,
        actor=actor,
        kind=kind.value,
        refs=refs_json,
        payload=payload_json,
        prev_hash=previous.hash,
    )
    row = AuditEvent(
        sequence=sequence,
        recorded_at=recorded_at,
        actor=actor,
        kind=kind.value,
        refs=refs_json,
        payload=payload_json,
        prev_hash=previous.hash,
        hash=digest,
        hash_version=HASH_VERSION,
    )
    session.add(row)
    session.flush()
    if session.in_nested_transaction():
        session.info.pop(_TAIL_KEY, None)
    else:
        session.info[_TAIL_KEY] = (session.get_transaction(), ChainHead(sequence, digest))
    return AuditEventRecord.of(row)


_TAIL_KEY = "treasury.audit.tail"
"""``session.info`` key of (transaction, head) after this transaction's own last append."""


def _locked_head(session: Session) -> ChainHead:
    """The chain's head, with the right to append after it held until the transaction ends.

    The first append of a transaction takes the lock and reads the head; the next ones of the
    same (outermost) transaction already hold the lock, so the head is the one they wrote last
    and is not read again. A savepoint may roll an append back, so inside one nothing is reused.
    """
    cached = session.info.get(_TAIL_KEY)
    if (
        cached is not None
        and cached[0] is session.get_transaction()
        and not session.in_nested_transaction()
    ):
        tail: ChainHead = cached[1]
        return tail
    begin_serialised_write(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(POSTGRES_AUDIT_LOCK_KEY)))
    return head(session)


def head(session: Session) -> ChainHead:
    """The newest event's sequence and hash, to export and anchor; genesis for an empty log."""
    row = session.execute(
        select(AuditEvent.sequence, AuditEvent.hash).order_by(AuditEvent.sequence.desc()).limit(1)
    ).first()
    if row is None:
        return ChainHead(0, GENESIS_HASH)
    return ChainHead(row.sequence, row.hash)


def events(session: Session, *, after: int = 0, limit: int = 100) -> list[AuditEventRecord]:
    """Events with a sequence above ``after``, oldest first, at most ``limit``."""
    rows = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.sequence > after)
        .order_by(AuditEvent.sequence)
        .limit(limit)
    )
    return [AuditEventRecord.of(row) for row in rows]


def check_chain(
    records: Iterable[AuditEventRecord],
    sequence_of_hash: Callable[[str], int | None],
    anchor: ChainHead | None = None,
) -> ChainVerdict:
    """Walk ``records`` (in sequence order) and report the first broken link.

    Classification: a sequence gap is a deletion; an event whose ``prev_hash`` is the hash of
    some other event still present was moved (reordering); an event whose own hash does not
    match its content was edited; a valid event whose predecessor no longer carries the hash it
    committed to means that predecessor was edited (and rehashed); a link to a hash found nowhere
    from an event that is itself invalid means events were deleted and the rest renumbered.
    ``anchor`` (a head exported earlier) also catches deletion or rewriting of the tail.
    """
    previous: AuditEventRecord | None = None
    anchored_hash: str | None = None
    checked = 0
    for record in records:
        expected_sequence = 1 if previous is None else previous.sequence + 1
        expected_prev = GENESIS_HASH if previous is None else previous.hash
        current_head = ChainHead(previous.sequence, previous.hash) if previous else _EMPTY
        if record.sequence != expected_sequence:
            missing = (
                f"#{expected_sequence}"
                if record.sequence == expected_sequence + 1
                else f"#{expected_sequence} to #{record.sequence - 1}"
            )
            return _broken(
                checked,
                current_head,
                BreakKind.DELETED,
                expected_sequence,
                f"Audit event {missing} is missing: the log jumps from #{expected_sequence - 1} to #{record.sequence} (deleted).",
            )
        own_ok = record.hash_version == HASH_VERSION and _recomputed(record) == record.hash
        if record.prev_hash != expected_prev:
            linked = sequence_of_hash(record.prev_hash)
            if linked is not None and linked != record.sequence:
                return _broken(
                    checked,
                    current_head,
                    BreakKind.REORDERED,
                    record.sequence,
                    f"Audit event #{record.sequence} links to the hash of event #{linked}, not of #{record.sequence - 1}: events were reordered.",
                )
            if own_ok:
                return _broken(
                    checked,
                    current_head,
                    BreakKind.EDITED,
                    record.sequence - 1,
                    f"Audit event #{record.sequence - 1} was edited: its hash is not the one event #{record.sequence} committed to.",
                )
            return _broken(
                checked,
                current_head,
                BreakKind.DELETED,
                record.sequence,
                f"Audit event #{record.sequence} links to a hash found nowhere in the log: events before it were deleted and the rest renumbered.",
            )
        if not own_ok:
            return _broken(
                checked,
                current_head,
                BreakKind.EDITED,
                record.sequence,
                f"Audit event #{record.sequence} was edited: its content no longer matches its hash.",
            )
        if anchor is not None and record.sequence == anchor.sequence:
            anchored_hash = record.hash
        previous = record
        checked += 1
    final_head = ChainHead(previous.sequence, previous.hash) if previous else _EMPTY
    if anchor is not None and anchor.sequence > 0:
        if anchor.sequence > final_head.sequence:
            return _broken(
                checked,
                final_head,
                BreakKind.DELETED,
                final_head.sequence + 1,
                f"The log ends at #{final_head.sequence} but the anchored head is #{anchor.sequence}: events were deleted from the end.",
            )
        if anchored_hash != anchor.hash:
            return _broken(
                checked,
                final_head,
                BreakKind.EDITED,
                anchor.sequence,
                f"Audit event #{anchor.sequence} no longer has the anchored hash: the log was rewritten up to it.",
            )
    return ChainVerdict(checked, final_head, None)


_EMPTY = ChainHead(0, GENESIS_HASH)


def _broken(
    checked: int, current_head: ChainHead, kind: BreakKind, sequence: int, message: str
) -> ChainVerdict:
    return ChainVerdict(checked, current_head, ChainBreak(kind, sequence, message))


def verify(session: Session, anchor: ChainHead | None = None) -> ChainVerdict:
    """Walk the stored chain in batches and report the first broken link (see ``check_chain``)."""

    def stored() -> Iterable[AuditEventRecord]:
        rows = session.execute(
            select(AuditEvent)
            .order_by(AuditEvent.sequence)
            .execution_options(yield_per=VERIFY_BATCH_ROWS)
        ).scalars()
        for row in rows:
            yield AuditEventRecord.of(row)

    def sequence_of_hash(digest: str) -> int | None:
        return session.scalar(select(AuditEvent.sequence).where(AuditEvent.hash == digest))

    return check_chain(stored(), sequence_of_hash, anchor)


def verify_or_raise(session: Session, anchor: ChainHead | None = None) -> ChainHead:
    """The verified head, or ``AuditChainBrokenError`` naming the first broken link."""
    verdict = verify(session, anchor)
    if verdict.brk is not None:
        raise AuditChainBrokenError(verdict.brk)
    return verdict.head
