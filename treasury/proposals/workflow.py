"""``Workflow``: the one service every interface (CLI, REST API, scheduler) moves a spend with.

The class is the public face and holds no logic of its own beyond reading: each phase lives in
its own module as plain functions over a shared ``WorkflowContext`` (proposing, preparing,
approving, closing, signing, broadcasting), and the methods here delegate to them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from custody.authority import ApprovalStatement, SignedStatement, StatementKind
from custody.clock import Clock, utc_now
from treasury.authority.statements import DEFAULT_STATEMENT_TTL
from treasury.officers import Officer, Role
from treasury.policy import (
    ReconciliationGate,
    RecordedDecision,
    TableReconciliationGate,
    decisions_for,
)
from treasury.proposals import approving, broadcasting, closing, preparing, proposing, signing
from treasury.proposals.context import WorkflowContext
from treasury.proposals.ports import ChainSpender, SpendLedger
from treasury.proposals.rows import current_tx, prepared
from treasury.proposals.signed_statements import statement_for
from treasury.proposals.states import ProposalState
from treasury.proposals.tables import SpendProposalRow
from treasury.proposals.views import ProposalView, load_view, proposal_view


class Workflow:
    """The service every interface (CLI, REST API, scheduler) goes through to move a spend."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        ledger: SpendLedger,
        *,
        clock: Clock = utc_now,
        reconciliation: ReconciliationGate | None = None,
        confirmations_required: Mapping[str, int] | None = None,
    ) -> None:
        self._context = WorkflowContext(
            sessions=sessions,
            ledger=ledger,
            clock=clock,
            reconciliation=reconciliation or TableReconciliationGate(),
            confirmations_required=dict(confirmations_required or {}),
        )

    _current_tx = staticmethod(current_tx)
    """The proposal's current prepared transaction row (tests read it as a restart would)."""
    _prepared = staticmethod(prepared)
    """A prepared transaction row as the chain spender takes it."""

    # -- officers

    def revoke_officer(self, actor: Officer, officer_id: int) -> Officer:
        """Revoke an officer now (admin only) and void their approvals of unsigned spends."""
        return approving.revoke_officer(self._context, actor, officer_id)

    # -- proposing

    def propose(
        self,
        actor: Officer,
        *,
        asset: str,
        amount: int,
        destination: str,
        purpose: str,
        legal_basis: str,
        submit: bool = True,
    ) -> ProposalView:
        """Draft a spend citing ``legal_basis`` and, by default, submit it under the policy."""
        return proposing.propose(
            self._context,
            actor,
            asset=asset,
            amount=amount,
            destination=destination,
            purpose=purpose,
            legal_basis=legal_basis,
            submit=submit,
        )

    def submit(self, actor: Officer, proposal_id: int) -> ProposalView:
        """Submit a draft for approval (its proposer only), under the policy's spend rules."""
        return proposing.submit(self._context, actor, proposal_id)

    # -- preparing and approving

    def prepare(self, actor: Officer, proposal_id: int, spender: ChainSpender) -> ProposalView:
        """Build the proposal's transaction; a different transaction voids standing approvals.

        The spender is called between two transactions, never inside one: it talks to a node and
        writes custody's own records, and SQLite's single writer would otherwise wait on itself.
        """
        return preparing.prepare(self._context, actor, proposal_id, spender)

    def statement(
        self,
        actor: Officer,
        proposal_id: int,
        kind: StatementKind = StatementKind.APPROVE,
        ttl: timedelta = DEFAULT_STATEMENT_TTL,
    ) -> ApprovalStatement:
        """The statement the actor signs to approve (or veto) the proposal as it stands now."""
        actor.require(Role.APPROVER, Role.OVERSIGHT)
        now = self._context.clock()
        return self._context.read(
            lambda session: statement_for(session, proposal_id, actor, kind, now, ttl)
        )

    def approve(
        self,
        actor: Officer,
        proposal_id: int,
        tx_hash: str,
        signed: SignedStatement | None = None,
    ) -> ProposalView:
        """Approve the prepared transaction ``tx_hash`` for the actor's institution.

        Once the roster chain has a genesis, ``signed`` (the actor's signed statement of this
        proposal, ``statement``) is required, verified and stored with the approval.
        """
        return approving.approve(self._context, actor, proposal_id, tx_hash, signed)

    # -- closing early

    def reject(self, actor: Officer, proposal_id: int, reason: str) -> ProposalView:
        """Reject an unsigned proposal (an approver, an admin, or its own proposer withdrawing)."""
        return closing.reject(self._context, actor, proposal_id, reason)

    def veto(
        self,
        actor: Officer,
        proposal_id: int,
        reason: str,
        signed: SignedStatement | None = None,
    ) -> ProposalView:
        """Cancel a spend (oversight only) before approval or during its veto window; a signed
        VETO statement given is verified and stored with it."""
        return closing.veto(self._context, actor, proposal_id, reason, signed)

    def expire_due(self) -> list[int]:
        """Expire unsigned proposals past the policy's time-to-live or their legal basis."""
        return closing.expire_due(self._context)

    # -- signing and release

    def sign(
        self,
        actor: Officer,
        proposal_id: int,
        spender: ChainSpender,
        shares: Sequence[str],
        passphrase: str,
    ) -> ProposalView:
        """Add the actor's institution's signature from its share holders' shares.

        The shares and passphrase go to the spender only; nothing of them is stored or logged.
        """
        return signing.sign(self._context, actor, proposal_id, spender, shares, passphrase)

    def broadcast(self, proposal_id: int, spender: ChainSpender) -> ProposalView:
        """Send a signed proposal's transaction exactly once, however often this is retried."""
        return broadcasting.broadcast(self._context, proposal_id, spender)

    def refresh(self, proposal_id: int, spender: ChainSpender) -> ProposalView:
        """Track a broadcast spend: post its ledger entry once confirmed, void it if it failed."""
        return broadcasting.refresh(self._context, proposal_id, spender)

    def resume(self, spenders: Mapping[str, ChainSpender]) -> list[ProposalView]:
        """After a restart: finish every signed or broadcast spend whose chain is configured."""
        return broadcasting.resume(self._context, spenders)

    # -- reading

    def status(self, actor: Officer, proposal_id: int) -> ProposalView:
        """A proposal's full status; every role may read."""
        self._require_reader(actor)
        return self.view(proposal_id)

    def status_in(self, session: Session, actor: Officer, proposal_id: int) -> ProposalView:
        """``status``, read in the caller's ``session`` (the API's, in which it authenticated the
        actor), so a request reads with the one connection it already took from the pool."""
        self._require_reader(actor)
        return load_view(session, proposal_id)

    def view(self, proposal_id: int) -> ProposalView:
        """A proposal's full status, for callers that already checked the reader."""
        return self._context.read(lambda session: load_view(session, proposal_id))

    def list_proposals(
        self, actor: Officer, state: ProposalState | None = None
    ) -> list[ProposalView]:
        """Proposals, newest first, optionally in one state; every role may read."""
        self._require_reader(actor)

        def work(session: Session) -> list[ProposalView]:
            query = select(SpendProposalRow).order_by(SpendProposalRow.id.desc())
            if state is not None:
                query = query.where(SpendProposalRow.state == state.value)
            return [proposal_view(session, row) for row in session.scalars(query)]

        return self._context.read(work)

    def decisions(self, actor: Officer, proposal_id: int) -> list[RecordedDecision]:
        """Every policy decision taken about a proposal, for replay by an auditor."""
        self._require_reader(actor)
        return self._context.read(lambda session: decisions_for(session, proposal_id))

    @staticmethod
    def _require_reader(actor: Officer) -> None:
        actor.require(*Role)
