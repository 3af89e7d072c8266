"""Opening a spend: drafting it against a legal basis and submitting it under the policy.

Input is checked here, before any transaction starts, so a malformed proposal never reaches
the database or the decision log.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from treasury.audit import AuditKind
from treasury.officers import Officer, Role
from treasury.policy import (
    ADDRESS_MAX_CHARS,
    ASSET_CODE_MAX_CHARS,
    Action,
    current_policy,
    legal_basis_by_reference,
)
from treasury.proposals.context import WorkflowContext
from treasury.proposals.rows import locked, move
from treasury.proposals.states import ProposalState, check_transition
from treasury.proposals.tables import SpendProposalRow
from treasury.proposals.views import ProposalView, proposal_view
from treasury.text import LINE_BREAKS, unstorable_characters, unstorable_message
from treasury.workflow_exceptions import NotAuthorisedError, WorkflowInputError

PURPOSE_MAX_CHARS = 2000


def checked_text(value: str, field: str, max_chars: int, *, multiline: bool = False) -> str:
    """``value`` stripped, refused unless 1 to ``max_chars`` storable characters remain.

    Line breaks are allowed in ``multiline`` text (a purpose or reason may run over lines); other control characters
    and lone surrogates are refused here too, not only by the API, so the CLI and direct callers
    cannot store what PostgreSQL refuses (``treasury.text``).
    """
    value = value.strip()
    if not value or len(value) > max_chars:
        raise WorkflowInputError(f"The {field} must be 1 to {max_chars} characters long.")
    found = unstorable_characters(value, LINE_BREAKS if multiline else frozenset())
    if found:
        raise WorkflowInputError(f"The {field} must be {unstorable_message(found)}.")
    return value


def propose(
    ctx: WorkflowContext,
    actor: Officer,
    *,
    asset: str,
    amount: int,
    destination: str,
    purpose: str,
    legal_basis: str,
    submit: bool,
) -> ProposalView:
    """Draft a spend citing ``legal_basis`` and, if ``submit``, submit it under the policy."""
    actor.require(Role.PROPOSER)
    asset = checked_text(asset, "asset code", ASSET_CODE_MAX_CHARS)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise WorkflowInputError(
            f"The amount must be a positive integer in base units (satoshi, wei); got {amount!r}."
        )
    destination = checked_text(destination, "destination address", ADDRESS_MAX_CHARS)
    purpose = checked_text(purpose, "purpose", PURPOSE_MAX_CHARS, multiline=True)

    def work(session: Session) -> ProposalView:
        now = ctx.clock()
        if not actor.is_active(now):
            raise NotAuthorisedError(f"Officer {actor.id} is revoked and cannot propose.")
        # Read before any lock: the basis and the policy do not depend on other spends.
        basis_id, basis = legal_basis_by_reference(session, legal_basis)
        policy = current_policy(session) if submit else None
        row = SpendProposalRow(
            asset=asset,
            amount=amount,
            destination=destination,
            purpose=purpose,
            legal_basis_id=basis_id,
            proposer_id=actor.id,
            state=ProposalState.DRAFT.value,
            created_at=now,
        )
        session.add(row)
        session.flush()
        decision_id = None
        if policy is not None:
            # Judging takes the asset's limit lock; the audit log's lock comes after it, as in
            # every writer (the other order deadlocked proposals against approvals on
            # PostgreSQL, bench/api_load.py found it), so both events are appended last.
            check_transition(row.id, ProposalState.DRAFT, ProposalState.PROPOSED)
            judged = ctx.judge(
                session, policy, row, Action.SUBMIT, actor,
                legal_basis=basis, current_tx_hash=None, approvals=(),
            )  # fmt: skip
            decision_id = judged.decision_id
            move(row, ProposalState.PROPOSED)
        ctx.audit(
            session, AuditKind.PROPOSAL, actor, row, "drafted",
            state=ProposalState.DRAFT.value, amount=str(amount),
        )  # fmt: skip
        if decision_id is not None:
            ctx.audit(session, AuditKind.PROPOSAL, actor, row, "submitted", decision_id=decision_id)
        return proposal_view(
            session, row, policy=policy, legal_basis=basis, current=None, approvals=()
        )

    return ctx.write(work)


def submit(ctx: WorkflowContext, actor: Officer, proposal_id: int) -> ProposalView:
    """Submit a draft for approval (its proposer only), under the policy's spend rules."""

    def work(session: Session) -> ProposalView:
        row = locked(session, proposal_id)
        if row.proposer_id != actor.id:
            raise NotAuthorisedError(f"Only the proposer of proposal {proposal_id} may submit it.")
        submit_row(ctx, session, row, actor)
        return proposal_view(session, row)

    return ctx.write(work)


def submit_row(
    ctx: WorkflowContext, session: Session, row: SpendProposalRow, actor: Officer
) -> None:
    """Move a draft to proposed if the policy allows its submission, in the caller's transaction."""
    check_transition(row.id, ProposalState(row.state), ProposalState.PROPOSED)
    policy = current_policy(session)
    judged = ctx.judge(session, policy, row, Action.SUBMIT, actor)
    move(row, ProposalState.PROPOSED)
    ctx.audit(session, AuditKind.PROPOSAL, actor, row, "submitted", decision_id=judged.decision_id)
