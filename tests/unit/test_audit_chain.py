"""The audit chain's encoding and its verifier's diagnosis, on in-memory events."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treasury.audit import (
    GENESIS_HASH,
    AuditEventRecord,
    BreakKind,
    ChainHead,
    canonical_json,
    check_chain,
    event_hash,
)
from treasury.exceptions import InvalidAuditEventError

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_event_hash_matches_the_documented_encoding() -> None:
    """The hash is SHA-256 over the versioned tag and length-prefixed fields, as documented."""
    fields = ["1", "2026-01-02T03:04:05.678901Z", "alice", "policy.change", '{"a":1}', "{}"]
    fields.append(GENESIS_HASH)
    message = b"treasury.audit.event.v1\x00" + b"".join(
        len(f.encode()).to_bytes(8, "big") + f.encode() for f in fields
    )
    assert (
        event_hash(
            sequence=1,
            recorded_at=T0,
            actor="alice",
            kind="policy.change",
            refs='{"a":1}',
            payload="{}",
            prev_hash=GENESIS_HASH,
        )
        == hashlib.sha256(message).hexdigest()
    )


def test_event_hash_is_independent_of_the_clocks_timezone() -> None:
    """The same instant written in another zone hashes the same (times are encoded in UTC)."""
    other_zone = T0.astimezone(datetime.now().astimezone().tzinfo)
    common = {"sequence": 1, "actor": "a", "kind": "k", "refs": "{}", "payload": "{}"}
    assert event_hash(recorded_at=T0, prev_hash=GENESIS_HASH, **common) == event_hash(  # type: ignore[arg-type]
        recorded_at=other_zone,
        prev_hash=GENESIS_HASH,
        **common,  # type: ignore[arg-type]
    )


@given(
    field=st.sampled_from(["actor", "kind", "refs", "payload", "prev_hash"]),
    suffix=st.text(min_size=1, max_size=5),
)
def test_any_field_change_changes_the_hash(field: str, suffix: str) -> None:
    """Appending anything to any field gives a different hash (length prefixes stop field shifts)."""
    base = {
        "sequence": 7,
        "recorded_at": T0,
        "actor": "a",
        "kind": "k",
        "refs": "{}",
        "payload": "{}",
        "prev_hash": GENESIS_HASH,
    }
    changed = {**base, field: str(base[field]) + suffix}
    assert event_hash(**changed) != event_hash(**base)  # type: ignore[arg-type]


def test_canonical_json_is_sorted_compact_and_float_free() -> None:
    """Canonical JSON sorts keys, has no spaces, keeps Unicode, and refuses floats."""
    assert canonical_json({"b": [1, "é"], "a": None}) == '{"a":null,"b":[1,"é"]}'
    with pytest.raises(InvalidAuditEventError, match=r"payload\.amount"):
        canonical_json({"amount": 0.1})


def _chain(length: int) -> list[AuditEventRecord]:
    records: list[AuditEventRecord] = []
    prev = GENESIS_HASH
    for sequence in range(1, length + 1):
        fields = {
            "sequence": sequence,
            "recorded_at": T0 + timedelta(seconds=sequence),
            "actor": "officer",
            "kind": "spend.approval",
            "refs": canonical_json({"proposal_id": sequence}),
            "payload": canonical_json({"n": sequence}),
            "prev_hash": prev,
        }
        prev = event_hash(**fields)  # type: ignore[arg-type]
        records.append(AuditEventRecord(hash=prev, **fields))  # type: ignore[arg-type]
    return records


def _check(records: list[AuditEventRecord], anchor: ChainHead | None = None) -> tuple[str, int]:
    by_hash = {r.hash: r.sequence for r in records}
    verdict = check_chain(sorted(records, key=lambda r: r.sequence), by_hash.get, anchor)
    assert verdict.brk is not None
    return verdict.brk.kind.value, verdict.brk.sequence


def test_an_intact_chain_verifies_to_its_head() -> None:
    """An untouched chain verifies, and its head is the last event."""
    records = _chain(5)
    verdict = check_chain(records, lambda _: None, ChainHead(3, records[2].hash))
    assert verdict.ok
    assert verdict.head == ChainHead(5, records[-1].hash)
    assert verdict.events_checked == 5


def test_an_edited_event_is_named() -> None:
    """Changing an event's payload without rehashing is reported as that event edited."""
    records = _chain(5)
    records[2] = dataclasses.replace(records[2], payload='{"n":999}')
    assert _check(records) == (BreakKind.EDITED, 3)


def test_an_edited_and_rehashed_event_is_caught_by_its_successor() -> None:
    """Rehashing an edited event does not help: its successor committed to the old hash."""
    records = _chain(5)
    edited = dataclasses.replace(records[2], payload='{"n":999}')
    fields = {f.name: getattr(edited, f.name) for f in dataclasses.fields(edited)}
    del fields["hash"], fields["hash_version"]
    records[2] = dataclasses.replace(edited, hash=event_hash(**fields))
    assert _check(records) == (BreakKind.EDITED, 3)


def test_a_deleted_event_is_a_gap() -> None:
    """Removing an event leaves a sequence gap, reported as a deletion at the missing number."""
    records = _chain(5)
    del records[2]
    assert _check(records) == (BreakKind.DELETED, 3)


def test_deleted_and_renumbered_events_are_a_deletion() -> None:
    """Deleting an event and renumbering the rest to close the gap is still a deletion."""
    records = _chain(5)
    del records[2]
    records[2:] = [dataclasses.replace(r, sequence=r.sequence - 1) for r in records[2:]]
    assert _check(records) == (BreakKind.DELETED, 3)


def test_swapped_events_are_a_reordering() -> None:
    """Swapping two events' positions is reported as reordering, not as an edit."""
    records = _chain(5)
    records[2], records[3] = (
        dataclasses.replace(records[3], sequence=3),
        dataclasses.replace(records[2], sequence=4),
    )
    assert _check(records) == (BreakKind.REORDERED, 3)


def test_a_truncated_tail_is_caught_by_the_anchor() -> None:
    """Deleting the newest events is invisible to the chain alone but not to an anchored head."""
    records = _chain(5)
    anchor = ChainHead(5, records[-1].hash)
    assert _check(records[:3], anchor) == (BreakKind.DELETED, 4)


def test_a_rewritten_log_is_caught_by_the_anchor() -> None:
    """A log rebuilt with different history does not reproduce the anchored hash."""
    anchor = ChainHead(2, "f" * 64)
    assert _check(_chain(3), anchor) == (BreakKind.EDITED, 2)
