"""Replaying the whole decision log: does every recorded decision reproduce under its policy?

``verify_decisions`` is what ``treasury policy verify`` runs. It checks, in this order, and stops
at the first finding:

1. every stored policy version is intact at rest (its document is a canonical policy that hashes
   to its ``content_hash``), and that hash is the one the audit log's ``policy_set`` event
   recorded for the version (a version the audit log names must exist, and the reverse);
2. every decision, oldest first: its inputs hash to their digest, its recorded policy hash is the
   hash of the version it names, and re-running ``evaluate`` on its inputs under that version
   gives the recorded outcome, reasons included.

What this catches and what it does not: a policy document edited with the triggers dropped is
named (step 1), even when the attacker also rewrote ``content_hash`` and every decision's
``policy_hash``, because the audit event still holds the original hash (rewriting that event
breaks the hash chain, which ``treasury audit verify`` and an anchored head catch). An edited
decision is named when its digest or outcome no longer matches; an attacker who rewrites a
decision's inputs, digest and outcome consistently is not caught here (no decision is signed). A
decision replays from the inputs it recorded, so editing or deleting the rows those inputs were
read from (approvals, legal bases, the allowlist) does not change a replay; those tables rely on
the database's refusal of UPDATE and DELETE.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.audit import AuditEvent, AuditKind
from treasury.policy.decisions import replay_decision
from treasury.policy.document import sha256_hex
from treasury.policy.tables import PolicyDecisionRow, PolicyVersionRow
from treasury.policy.versions import altered_because
from treasury.workflow_exceptions import DecisionReplayError

POLICY_SET_EVENT = "policy_set"
"""The ``event`` of the audit payload ``set_policy`` appends (``treasury.policy.versions``)."""


class MismatchKind(enum.StrEnum):
    """Why the decision log does not reproduce."""

    POLICY_ALTERED = "policy_altered"
    """A stored policy version is not what was set (hash, canonical form or validity)."""
    POLICY_NOT_AUDITED = "policy_not_audited"
    """A policy version's hash differs from its audit event, or either one is missing."""
    INPUTS_ALTERED = "inputs_altered"
    """A decision's inputs no longer hash to their recorded digest."""
    POLICY_HASH_DIFFERS = "policy_hash_differs"
    """A decision names a policy hash other than the stored version's."""
    OUTCOME_DIFFERS = "outcome_differs"
    """Re-running the rules on a decision's inputs gives another outcome or other reasons."""


@dataclass(frozen=True)
class DecisionMismatch:
    """The first thing in the decision log that does not reproduce."""

    kind: MismatchKind
    message: str
    decision_id: int | None = None
    policy_version: int | None = None


@dataclass(frozen=True)
class DecisionsVerdict:
    """The outcome of replaying the decision log."""

    policies_checked: int
    decisions_checked: int
    """Decisions that reproduced before the mismatch (all of them when ``ok``)."""
    mismatch: DecisionMismatch | None

    @property
    def ok(self) -> bool:
        return self.mismatch is None


def _audited_policy_hashes(session: Session) -> dict[int, str]:
    """Policy version to the hash its ``policy_set`` audit event recorded (first event wins)."""
    audited: dict[int, str] = {}
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.kind == AuditKind.POLICY_CHANGE.value)
        .order_by(AuditEvent.sequence)
    )
    for event in events:
        payload, refs = json.loads(event.payload), json.loads(event.refs)
        version = refs.get("policy_version")
        if payload.get("event") == POLICY_SET_EVENT and isinstance(version, int):
            audited.setdefault(version, str(payload.get("hash")))
    return audited


def _policy_mismatches(session: Session) -> Iterator[DecisionMismatch]:
    audited = _audited_policy_hashes(session)
    rows = session.scalars(select(PolicyVersionRow).order_by(PolicyVersionRow.version)).all()
    stored = {row.version for row in rows}
    for row in rows:
        altered = altered_because(row)
        if altered is not None:
            yield DecisionMismatch(MismatchKind.POLICY_ALTERED, altered, None, row.version)
        elif row.version not in audited:
            yield DecisionMismatch(
                MismatchKind.POLICY_NOT_AUDITED,
                f"Policy version {row.version} has no policy_set event in the audit log; it was "
                "not stored by `treasury policy set`.",
                None,
                row.version,
            )
        elif audited[row.version] != row.content_hash:
            yield DecisionMismatch(
                MismatchKind.POLICY_NOT_AUDITED,
                f"Policy version {row.version} hashes to {row.content_hash}, but the audit log "
                f"recorded {audited[row.version]} when it was set; it was replaced afterwards.",
                None,
                row.version,
            )
    for version in sorted(set(audited) - stored):
        yield DecisionMismatch(
            MismatchKind.POLICY_NOT_AUDITED,
            f"The audit log records policy version {version} being set, but no such version is "
            "stored; it was deleted.",
            None,
            version,
        )


def _decision_mismatch(session: Session, row: PolicyDecisionRow) -> DecisionMismatch | None:
    if sha256_hex(row.inputs) != row.inputs_digest:
        return DecisionMismatch(
            MismatchKind.INPUTS_ALTERED,
            f"The inputs of decision {row.id} no longer hash to their recorded digest.",
            row.id,
            row.policy_version,
        )
    version = session.get(PolicyVersionRow, row.policy_version)
    if version is None or version.content_hash != row.policy_hash:
        return DecisionMismatch(
            MismatchKind.POLICY_HASH_DIFFERS,
            f"Decision {row.id} was judged under policy hash {row.policy_hash}, but policy "
            f"version {row.policy_version} "
            + ("is missing." if version is None else f"hashes to {version.content_hash}."),
            row.id,
            row.policy_version,
        )
    try:
        recorded, replayed = replay_decision(session, row.id)
    except (DecisionReplayError, ValueError, KeyError, TypeError) as exc:
        return DecisionMismatch(
            MismatchKind.INPUTS_ALTERED,
            f"Decision {row.id} cannot be replayed from its recorded inputs: {exc}",
            row.id,
            row.policy_version,
        )
    if replayed != recorded.decision:
        recorded_codes = [r.code.value for r in recorded.decision.reasons]
        replayed_codes = [r.code.value for r in replayed.reasons]
        return DecisionMismatch(
            MismatchKind.OUTCOME_DIFFERS,
            f"Decision {row.id} recorded allowed={recorded.decision.allowed} "
            f"{recorded_codes}, but replaying its inputs under policy version "
            f"{row.policy_version} gives allowed={replayed.allowed} {replayed_codes}.",
            row.id,
            row.policy_version,
        )
    return None


def verify_decisions(session: Session) -> DecisionsVerdict:
    """Check every policy version at rest and replay every recorded decision (module docstring)."""
    policies = session.scalars(select(PolicyVersionRow.version)).all()
    first_policy = next(_policy_mismatches(session), None)
    if first_policy is not None:
        return DecisionsVerdict(len(policies), 0, first_policy)
    checked = 0
    for row in session.scalars(select(PolicyDecisionRow).order_by(PolicyDecisionRow.id)):
        mismatch = _decision_mismatch(session, row)
        if mismatch is not None:
            return DecisionsVerdict(len(policies), checked, mismatch)
        checked += 1
    return DecisionsVerdict(len(policies), checked, None)
