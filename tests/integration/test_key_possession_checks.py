"""Key health checks that prove possession, on both databases, and the scheduler's overdue pass.

A passing check signs a fresh challenge with both keys (BIP-322 for the Bitcoin key, EIP-191 for
the Safe owner); the challenge and signatures are stored and audited, never a share word, and
re-verify from the ceremony's public record. Wrong shares record no proof. A database writer who
swaps a stored signature, or a proof of another challenge handed to the recorder, is named.
The scheduler's pass opens an overdue alarm once per due date; a passing check clears it.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select, text
from test_key_health_checks import CEREMONY_AT, PASSPHRASES, Keys, keys  # noqa: F401 (fixture)
from typer.testing import CliRunner

from custody.health import HealthOutcome, check_key_health
from treasury.cli import app
from treasury.custody_health import (
    HealthCheck,
    HealthPolicy,
    KeyHealthCheckRow,
    health_status,
    issue_challenge,
    record_health_check,
    run_health_check,
    verify_check_proof,
)
from treasury.scheduler import key_health_pass
from treasury.settings import KEY_HEALTH_INTERVAL_ENV, read_settings


def _run(world: Keys, code: str, words: list[str], days: int) -> HealthCheck:
    with world.sessions.begin() as session:
        return run_health_check(
            session,
            code,
            words,
            PASSPHRASES[code],
            actor="witness",
            now=CEREMONY_AT + timedelta(days=days),
        )


def test_a_passing_check_signs_a_fresh_challenge_with_both_keys(keys: Keys) -> None:  # noqa: F811
    """Two passing checks sign two different challenges; each proof is stored, audited with its
    challenge and signatures (no share word), and re-verifies from the public record."""
    first = _run(keys, "CB", keys.words("CB"), 1)
    second = _run(keys, "CB", keys.words("CB", 3)[1:], 2)
    assert first.ok
    assert second.ok
    assert first.proof is not None
    assert second.proof is not None
    assert first.challenge != second.challenge
    assert first.proof.eth_address == keys.transcripts["CB"].eth_address
    assert "signed the challenge with both keys" in first.reason
    with keys.sessions() as session:
        assert verify_check_proof(session, first.id) is None
        assert verify_check_proof(session, second.id) is None
    payloads = [p for p in keys.audit_payloads() if p["event"] == "health_check"]
    assert [p["challenge"] for p in payloads] == [first.challenge, second.challenge]
    assert payloads[0]["proof"]["bip322_signature"] == first.proof.bip322_signature  # type: ignore[index]
    assert payloads[0]["proof"]["eip191_signature"] == first.proof.eip191_signature  # type: ignore[index]
    words = {word for share in keys.words("CB", 3) for word in share.split()}
    stored = json.dumps(payloads)
    assert not any(f" {word} " in stored for word in words if len(word) > 3)
    assert keys.chain_verifies()


def test_wrong_shares_record_no_proof(keys: Keys) -> None:  # noqa: F811
    """MOF's shares checked as CB's fail: no proof in the row or the audit event."""
    check = _run(keys, "CB", keys.words("MOF"), 1)
    assert check.outcome is HealthOutcome.MISMATCH
    assert check.proof is None
    assert check.challenge is not None
    (payload,) = [p for p in keys.audit_payloads() if p["event"] == "health_check"]
    assert payload["proof"] is None
    with keys.sessions() as session:
        assert "no proof" in str(verify_check_proof(session, check.id))


def test_a_swapped_signature_or_a_replayed_proof_is_named(keys: Keys) -> None:  # noqa: F811
    """A database writer replacing the stored BIP-322 signature by another check's is named on
    re-verification; a proof over another challenge handed to the recorder is recorded as a
    failed check, with no proof kept."""
    first = _run(keys, "CB", keys.words("CB"), 1)
    second = _run(keys, "CB", keys.words("CB"), 2)
    assert first.proof is not None
    assert second.proof is not None
    with keys.sessions.begin() as session:
        forged = dict(session.get_one(KeyHealthCheckRow, second.id).proof or {})
        forged["bip322_signature"] = first.proof.bip322_signature
        session.execute(
            text("UPDATE key_health_checks SET proof = :proof WHERE id = :id"),
            {"proof": json.dumps(forged), "id": second.id},
        )
    with keys.sessions() as session:
        assert "BIP-322 signature does not verify" in str(verify_check_proof(session, second.id))
        assert verify_check_proof(session, first.id) is None

    transcript = keys.transcripts["CB"]
    now = CEREMONY_AT + timedelta(days=3)
    stale = issue_challenge(transcript.institution, now - timedelta(days=1))
    fresh = issue_challenge(transcript.institution, now)
    replayed = check_key_health(transcript, keys.words("CB"), PASSPHRASES["CB"], challenge=stale)
    assert replayed.ok
    with keys.sessions.begin() as session:
        recorded = record_health_check(
            session, transcript, replayed, actor="witness", now=now, challenge=fresh
        )
    assert recorded.outcome is HealthOutcome.MISMATCH
    assert recorded.proof is None
    assert "another challenge" in recorded.reason


def test_the_scheduler_pass_opens_an_overdue_alarm_once_and_a_passing_check_clears_it(
    keys: Keys,  # noqa: F811
) -> None:
    """Past the interval the scheduler's pass opens one alarm per overdue institution (not again
    on the next pass); a passing check with its proof clears the institution's alarm."""
    later = CEREMONY_AT + timedelta(days=100)
    assert read_settings({KEY_HEALTH_INTERVAL_ENV: "30"}).settings.key_health_interval_days == 30
    policy = HealthPolicy(read_settings({}).settings.key_health_interval_days)
    assert policy.interval_days == 90  # the default
    assert key_health_pass(keys.sessions, policy, clock=lambda: CEREMONY_AT) == []
    raised = key_health_pass(keys.sessions, policy, clock=lambda: later)
    assert sorted(a.institution for a in raised) == ["Central Bank", "Ministry of Finance"]
    assert key_health_pass(keys.sessions, policy, clock=lambda: later) == []
    events = [p for p in keys.audit_payloads() if p["event"] == "alarm_raised"]
    assert len(events) == 2
    assert all(p["cause"] == "overdue" for p in events)
    _run(keys, "CB", keys.words("CB"), 101)
    with keys.sessions() as session:
        status = {s.code: s for s in health_status(session, later + timedelta(days=1), policy)}
    assert status["CB"].open_alarms == ()
    assert not status["CB"].alarm
    assert len(status["MOF"].open_alarms) == 1


def test_the_commands_show_and_re_verify_the_proof(keys: Keys, db_url: str) -> None:  # noqa: F811
    """`health-check` prints the challenge and both signatures; `verify-proof` re-verifies a pass
    (exit 0) and names a check without proof (exit 3)."""
    runner = CliRunner()
    env = {"TREASURY_DATABASE_URL": db_url}
    files = [arg for path in keys.share_files["MOF"][:2] for arg in ("--share-file", str(path))]
    passed = runner.invoke(app, ["custody", "health-check", "MOF", *files], env=env)
    assert passed.exit_code == 0, passed.output
    assert "challenge: 'National reserve key health check" in passed.output
    assert "BIP-322 by bcrt1q" in passed.output
    assert f"EIP-191 by {keys.transcripts['MOF'].eth_address}" in passed.output
    failed = _run(keys, "CB", keys.words("MOF"), 1)
    with keys.sessions() as session:
        passed_id = session.scalar(
            select(KeyHealthCheckRow.id).where(
                KeyHealthCheckRow.institution == "Ministry of Finance"
            )
        )
    ok = runner.invoke(app, ["custody", "verify-proof", str(passed_id)], env=env)
    assert ok.exit_code == 0, ok.output
    assert "both signatures verify" in ok.output
    bad = runner.invoke(app, ["custody", "verify-proof", str(failed.id)], env=env)
    assert bad.exit_code == 3
    assert "NOT PROVEN" in bad.output
