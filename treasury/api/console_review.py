"""What an officer reads before deciding on a proposal: who, how far the quorum is, each policy
check with its figures, and which decisions are theirs to take now.

The policy figures are the ones **recorded** with the decision (``PolicyDecisionRow.inputs``: the
amount committed in the last 24 hours, under the decree, the reconciliation's time) against the
limits of the policy version the decision names; whether each check passed is read from the
recorded refusal codes, never recomputed. Only the allowlist entry's label and age are read as the
allowlist stands now (a decision records only that the destination was allowed).

The buttons follow the workflow's rules so that an officer is not offered what would be refused:
approve and reject for an approver whose institution counts in the quorum and has not approved
this transaction yet, who did not propose it, before the quorum; withdraw for the proposer; veto
for oversight before approval or within the veto window. The workflow still checks everything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.officers import InstitutionRow, Officer, OfficerRow, Role
from treasury.policy import PolicyVersionRow
from treasury.policy.rules import RefusalCode
from treasury.policy.tables import (
    AllowlistActivationRow,
    AllowlistEntryRow,
    PolicyDecisionRow,
)
from treasury.policy.versions import current_policy, stored_policy
from treasury.proposals import ProposalView
from treasury.translations import TranslationKind, translations_by_key
from treasury.workflow_exceptions import NotConfiguredError

UNDECIDED_STATES = ("draft", "proposed")
"""States in which a proposal can still be approved, rejected or withdrawn."""


@dataclass(frozen=True)
class Person:
    """An officer as a reader knows them: name and institution."""

    id: int
    name: str
    institution: str
    institution_name: str


def people(session: Session, ids: Iterable[int], lang: str = "en") -> dict[int, Person]:
    """The officers ``ids`` by id, with their institution (named in ``lang`` where the
    institution's name was translated)."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(OfficerRow.id, OfficerRow.name, InstitutionRow.code, InstitutionRow.name)
        .join(InstitutionRow, InstitutionRow.id == OfficerRow.institution_id)
        .where(OfficerRow.id.in_(wanted))
    ).all()
    names = institution_names(session, lang)
    return {row[0]: Person(row[0], row[1], row[2], names.get(row[2], row[3])) for row in rows}


def institution_names(session: Session, lang: str = "en") -> dict[str, str]:
    """Institution code to name, in ``lang`` where an admin entered its translation
    (``treasury translations set institution CODE LANG TEXT``), else as registered."""
    rows = session.execute(select(InstitutionRow.code, InstitutionRow.name)).all()
    entered = translations_by_key(session, TranslationKind.INSTITUTION)
    return {code: entered.get(code, {}).get(lang, name) for code, name in rows}


@dataclass(frozen=True)
class Quorum:
    """How far the approvals of the current transaction are from the policy's quorum."""

    institutions: tuple[str, ...]
    """The institutions whose approvals count."""
    required: int
    approved: tuple[str, ...]
    """Institutions with a standing approval of the current transaction (not the proposer's)."""

    @property
    def count(self) -> int:
        return len(self.approved)

    @property
    def met(self) -> bool:
        return self.count >= self.required


def quorum(view: ProposalView, policy_institutions: tuple[str, ...], required: int) -> Quorum:
    """The quorum progress of ``view``: standing approvals of its current transaction by an
    institution of the quorum, not by the proposer (as ``counted_approvals`` counts them)."""
    approved: list[str] = []
    for a in view.approvals:
        if (
            a.voided_at is None
            and a.tx_hash == view.tx_hash
            and a.officer_id != view.proposer_id
            and a.institution in policy_institutions
            and a.institution not in approved
        ):
            approved.append(a.institution)
    return Quorum(policy_institutions, required, tuple(approved))


def current_quorum(session: Session) -> tuple[tuple[str, ...], int]:
    """The quorum institutions and how many must approve, under the current policy."""
    try:
        document = current_policy(session).document
    except NotConfiguredError:
        return (), 0
    return document.quorum_institutions, document.quorum_required


@dataclass(frozen=True)
class Choices:
    """The decisions the officer may take on a proposal now (what the page offers)."""

    approve: bool
    reject: bool
    withdraw: bool
    veto: bool

    @property
    def awaiting(self) -> bool:
        """The proposal waits for this officer's decision."""
        return self.approve or self.veto


def choices(actor: Officer, view: ProposalView, progress: Quorum, now: datetime) -> Choices:
    """What ``actor`` may do with ``view`` now, by the workflow's rules (see the module doc)."""
    state = view.state.value
    undecided = state in UNDECIDED_STATES
    mine = view.proposer_id == actor.id
    may_approve = (
        Role.APPROVER in actor.roles
        and undecided
        and not mine
        and view.quorum_reached_at is None
        and not progress.met
        and actor.institution_code in progress.institutions
        and actor.institution_code not in progress.approved
    )
    window_open = view.veto_window_ends_at is not None and now < view.veto_window_ends_at
    return Choices(
        approve=may_approve and state == "proposed" and view.tx_hash is not None,
        reject=may_approve,
        withdraw=undecided and mine,
        veto=Role.OVERSIGHT in actor.roles and (undecided or (state == "approved" and window_open)),
    )


# --- Policy checks with their figures -------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One policy rule as decided: what was compared, and whether it passed (as recorded)."""

    name: str
    """Message key suffix: ``per_tx``, ``daily``, ``decree``, ``expiry``, ``allowlist``,
    ``reconciliation``."""
    passed: bool
    figures: Mapping[str, Any]


@dataclass(frozen=True)
class CheckedDecision:
    """The checks of one recorded decision, and the policy version that judged it."""

    decision_id: int
    action: str
    decided_at: datetime
    policy_version: int
    allowed: bool
    asset: str
    amount: int
    checks: tuple[Check, ...]


def _failed(reasons: list[dict[str, str]]) -> set[str]:
    return {r["code"] for r in reasons}


def _allowlist_entry(session: Session, asset: str, address: str) -> dict[str, Any] | None:
    found = session.execute(
        select(AllowlistEntryRow.label, AllowlistActivationRow.active_from)
        .join(AllowlistActivationRow, AllowlistActivationRow.entry_id == AllowlistEntryRow.id)
        .where(AllowlistEntryRow.asset == asset, AllowlistEntryRow.address == address)
        .order_by(AllowlistActivationRow.active_from)
        .limit(1)
    ).first()
    return None if found is None else {"label": found[0], "active_from": found[1]}


def checked_decision(session: Session, proposal_id: int) -> CheckedDecision | None:
    """The latest recorded spend decision about the proposal with each check's figures."""
    row = session.scalar(
        select(PolicyDecisionRow)
        .where(PolicyDecisionRow.proposal_id == proposal_id)
        .order_by(PolicyDecisionRow.id.desc())
        .limit(1)
    )
    if row is None:
        return None
    inputs = json.loads(row.inputs)
    spend, context = inputs["spend"], inputs["context"]
    failed = _failed(json.loads(row.reasons))
    asset, amount = spend["asset"], int(spend["amount"])
    now = datetime.fromisoformat(context["now"])
    version = session.get(PolicyVersionRow, row.policy_version)
    document = None if version is None else stored_policy(version).document
    limits = None if document is None else document.assets.get(asset)
    checks: list[Check] = []
    if limits is not None:
        spent = int(context["spent_24h"])
        checks.append(
            Check(
                "per_tx",
                RefusalCode.OVER_PER_TX_LIMIT.value not in failed,
                {"amount": amount, "limit": limits.per_tx_limit},
            )
        )
        checks.append(
            Check(
                "daily",
                RefusalCode.OVER_DAILY_LIMIT.value not in failed,
                {
                    "before": spent,
                    "with": spent + amount,
                    "limit": limits.daily_limit,
                    "remaining": limits.daily_limit - spent - amount,
                },
            )
        )
    basis = spend["legal_basis"]
    ceiling = basis["ceilings"].get(asset)
    if ceiling is not None:
        committed = int(context["committed_under_basis"])
        checks.append(
            Check(
                "decree",
                RefusalCode.ABOVE_DECREE_CEILING.value not in failed,
                {
                    "reference": basis["reference"],
                    "before": committed,
                    "with": committed + amount,
                    "ceiling": int(ceiling),
                    "remaining": int(ceiling) - committed - amount,
                },
            )
        )
    expires = datetime.fromisoformat(basis["expires_at"])
    checks.append(
        Check(
            "expiry",
            RefusalCode.LEGAL_BASIS_EXPIRED.value not in failed,
            {"reference": basis["reference"], "expires_at": expires, "left": expires - now},
        )
    )
    entry = _allowlist_entry(session, asset, spend["destination"])
    checks.append(
        Check(
            "allowlist",
            bool(context["destination_allowed"]),
            {
                "label": None if entry is None else entry["label"],
                "active_from": None if entry is None else entry["active_from"],
                "age": None if entry is None else now - entry["active_from"],
            },
        )
    )
    recon = context["reconciliation"]
    max_age = (
        None if document is None else timedelta(seconds=document.reconciliation_max_age_seconds)
    )
    reconciliation_codes = {
        RefusalCode.RECONCILIATION_MISSING.value,
        RefusalCode.RECONCILIATION_MISMATCHED.value,
        RefusalCode.RECONCILIATION_STALE.value,
    }
    checks.append(
        Check(
            "reconciliation",
            not (failed & reconciliation_codes),
            {
                "outcome": None if recon is None else recon["outcome"],
                "checked_at": None
                if recon is None
                else datetime.fromisoformat(recon["checked_at"]),
                "age": None if recon is None else now - datetime.fromisoformat(recon["checked_at"]),
                "max_age": max_age,
            },
        )
    )
    return CheckedDecision(
        decision_id=row.id,
        action=row.action,
        decided_at=row.decided_at,
        policy_version=row.policy_version,
        allowed=row.allowed,
        asset=asset,
        amount=amount,
        checks=tuple(checks),
    )
