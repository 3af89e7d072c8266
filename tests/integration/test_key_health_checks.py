"""Key health checks recorded on both databases: a pass, a failure with wrong shares, an overdue
institution; each in the audit log (whose chain verifies), the alarm opened and cleared, the
export and the site showing it, and the ``treasury custody`` commands."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from custody.ceremony import CeremonyPlan, ShareFiles, Transcript, read_share_file, run_ceremony
from custody.health import HealthOutcome
from reporting.site import load_export
from reporting.site.i18n import load_catalogues
from reporting.site.localise import Localiser
from reporting.site.publish import _environment
from treasury import audit, migrate
from treasury.audit import AuditEvent, AuditKind
from treasury.cli import app
from treasury.custody_health import (
    AlarmCause,
    HealthPolicy,
    HealthPolicyError,
    health_status,
    raise_overdue_alarms,
    run_health_check,
)
from treasury.db import make_engine, session_factory
from treasury.officers import Founding, add_institution
from treasury.publication import EXPORT_FILE_NAME, write_export

CEREMONY_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
INSTITUTIONS = {"CB": "Central Bank", "MOF": "Ministry of Finance"}
PASSPHRASES = {"CB": "cb-pass", "MOF": ""}


@dataclass
class Keys:
    sessions: sessionmaker[Session]
    transcripts: dict[str, Transcript]
    share_files: dict[str, list[Path]]

    def words(self, code: str, count: int = 2) -> list[str]:
        return [read_share_file(path) for path in self.share_files[code][:count]]

    def audit_payloads(self) -> list[dict[str, object]]:
        with self.sessions() as session:
            rows = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.kind == AuditKind.CUSTODY_HEALTH_CHECK.value)
                .order_by(AuditEvent.sequence)
            )
            return [json.loads(row.payload) for row in rows]

    def chain_verifies(self) -> bool:
        with self.sessions() as session:
            return audit.verify(session).ok


@pytest.fixture
def keys(db_url: str, tmp_path: Path) -> Iterator[Keys]:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    transcripts, files = {}, {}
    for number, (code, name) in enumerate(INSTITUTIONS.items()):
        folder = tmp_path / code
        with sessions.begin() as session:
            add_institution(session, code, name, actor=Founding("setup"), now=CEREMONY_AT)
            transcripts[code] = run_ceremony(
                session,
                CeremonyPlan(name, ("Alice", "Bob", "Carol"), 2),
                ShareFiles(folder),
                PASSPHRASES[code],
                random_bytes=random.Random(number).randbytes,  # noqa: S311 (test seed)
                rng=random.Random(number),  # noqa: S311 (test seed)
                clock=lambda: CEREMONY_AT,
            )
        files[code] = sorted(folder.glob("*.txt"))
    yield Keys(sessions, transcripts, files)
    engine.dispose()


def _check(keys: Keys, code: str, words: list[str], now: datetime) -> HealthOutcome:
    with keys.sessions.begin() as session:
        check = run_health_check(
            session, code, words, PASSPHRASES[code], actor="test-witness", now=now
        )
    return check.outcome


def _status(keys: Keys, code: str, now: datetime) -> object:
    with keys.sessions() as session:
        return next(s for s in health_status(session, now) if s.code == code)


def test_a_passing_check_is_recorded_audited_and_due_again_after_the_interval(keys: Keys) -> None:
    """A quorum of CB's shares passes; the check is in the audit log with its members, not shares."""
    now = CEREMONY_AT + timedelta(days=10)
    assert _check(keys, "CB", keys.words("CB"), now) is HealthOutcome.OK
    status = _status(keys, "CB", now)
    assert status.last_outcome is HealthOutcome.OK
    assert status.last_passed_at == now
    assert status.due_at == now + timedelta(days=90)
    assert not status.overdue
    assert not status.alarm
    (payload,) = keys.audit_payloads()
    assert payload["event"] == "health_check"
    assert payload["outcome"] == "ok"
    assert payload["institution"] == "Central Bank"
    assert payload["holders"] == ["Alice", "Bob"]
    assert keys.chain_verifies()


def test_another_institutions_shares_fail_open_an_alarm_and_leak_nothing(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """MOF's shares checked as CB's: a mismatch, an alarm raised, no share word anywhere."""
    caplog.set_level(logging.DEBUG)
    now = CEREMONY_AT + timedelta(days=3)
    assert _check(keys, "CB", keys.words("MOF"), now) is HealthOutcome.MISMATCH
    status = _status(keys, "CB", now)
    assert status.alarm
    assert not status.overdue
    assert [a.cause for a in status.open_alarms] == [AlarmCause.FAILED_CHECK]
    payloads = keys.audit_payloads()
    assert [p["event"] for p in payloads] == ["health_check", "alarm_raised"]
    assert payloads[0]["outcome"] == "mismatch"
    assert "another seed" in str(payloads[0]["reason"])
    stored = json.dumps(payloads) + caplog.text
    for code in INSTITUTIONS:
        for words in keys.words(code, 3):
            assert " ".join(words.split()[:4]) not in stored
    assert keys.chain_verifies()


def test_an_overdue_institution_alarms_once_and_a_passing_check_clears_it(keys: Keys) -> None:
    """Past 90 days with no check, MOF is overdue: one alarm, audited; its next pass clears it."""
    late = CEREMONY_AT + timedelta(days=91)
    assert not _status(keys, "MOF", CEREMONY_AT + timedelta(days=89)).overdue
    status = _status(keys, "MOF", late)
    assert status.overdue
    assert status.alarm
    assert status.last_check_at is None
    with keys.sessions.begin() as session:
        raised = raise_overdue_alarms(session, late)
    assert sorted(a.institution for a in raised) == ["Central Bank", "Ministry of Finance"]
    with keys.sessions.begin() as session:
        assert raise_overdue_alarms(session, late + timedelta(hours=1)) == []
    assert _check(keys, "MOF", keys.words("MOF"), late + timedelta(hours=2)) is HealthOutcome.OK
    cleared = _status(keys, "MOF", late + timedelta(hours=2))
    assert not cleared.overdue
    assert not cleared.alarm
    assert cleared.open_alarms == ()
    assert _status(keys, "CB", late).alarm  # CB still has not checked
    events = [(p["event"], p["institution"]) for p in keys.audit_payloads()]
    assert events.count(("alarm_raised", "Ministry of Finance")) == 1
    assert events[-1] == ("alarm_cleared", "Ministry of Finance")
    assert keys.chain_verifies()


def test_a_custom_interval_and_an_impossible_one() -> None:
    """The policy takes any positive number of days and refuses zero."""
    assert HealthPolicy(30).interval == timedelta(days=30)
    with pytest.raises(HealthPolicyError, match="positive number of days"):
        HealthPolicy(0)


def test_the_export_carries_key_health_and_the_site_shows_it_in_three_languages(
    keys: Keys, tmp_path: Path
) -> None:
    """The export lists each institution's last check and due date; the site renders it in ky, ru, en."""
    _check(keys, "CB", keys.words("CB"), CEREMONY_AT + timedelta(days=1))
    _check(keys, "MOF", keys.words("CB"), CEREMONY_AT + timedelta(days=1))
    exported_at = CEREMONY_AT + timedelta(days=95)
    path = write_export(keys.sessions, tmp_path / EXPORT_FILE_NAME, exported_at=exported_at)
    health = {item["institution"]: item for item in json.loads(path.read_text())["key_health"]}
    assert health["CB"]["last_result"] == "ok"
    assert health["CB"]["overdue"] is True
    assert health["MOF"]["last_result"] == "mismatch"
    assert health["MOF"]["alarm"] is True
    assert health["MOF"]["last_passed_at"] is None
    records = load_export(path)
    assert [k.institution.code for k in records.key_health] == ["CB", "MOF"]
    template = _environment().get_template("key_health.html")
    for lang, catalogue in load_catalogues().items():
        html = template.render(
            t=catalogue.text,
            records=records,
            local=Localiser(catalogue, records),
            when=lambda moment: moment.strftime("%Y-%m-%d %H:%M UTC"),
        )
        assert catalogue.text("key_health.title") in html
        assert catalogue.text("key_health.overdue") in html
        assert catalogue.text("key_health.result.mismatch") in html
        assert "2026-04-06 09:00 UTC" in html  # CB's due date: its pass plus 90 days
        assert html.count("data-key-figure") == 4, lang


def test_the_commands_check_shares_and_show_health(keys: Keys, db_url: str) -> None:
    """`treasury custody health-check` records a pass (exit 0) and a failure (exit 3); `health` lists."""
    runner = CliRunner()
    env = {"TREASURY_DATABASE_URL": db_url}
    for command in (["custody", "--help"], ["custody", "health-check", "--help"]):
        shown = runner.invoke(app, command, env=env)
        assert shown.exit_code == 0
        assert "recombine" in shown.output
    args = ["custody", "health-check", "MOF"]
    files = [a for path in keys.share_files["MOF"][:2] for a in ("--share-file", str(path))]
    passed = runner.invoke(app, [*args, *files], env=env)
    assert passed.exit_code == 0, passed.output
    assert "OK" in passed.output
    assert "member 0 (Alice)" in passed.output
    wrong = [a for path in keys.share_files["CB"][:2] for a in ("--share-file", str(path))]
    failed = runner.invoke(app, [*args, *wrong], env=env)
    assert failed.exit_code == 3
    assert "MISMATCH" in failed.output
    listed = runner.invoke(app, ["custody", "health", "--every-days", "30"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "CB (Central Bank): OVERDUE" in listed.output  # its 2026 ceremony is past 30 days
    assert "MOF (Ministry of Finance): ALARM" in listed.output
    assert "alarm" in listed.output
    assert "opened" in listed.output
