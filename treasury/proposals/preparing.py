"""Preparing a proposal's transaction: what approvers review and what approvals bind to.

A different transaction supersedes the current one and voids every standing approval (a void
row is appended for each), since those approvals name the old transaction's hash.

The transaction's chain-level identity (its Safe nonce, its Bitcoin inputs) is reserved for the
proposal in the same database transaction that records it (``reservations``): the spender is told
what other proposals hold and builds around it, and the unique constraint refuses a claim taken
meanwhile, in which case the transaction is built again (``RESERVE_ATTEMPTS``).
"""

from __future__ import annotations

from functools import partial

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from treasury.canonical import canonical_json
from treasury.officers import Officer, Role
from treasury.proposals.approving import requorum
from treasury.proposals.context import WorkflowContext
from treasury.proposals.ports import ChainSpender, PreparedTx, SpendRequest
from treasury.proposals.reservations import (
    RESERVE_ATTEMPTS,
    ReservationConflictError,
    claims_of_others,
    release,
    reserve,
    sweep_closed,
)
from treasury.proposals.rows import current_tx, locked, standing_approval_rows, void_approval
from treasury.proposals.states import ProposalState
from treasury.proposals.tables import FeeBumpRow, PreparedTxRow, SpendProposalRow
from treasury.proposals.views import ProposalView, proposal_view
from treasury.workflow_exceptions import ProposalTransitionError, TransactionMismatchError


def prepare(
    ctx: WorkflowContext, actor: Officer, proposal_id: int, spender: ChainSpender
) -> ProposalView:
    """Build the proposal's transaction; a different transaction voids standing approvals.

    The spender is called between two transactions, never inside one: it talks to a node and
    writes custody's own records, and SQLite's single writer would otherwise wait on itself.
    """
    actor.require(Role.PROPOSER, Role.ADMIN)

    def reserved(session: Session) -> tuple[SpendProposalRow, frozenset[str]]:
        row = preparable(session, proposal_id)
        sweep_closed(session, ctx.clock())
        return row, claims_of_others(session, row.id)

    for attempt in range(1, RESERVE_ATTEMPTS + 1):
        row, taken = ctx.write(reserved)
        built = spender.build(SpendRequest(row.id, row.asset, row.amount, row.destination, taken))
        try:
            return ctx.write(
                partial(record_prepared, ctx, actor=actor, proposal_id=proposal_id, built=built)
            )
        except IntegrityError:
            if attempt == RESERVE_ATTEMPTS:
                break
    raise ReservationConflictError(
        f"Proposal {proposal_id}'s transaction uses a Safe nonce or an input that another "
        f"proposal reserved meanwhile, {RESERVE_ATTEMPTS} times in a row; nothing was recorded. "
        "Prepare it again."
    )


def preparable(session: Session, proposal_id: int) -> SpendProposalRow:
    """The proposal, locked, if a transaction may be prepared for it now."""
    row = locked(session, proposal_id)
    if row.state not in (ProposalState.PROPOSED.value, ProposalState.APPROVED.value):
        raise ProposalTransitionError(
            f"Proposal {proposal_id} is {row.state}; a transaction is prepared only while "
            "it is proposed or approved."
        )
    return row


REPLACES_TXID = "replaces_txid"
"""Summary key of the transaction a fee bump's replacement replaces (``treasury.fee_bumps``)."""


def require_replacement(session: Session, proposal_id: int, built: PreparedTx) -> None:
    """Refuse to record for a fee-bump proposal anything but the replacement of its transaction.

    A bump proposal pays what the stuck proposal pays; prepared by an ordinary spender it would
    be a second payment of the same amount, not a replacement. And a replacement is recorded only
    for the bump proposal that asked for it.
    """
    bump = session.get(FeeBumpRow, proposal_id)
    replaces = built.summary.get(REPLACES_TXID)
    if bump is None and replaces is not None:
        raise TransactionMismatchError(
            f"The transaction built for proposal {proposal_id} replaces {replaces}, but the "
            "proposal is not a fee bump; nothing was recorded."
        )
    if bump is not None and replaces != bump.replaced_txid:
        raise TransactionMismatchError(
            f"Proposal {proposal_id} is a fee bump of transaction {bump.replaced_txid}, but the "
            "transaction built for it replaces "
            f"{'nothing' if replaces is None else replaces}; prepare it with the bump spender "
            "(`treasury spend bump`). Nothing was recorded."
        )


def record_prepared(
    ctx: WorkflowContext,
    session: Session,
    *,
    actor: Officer,
    proposal_id: int,
    built: PreparedTx,
) -> ProposalView:
    """Record ``built`` as the proposal's transaction and reserve what it consumes.

    The same transaction again changes nothing; a different one supersedes the current one,
    releases its reservations and voids the standing approvals.
    """
    row = preparable(session, proposal_id)
    require_replacement(session, row.id, built)
    current = current_tx(session, row.id)
    if current is not None and current.tx_hash == built.tx_hash:
        return proposal_view(session, row)
    now = ctx.clock()
    if current is not None:
        current.superseded_at = now
        release(session, row.id, now, f"Transaction {current.tx_hash} was superseded.")
    added = PreparedTxRow(
        proposal_id=row.id,
        tx_hash=built.tx_hash,
        summary=canonical_json(dict(built.summary)),
        payload=built.payload,
        fee=built.fee,
        prepared_at=now,
    )
    session.add(added)
    session.flush()
    reserve(session, added, built.claims, now)
    for approval in standing_approval_rows(session, row.id):
        void_approval(
            session, approval, now,
            f"The prepared transaction changed from {approval.tx_hash} to {built.tx_hash}.",
        )  # fmt: skip
    requorum(
        ctx, session, row, actor, "transaction_prepared", tx_hash=built.tx_hash,
        replaced=None if current is None else current.tx_hash,
    )  # fmt: skip
    return proposal_view(session, row)
