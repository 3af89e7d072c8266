"""The rule engine: ``evaluate(policy, spend, approvals, context)`` judges one workflow step.

It is a pure function of its arguments. The workflow gathers the facts (24 h spending, allowlist,
reconciliation, the prepared transaction's hash), calls it, and records the decision with the
policy version, the policy's content hash and the inputs (``treasury.policy.decisions``), so an
auditor can replay exactly why a spend was allowed or refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from treasury.policy.document import PolicyDocument, StoredPolicy
from treasury.policy.gate import ReconciliationFacts, ReconciliationOutcome
from treasury.policy.legal_bases import LegalBasis
from treasury.workflow_exceptions import WorkflowError, WorkflowInputError

ROLLING_WINDOW = timedelta(hours=24)
"""The span of the rolling spending limit."""


class Action(StrEnum):
    """The workflow step being judged."""

    SUBMIT = "submit"
    APPROVE = "approve"
    SIGN = "sign"
    BROADCAST = "broadcast"


class RefusalCode(StrEnum):
    ASSET_NOT_IN_POLICY = "asset_not_in_policy"
    OVER_PER_TX_LIMIT = "over_per_tx_limit"
    OVER_DAILY_LIMIT = "over_daily_limit"
    DESTINATION_NOT_ALLOWED = "destination_not_allowed"
    LEGAL_BASIS_EXPIRED = "legal_basis_expired"
    ASSET_NOT_IN_LEGAL_BASIS = "asset_not_in_legal_basis"
    ABOVE_DECREE_CEILING = "above_decree_ceiling"
    RECONCILIATION_MISSING = "reconciliation_missing"
    RECONCILIATION_MISMATCHED = "reconciliation_mismatched"
    RECONCILIATION_STALE = "reconciliation_stale"
    PROPOSER_MAY_NOT_APPROVE = "proposer_may_not_approve"
    OFFICER_REVOKED = "officer_revoked"
    INSTITUTION_NOT_IN_QUORUM = "institution_not_in_quorum"
    OFFICER_ALREADY_APPROVED = "officer_already_approved"
    INSTITUTION_ALREADY_APPROVED = "institution_already_approved"
    NO_PREPARED_TRANSACTION = "no_prepared_transaction"
    QUORUM_NOT_MET = "quorum_not_met"
    VETO_WINDOW_OPEN = "veto_window_open"


@dataclass(frozen=True)
class Refusal:
    code: RefusalCode
    message: str
    """One full sentence naming the figures involved."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: tuple[Refusal, ...]
    policy_version: int
    policy_hash: str


class PolicyRefusedError(WorkflowError):
    """The policy engine refused the action; ``decision`` says why, code by code."""

    def __init__(self, decision: Decision) -> None:
        reasons = " ".join(refusal.message for refusal in decision.reasons)
        super().__init__(f"Policy version {decision.policy_version} refused: {reasons}")
        self.decision = decision


@dataclass(frozen=True)
class SpendFacts:
    """What the policy needs to know about the spend itself."""

    proposal_id: int | None
    asset: str
    amount: int
    destination: str
    proposer_id: int
    legal_basis: LegalBasis
    quorum_reached_at: datetime | None


@dataclass(frozen=True)
class ApprovalFacts:
    """One approval on record (not voided), with its officer's revocation time."""

    officer_id: int
    institution: str
    tx_hash: str
    officer_revoked_at: datetime | None


@dataclass(frozen=True)
class ActorFacts:
    """The officer asking to approve."""

    officer_id: int
    institution: str
    revoked_at: datetime | None


@dataclass(frozen=True)
class PolicyContext:
    """Everything else the decision depends on, gathered by the workflow at decision time."""

    action: Action
    now: datetime
    spent_24h: int
    """Other spends of the asset committed (approved or later) in the last 24 h, base units."""
    committed_under_basis: int
    """Other spends of the asset committed under the same legal basis, base units."""
    destination_allowed: bool
    reconciliation: ReconciliationFacts | None
    current_tx_hash: str | None
    actor: ActorFacts | None = field(default=None)


def _active(revoked_at: datetime | None, now: datetime) -> bool:
    return revoked_at is None or now < revoked_at


def counted_approvals(
    policy: PolicyDocument,
    proposer_id: int,
    approvals: Sequence[ApprovalFacts],
    current_tx_hash: str | None,
    now: datetime,
) -> dict[str, ApprovalFacts]:
    """Approvals that count toward the quorum, one per institution.

    An approval counts only if it names the transaction prepared now, its officer is not
    revoked, it is not the proposer's, and its institution is one of the policy's.
    """
    counted: dict[str, ApprovalFacts] = {}
    for approval in approvals:
        if (
            approval.tx_hash == current_tx_hash
            and _active(approval.officer_revoked_at, now)
            and approval.officer_id != proposer_id
            and approval.institution in policy.quorum_institutions
        ):
            counted.setdefault(approval.institution, approval)
    return counted


def veto_window_end(policy: PolicyDocument, spend: SpendFacts) -> datetime | None:
    """When the veto window of a large, approved spend closes (``None``: no window applies)."""
    limits = policy.assets.get(spend.asset)
    if limits is None or spend.quorum_reached_at is None or spend.amount < limits.veto_threshold:
        return None
    return spend.quorum_reached_at + timedelta(seconds=policy.veto_window_seconds)


def _spend_rules(
    policy: PolicyDocument, spend: SpendFacts, context: PolicyContext
) -> list[Refusal]:
    refusals: list[Refusal] = []
    asset, amount = spend.asset, spend.amount
    limits = policy.assets.get(asset)
    if limits is None:
        refusals.append(
            Refusal(
                RefusalCode.ASSET_NOT_IN_POLICY,
                f"The policy sets no limits for {asset}, so it cannot be spent.",
            )
        )
    else:
        if amount > limits.per_tx_limit:
            refusals.append(
                Refusal(
                    RefusalCode.OVER_PER_TX_LIMIT,
                    f"The amount {amount} {asset} exceeds the per-transaction limit of {limits.per_tx_limit}.",
                )
            )
        if context.spent_24h + amount > limits.daily_limit:
            refusals.append(
                Refusal(
                    RefusalCode.OVER_DAILY_LIMIT,
                    f"The amount {amount} {asset} on top of {context.spent_24h} committed in the last 24 hours "
                    f"exceeds the rolling 24-hour limit of {limits.daily_limit}.",
                )
            )
    if not context.destination_allowed:
        refusals.append(
            Refusal(
                RefusalCode.DESTINATION_NOT_ALLOWED,
                f"The destination {spend.destination} is not an active allowlisted address for {asset}.",
            )
        )
    basis = spend.legal_basis
    if context.now >= basis.expires_at:
        refusals.append(
            Refusal(
                RefusalCode.LEGAL_BASIS_EXPIRED,
                f"The legal basis {basis.reference} expired at {basis.expires_at.isoformat()}.",
            )
        )
    ceiling = basis.ceilings.get(asset)
    if ceiling is None:
        refusals.append(
            Refusal(
                RefusalCode.ASSET_NOT_IN_LEGAL_BASIS,
                f"The legal basis {basis.reference} authorises no spending of {asset}.",
            )
        )
    elif context.committed_under_basis + amount > ceiling:
        refusals.append(
            Refusal(
                RefusalCode.ABOVE_DECREE_CEILING,
                f"The amount {amount} {asset} on top of {context.committed_under_basis} already committed "
                f"exceeds the ceiling of {ceiling} set by {basis.reference}.",
            )
        )
    refusals.extend(_reconciliation_rules(policy, asset, context))
    return refusals


def _reconciliation_rules(
    policy: PolicyDocument, asset: str, context: PolicyContext
) -> list[Refusal]:
    facts = context.reconciliation
    if facts is None:
        return [
            Refusal(
                RefusalCode.RECONCILIATION_MISSING,
                f"No reconciliation of {asset} has been recorded, so no spend is allowed.",
            )
        ]
    if facts.outcome is ReconciliationOutcome.MISMATCHED:
        return [
            Refusal(
                RefusalCode.RECONCILIATION_MISMATCHED,
                f"The latest reconciliation of {asset} ({facts.checked_at.isoformat()}) found the chain "
                "and the ledger mismatched.",
            )
        ]
    age = context.now - facts.checked_at
    if age > timedelta(seconds=policy.reconciliation_max_age_seconds):
        return [
            Refusal(
                RefusalCode.RECONCILIATION_STALE,
                f"The latest reconciliation of {asset} is {int(age.total_seconds())} seconds old, older "
                f"than the {policy.reconciliation_max_age_seconds} seconds allowed.",
            )
        ]
    return []


def _approval_rules(
    policy: PolicyDocument,
    spend: SpendFacts,
    approvals: Sequence[ApprovalFacts],
    context: PolicyContext,
) -> list[Refusal]:
    actor = context.actor
    if actor is None:
        raise WorkflowInputError(
            "An approval decision needs the approving officer (context.actor)."
        )
    refusals: list[Refusal] = []
    if not _active(actor.revoked_at, context.now):
        refusals.append(
            Refusal(
                RefusalCode.OFFICER_REVOKED,
                f"Officer {actor.officer_id} is revoked and cannot approve.",
            )
        )
    if actor.officer_id == spend.proposer_id:
        refusals.append(
            Refusal(
                RefusalCode.PROPOSER_MAY_NOT_APPROVE,
                f"Officer {actor.officer_id} proposed this spend and may not approve it.",
            )
        )
    if actor.institution not in policy.quorum_institutions:
        refusals.append(
            Refusal(
                RefusalCode.INSTITUTION_NOT_IN_QUORUM,
                f"Institution {actor.institution} is not one of the policy's quorum institutions.",
            )
        )
    standing = [a for a in approvals if a.tx_hash == context.current_tx_hash]
    if any(a.officer_id == actor.officer_id for a in standing):
        refusals.append(
            Refusal(
                RefusalCode.OFFICER_ALREADY_APPROVED,
                f"Officer {actor.officer_id} has already approved this transaction.",
            )
        )
    elif any(a.institution == actor.institution for a in standing):
        refusals.append(
            Refusal(
                RefusalCode.INSTITUTION_ALREADY_APPROVED,
                f"Institution {actor.institution} has already approved this transaction through another officer.",
            )
        )
    return refusals


def _release_rules(
    policy: PolicyDocument,
    spend: SpendFacts,
    approvals: Sequence[ApprovalFacts],
    context: PolicyContext,
) -> list[Refusal]:
    refusals: list[Refusal] = []
    counted = counted_approvals(
        policy, spend.proposer_id, approvals, context.current_tx_hash, context.now
    )
    if len(counted) < policy.quorum_required:
        refusals.append(
            Refusal(
                RefusalCode.QUORUM_NOT_MET,
                f"{len(counted)} of the required {policy.quorum_required} institutions have validly approved "
                "the prepared transaction.",
            )
        )
    window_end = veto_window_end(policy, spend)
    if window_end is not None and context.now < window_end:
        refusals.append(
            Refusal(
                RefusalCode.VETO_WINDOW_OPEN,
                f"The spend is at or above the veto threshold; its veto window is open until {window_end.isoformat()}.",
            )
        )
    return refusals


def evaluate(
    policy: StoredPolicy,
    spend: SpendFacts,
    approvals: Sequence[ApprovalFacts],
    context: PolicyContext,
) -> Decision:
    """Judge ``context.action`` on ``spend``; pure, so a recorded decision can be replayed."""
    document = policy.document
    refusals = _spend_rules(document, spend, context)
    if context.action is not Action.SUBMIT and context.current_tx_hash is None:
        refusals.append(
            Refusal(
                RefusalCode.NO_PREPARED_TRANSACTION,
                "No transaction has been prepared for this spend yet, so there is nothing to approve or sign.",
            )
        )
    if context.action is Action.APPROVE:
        refusals.extend(_approval_rules(document, spend, approvals, context))
    if context.action in (Action.SIGN, Action.BROADCAST):
        refusals.extend(_release_rules(document, spend, approvals, context))
    return Decision(
        allowed=not refusals,
        reasons=tuple(refusals),
        policy_version=policy.version,
        policy_hash=policy.content_hash,
    )
