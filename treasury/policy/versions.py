"""The stored policy versions: only ever appended, the newest one in force.

Old versions stay so that a recorded decision can be replayed under the policy it was made with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.canonical import canonical_json
from treasury.officers import Officer, Role
from treasury.policy.change_audit import audit_policy_change
from treasury.policy.document import StoredPolicy, parse_policy, sha256_hex
from treasury.policy.tables import PolicyVersionRow
from treasury.workflow_exceptions import NotConfiguredError, UnknownRecordError


def stored_policy(row: PolicyVersionRow) -> StoredPolicy:
    """The parsed policy a stored version row holds."""
    return StoredPolicy(row.version, row.content_hash, parse_policy(json.loads(row.document)))


def set_policy(
    session: Session, actor: Officer, data: Mapping[str, Any], *, now: datetime
) -> StoredPolicy:
    """Store ``data`` as the next policy version (admin only) and return it."""
    actor.require(Role.ADMIN)
    document = parse_policy(data)
    text = canonical_json(document.to_json())
    latest = session.scalar(
        select(PolicyVersionRow.version).order_by(PolicyVersionRow.version.desc())
    )
    row = PolicyVersionRow(
        version=(latest or 0) + 1,
        document=text,
        content_hash=sha256_hex(text),
        created_at=now,
        created_by=actor.id,
    )
    session.add(row)
    session.flush()
    audit_policy_change(
        session, actor, {"policy_version": row.version}, "policy_set", now, hash=row.content_hash
    )
    return stored_policy(row)


def current_policy(session: Session) -> StoredPolicy:
    """The newest policy version."""
    row = session.scalar(select(PolicyVersionRow).order_by(PolicyVersionRow.version.desc()))
    if row is None:
        raise NotConfiguredError(
            "No policy has been set yet; an admin must run `treasury policy set`."
        )
    return stored_policy(row)


def policy_version(session: Session, version: int) -> StoredPolicy:
    """Policy version ``version``, for replaying old decisions."""
    row = session.get(PolicyVersionRow, version)
    if row is None:
        raise UnknownRecordError(f"No policy version {version} exists.")
    return stored_policy(row)
