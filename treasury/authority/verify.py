"""Verify the stored roster chain and name its first bad record.

Custody's ``replay`` is the verdict on signatures and rules; this walks the stored rows around it
and adds what only the treasury can compare:

- each row must decode, and the hash stored with it must be its content's (an edited row);
- the chain must replay; the first record at which it stops is the one named;
- the genesis must list each institution with the ceremony fingerprint its transcript records;
- the audit log must record exactly the stored chain: one ``roster.<kind>`` event per sequence,
  with the same record hash, and none past the stored head. A database writer who replaces the
  genesis (with ceremony keys of their own), inserts a record behind the treasury's back, or
  drops the newest records, leaves a roster that disagrees with the hash-chained audit log; to
  hide it they must rewrite the audit log too, which its anchored head reveals.
- optionally, the genesis hash must be one published earlier (``expected_genesis``).

The strongest check is the signers': after recombining its seed, each institution checks that the
genesis carries its own ceremony key (``custody.authority.verify_genesis_for``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.authority import AuthorityError, RosterRecord, RosterState, replay
from treasury.audit import AuditEvent, AuditKind
from treasury.authority.genesis import check_against_transcripts
from treasury.authority.store import ROSTER_AUDIT_EVENT_PREFIX, ROSTER_AUDIT_REF, record_from_row
from treasury.authority.tables import RosterRecordRow

__all__ = ["RosterBreak", "RosterVerdict", "roster_exists", "verify_roster"]


@dataclass(frozen=True)
class RosterBreak:
    """The first bad record (its sequence) and why, in a sentence."""

    sequence: int
    message: str


@dataclass(frozen=True)
class RosterVerdict:
    """The result of verifying the stored roster: the state it replays to, or the first break.

    Neither (``state`` and ``brk`` both ``None``) means no roster is stored, nor ever was.
    """

    records_checked: int
    state: RosterState | None
    brk: RosterBreak | None

    @property
    def ok(self) -> bool:
        return self.brk is None


def roster_exists(session: Session) -> bool:
    """Whether a roster record, or an audit event of one, is stored (then it must verify)."""
    if session.scalar(select(RosterRecordRow.sequence).limit(1)) is not None:
        return True
    return bool(_audited_hashes(session))


def _audited_hashes(session: Session) -> dict[int, list[str]]:
    """Sequence -> the record hashes the audit log records for it (normally exactly one)."""
    found: dict[int, list[str]] = {}
    rows = session.execute(
        select(AuditEvent.refs, AuditEvent.payload).where(
            AuditEvent.kind == AuditKind.POLICY_CHANGE.value,
            AuditEvent.refs.like(f'%"{ROSTER_AUDIT_REF}"%'),
        )
    )
    for refs_text, payload_text in rows:
        try:
            refs, payload = json.loads(refs_text), json.loads(payload_text)
        except ValueError:
            continue  # an unreadable event is the audit chain's break to report, not ours
        sequence = refs.get(ROSTER_AUDIT_REF) if isinstance(refs, dict) else None
        if not isinstance(sequence, int) or not isinstance(payload, dict):
            continue
        event = payload.get("event")
        if isinstance(event, str) and event.startswith(ROSTER_AUDIT_EVENT_PREFIX):
            found.setdefault(sequence, []).append(str(payload.get("record_hash")))
    return found


def _first_failing(records: Sequence[RosterRecord]) -> tuple[int, AuthorityError]:
    """The index of the first record whose prefix does not replay, and its error.

    Replay is sequential, so once a prefix fails every longer one fails: a binary search over the
    prefix lengths finds the first bad record with O(log n) replays. The whole chain must fail.
    """

    def error_of(index: int) -> AuthorityError | None:
        try:
            replay(records[: index + 1])
        except AuthorityError as exc:
            return exc
        return None

    low, high = 0, len(records) - 1
    while low < high:
        middle = (low + high) // 2
        if error_of(middle) is None:
            low = middle + 1
        else:
            high = middle
    error = error_of(low)
    if error is None:
        raise ValueError("The roster chain replays: there is no failing record to name.")
    return low, error


def _against_audit(session: Session, records: Sequence[RosterRecord]) -> RosterBreak | None:
    audited = _audited_hashes(session)
    for record in records:
        digest = record.record_hash().hex()
        hashes = audited.get(record.sequence, [])
        if not hashes:
            return RosterBreak(
                record.sequence,
                f"Roster record {record.sequence} ({record.kind.value}) is not in the audit log: "
                "it was written to the database without going through the treasury.",
            )
        if len(hashes) > 1 or hashes[0] != digest:
            return RosterBreak(
                record.sequence,
                f"Roster record {record.sequence} ({record.kind.value}) hashes to {digest}, but "
                f"the audit log recorded {', '.join(hashes)} for it: the record was replaced.",
            )
    beyond = sorted(s for s in audited if s >= len(records))
    if beyond:
        ends = f"ends at {len(records) - 1}" if records else "is empty"
        return RosterBreak(
            beyond[0],
            f"The audit log records roster record {beyond[0]}, but the stored chain {ends}: "
            "records were deleted.",
        )
    return None


def verify_roster(session: Session, expected_genesis: str | None = None) -> RosterVerdict:
    """Verify the stored roster (see the module docstring); the first break, or its state."""
    rows = list(session.scalars(select(RosterRecordRow).order_by(RosterRecordRow.sequence)))
    records: list[RosterRecord] = []
    for row in rows:
        try:
            record = record_from_row(row)
        except AuthorityError as exc:
            return RosterVerdict(len(records), None, RosterBreak(row.sequence, str(exc)))
        if record.record_hash().hex() != row.hash:
            return RosterVerdict(
                len(records),
                None,
                RosterBreak(
                    row.sequence,
                    f"Roster record {row.sequence} was edited: its content no longer hashes to "
                    "the hash stored with it.",
                ),
            )
        records.append(record)
    if not records:
        brk = _against_audit(session, records)
        if brk is not None:
            return RosterVerdict(0, None, brk)
        return RosterVerdict(0, None, None)
    try:
        state = replay(records)
    except AuthorityError:
        index, error = _first_failing(records)
        return RosterVerdict(
            index, None, RosterBreak(records[index].sequence, f"Roster record {index}: {error}")
        )
    try:
        check_against_transcripts(session, records[0])
    except AuthorityError as exc:
        return RosterVerdict(len(records), None, RosterBreak(0, f"Roster record 0: {exc}"))
    brk = _against_audit(session, records)
    if brk is not None:
        return RosterVerdict(len(records), None, brk)
    genesis_hash = records[0].record_hash().hex()
    if expected_genesis is not None and expected_genesis.lower() != genesis_hash:
        return RosterVerdict(
            len(records),
            None,
            RosterBreak(
                0,
                f"The stored genesis hashes to {genesis_hash}, not the published "
                f"{expected_genesis.lower()}: the genesis was replaced.",
            ),
        )
    return RosterVerdict(len(records), state, None)
