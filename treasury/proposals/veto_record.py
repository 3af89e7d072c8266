"""Every veto the audit log records must still stand: the proposal rejected, its signed statement kept.

A veto is the one approval-side fact whose absence helps an attacker: the signer refuses a spend
when it is shown a valid veto statement, but a database writer can delete that statement (and set
the proposal back to ``approved``) before the signer is asked. The signer cannot see a deleted
row, so this check runs where the history is: the hash-chained audit log. Each ``vetoed`` event
names the proposal and, when the veto was signed, the digest of the officer's VETO statement; the
audit chain itself cannot be edited without ``audit verify`` naming the break. ``verify_vetoes``
compares each such event with what the database holds now and names the first that no longer
matches. ``treasury audit verify`` runs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.authority.statement import StatementKind
from treasury.audit import AuditEvent, AuditKind
from treasury.authority.store import statements_for
from treasury.proposals.states import ProposalState
from treasury.proposals.tables import SpendProposalRow

__all__ = ["VETOED_EVENT", "VetoVerdict", "verify_vetoes"]

VETOED_EVENT = "vetoed"
"""The ``payload.event`` of a veto's audit event (``closing.veto``)."""


@dataclass(frozen=True)
class VetoVerdict:
    """How many recorded vetoes were checked, and the first that no longer stands (if any)."""

    checked: int
    proposal_id: int | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.message is None


def _mismatch(session: Session, proposal_id: int, sequence: int, digest: str | None) -> str | None:
    row = session.get(SpendProposalRow, proposal_id)
    if row is None:
        return f"proposal {proposal_id}: the audit log records its veto at #{sequence}, but the proposal is gone."
    if row.state != ProposalState.REJECTED.value:
        return (
            f"proposal {proposal_id}: the audit log records its veto at #{sequence}, but the "
            f"proposal is now {row.state}."
        )
    if digest is None:
        return None  # an unsigned veto (before the roster was founded): nothing more to find
    kept = {
        signed.statement.digest().hex()
        for signed in statements_for(session, proposal_id)
        if signed.statement.kind is StatementKind.VETO
    }
    if digest not in kept:
        return (
            f"proposal {proposal_id}: the audit log records its veto at #{sequence} with signed "
            f"statement {digest[:16]}..., but that VETO statement is no longer stored: a signer "
            "would not see the veto."
        )
    return None


def verify_vetoes(session: Session) -> VetoVerdict:
    """Check every recorded veto against the proposal and statement rows; name the first broken."""
    events = session.execute(
        select(AuditEvent.sequence, AuditEvent.refs, AuditEvent.payload)
        .where(AuditEvent.kind == AuditKind.PROPOSAL.value)
        .order_by(AuditEvent.sequence)
    )
    checked = 0
    for sequence, refs_text, payload_text in events:
        payload = json.loads(payload_text)
        if payload.get("event") != VETOED_EVENT:
            continue
        proposal_id = json.loads(refs_text).get("proposal_id")
        if not isinstance(proposal_id, int):
            continue
        checked += 1
        digest = payload.get("statement_digest")
        message = _mismatch(
            session, proposal_id, sequence, digest if isinstance(digest, str) else None
        )
        if message is not None:
            return VetoVerdict(checked, proposal_id, message)
    return VetoVerdict(checked)
