"""What the chain does to a spend proposal's ledger entry and state, as the reconciler sees it.

The workflow holds a broadcast spend as a pending entry (``SpendPosting.key_for(id)``, written by
``treasury.proposals.ledger_hook``); the reconciler settles it from the chain, and each settlement
is a booking (``BookingRow``) of the spend's chain key, so a reorg finds and reverses it like any
other booking. Per generation of the chain key:

- generation 1 posts the pending entry (key ``<posting key>:post``, the workflow's own key, so the
  workflow's ``refresh`` posting it too is a replay), or adopts that post if ``refresh`` came first;
- a reorg reverses the active generation's entry (a reversing entry, key ``<its key>:reorg``) and
  moves a ``confirmed`` proposal back to ``broadcast``, with an audit event;
- mined again (in any block), generation n >= 2 posts the pending entry's legs once more under
  ``<posting key>:post#n`` and confirms the proposal again.

So however often a spend is reorged out and mined again, exactly one generation is active and the
net posting is one; every entry balances, so the trial balance stays zero. A pending entry that
was voided (the spend failed or was dropped, yet the transaction was mined after all) settles
nothing here: the booker books the outflow as an approved outflow of the vault instead.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.clock import Clock
from treasury import audit, ledger
from treasury.audit import AuditKind
from treasury.ledger import PendingState
from treasury.proposals import (
    ProposalState,
    SealedTxRow,
    SpendPosting,
    SpendProposalRow,
    check_transition,
)
from treasury.reconcile.accounts import ACTOR
from treasury.reconcile.observation import BlockRef

VOID_REASON = "Spend proposal {id}'s transaction failed on chain."
"""The workflow's own void reason: the same key and reason make settling twice a replay."""


def post_key(proposal_id: int, generation: int) -> str:
    """The ledger key of a spend's posting generation (the first is the workflow's own)."""
    key = f"{SpendPosting.key_for(proposal_id)}:post"
    return key if generation == 1 else f"{key}#{generation}"


def proposal_for(session: Session, tx_ref: str) -> int | None:
    """The spend proposal whose pending ledger entry books this transaction, if any.

    Found by the proposal's current txid, else by any transaction it sealed before sending (a
    Safe spend sealed again after its first signed transaction dropped, whose first one was mined
    after all, is still that proposal's own and must not be booked a second time).
    """
    proposal_id = session.scalar(
        select(SpendProposalRow.id).where(func.lower(SpendProposalRow.txid) == tx_ref.lower())
    )
    if proposal_id is None:
        proposal_id = session.scalar(
            select(SealedTxRow.proposal_id).where(func.lower(SealedTxRow.txid) == tx_ref.lower())
        )
    if proposal_id is None or ledger.find_entry(session, SpendPosting.key_for(proposal_id)) is None:
        return None
    return proposal_id


def _locked(session: Session, proposal_id: int) -> SpendProposalRow:
    return session.scalars(
        select(SpendProposalRow).where(SpendProposalRow.id == proposal_id).with_for_update()
    ).one()


def record_event(
    session: Session, row: SpendProposalRow, event: str, clock: Clock, **payload: str | int
) -> None:
    """Append a proposal's audit event the way the workflow does (``ctx.audit``), as the reconciler."""
    audit.append(
        session,
        kind=AuditKind.BROADCAST,
        actor=ACTOR,
        refs={"proposal_id": row.id},
        payload={"event": event, "state": row.state, **payload},
        clock=clock,
    )


def post_spend(
    session: Session, proposal_id: int, generation: int, block: BlockRef, clock: Clock
) -> int | None:
    """Post the spend's entry for this generation; the posting's entry id, ``None`` if voided."""
    pending = ledger.find_entry(session, SpendPosting.key_for(proposal_id))
    if pending is None:
        return None
    state = ledger.pending_state(session, pending.id)
    if state is PendingState.VOIDED:
        return None
    if state is PendingState.PENDING:
        return ledger.post_pending(session, pending.id, post_key(proposal_id, 1), clock=clock).id
    first = ledger.find_entry(session, post_key(proposal_id, 1))
    if generation == 1 and first is not None:  # the workflow's refresh posted it first
        return first.id
    again = ledger.record_entry(
        session,
        post_key(proposal_id, generation),
        pending.legs,
        description=(
            f"Spend proposal {proposal_id} mined again in block {block.height} after a reorg"
        )[:500],
        clock=clock,
    )
    row = _locked(session, proposal_id)
    if row.state == ProposalState.BROADCAST.value:
        check_transition(row.id, ProposalState.BROADCAST, ProposalState.CONFIRMED)
        row.state = ProposalState.CONFIRMED.value
        row.confirmed_at = clock()
    record_event(
        session, row, "mined_again", clock,
        txid=row.txid or "", block=block.hash, height=block.height, entry_id=again.id,
    )  # fmt: skip
    return again.id


def spend_reorged(
    session: Session, proposal_id: int, tx_ref: str, reversal_id: int, why: str, clock: Clock
) -> None:
    """A reorg reversed the spend's posting: back to ``broadcast`` if it was ``confirmed``."""
    row = _locked(session, proposal_id)
    if row.state not in (ProposalState.CONFIRMED.value, ProposalState.BROADCAST.value):
        return
    if row.state == ProposalState.CONFIRMED.value:
        check_transition(row.id, ProposalState.CONFIRMED, ProposalState.BROADCAST)
        row.state = ProposalState.BROADCAST.value
        row.confirmed_at = None
    record_event(
        session, row, "reorged_out", clock,
        txid=tx_ref, reversal_entry_id=reversal_id, why=why,
    )  # fmt: skip


def void_spend(session: Session, proposal_id: int, clock: Clock) -> None:
    """Void a failed spend's pending entry with the workflow's key and reason (a replay is a no-op)."""
    pending = ledger.find_entry(session, SpendPosting.key_for(proposal_id))
    if pending is None or ledger.pending_state(session, pending.id) is not PendingState.PENDING:
        return
    ledger.void_pending(
        session,
        pending.id,
        f"{SpendPosting.key_for(proposal_id)}:void",
        actor=ACTOR,
        reason=VOID_REASON.format(id=proposal_id),
        clock=clock,
    )
