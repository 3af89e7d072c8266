"""Preparing a proposal's transaction: what approvers review and what approvals bind to.

A different transaction supersedes the current one and voids every standing approval (a void
row is appended for each), since those approvals name the old transaction's hash.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from treasury.canonical import canonical_json
from treasury.officers import Officer, Role
from treasury.proposals.approving import requorum
from treasury.proposals.context import WorkflowContext
from treasury.proposals.ports import ChainSpender, SpendRequest
from treasury.proposals.rows import current_tx, locked, standing_approval_rows, void_approval
from treasury.proposals.states import ProposalState
from treasury.proposals.tables import PreparedTxRow, SpendProposalRow
from treasury.proposals.views import ProposalView, proposal_view
from treasury.workflow_exceptions import ProposalTransitionError


def prepare(
    ctx: WorkflowContext, actor: Officer, proposal_id: int, spender: ChainSpender
) -> ProposalView:
    """Build the proposal's transaction; a different transaction voids standing approvals.

    The spender is called between two transactions, never inside one: it talks to a node and
    writes custody's own records, and SQLite's single writer would otherwise wait on itself.
    """
    actor.require(Role.PROPOSER, Role.ADMIN)

    def preparable(session: Session) -> SpendProposalRow:
        row = locked(session, proposal_id)
        if row.state not in (ProposalState.PROPOSED.value, ProposalState.APPROVED.value):
            raise ProposalTransitionError(
                f"Proposal {proposal_id} is {row.state}; a transaction is prepared only while "
                "it is proposed or approved."
            )
        return row

    row = ctx.write(preparable)
    prepared = spender.build(SpendRequest(row.id, row.asset, row.amount, row.destination))

    def work(session: Session) -> ProposalView:
        row = preparable(session)
        current = current_tx(session, row.id)
        if current is not None and current.tx_hash == prepared.tx_hash:
            return proposal_view(session, row)
        now = ctx.clock()
        if current is not None:
            current.superseded_at = now
        session.add(
            PreparedTxRow(
                proposal_id=row.id,
                tx_hash=prepared.tx_hash,
                summary=canonical_json(dict(prepared.summary)),
                payload=prepared.payload,
                fee=prepared.fee,
                prepared_at=now,
            )
        )
        for approval in standing_approval_rows(session, row.id):
            void_approval(
                session, approval, now,
                f"The prepared transaction changed from {approval.tx_hash} to {prepared.tx_hash}.",
            )  # fmt: skip
        requorum(
            ctx, session, row, actor, "transaction_prepared", tx_hash=prepared.tx_hash,
            replaced=None if current is None else current.tx_hash,
        )  # fmt: skip
        return proposal_view(session, row)

    return ctx.write(work)
