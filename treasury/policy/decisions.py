"""Recorded decisions: every policy decision stored with its full inputs, and their replay.

The inputs are stored as canonical JSON with their digest, and the decision names the policy
version and its content hash, so ``replay_decision`` can prove that re-running the same rules on
the same facts under the same policy gives the same answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.canonical import canonical_json
from treasury.policy.document import sha256_hex
from treasury.policy.gate import ReconciliationFacts, ReconciliationOutcome
from treasury.policy.legal_bases import LegalBasis
from treasury.policy.rules import (
    Action,
    ActorFacts,
    ApprovalFacts,
    Decision,
    PolicyContext,
    Refusal,
    RefusalCode,
    SpendFacts,
    evaluate,
)
from treasury.policy.tables import PolicyDecisionRow, PolicyVersionRow
from treasury.policy.versions import stored_policy
from treasury.workflow_exceptions import DecisionReplayError, UnknownRecordError


@dataclass(frozen=True)
class RecordedDecision:
    id: int
    proposal_id: int | None
    action: Action
    decision: Decision
    inputs_digest: str
    decided_at: datetime


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def decision_inputs(
    spend: SpendFacts, approvals: Sequence[ApprovalFacts], context: PolicyContext
) -> dict[str, Any]:
    """The JSON form of a decision's inputs (what is digested, stored and replayed)."""
    basis = spend.legal_basis
    recon = context.reconciliation
    actor = context.actor
    return {
        "spend": {
            "proposal_id": spend.proposal_id,
            "asset": spend.asset,
            "amount": str(spend.amount),
            "destination": spend.destination,
            "proposer_id": spend.proposer_id,
            "quorum_reached_at": _time(spend.quorum_reached_at),
            "legal_basis": {
                "reference": basis.reference,
                "title": basis.title,
                "expires_at": _time(basis.expires_at),
                "ceilings": {
                    asset: str(ceiling) for asset, ceiling in sorted(basis.ceilings.items())
                },
            },
        },
        "approvals": [
            {
                "officer_id": a.officer_id,
                "institution": a.institution,
                "tx_hash": a.tx_hash,
                "officer_revoked_at": _time(a.officer_revoked_at),
            }
            for a in approvals
        ],
        "context": {
            "action": context.action.value,
            "now": _time(context.now),
            "spent_24h": str(context.spent_24h),
            "committed_under_basis": str(context.committed_under_basis),
            "destination_allowed": context.destination_allowed,
            "reconciliation": None
            if recon is None
            else {"outcome": recon.outcome.value, "checked_at": _time(recon.checked_at)},
            "current_tx_hash": context.current_tx_hash,
            "actor": None
            if actor is None
            else {
                "officer_id": actor.officer_id,
                "institution": actor.institution,
                "revoked_at": _time(actor.revoked_at),
            },
        },
    }


def _inputs_from_json(
    data: Mapping[str, Any],
) -> tuple[SpendFacts, list[ApprovalFacts], PolicyContext]:
    s, c = data["spend"], data["context"]
    b = s["legal_basis"]
    basis = LegalBasis(
        reference=b["reference"],
        title=b["title"],
        expires_at=datetime.fromisoformat(b["expires_at"]),
        ceilings={asset: int(ceiling) for asset, ceiling in b["ceilings"].items()},
    )
    spend = SpendFacts(
        proposal_id=s["proposal_id"],
        asset=s["asset"],
        amount=int(s["amount"]),
        destination=s["destination"],
        proposer_id=s["proposer_id"],
        legal_basis=basis,
        quorum_reached_at=_parse_time(s["quorum_reached_at"]),
    )
    approvals = [
        ApprovalFacts(
            a["officer_id"], a["institution"], a["tx_hash"], _parse_time(a["officer_revoked_at"])
        )
        for a in data["approvals"]
    ]
    r, a = c["reconciliation"], c["actor"]
    context = PolicyContext(
        action=Action(c["action"]),
        now=datetime.fromisoformat(c["now"]),
        spent_24h=int(c["spent_24h"]),
        committed_under_basis=int(c["committed_under_basis"]),
        destination_allowed=c["destination_allowed"],
        reconciliation=None
        if r is None
        else ReconciliationFacts(
            ReconciliationOutcome(r["outcome"]), datetime.fromisoformat(r["checked_at"])
        ),
        current_tx_hash=c["current_tx_hash"],
        actor=None
        if a is None
        else ActorFacts(a["officer_id"], a["institution"], _parse_time(a["revoked_at"])),
    )
    return spend, approvals, context


def record_decision(
    session: Session,
    decision: Decision,
    spend: SpendFacts,
    approvals: Sequence[ApprovalFacts],
    context: PolicyContext,
) -> int:
    """Store ``decision`` with its inputs; returns the record's id."""
    inputs = canonical_json(decision_inputs(spend, approvals, context))
    row = PolicyDecisionRow(
        proposal_id=spend.proposal_id,
        action=context.action.value,
        policy_version=decision.policy_version,
        policy_hash=decision.policy_hash,
        inputs=inputs,
        inputs_digest=sha256_hex(inputs),
        allowed=decision.allowed,
        reasons=canonical_json(
            [{"code": r.code.value, "message": r.message} for r in decision.reasons]
        ),
        decided_at=context.now,
    )
    session.add(row)
    session.flush()
    return row.id


def _recorded(row: PolicyDecisionRow) -> RecordedDecision:
    reasons = tuple(Refusal(RefusalCode(r["code"]), r["message"]) for r in json.loads(row.reasons))
    return RecordedDecision(
        id=row.id,
        proposal_id=row.proposal_id,
        action=Action(row.action),
        decision=Decision(row.allowed, reasons, row.policy_version, row.policy_hash),
        inputs_digest=row.inputs_digest,
        decided_at=row.decided_at,
    )


def decisions_for(session: Session, proposal_id: int) -> list[RecordedDecision]:
    """Every recorded decision about a proposal, oldest first."""
    rows = session.scalars(
        select(PolicyDecisionRow)
        .where(PolicyDecisionRow.proposal_id == proposal_id)
        .order_by(PolicyDecisionRow.id)
    )
    return [_recorded(row) for row in rows]


def replay_decision(session: Session, decision_id: int) -> tuple[RecordedDecision, Decision]:
    """The recorded decision and the decision re-computed from its stored inputs and policy.

    An auditor checks that the two agree, that the inputs still hash to the stored digest, and
    that the stored policy still hashes to the recorded policy hash.
    """
    row = session.get(PolicyDecisionRow, decision_id)
    if row is None:
        raise UnknownRecordError(f"No policy decision has the id {decision_id}.")
    policy_row = session.get(PolicyVersionRow, row.policy_version)
    if policy_row is None or sha256_hex(policy_row.document) != row.policy_hash:
        raise DecisionReplayError(
            f"Policy version {row.policy_version} no longer hashes to the recorded hash."
        )
    if sha256_hex(row.inputs) != row.inputs_digest:
        raise DecisionReplayError(
            f"The inputs of decision {decision_id} no longer hash to their recorded digest."
        )
    spend, approvals, context = _inputs_from_json(json.loads(row.inputs))
    return _recorded(row), evaluate(stored_policy(policy_row), spend, approvals, context)
