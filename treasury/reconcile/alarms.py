"""Alarms: recorded once per cause, logged with business ids, cleared only by officers.

An alarm blocks every new spend (see ``gate.py``) until it is cleared: by one officer holding
the oversight role, or by two different officers, each an approver or an admin. Auditors read
but never clear. Every acknowledgement records who, in which role, when and why, in the alarm
tables and in the audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.clock import Clock, utc_now
from treasury import audit
from treasury.audit import AuditKind
from treasury.db import begin_serialised_write
from treasury.officers import Officer, Role
from treasury.reconcile.accounts import ACTOR
from treasury.reconcile.errors import AcknowledgementError, ReconcileConfigError, UnknownAlarmError
from treasury.reconcile.records import (
    DETAIL_MAX_CHARS,
    AcknowledgementRow,
    AlarmKind,
    AlarmRow,
)

log = logging.getLogger(__name__)

CLEARING_ROLES = frozenset({Role.OVERSIGHT, Role.APPROVER, Role.ADMIN})
"""Roles whose acknowledgement counts."""
SOLE_CLEARING_ROLE = Role.OVERSIGHT
"""One acknowledgement from this role clears an alarm."""
ACKNOWLEDGEMENTS_REQUIRED = 2
"""Otherwise, this many officers of different institutions must acknowledge."""


@dataclass(frozen=True)
class Acknowledgement:
    officer_id: int
    officer_name: str
    institution: str
    role: str
    reason: str
    acknowledged_at: datetime


@dataclass(frozen=True)
class Alarm:
    """An alarm as callers see it."""

    id: int
    kind: AlarmKind
    scope: str
    asset: str | None
    tx_ref: str | None
    detail: str
    raised_at: datetime
    cleared_at: datetime | None
    acknowledgements: tuple[Acknowledgement, ...]

    @property
    def open(self) -> bool:
        return self.cleared_at is None


def _view(session: Session, row: AlarmRow) -> Alarm:
    acks = session.scalars(
        select(AcknowledgementRow)
        .where(AcknowledgementRow.alarm_id == row.id)
        .order_by(AcknowledgementRow.id)
    )
    return Alarm(
        id=row.id,
        kind=row.kind,
        scope=row.scope,
        asset=row.asset,
        tx_ref=row.tx_ref,
        detail=row.detail,
        raised_at=row.raised_at,
        cleared_at=row.cleared_at,
        acknowledgements=tuple(
            Acknowledgement(
                a.officer_id, a.officer_name, a.institution, a.role, a.reason, a.acknowledged_at
            )
            for a in acks
        ),
    )


def open_alarm_of(session: Session, kind: AlarmKind, scope: str, asset: str | None) -> bool:
    """Whether an alarm of this kind for this vault and asset is still open."""
    query = select(AlarmRow.id).where(
        AlarmRow.kind == kind, AlarmRow.scope == scope, AlarmRow.cleared_at.is_(None)
    )
    query = query.where(AlarmRow.asset.is_(None) if asset is None else AlarmRow.asset == asset)
    return session.scalar(query.limit(1)) is not None


def raise_alarm(
    session: Session,
    kind: AlarmKind,
    dedupe_key: str,
    scope: str,
    detail: str,
    *,
    asset: str | None = None,
    tx_ref: str | None = None,
    run_id: int | None = None,
    clock: Clock = utc_now,
) -> Alarm | None:
    """Record an alarm once per ``dedupe_key`` (``None`` if it was already recorded)."""
    if session.scalar(select(AlarmRow.id).where(AlarmRow.dedupe_key == dedupe_key)) is not None:
        return None
    row = AlarmRow(
        kind=kind,
        dedupe_key=dedupe_key,
        scope=scope,
        asset=asset,
        tx_ref=tx_ref,
        detail=detail[:DETAIL_MAX_CHARS],
        run_id=run_id,
        raised_at=clock(),
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        kind=AuditKind.RECONCILIATION,
        actor=ACTOR,
        refs={"alarm_id": row.id, "scope": scope},
        payload={"event": "alarm_raised", "kind": kind.value, "tx": tx_ref, "detail": row.detail},
        clock=clock,
    )
    log.warning(
        "reconciliation alarm %d (%s) scope=%s asset=%s tx=%s run_id=%s: %s",
        row.id, kind.value, scope, asset, tx_ref, run_id, row.detail,
        extra={"alarm_id": row.id, "scope": scope, "txid": tx_ref, "run_id": run_id},
    )  # fmt: skip
    return _view(session, row)


def list_alarms(session: Session, *, only_open: bool = False) -> list[Alarm]:
    """Alarms, newest first (only the open ones if asked)."""
    query = select(AlarmRow).order_by(AlarmRow.id.desc())
    if only_open:
        query = query.where(AlarmRow.cleared_at.is_(None))
    return [_view(session, row) for row in session.scalars(query)]


def get_alarm(session: Session, alarm_id: int) -> Alarm:
    row = session.get(AlarmRow, alarm_id)
    if row is None:
        raise UnknownAlarmError(f"The alarm_id {alarm_id} names no reconciliation alarm.")
    return _view(session, row)


def acknowledge(
    session: Session, alarm_id: int, officer: Officer, reason: str, *, clock: Clock = utc_now
) -> Alarm:
    """Record ``officer``'s acknowledgement; clear the alarm once the required officers agree."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > DETAIL_MAX_CHARS:
        raise ReconcileConfigError(
            f"The reason must be non-empty text of at most {DETAIL_MAX_CHARS} characters."
        )
    begin_serialised_write(session)
    query = select(AlarmRow).where(AlarmRow.id == alarm_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise UnknownAlarmError(f"The alarm_id {alarm_id} names no reconciliation alarm.")
    now = clock()
    if row.cleared_at is not None:
        raise AcknowledgementError(f"Alarm {alarm_id} was already cleared at {row.cleared_at}.")
    if not officer.is_active(now):
        raise AcknowledgementError(f"Officer {officer.id} is revoked and cannot acknowledge.")
    roles = officer.roles & CLEARING_ROLES
    if not roles:
        raise AcknowledgementError(
            f"Officer {officer.id} ({officer.name}) needs the role oversight, approver or admin "
            "to acknowledge an alarm."
        )
    earlier = list(
        session.scalars(select(AcknowledgementRow).where(AcknowledgementRow.alarm_id == row.id))
    )
    if any(a.officer_id == officer.id for a in earlier):
        raise AcknowledgementError(
            f"Officer {officer.id} already acknowledged alarm {alarm_id}; a second officer must."
        )
    role = SOLE_CLEARING_ROLE if SOLE_CLEARING_ROLE in roles else sorted(roles)[0]
    if role is not SOLE_CLEARING_ROLE and any(
        a.institution == officer.institution_code for a in earlier
    ):
        raise AcknowledgementError(
            f"Alarm {alarm_id} was already acknowledged by an officer of {officer.institution_code}; "
            "the second acknowledgement must come from another institution (or an oversight "
            "officer), so that no single institution clears an alarm alone."
        )
    session.add(
        AcknowledgementRow(
            alarm_id=row.id,
            officer_id=officer.id,
            officer_name=officer.name,
            institution=officer.institution_code,
            role=role.value,
            reason=reason,
            acknowledged_at=now,
        )
    )
    if role is SOLE_CLEARING_ROLE or len(earlier) + 1 >= ACKNOWLEDGEMENTS_REQUIRED:
        row.cleared_at = now
    session.flush()
    audit.append(
        session,
        kind=AuditKind.RECONCILIATION,
        actor=f"officer:{officer.id}",
        refs={"alarm_id": row.id},
        payload={
            "event": "alarm_acknowledged",
            "role": role.value,
            "reason": reason,
            "cleared": row.cleared_at is not None,
        },
        clock=clock,
    )
    log.info(
        "alarm %d acknowledged by officer %d (%s)%s",
        row.id, officer.id, role.value, "; cleared" if row.cleared_at else "",
        extra={"alarm_id": row.id, "officer_id": officer.id},
    )  # fmt: skip
    return _view(session, row)
