"""Periodic key health checks of the institutions' SLIP-39 shares: recorded, audited, alarmed.

A quorum of an institution's share holders proves, every ``HealthPolicy.interval_days`` days,
that their shares still recombine to the seed the ceremony recorded (``custody.health``), and
proves possession by signing a fresh challenge (``issue_challenge``: the institution, the time
and 32 random bytes) with both keys: BIP-322 simple for the Bitcoin key, EIP-191 for the Safe
owner key (``custody.key_possession``). Each check is a row here (time, institution, outcome, the
member indexes that took part, the challenge and the two signatures, never a share) and an audit
event carrying the same, in the same transaction; ``verify_check_proof`` re-verifies a stored
proof from the ceremony's public record alone.

An institution needs attention (an alarm) when its last check failed, or when it is overdue: its
last passing check (or, with none, its ceremony) is older than the interval. A failed check and
an institution found overdue (``raise_overdue_alarms``, run by ``treasury custody health``) each
open an alarm row with an audit event; the next passing check clears every open alarm of that
institution, again with an audit event. ``health_status`` is the query the CLI and the public
export read; it reports overdue from the clock even before an overdue alarm was recorded.

These alarms are kept apart from the reconciler's (``treasury.reconcile.alarms``), which block
spends and are cleared by officers: a key health alarm is cleared by evidence, a passing check.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from custody.bitcoin_network import BitcoinNetwork
from custody.ceremony import Transcript, list_transcripts, load_transcript
from custody.health import HealthOutcome, HealthResult, check_key_health
from custody.key_possession import PossessionProof, verify_possession
from custody.records import CeremonyRecord
from treasury import audit
from treasury.audit import AuditKind
from treasury.db import Base, UtcDateTime
from treasury.exceptions import ImmutableRecordError, TreasuryError
from treasury.officers import InstitutionRow

__all__ = [
    "DEFAULT_INTERVAL_DAYS",
    "AlarmCause",
    "HealthAlarm",
    "HealthCheck",
    "HealthPolicy",
    "HealthPolicyError",
    "KeyHealthAlarmRow",
    "KeyHealthCheckRow",
    "KeyHealthStatus",
    "health_status",
    "issue_challenge",
    "key_health_export",
    "raise_overdue_alarms",
    "record_health_check",
    "run_health_check",
    "transcript_for",
    "verify_check_proof",
]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_DAYS = 90
"""Checks are due every this many days per institution unless the policy says otherwise."""
NAME_MAX_CHARS = 200
OUTCOME_MAX_CHARS = 16
CAUSE_MAX_CHARS = 16
DEDUPE_MAX_CHARS = 300
ACTOR_MAX_CHARS = 200
CHECK_EVENT = "health_check"
ALARM_RAISED_EVENT = "alarm_raised"
ALARM_CLEARED_EVENT = "alarm_cleared"


class HealthPolicyError(TreasuryError, ValueError):
    """The health-check interval is unusable (not a positive whole number of days)."""


@dataclass(frozen=True)
class HealthPolicy:
    """How often each institution's share holders must prove their quorum."""

    interval_days: int = DEFAULT_INTERVAL_DAYS

    def __post_init__(self) -> None:
        if isinstance(self.interval_days, bool) or not (
            isinstance(self.interval_days, int) and self.interval_days > 0
        ):
            raise HealthPolicyError(
                f"The health-check interval must be a positive number of days, not "
                f"{self.interval_days!r}."
            )

    @property
    def interval(self) -> timedelta:
        return timedelta(days=self.interval_days)


class AlarmCause(enum.StrEnum):
    """Why a key health alarm was opened."""

    FAILED_CHECK = "failed_check"
    """A check's shares did not recombine to the recorded key."""
    OVERDUE = "overdue"
    """No passing check within the interval."""


# --- Tables -------------------------------------------------------------------------------------


class KeyHealthCheckRow(Base):
    """One health check of one institution's shares; only ever inserted."""

    __tablename__ = "key_health_checks"
    __table_args__ = (Index("ix_key_health_checks_institution", "institution", "checked_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ceremony_id: Mapped[int] = mapped_column(Integer)
    """``custody_ceremonies.id`` (custody's table, in custody's metadata: no foreign key here)."""
    institution: Mapped[str] = mapped_column(String(NAME_MAX_CHARS))
    """The ceremony's institution name (``custody_ceremonies.institution``)."""
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(OUTCOME_MAX_CHARS))
    member_indexes: Mapped[list[int]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(ACTOR_MAX_CHARS))
    challenge: Mapped[str | None] = mapped_column(Text)
    """The fresh challenge the quorum was asked to sign (none for checks before proofs existed)."""
    proof: Mapped[dict[str, str] | None] = mapped_column(JSON)
    """The possession proof: addresses and signatures (public data); none when the check failed."""


def _refuse_orm_change(_mapper: Any, _connection: Any, target: Any) -> None:
    raise ImmutableRecordError("Key health checks are immutable; run a new check instead.")


event.listen(KeyHealthCheckRow, "before_update", _refuse_orm_change)
event.listen(KeyHealthCheckRow, "before_delete", _refuse_orm_change)


class KeyHealthAlarmRow(Base):
    """An alarm about one institution's key health: open until a passing check clears it."""

    __tablename__ = "key_health_alarms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution: Mapped[str] = mapped_column(String(NAME_MAX_CHARS))
    cause: Mapped[str] = mapped_column(String(CAUSE_MAX_CHARS))
    dedupe_key: Mapped[str] = mapped_column(String(DEDUPE_MAX_CHARS), unique=True)
    detail: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime)
    check_id: Mapped[int | None] = mapped_column(ForeignKey("key_health_checks.id"))
    """The failed check that opened it (none for an overdue alarm)."""
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cleared_by_check_id: Mapped[int | None] = mapped_column(ForeignKey("key_health_checks.id"))


# --- Values -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthCheck:
    """A recorded check as callers see it."""

    id: int
    institution: str
    checked_at: datetime
    outcome: HealthOutcome
    member_indexes: tuple[int, ...]
    holders: tuple[str, ...]
    reason: str
    challenge: str | None = None
    proof: PossessionProof | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is HealthOutcome.OK


@dataclass(frozen=True)
class HealthAlarm:
    """A key health alarm as callers see it."""

    id: int
    institution: str
    cause: AlarmCause
    detail: str
    raised_at: datetime
    cleared_at: datetime | None

    @property
    def open(self) -> bool:
        return self.cleared_at is None


@dataclass(frozen=True)
class KeyHealthStatus:
    """One institution's key health at ``now``: what the CLI shows and the export publishes."""

    institution: str
    """The ceremony's institution name."""
    code: str | None
    """The workflow institution code whose name equals the ceremony's, if one is registered."""
    ceremony_at: datetime
    last_check_at: datetime | None
    last_outcome: HealthOutcome | None
    last_passed_at: datetime | None
    due_at: datetime
    overdue: bool
    open_alarms: tuple[HealthAlarm, ...]

    @property
    def alarm(self) -> bool:
        """Attention needed: an open alarm, a failed last check, or overdue."""
        return (
            bool(self.open_alarms)
            or self.overdue
            or self.last_outcome
            not in (
                None,
                HealthOutcome.OK,
            )
        )


def _alarm_view(row: KeyHealthAlarmRow) -> HealthAlarm:
    return HealthAlarm(
        row.id, row.institution, AlarmCause(row.cause), row.detail, row.raised_at, row.cleared_at
    )


def _proof_of(row: KeyHealthCheckRow) -> PossessionProof | None:
    if row.proof is None or row.challenge is None:
        return None
    return PossessionProof(
        challenge=row.challenge,
        bitcoin_address=str(row.proof["bitcoin_address"]),
        bip322_signature=str(row.proof["bip322_signature"]),
        eth_address=str(row.proof["eth_address"]),
        eip191_signature=str(row.proof["eip191_signature"]),
    )


def _proof_fields(proof: PossessionProof) -> dict[str, str]:
    return {
        "bitcoin_address": proof.bitcoin_address,
        "bip322_signature": proof.bip322_signature,
        "eth_address": proof.eth_address,
        "eip191_signature": proof.eip191_signature,
    }


def _check_view(row: KeyHealthCheckRow, transcript: Transcript) -> HealthCheck:
    indexes = tuple(row.member_indexes)
    holders = tuple(transcript.holder_of(index) or "?" for index in indexes)
    return HealthCheck(
        row.id,
        row.institution,
        row.checked_at,
        HealthOutcome(row.outcome),
        indexes,
        holders,
        row.reason,
        row.challenge,
        _proof_of(row),
    )


CHALLENGE_NONCE_BYTES = 32


def issue_challenge(
    institution: str, now: datetime, *, random_bytes: Any = secrets.token_bytes
) -> str:
    """A fresh challenge for ``institution``'s quorum: nobody can have signed it before ``now``."""
    nonce = bytes(random_bytes(CHALLENGE_NONCE_BYTES)).hex()
    return (
        f"National reserve key health check\ninstitution: {institution}\n"
        f"issued: {now.isoformat()}\nnonce: {nonce}"
    )


# --- Writes -------------------------------------------------------------------------------------


def transcript_for(session: Session, institution: str) -> Transcript:
    """The ceremony transcript of ``institution``: a workflow code (``CB``) or a ceremony name.

    A code resolves through the registered institution's name, which must equal the ceremony's;
    anything else is taken as the ceremony's name (``UnknownCeremonyError`` if there is none).
    """
    name = session.scalar(select(InstitutionRow.name).where(InstitutionRow.code == institution))
    return load_transcript(session, name if name is not None else institution)


def _open_alarm(
    session: Session,
    institution: str,
    cause: AlarmCause,
    dedupe_key: str,
    detail: str,
    *,
    now: datetime,
    actor: str,
    check_id: int | None = None,
) -> HealthAlarm | None:
    if session.scalar(
        select(KeyHealthAlarmRow.id).where(KeyHealthAlarmRow.dedupe_key == dedupe_key)
    ):
        return None
    row = KeyHealthAlarmRow(
        institution=institution,
        cause=cause.value,
        dedupe_key=dedupe_key,
        detail=detail,
        raised_at=now,
        check_id=check_id,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        kind=AuditKind.CUSTODY_HEALTH_CHECK,
        actor=actor,
        refs={"health_alarm_id": row.id},
        payload={
            "event": ALARM_RAISED_EVENT,
            "institution": institution,
            "cause": cause.value,
            "detail": detail,
        },
        clock=lambda: now,
    )
    log.warning(
        "key health alarm %d (%s) for %s: %s", row.id, cause.value, institution, detail,
        extra={"health_alarm_id": row.id, "institution": institution},
    )  # fmt: skip
    return _alarm_view(row)


def _open_alarm_rows(session: Session, institution: str) -> list[KeyHealthAlarmRow]:
    return list(
        session.scalars(
            select(KeyHealthAlarmRow)
            .where(
                KeyHealthAlarmRow.institution == institution,
                KeyHealthAlarmRow.cleared_at.is_(None),
            )
            .order_by(KeyHealthAlarmRow.id)
        )
    )


def record_health_check(
    session: Session,
    transcript: Transcript,
    result: HealthResult,
    *,
    actor: str,
    now: datetime,
    challenge: str | None = None,
    network: BitcoinNetwork = BitcoinNetwork.REGTEST,
) -> HealthCheck:
    """Record ``result`` with its audit event; a failure opens an alarm, a pass clears them all.

    With a ``challenge``, a passing result must carry a proof of possession over exactly it that
    verifies against the transcript's public keys; otherwise the check is recorded as failed
    (``mismatch``), whatever the result said. Everything happens in the caller's transaction.
    """
    if result.institution != transcript.institution:
        raise HealthPolicyError(
            f"The result is of {result.institution!r} but the transcript of "
            f"{transcript.institution!r}; record a check against its own ceremony."
        )
    ceremony_id = session.scalar(
        select(CeremonyRecord.id).where(CeremonyRecord.institution == transcript.institution)
    )
    if ceremony_id is None:
        raise HealthPolicyError(
            f"No ceremony of {transcript.institution!r} is stored; its checks cannot be recorded."
        )
    if challenge is not None and result.ok:
        unproven = (
            "The passing check carries no proof of possession of the challenge."
            if result.proof is None
            else verify_possession(
                result.proof,
                account_xpub=transcript.account_xpub,
                eth_address=transcript.eth_address,
                challenge=challenge,
                network=network,
            )
        )
        if unproven is not None:
            result = HealthResult(
                result.institution, HealthOutcome.MISMATCH, result.member_indexes, unproven
            )
    proof = result.proof if result.ok else None
    row = KeyHealthCheckRow(
        ceremony_id=ceremony_id,
        institution=transcript.institution,
        checked_at=now,
        outcome=result.outcome.value,
        member_indexes=list(result.member_indexes),
        reason=result.reason,
        actor=actor,
        challenge=challenge,
        proof=None if proof is None else _proof_fields(proof),
    )
    session.add(row)
    session.flush()
    check = _check_view(row, transcript)
    audit.append(
        session,
        kind=AuditKind.CUSTODY_HEALTH_CHECK,
        actor=actor,
        refs={"health_check_id": row.id},
        payload={
            "event": CHECK_EVENT,
            "institution": transcript.institution,
            "outcome": result.outcome.value,
            "member_indexes": list(check.member_indexes),
            "holders": list(check.holders),
            "reason": result.reason,
            "challenge": challenge,
            "proof": None if proof is None else _proof_fields(proof),
        },
        clock=lambda: now,
    )
    if result.ok:
        for alarm in _open_alarm_rows(session, transcript.institution):
            alarm.cleared_at = now
            alarm.cleared_by_check_id = row.id
            session.flush()
            audit.append(
                session,
                kind=AuditKind.CUSTODY_HEALTH_CHECK,
                actor=actor,
                refs={"health_alarm_id": alarm.id, "health_check_id": row.id},
                payload={
                    "event": ALARM_CLEARED_EVENT,
                    "institution": transcript.institution,
                    "cause": alarm.cause,
                },
                clock=lambda: now,
            )
    else:
        _open_alarm(
            session,
            transcript.institution,
            AlarmCause.FAILED_CHECK,
            f"failed:{row.id}",
            f"Health check {row.id} failed ({result.outcome.value}): {result.reason}",
            now=now,
            actor=actor,
            check_id=row.id,
        )
    return check


def run_health_check(
    session: Session,
    institution: str,
    shares: Sequence[str],
    passphrase: str = "",
    *,
    actor: str,
    now: datetime,
    network: BitcoinNetwork = BitcoinNetwork.REGTEST,
    random_bytes: Any = secrets.token_bytes,
) -> HealthCheck:
    """Check ``institution``'s shares (code or ceremony name) against a fresh challenge, which
    the quorum signs with both keys, and record the outcome with the proof."""
    transcript = transcript_for(session, institution)
    challenge = issue_challenge(transcript.institution, now, random_bytes=random_bytes)
    result = check_key_health(transcript, shares, passphrase, network=network, challenge=challenge)
    return record_health_check(
        session, transcript, result, actor=actor, now=now, challenge=challenge, network=network
    )


def verify_check_proof(
    session: Session, check_id: int, network: BitcoinNetwork = BitcoinNetwork.REGTEST
) -> str | None:
    """Re-verify a stored check's proof from the ceremony's public record: ``None`` if it holds,
    else why not (no proof, or signatures that do not verify)."""
    row = session.get(KeyHealthCheckRow, check_id)
    if row is None:
        raise HealthPolicyError(f"No key health check has the id {check_id}.")
    proof = _proof_of(row)
    if proof is None or row.challenge is None:
        return f"Health check {check_id} carries no proof of possession."
    transcript = load_transcript(session, row.institution)
    return verify_possession(
        proof,
        account_xpub=transcript.account_xpub,
        eth_address=transcript.eth_address,
        challenge=row.challenge,
        network=network,
    )


# --- Reads --------------------------------------------------------------------------------------


def _codes_by_name(session: Session) -> dict[str, str]:
    rows = session.execute(
        select(InstitutionRow.name, InstitutionRow.code).order_by(InstitutionRow.code)
    )
    found: dict[str, str] = {}
    for name, code in rows:
        found.setdefault(name, code)
    return found


def _status(
    session: Session,
    transcript: Transcript,
    code: str | None,
    now: datetime,
    policy: HealthPolicy,
) -> KeyHealthStatus:
    by_institution = KeyHealthCheckRow.institution == transcript.institution
    newest = (KeyHealthCheckRow.checked_at.desc(), KeyHealthCheckRow.id.desc())
    last = session.scalar(
        select(KeyHealthCheckRow).where(by_institution).order_by(*newest).limit(1)
    )
    passed = session.scalar(
        select(KeyHealthCheckRow.checked_at)
        .where(by_institution, KeyHealthCheckRow.outcome == HealthOutcome.OK.value)
        .order_by(*newest)
        .limit(1)
    )
    due_at = (passed or transcript.performed_at) + policy.interval
    return KeyHealthStatus(
        institution=transcript.institution,
        code=code,
        ceremony_at=transcript.performed_at,
        last_check_at=None if last is None else last.checked_at,
        last_outcome=None if last is None else HealthOutcome(last.outcome),
        last_passed_at=passed,
        due_at=due_at,
        overdue=now > due_at,
        open_alarms=tuple(
            _alarm_view(row) for row in _open_alarm_rows(session, transcript.institution)
        ),
    )


def health_status(
    session: Session, now: datetime, policy: HealthPolicy | None = None
) -> list[KeyHealthStatus]:
    """Every ceremony's institution's key health at ``now``, in ceremony order (read only)."""
    checked = policy or HealthPolicy()
    codes = _codes_by_name(session)
    return [
        _status(session, transcript, codes.get(transcript.institution), now, checked)
        for transcript in list_transcripts(session)
    ]


def raise_overdue_alarms(
    session: Session,
    now: datetime,
    policy: HealthPolicy | None = None,
    *,
    actor: str = "custody.health",
) -> list[HealthAlarm]:
    """Open an alarm (once per due date) for each overdue institution; returns the new ones."""
    raised: list[HealthAlarm] = []
    for status in health_status(session, now, policy):
        if not status.overdue:
            continue
        since = (
            f"its last passing check at {status.last_passed_at.isoformat()}"
            if status.last_passed_at is not None
            else f"its ceremony at {status.ceremony_at.isoformat()} (no passing check since)"
        )
        alarm = _open_alarm(
            session,
            status.institution,
            AlarmCause.OVERDUE,
            f"overdue:{status.institution}:{status.due_at.isoformat()}",
            f"The key health check of {status.institution} was due at "
            f"{status.due_at.isoformat()}, {since}.",
            now=now,
            actor=actor,
        )
        if alarm is not None:
            raised.append(alarm)
    return raised


def key_health_export(
    session: Session, now: datetime, policy: HealthPolicy | None = None
) -> list[dict[str, Any]]:
    """The export's ``key_health`` list (``reporting/SPEC-export.md``): one object per
    institution with a ceremony, public facts only."""
    return [
        {
            "institution": status.code,
            "name": status.institution,
            "ceremony_at": status.ceremony_at.isoformat(),
            "last_check_at": None
            if status.last_check_at is None
            else status.last_check_at.isoformat(),
            "last_result": None if status.last_outcome is None else status.last_outcome.value,
            "last_passed_at": None
            if status.last_passed_at is None
            else status.last_passed_at.isoformat(),
            "due_at": status.due_at.isoformat(),
            "overdue": status.overdue,
            "alarm": status.alarm,
        }
        for status in health_status(session, now, policy)
    ]
