"""The stored policy versions: only ever appended, the newest one in force.

Old versions stay so that a recorded decision can be replayed under the policy it was made with.
Every read checks the version at rest: its document must be the canonical form of a valid policy
and hash to the stored ``content_hash``. The database refuses edits (migration 0008), but someone
who can drop its triggers could raise a limit in ``policy_versions.document`` while ``policy
show`` and every decision kept naming the old hash; such a version is refused when next used
(``StoredPolicyAlteredError``), and ``verify_decisions`` names it.
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
from treasury.workflow_exceptions import (
    NotConfiguredError,
    UnknownRecordError,
    WorkflowError,
)


class StoredPolicyAlteredError(WorkflowError):
    """A stored policy version no longer hashes to its recorded hash, or is not a canonical policy.

    The version was changed in the database after it was set; nothing may be judged under it.
    """


def altered_because(row: PolicyVersionRow) -> str | None:
    """Why the stored version ``row`` is not what was set (``None``: it is intact)."""
    if sha256_hex(row.document) != row.content_hash:
        return (
            f"Policy version {row.version}'s document no longer hashes to its recorded hash "
            f"{row.content_hash}; it was changed after it was set."
        )
    try:
        canonical = canonical_json(parse_policy(json.loads(row.document)).to_json())
    except (ValueError, TypeError) as exc:
        return f"Policy version {row.version}'s document is not a valid policy: {exc}"
    if canonical != row.document:
        return f"Policy version {row.version}'s document is not in its canonical stored form."
    return None


def stored_policy(row: PolicyVersionRow) -> StoredPolicy:
    """The parsed policy a stored version row holds, refused if it was altered at rest."""
    altered = altered_because(row)
    if altered is not None:
        raise StoredPolicyAlteredError(f"{altered} Refusing to use it.")
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
    row = session.scalar(
        select(PolicyVersionRow).order_by(PolicyVersionRow.version.desc()).limit(1)
    )
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
