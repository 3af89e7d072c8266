"""The hash-chained audit log on both databases: appends, verification, tampering, concurrency."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from ledger_support import StepClock, run_at_once
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from treasury import audit, ledger
from treasury.audit import GENESIS_HASH, AuditChainBrokenError, AuditKind, BreakKind, ChainHead
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV
from treasury.exceptions import InvalidAuditEventError

T0 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def _append_approvals(sessions: sessionmaker[Session], count: int) -> list[audit.AuditEventRecord]:
    clock = StepClock(T0)
    with sessions.begin() as session:
        return [
            audit.append(
                session,
                kind=AuditKind.APPROVAL,
                actor=f"officer-{n % 3}",
                refs={"proposal_id": 40 + n},
                payload={
                    "institution": "central-bank",
                    "tx_hash": f"{n:064x}",
                    "amount_sats": "150000",
                },
                clock=clock,
            )
            for n in range(1, count + 1)
        ]


def _as_attacker(engine: Engine, statements: list[str]) -> None:
    """Run ``statements`` after disabling the immutability triggers, as someone with DB access could."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER audit_events_immutable_update"))
            connection.execute(text("DROP TRIGGER audit_events_immutable_delete"))
        else:
            connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        for statement in statements:
            connection.execute(text(statement))


def test_appended_events_chain_verify_and_export_their_head(
    sessions: sessionmaker[Session], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events link to their predecessor, verify intact, and the CLI prints the same head."""
    events = _append_approvals(sessions, 5)
    assert events[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    with sessions() as session:
        verdict = audit.verify(session, anchor=ChainHead(3, events[2].hash))
        assert audit.events(session, after=2, limit=2) == events[2:4]
    assert verdict.ok
    assert verdict.events_checked == 5
    assert verdict.head == ChainHead(5, events[-1].hash)
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)
    runner = CliRunner()
    verified = runner.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert f"intact: 5 events, head #5 {events[-1].hash}" in verified.output
    head = runner.invoke(app, ["audit", "head", "--json"])
    assert json.loads(head.output) == {"sequence": 5, "hash": events[-1].hash}


def test_an_empty_log_verifies_with_the_genesis_head(sessions: sessionmaker[Session]) -> None:
    """An empty log is intact and its head is sequence 0 with the all-zero hash."""
    with sessions() as session:
        assert audit.verify_or_raise(session) == ChainHead(0, GENESIS_HASH)


@pytest.mark.parametrize(
    ("tampering", "kind", "sequence"),
    [
        (
            [
                'UPDATE audit_events SET payload = \'{"amount_sats":"999999999"}\' WHERE sequence = 3'
            ],
            BreakKind.EDITED,
            3,
        ),
        (["UPDATE audit_events SET actor = 'officer-9' WHERE sequence = 5"], BreakKind.EDITED, 5),
        (["DELETE FROM audit_events WHERE sequence = 3"], BreakKind.DELETED, 3),
        (["DELETE FROM audit_events WHERE sequence = 1"], BreakKind.DELETED, 1),
        (
            [
                "UPDATE audit_events SET sequence = 1000 WHERE sequence = 3",
                "UPDATE audit_events SET sequence = 3 WHERE sequence = 4",
                "UPDATE audit_events SET sequence = 4 WHERE sequence = 1000",
            ],
            BreakKind.REORDERED,
            3,
        ),
    ],
    ids=["edited-payload", "edited-actor", "deleted", "deleted-first", "reordered"],
)
def test_tampering_is_detected_and_named(
    sessions: sessionmaker[Session],
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tampering: list[str],
    kind: BreakKind,
    sequence: int,
) -> None:
    """An attacker who disables the triggers and edits, deletes or reorders events is caught, and told apart."""
    _append_approvals(sessions, 5)
    _as_attacker(engine, tampering)
    with sessions() as session:
        verdict = audit.verify(session)
        with pytest.raises(AuditChainBrokenError) as caught:
            audit.verify_or_raise(session)
    assert verdict.brk is not None
    assert (verdict.brk.kind, verdict.brk.sequence) == (kind, sequence)
    assert caught.value.brk == verdict.brk
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert f"broken ({kind.value} at #{sequence})" in result.output


def test_a_deleted_tail_is_caught_by_the_anchored_head(
    sessions: sessionmaker[Session], engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting the newest events leaves a valid-looking chain, but not the head anchored earlier."""
    events = _append_approvals(sessions, 4)
    _as_attacker(engine, ["DELETE FROM audit_events WHERE sequence >= 3"])
    with sessions() as session:
        assert audit.verify(session).ok
        verdict = audit.verify(session, anchor=ChainHead(4, events[-1].hash))
    assert verdict.brk is not None
    assert verdict.brk.kind is BreakKind.DELETED
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)
    result = CliRunner().invoke(
        app, ["audit", "verify", "--anchor-sequence", "4", "--anchor-hash", events[-1].hash]
    )
    assert result.exit_code == 1
    assert "deleted from the end" in result.output


def test_the_database_refuses_events_that_do_not_extend_the_head(
    sessions: sessionmaker[Session], engine: Engine
) -> None:
    """A raw insert that forks the chain, skips a sequence, or rewrites history is refused."""
    events = _append_approvals(sessions, 2)
    insert = (
        "INSERT INTO audit_events (sequence, recorded_at, actor, kind, refs, payload, prev_hash, "
        "hash, hash_version) VALUES (:sequence, :t, 'x', 'k', '{}', '{}', :prev, :hash, 1)"
    )
    for sequence, prev in ((3, events[0].hash), (4, events[1].hash), (1, GENESIS_HASH)):
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text(insert),
                {"sequence": sequence, "t": T0, "prev": prev, "hash": f"{sequence:064x}"},
            )
    for statement in ("UPDATE audit_events SET kind = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(IntegrityError, match="immutable"), engine.begin() as connection:
            connection.execute(text(statement))
    with sessions() as session:
        assert audit.verify_or_raise(session) == ChainHead(2, events[1].hash)


APPEND_THREADS = 8
APPENDS_PER_THREAD = 10


def test_concurrent_appends_form_one_unbroken_chain(sessions: sessionmaker[Session]) -> None:
    """Eight threads appending at once produce one contiguous chain that verifies."""
    clock = StepClock(T0)
    failures: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            for step in range(APPENDS_PER_THREAD):
                with sessions.begin() as session:
                    audit.append(
                        session,
                        kind=AuditKind.BROADCAST,
                        actor=f"worker-{number}",
                        refs={"txid": f"{number}-{step}"},
                        payload={},
                        clock=clock,
                    )
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    run_at_once(worker, APPEND_THREADS)
    assert failures == []
    with sessions() as session:
        verdict = audit.verify(session)
    assert verdict.ok
    assert verdict.head.sequence == APPEND_THREADS * APPENDS_PER_THREAD


def test_an_audit_event_commits_or_rolls_back_with_its_ledger_entry(
    sessions: sessionmaker[Session],
) -> None:
    """An entry and the event recorded in its transaction are both kept, or both gone."""
    clock = StepClock(T0)
    with sessions.begin() as session:
        ledger.register_asset(session, ledger.BTC, actor="setup", clock=clock)
        for code, kind in (
            ("reserve:btc", ledger.AccountType.ASSET),
            ("equity:btc", ledger.AccountType.EQUITY),
        ):
            ledger.open_account(
                session,
                code,
                name=code,
                account_type=kind,
                asset_code="BTC",
                actor="setup",
                clock=clock,
            )
    legs = [ledger.Leg.debit("reserve:btc", 5), ledger.Leg.credit("equity:btc", 5)]
    with sessions() as session:
        head_before = audit.head(session)

    def crash_before_commit() -> None:
        with sessions.begin() as session:
            entry = ledger.record_entry(session, "broadcast-1", legs, clock=clock)
            audit.append(
                session,
                kind=AuditKind.BROADCAST,
                actor="signer",
                refs={"entry_id": entry.id},
                payload={},
                clock=clock,
            )
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError, match="crash"):
        crash_before_commit()
    with sessions() as session:
        assert ledger.find_entry(session, "broadcast-1") is None
        assert audit.head(session) == head_before
    with sessions.begin() as session:
        entry = ledger.record_entry(session, "broadcast-1", legs, clock=clock)
        event = audit.append(
            session,
            kind=AuditKind.BROADCAST,
            actor="signer",
            refs={"entry_id": entry.id},
            payload={},
            clock=clock,
        )
    with sessions() as session:
        assert ledger.find_entry(session, "broadcast-1") == entry
        assert audit.head(session) == ChainHead(event.sequence, event.hash)
        assert audit.verify(session).ok


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"actor": " "}, "actor"),
        ({"refs": {"Proposal": 1}}, "snake_case"),
        ({"refs": {"proposal_id": 1.5}}, "string or an int"),
        ({"payload": {"amount": 0.5}}, "float"),
        ({"payload": {"when": T0}}, "datetime"),
    ],
)
def test_malformed_events_are_refused_and_nothing_is_appended(
    sessions: sessionmaker[Session], fields: dict[str, object], message: str
) -> None:
    """A blank actor, a badly named or typed ref, or a float/datetime in the payload is refused."""
    arguments: dict[str, object] = {
        "kind": AuditKind.POLICY_CHANGE,
        "actor": "admin",
        "refs": {},
        "payload": {},
    }
    with sessions.begin() as session, pytest.raises(InvalidAuditEventError, match=message):
        audit.append(session, **{**arguments, **fields})  # type: ignore[arg-type]
    with sessions() as session:
        assert audit.head(session).sequence == 0
