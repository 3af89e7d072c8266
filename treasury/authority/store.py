"""Store and read the roster chain and the approval statements, trusting no stored row.

The treasury keeps the officers' signed records; it does not vouch for them. ``append_record``
stores a record only if custody's own ``replay`` accepts the stored chain plus that record (so the
treasury never holds a chain the signers would refuse, and a broken stored chain blocks every
append until it is dealt with), and ``add_statement`` only a statement signed by an active key of
the roster officer it names. Readers rebuild library values from the stored bytes; the signers
replay and verify them again, so a row a database writer slipped in makes a signer refuse rather
than sign.

Each stored record also appends an audit event (``roster.<kind>`` with the record hash) in the
same transaction. The audit chain's head is exported and anchored, so replacing or truncating the
roster later shows up as a roster that disagrees with the audit log (``treasury.authority.verify``).
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.authority import (
    ApprovalStatement,
    EncodingError,
    RecordKind,
    RecordSignature,
    RosterRecord,
    RosterState,
    SignedStatement,
    replay,
    signature_from_json,
    verify_signer,
)
from custody.clock import Clock, utc_now
from treasury import audit
from treasury.audit import AuditKind
from treasury.authority.errors import NoRosterError, RosterInputError, StatementConflictError
from treasury.authority.tables import ApprovalStatementRow, RosterRecordRow
from treasury.db import begin_serialised_write

__all__ = [
    "ROSTER_AUDIT_EVENT_PREFIX",
    "ROSTER_AUDIT_REF",
    "add_statement",
    "append_record",
    "load_records",
    "record_from_row",
    "require_roster_state",
    "roster_state",
    "statements_for",
]

ROSTER_AUDIT_REF = "roster_sequence"
"""The audit ref naming the roster record an audit event records."""
ROSTER_AUDIT_EVENT_PREFIX = "roster."
"""Audit payload ``event`` of a stored roster record: ``roster.<kind>``."""
POSTGRES_ROSTER_LOCK_KEY = 0x726F_7374_6572
"""Advisory-lock key ('roster') that serialises appends on PostgreSQL."""
_ACTOR_MAX_CHARS = 200


# --- The roster chain -------------------------------------------------------------------------


def record_from_row(row: RosterRecordRow) -> RosterRecord:
    """The library record a stored row holds; ``EncodingError`` naming the row if malformed."""
    try:
        raw_signatures = json.loads(row.signatures)
        if not isinstance(raw_signatures, list):
            raise EncodingError("the signatures are not a JSON list")
        return RosterRecord(
            sequence=row.sequence,
            prev_hash=bytes.fromhex(row.prev_hash),
            kind=RecordKind(row.kind),
            body=row.body.encode("utf-8"),
            signatures=tuple(RecordSignature.from_json(s) for s in raw_signatures),
        )
    except (ValueError, TypeError) as exc:  # EncodingError is a ValueError too
        raise EncodingError(f"Stored roster record {row.sequence} is malformed: {exc}") from None


def load_records(session: Session) -> tuple[RosterRecord, ...]:
    """Every stored record, in sequence order (unverified: replay them before trusting them)."""
    rows = session.scalars(select(RosterRecordRow).order_by(RosterRecordRow.sequence))
    return tuple(record_from_row(row) for row in rows)


def roster_state(session: Session) -> RosterState | None:
    """The state the stored chain replays to; ``None`` if no genesis is stored.

    A stored chain that does not replay raises custody's error naming what is wrong.
    """
    records = load_records(session)
    if not records:
        return None
    return replay(records)


def require_roster_state(session: Session) -> RosterState:
    """``roster_state``, or ``NoRosterError`` when there is no genesis yet."""
    state = roster_state(session)
    if state is None:
        raise NoRosterError(
            "No roster genesis is stored: build and sign one (`treasury roster genesis`, "
            "`sign-genesis`, `commit`) before officers' signatures can count."
        )
    return state


def _audit_actor(record: RosterRecord) -> str:
    if record.kind is RecordKind.GENESIS:
        actor = "ceremony:" + "+".join(s.signer for s in record.signatures)
    else:
        actor = "officer:" + "+".join(s.signer for s in record.signatures)
    return actor[:_ACTOR_MAX_CHARS]


def append_record(session: Session, record: RosterRecord, *, clock: Clock = utc_now) -> None:
    """Store ``record`` as the next link if the stored chain plus it replays; else raise.

    The library's error (``custody.authority.RosterError`` and its kin) is raised unchanged and
    nothing is written. The caller commits.
    """
    begin_serialised_write(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(POSTGRES_ROSTER_LOCK_KEY)))
    stored = load_records(session)
    replay((*stored, record))
    now = clock().astimezone(UTC)
    digest = record.record_hash().hex()
    session.add(
        RosterRecordRow(
            sequence=record.sequence,
            kind=record.kind.value,
            body=record.body.decode("utf-8"),
            prev_hash=record.prev_hash.hex(),
            hash=digest,
            signatures=json.dumps([s.to_json() for s in record.signatures], sort_keys=True),
            recorded_at=now,
        )
    )
    session.flush()
    audit.append(
        session,
        kind=AuditKind.POLICY_CHANGE,
        actor=_audit_actor(record),
        refs={ROSTER_AUDIT_REF: record.sequence},
        payload={
            "event": ROSTER_AUDIT_EVENT_PREFIX + record.kind.value,
            "record_hash": digest,
            "prev_hash": record.prev_hash.hex(),
            "signers": [s.signer for s in record.signatures],
        },
        clock=lambda: now,
    )


# --- Approval statements ----------------------------------------------------------------------


def _signature_text(signed: SignedStatement) -> str:
    return json.dumps(signed.signature.to_json(), sort_keys=True)


def add_statement(
    session: Session, proposal_id: int, signed: SignedStatement, *, clock: Clock = utc_now
) -> None:
    """Store one signed statement on ``proposal_id`` after checking who signed it.

    The statement must name this proposal and be signed by an active key of the active roster
    officer it names, who holds the role its kind needs; otherwise custody's error (or
    ``RosterInputError``) is raised and nothing is written. Storing the same statement with the
    same signature again changes nothing; with another signature it is refused.
    """
    statement = signed.statement
    if statement.proposal_id != str(proposal_id):
        raise RosterInputError(
            f"The statement names proposal {statement.proposal_id!r}; it cannot be stored for "
            f"proposal {proposal_id}."
        )
    verify_signer(require_roster_state(session), signed)
    digest = statement.digest().hex()
    signature = _signature_text(signed)
    existing = session.scalar(
        select(ApprovalStatementRow).where(
            ApprovalStatementRow.proposal_id == proposal_id,
            ApprovalStatementRow.statement_digest == digest,
        )
    )
    if existing is not None:
        if existing.key_id == signed.key_id and existing.signature == signature:
            return
        raise StatementConflictError(
            f"This {statement.kind.value} statement of officer {statement.officer_id} is already "
            f"stored for proposal {proposal_id} with another signature."
        )
    session.add(
        ApprovalStatementRow(
            proposal_id=proposal_id,
            statement=statement.encode().decode("utf-8"),
            statement_digest=digest,
            key_id=signed.key_id,
            signature=signature,
            recorded_at=clock().astimezone(UTC),
        )
    )
    session.flush()


def _signed_from_row(row: ApprovalStatementRow) -> SignedStatement:
    try:
        statement = ApprovalStatement.parse(row.statement.encode("utf-8"))
        signature: Any = json.loads(row.signature)
        return SignedStatement(statement, row.key_id, signature_from_json(signature))
    except (ValueError, TypeError) as exc:  # EncodingError is a ValueError too
        raise EncodingError(f"Stored approval statement {row.id} is malformed: {exc}") from None


def statements_for(session: Session, proposal_id: int) -> tuple[SignedStatement, ...]:
    """The statements stored for ``proposal_id``, oldest first (unverified: the signer checks)."""
    rows = session.scalars(
        select(ApprovalStatementRow)
        .where(ApprovalStatementRow.proposal_id == proposal_id)
        .order_by(ApprovalStatementRow.id)
    )
    return tuple(_signed_from_row(row) for row in rows)
