"""The audit event every change to the policy's state appends.

A new policy version, a legal basis, an allowlist request and each allowlist approval are all
``POLICY_CHANGE`` events with the acting officer, so one helper keeps their shape the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from treasury import audit
from treasury.audit import AuditKind
from treasury.officers import Officer


def audit_policy_change(
    session: Session,
    actor: Officer,
    refs: dict[str, str | int],
    event: str,
    now: datetime,
    **payload: Any,
) -> None:
    """Append one ``POLICY_CHANGE`` audit event, done by ``actor`` at ``now``."""
    audit.append(
        session,
        kind=AuditKind.POLICY_CHANGE,
        actor=f"officer:{actor.id}",
        refs={"officer_id": actor.id, **refs},
        payload={"event": event, **payload},
        clock=lambda: now,
    )
