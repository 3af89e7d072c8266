"""Turn one observation into ledger entries, in the caller's single database transaction.

Exactly once, across reorgs: a chain movement (``btc:<txid>:<vout>``...) has at most one active
booking. Its first booking uses the chain key as the ledger's idempotency key; a reorg reverses
it (a reversing entry, key ``<key>:reorg``); if the movement reappears it is booked again as
generation 2 (ledger key ``<chain key>#2``), and so on. Replaying a run books nothing new, and
every booking and reversal is a balanced entry, so the trial balance stays zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from custody.clock import Clock
from custody.ethereum.records import SafeTxRow
from custody.records import SpendRecord
from treasury import ledger
from treasury.db import begin_serialised_write
from treasury.ledger import AssetSpec, EntryRequest, Leg, PendingState
from treasury.proposals import PreparedTxRow, ProposalState, SpendPosting, SpendProposalRow
from treasury.reconcile.accounts import (
    ACTOR,
    approved_outflows_account,
    ensure_accounts,
    inflows_account,
    suspense_account,
)
from treasury.reconcile.alarms import open_alarm_of, raise_alarm
from treasury.reconcile.observation import BlockRef, BookedState, Movement, Observation, Progress
from treasury.reconcile.records import (
    AlarmKind,
    BookingRow,
    CursorRow,
    MovementKind,
    ResultRow,
)

LOOKUP_CHUNK = 500
"""Keys per ``IN (...)`` query."""
BOOKING_BATCH = 1000
"""Entries per ledger batch (and per progress line)."""
VOID_REASON = "Spend proposal {id}'s transaction failed on chain."
"""The workflow's own void reason: the same key and reason make settling twice a replay."""


@dataclass(frozen=True)
class Applied:
    """What booking one observation did."""

    booked: int
    reversed: int
    results: tuple[ResultRow, ...]


def entry_key(chain_key: str, generation: int) -> str:
    """The ledger idempotency key of a booking generation."""
    return chain_key if generation == 1 else f"{chain_key}#{generation}"


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), LOOKUP_CHUNK):
        yield items[start : start + LOOKUP_CHUNK]


def booked_state(session: Session, scope: str, chain: str) -> BookedState:
    """The vault's cursor, the blocks of its active bookings, and its chain's in-flight spends."""
    cursor = session.scalar(select(CursorRow).where(CursorRow.scope == scope))
    blocks = session.execute(
        select(BookingRow.block_height, BookingRow.block_hash)
        .where(BookingRow.scope == scope, BookingRow.reversal_entry_id.is_(None))
        .distinct()
        .order_by(BookingRow.block_height.desc())
    ).all()
    txids = session.scalars(
        select(SpendProposalRow.txid).where(
            SpendProposalRow.state == ProposalState.BROADCAST.value,
            SpendProposalRow.txid.is_not(None),
        )
    )
    wanted_prefix = chain == "ethereum"
    in_flight = tuple(t for t in txids if t and t.startswith("0x") == wanted_prefix)
    return BookedState(
        None if cursor is None else BlockRef(cursor.height, cursor.block_hash),
        tuple(BlockRef(height, block_hash) for height, block_hash in blocks),
        in_flight,
    )


def is_authorised(session: Session, evidence: str) -> bool:
    """Whether an approved or broadcast spend in the system names this txid or SafeTx hash."""
    lowered = evidence.lower()
    checks = (
        select(SpendRecord.id).where(
            or_(SpendRecord.txid == evidence, SpendRecord.unsigned_txid == evidence)
        ),
        select(SafeTxRow.id).where(func.lower(SafeTxRow.safe_tx_hash) == lowered),
        select(SpendProposalRow.id).where(func.lower(SpendProposalRow.txid) == lowered),
        select(PreparedTxRow.id).where(func.lower(PreparedTxRow.tx_hash) == lowered),
    )
    return any(session.scalar(check.limit(1)) is not None for check in checks)


def _proposal_for(session: Session, tx_ref: str) -> int | None:
    """The spend proposal whose ledger entry books this transaction, if any."""
    proposal_id = session.scalar(
        select(SpendProposalRow.id).where(func.lower(SpendProposalRow.txid) == tx_ref.lower())
    )
    if proposal_id is None or ledger.find_entry(session, SpendPosting.key_for(proposal_id)) is None:
        return None
    return proposal_id


def _settle(session: Session, proposal_id: int, *, failed: bool, clock: Clock) -> None:
    """Post (or void) a proposal's pending entry with the workflow's own keys (a replay is a no-op)."""
    pending = ledger.find_entry(session, SpendPosting.key_for(proposal_id))
    if pending is None or ledger.pending_state(session, pending.id) is not PendingState.PENDING:
        return
    key = SpendPosting.key_for(proposal_id)
    if failed:
        reason = VOID_REASON.format(id=proposal_id)
        ledger.void_pending(
            session, pending.id, f"{key}:void", actor=ACTOR, reason=reason, clock=clock
        )
    else:
        ledger.post_pending(session, pending.id, f"{key}:post", clock=clock)


class Booker:
    """Books observations of one run (caches accounts across vaults)."""

    def __init__(self, run_id: int, clock: Clock, progress: Progress) -> None:
        self._run_id = run_id
        self._clock = clock
        self._progress = progress
        self._holdings: dict[tuple[str, str], str] = {}

    def _holdings_of(self, session: Session, scope: str, asset: AssetSpec) -> str:
        cached = self._holdings.get((scope, asset.code))
        if cached is None:
            cached = ensure_accounts(session, scope, asset, self._clock)
            self._holdings[(scope, asset.code)] = cached
        return cached

    def _reverse(self, session: Session, booking: BookingRow, why: str) -> None:
        reversal = ledger.reverse(
            session,
            booking.entry_id,
            f"{entry_key(booking.chain_key, booking.generation)}:reorg",
            actor=ACTOR,
            reason=why,
            clock=self._clock,
        )
        booking.reversal_entry_id = reversal.id
        booking.reversed_at = self._clock()

    def apply(self, session: Session, observation: Observation) -> Applied:
        """Reverse orphaned bookings, book new movements, settle spends, compare, move the cursor."""
        begin_serialised_write(session)
        scope = observation.scope
        reversed_count = 0
        if observation.orphaned_above is not None:
            orphaned = session.scalars(
                select(BookingRow)
                .where(
                    BookingRow.scope == scope,
                    BookingRow.reversal_entry_id.is_(None),
                    BookingRow.block_height > observation.orphaned_above,
                )
                .order_by(BookingRow.id)
            )
            for booking in orphaned:
                self._reverse(session, booking, f"Block {booking.block_hash} left the best chain.")
                reversed_count += 1
        unauthorised = self._check_spends(session, observation)
        booked, moved = self._book(session, observation, unauthorised)
        for tx in observation.failed_txs:
            proposal_id = _proposal_for(session, tx)
            if proposal_id is not None:
                _settle(session, proposal_id, failed=True, clock=self._clock)
        results = self._compare(session, observation)
        self._move_cursor(session, scope, observation.target)
        return Applied(booked, reversed_count + moved, results)

    def _check_spends(self, session: Session, observation: Observation) -> set[str]:
        """Alarm on every outflow nothing in the system explains; returns their transactions."""
        unauthorised: set[str] = set()
        for event in observation.spend_events:
            if event.evidence is not None and is_authorised(session, event.evidence):
                continue
            unauthorised.add(event.tx_ref)
            what = "SafeTx " + event.evidence if event.evidence else "no Safe execution"
            raise_alarm(
                session,
                AlarmKind.UNAUTHORISED_OUTFLOW,
                f"outflow:{event.tx_ref}:{event.evidence}",
                observation.scope,
                f"Transaction {event.tx_ref} in block {event.block.height} moved money out of "
                f"{observation.scope} ({what}), but no approved spend in the system names it: "
                "keys were used outside the system.",
                tx_ref=event.tx_ref,
                run_id=self._run_id,
                clock=self._clock,
            )
        return unauthorised

    def _book(
        self, session: Session, observation: Observation, unauthorised: set[str]
    ) -> tuple[int, int]:
        movements = observation.movements
        keys = [m.chain_key for m in movements]
        active: dict[str, BookingRow] = {}
        generations: dict[str, int] = {}
        for chunk in _chunks(keys):
            for row in session.scalars(select(BookingRow).where(BookingRow.chain_key.in_(chunk))):
                generations[row.chain_key] = max(generations.get(row.chain_key, 0), row.generation)
                if row.reversal_entry_id is None:
                    active[row.chain_key] = row
        moved = 0
        pending: list[tuple[Movement, int, EntryRequest]] = []
        proposals: dict[str, int | None] = {}
        for movement in movements:
            existing = active.get(movement.chain_key)
            if existing is not None and existing.block_hash == movement.block.hash:
                continue
            if existing is not None:  # the same transaction, now in another block
                self._reverse(
                    session, existing, f"Transaction moved to block {movement.block.hash}."
                )
                moved += 1
            if movement.kind is MovementKind.OUTFLOW:
                if movement.tx_ref not in proposals:
                    proposals[movement.tx_ref] = _proposal_for(session, movement.tx_ref)
                proposal_id = proposals[movement.tx_ref]
                if proposal_id is not None:
                    _settle(session, proposal_id, failed=False, clock=self._clock)
                    continue
            generation = generations.get(movement.chain_key, 0) + 1
            request = self._request(session, observation.scope, movement, generation, unauthorised)
            pending.append((movement, generation, request))
        for start in range(0, len(pending), BOOKING_BATCH):
            batch = pending[start : start + BOOKING_BATCH]
            records = ledger.record_entries(session, [r for _, _, r in batch], clock=self._clock)
            now = self._clock()
            session.execute(
                insert(BookingRow),
                [
                    {
                        "scope": observation.scope,
                        "chain_key": movement.chain_key,
                        "generation": generation,
                        "kind": movement.kind,
                        "asset": movement.asset.code,
                        "amount": movement.amount,
                        "tx_ref": movement.tx_ref,
                        "block_height": movement.block.height,
                        "block_hash": movement.block.hash,
                        "entry_id": record.id,
                        "booked_at": now,
                    }
                    for (movement, generation, _), record in zip(batch, records, strict=True)
                ],
            )
            last = batch[-1][0].block.height
            self._progress(
                f"{observation.scope}: booked {start + len(batch)} of {len(pending)} movements "
                f"(up to block {last} of {observation.target.height})"
            )
        return len(pending), moved

    def _request(
        self,
        session: Session,
        scope: str,
        movement: Movement,
        generation: int,
        unauthorised: set[str],
    ) -> EntryRequest:
        holdings = self._holdings_of(session, scope, movement.asset)
        code = movement.asset.code
        where = f"{movement.tx_ref} in block {movement.block.height}"
        if movement.kind is MovementKind.DEPOSIT:
            legs = (
                Leg.debit(holdings, movement.amount),
                Leg.credit(inflows_account(code), movement.amount),
            )
            description = f"Deposit to {scope}: {where}"
        else:
            explained = movement.tx_ref not in unauthorised
            other = approved_outflows_account(code) if explained else suspense_account(code)
            legs = (Leg.debit(other, movement.amount), Leg.credit(holdings, movement.amount))
            description = (
                f"{'Approved' if explained else 'UNEXPLAINED'} outflow from {scope}: {where}"
            )
        return EntryRequest(entry_key(movement.chain_key, generation), legs, description[:500])

    def _compare(self, session: Session, observation: Observation) -> tuple[ResultRow, ...]:
        results: list[ResultRow] = []
        for chain_balance in observation.balances:
            holdings = self._holdings_of(session, observation.scope, chain_balance.asset)
            ledger_balance = ledger.balance(session, holdings).posted
            difference = chain_balance.amount - ledger_balance
            row = ResultRow(
                run_id=self._run_id,
                scope=observation.scope,
                asset=chain_balance.asset.code,
                gate_asset=chain_balance.gate_asset,
                chain_balance=chain_balance.amount,
                ledger_balance=ledger_balance,
                difference=difference,
                height=observation.target.height,
                block_hash=observation.target.hash,
                checked_at=self._clock(),
                matched=difference == 0,
            )
            session.add(row)
            results.append(row)
            asset = chain_balance.asset.code
            if difference and not open_alarm_of(
                session, AlarmKind.BALANCE_MISMATCH, observation.scope, asset
            ):
                raise_alarm(
                    session,
                    AlarmKind.BALANCE_MISMATCH,
                    f"mismatch:{observation.scope}:{asset}:{self._run_id}",
                    observation.scope,
                    f"At block {observation.target.height} ({observation.target.hash}) the chain "
                    f"holds {chain_balance.amount} {asset} base units in {observation.scope}, the "
                    f"ledger {ledger_balance} (difference {difference}).",
                    asset=asset,
                    run_id=self._run_id,
                    clock=self._clock,
                )
        session.flush()
        return tuple(results)

    def _move_cursor(self, session: Session, scope: str, target: BlockRef) -> None:
        if target.height < 0:
            return
        cursor = session.scalar(select(CursorRow).where(CursorRow.scope == scope))
        if cursor is None:
            session.add(
                CursorRow(
                    scope=scope,
                    height=target.height,
                    block_hash=target.hash,
                    updated_at=self._clock(),
                )
            )
        else:
            cursor.height, cursor.block_hash, cursor.updated_at = (
                target.height,
                target.hash,
                self._clock(),
            )
        session.flush()
