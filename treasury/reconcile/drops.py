"""Spend transactions the node dropped: not in a block, not in its mempool, not conflicted.

A node forgets a transaction for ordinary reasons (mempool expiry or eviction, a restart without
a persisted mempool); nothing on chain then says it failed, so without this the proposal would
stay ``broadcast`` and its pending entry would hold the vault's money forever. The reconciler
notes when it first sees an in-flight spend gone (an audit event, ``dropped_from_mempool``) and
when it comes back (``back_in_mempool``); once a spend has been gone for longer than the timeout
(``DEFAULT_DROP_TIMEOUT_S``, setting ``TREASURY_RECONCILE_DROPPED_SPEND_TIMEOUT_SECONDS``) the
policy decides:

- ``void`` (the default): the chain reader abandons the transaction in the vault's watch-only
  wallet, so its inputs can fund another spend, and the booker voids the pending entry and moves
  the proposal to ``failed`` with the reason. Officers propose again if the payment is still
  wanted; nothing is sent that they did not see go out and disappear.
- ``rebroadcast``: the reader first sends the wallet's copy of the signed transaction again (the
  exact transaction the officers approved and the signers signed; the wallet keeps it). If the
  node accepts it, it is in flight again; if it refuses it (its fee is now too low, say), the
  spend is voided as above.

The default is ``void`` because a transaction that lay dead for hours may no longer be what the
officers want paid at that moment, and voiding is the step that cannot pay anyone twice.

The marks live in the hash-chained audit log rather than a table of their own: they are facts
worth auditing anyway, they need no migration, and a forged mark can only make the reconciler
void a spend early -- which a database writer could do directly and which moves no money.
A transaction conflicted by another one (a double spend) is not dropped: it fails at once
(``Observation.failed_txs``), as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.clock import Clock
from treasury.audit import AuditEvent, AuditKind
from treasury.canonical import canonical_json
from treasury.proposals import ProposalState, SpendProposalRow, check_transition
from treasury.reconcile.settlement import record_event, void_spend

DEFAULT_DROP_TIMEOUT_S = 6 * 3600
"""How long an in-flight spend may be missing from both the chain and the mempool before the
policy acts: long enough for a node restart or a wallet's own rebroadcast, short enough that
the vault's money is not held for a day."""

DROPPED = "dropped_from_mempool"
"""Audit event: the node no longer holds the spend's transaction (first sighting)."""
BACK = "back_in_mempool"
"""Audit event: a spend noted dropped is in the mempool or a block again."""
RELEASED = "failed"
"""Audit event: the spend was dropped past the timeout; its entry voided, the proposal failed."""
REBROADCAST_EVENT = "rebroadcast"
"""Audit event: the reader sent the dropped spend's signed transaction again, and it was taken."""


class DropPolicy(StrEnum):
    """What happens to a spend dropped for longer than the timeout."""

    VOID = "void"
    REBROADCAST = "rebroadcast"


def _in_flight(session: Session, txid: str, *, lock: bool = False) -> SpendProposalRow | None:
    query = select(SpendProposalRow).where(
        func.lower(SpendProposalRow.txid) == txid.lower(),
        SpendProposalRow.state == ProposalState.BROADCAST.value,
    )
    return session.scalar(query.with_for_update() if lock else query)


def _last_mark(session: Session, proposal_id: int) -> tuple[str, datetime] | None:
    """The newest drop mark of a proposal (``DROPPED`` or ``BACK``) and when it was made."""
    rows = session.execute(
        select(AuditEvent.payload, AuditEvent.recorded_at)
        .where(
            AuditEvent.kind == AuditKind.BROADCAST.value,
            AuditEvent.refs == canonical_json({"proposal_id": proposal_id}),
        )
        .order_by(AuditEvent.sequence.desc())
    )
    for payload, recorded_at in rows:
        event = json.loads(payload).get("event")
        if event in (DROPPED, BACK):
            return str(event), recorded_at
    return None


def dropped_since(session: Session, proposal_id: int) -> datetime | None:
    """When the proposal's spend was last seen to go missing, if it is still noted missing."""
    mark = _last_mark(session, proposal_id)
    return mark[1] if mark is not None and mark[0] == DROPPED else None


def due(
    session: Session, txids: Iterable[str], now: datetime, timeout: timedelta
) -> tuple[str, ...]:
    """The in-flight txids noted dropped for at least ``timeout`` at ``now``."""
    found: list[str] = []
    for txid in txids:
        row = _in_flight(session, txid)
        if row is None:
            continue
        since = dropped_since(session, row.id)
        if since is not None and now - since >= timeout:
            found.append(txid)
    return tuple(found)


def note(
    session: Session,
    dropped: Iterable[str],
    live: Iterable[str],
    rebroadcast: Iterable[str],
    clock: Clock,
) -> None:
    """Mark spends newly missing, and spends back (rebroadcast by the reader, or otherwise)."""
    for txid in dropped:
        row = _in_flight(session, txid)
        if row is not None and dropped_since(session, row.id) is None:
            record_event(session, row, DROPPED, clock, txid=txid)
    resent = set(rebroadcast)
    for txid in live:
        row = _in_flight(session, txid)
        if row is None or dropped_since(session, row.id) is None:
            continue
        if txid in resent:
            record_event(session, row, REBROADCAST_EVENT, clock, txid=txid)
        record_event(session, row, BACK, clock, txid=txid)


def release(session: Session, txids: Iterable[str], timeout: timedelta, clock: Clock) -> int:
    """Fail each spend the reader released: void its pending entry, close the proposal."""
    count = 0
    for txid in txids:
        row = _in_flight(session, txid, lock=True)
        if row is None:
            continue
        since = dropped_since(session, row.id)
        seconds = int(timeout.total_seconds())
        reason = (
            f"Transaction {txid} was dropped: neither in a block nor in the node's mempool since "
            f"{since.isoformat() if since else 'an earlier run'} (more than {seconds} s); its "
            "inputs are free again."
        )
        check_transition(row.id, ProposalState.BROADCAST, ProposalState.FAILED)
        row.state = ProposalState.FAILED.value
        row.closed_at = clock()
        row.closed_reason = reason
        void_spend(session, row.id, clock)
        record_event(session, row, RELEASED, clock, txid=txid, reason=reason)
        count += 1
    return count
