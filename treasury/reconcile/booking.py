"""Turn one observation into ledger entries, in the caller's single database transaction.

Exactly once, across reorgs: a chain movement (``btc:<txid>:<vout>``...) has at most one active
booking. Its first booking uses the chain key as the ledger's idempotency key; a reorg reverses
it (a reversing entry, key ``<key>:reorg``); if the movement reappears it is booked again as
generation 2 (ledger key ``<chain key>#2``), and so on. Replaying a run books nothing new, and
every booking and reversal is a balanced entry, so the trial balance stays zero.

A spend proposal's outflow is booked the same way, except that each generation's entry is the
proposal's own posting (``settlement.py``): a reorg reverses it and puts the proposal back to
``broadcast``; mined again it is posted once more. Spends the node dropped are noted and, past
the timeout, failed (``drops.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from custody.clock import Clock
from treasury import ledger
from treasury.db import begin_serialised_write
from treasury.ledger import AssetSpec, EntryRequest, Leg
from treasury.proposals import ProposalState, SpendProposalRow
from treasury.proposals.rotations import Rotation, retired_rotation, sweep_arrivals
from treasury.reconcile import drops, settlement
from treasury.reconcile.accounts import (
    ACTOR,
    approved_outflows_account,
    ensure_accounts,
    inflows_account,
    suspense_account,
)
from treasury.reconcile.alarms import open_alarm_of, raise_alarm
from treasury.reconcile.authorisation import (
    Authoriser,
    BreakGlassLookup,
    Judgement,
    Verdict,
    stored_break_glass,
)
from treasury.reconcile.observation import (
    BlockRef,
    BookedState,
    Movement,
    Observation,
    Progress,
    SpendEvent,
)
from treasury.reconcile.records import (
    AlarmKind,
    AlarmRow,
    BookingRow,
    CursorRow,
    MovementKind,
    ResultRow,
)

BOOKINGS = cast(Table, BookingRow.__table__)
"""The bookings table, for Core inserts."""
LOOKUP_CHUNK = 500
"""Keys per ``IN (...)`` query."""
BOOKING_BATCH = 1000
"""Entries per ledger batch (and per progress line)."""


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


def booked_state(
    session: Session,
    scope: str,
    chain: str,
    *,
    now: datetime | None = None,
    drop_timeout: timedelta | None = None,
) -> BookedState:
    """The vault's cursor, the blocks of its active bookings, and its chain's in-flight spends.

    With ``now`` and ``drop_timeout``, also the in-flight spends dropped for that long (``due``).
    """
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
    due = (
        ()
        if now is None or drop_timeout is None
        else drops.due(session, in_flight, now, drop_timeout)
    )
    return BookedState(
        None if cursor is None else BlockRef(cursor.height, cursor.block_hash),
        tuple(BlockRef(height, block_hash) for height, block_hash in blocks),
        in_flight,
        due,
    )


class Booker:
    """Books observations of one run (caches accounts across vaults)."""

    def __init__(
        self,
        run_id: int,
        clock: Clock,
        progress: Progress,
        *,
        break_glass: BreakGlassLookup = stored_break_glass,
        drop_timeout: timedelta = timedelta(seconds=drops.DEFAULT_DROP_TIMEOUT_S),
    ) -> None:
        self._run_id = run_id
        self._drop_timeout = drop_timeout
        self._clock = clock
        self._progress = progress
        self._break_glass = break_glass
        self._holdings: dict[tuple[str, str], str] = {}

    def _holdings_of(self, session: Session, scope: str, asset: AssetSpec) -> str:
        cached = self._holdings.get((scope, asset.code))
        if cached is None:
            cached = ensure_accounts(session, scope, asset, self._clock)
            self._holdings[(scope, asset.code)] = cached
        return cached

    def _reverse(self, session: Session, booking: BookingRow, why: str) -> None:
        """Reverse a booking's entry (key: the entry's own key plus ``:reorg``), once.

        A deposit's entry key is ``entry_key(chain key, generation)``; a spend's is its posting
        key (``settlement.post_key``), and its proposal goes back to ``broadcast``.
        """
        entry = ledger.get_entry(session, booking.entry_id)
        reversal = ledger.reverse(
            session, entry.id, f"{entry.key}:reorg", actor=ACTOR, reason=why, clock=self._clock
        )
        booking.reversal_entry_id = reversal.id
        booking.reversed_at = self._clock()
        if booking.kind is MovementKind.OUTFLOW:
            proposal_id = settlement.proposal_for(session, booking.tx_ref)
            if proposal_id is not None and entry.key.startswith(
                settlement.post_key(proposal_id, 1)
            ):
                settlement.spend_reorged(
                    session, proposal_id, booking.tx_ref, reversal.id, why, self._clock
                )

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
            proposal_id = settlement.proposal_for(session, tx)
            if proposal_id is not None:
                settlement.void_spend(session, proposal_id, self._clock)
        drops.note(
            session,
            observation.dropped_txs,
            observation.live_txs,
            observation.rebroadcast_txs,
            self._clock,
        )
        drops.release(session, observation.released_txs, self._drop_timeout, self._clock)
        results = self._compare(session, observation)
        self._move_cursor(session, scope, observation.target)
        return Applied(booked, reversed_count + moved, results)

    def _check_spends(self, session: Session, observation: Observation) -> set[str]:
        """Alarm on every outflow the officers' verified statements do not authorise.

        Returns those transactions: they are booked against suspense and settle no proposal,
        whatever a proposal row says (``authorisation`` explains why no row is trusted).
        """
        authoriser = Authoriser(session, break_glass=self._break_glass)
        unexplained: set[str] = set()
        for event in observation.spend_events:
            judgement = authoriser.judge(observation.scope, observation.chain, event)
            if judgement.authorised:
                continue
            unexplained.add(event.tx_ref)
            if judgement.verdict is Verdict.BREAK_GLASS:
                self._break_glass_alarm(session, observation, event, judgement)
                continue
            what = "SafeTx " + event.evidence if event.evidence else "no Safe execution"
            raise_alarm(
                session,
                AlarmKind.UNAUTHORISED_OUTFLOW,
                f"outflow:{event.tx_ref}:{event.evidence}",
                observation.scope,
                f"Transaction {event.tx_ref} in block {event.block.height} moved money out of "
                f"{observation.scope} ({what}), but no verified quorum of the officers' signed "
                f"statements authorises it: keys were used outside the system. Why: "
                f"{judgement.explanation}.",
                tx_ref=event.tx_ref,
                run_id=self._run_id,
                clock=self._clock,
            )
        return unexplained

    def _break_glass_alarm(
        self, session: Session, observation: Observation, event: SpendEvent, judgement: Judgement
    ) -> None:
        """Keep a break-glass alarm open for the outflow: one already open for it is enough."""
        refs = [event.tx_ref] + ([event.evidence] if event.evidence else [])
        already = session.scalar(
            select(AlarmRow.id)
            .where(
                AlarmRow.kind == AlarmKind.BREAK_GLASS,
                AlarmRow.cleared_at.is_(None),
                func.lower(AlarmRow.tx_ref).in_([r.lower() for r in refs]),
            )
            .limit(1)
        )
        if already is not None:
            return
        signers = ", ".join(
            f"{s.institution} ({s.reason!r}, {s.signed_at.isoformat()})"
            for s in judgement.break_glass
        )
        raise_alarm(
            session,
            AlarmKind.BREAK_GLASS,
            f"break-glass:{event.tx_ref}:{event.evidence}",
            observation.scope,
            f"Transaction {event.tx_ref} in block {event.block.height} moved money out of "
            f"{observation.scope} under break-glass, signed by {signers}, without a verified "
            f"quorum of the officers' statements ({judgement.explanation}).",
            tx_ref=event.tx_ref,
            run_id=self._run_id,
            clock=self._clock,
        )

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
        sweeps = sweep_arrivals(session, observation.scope)  # per scope, not per movement
        retired = retired_rotation(session, observation.scope)
        pending: list[tuple[Movement, int, EntryRequest]] = []
        settled: list[tuple[Movement, int, int]] = []
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
            settles = movement.kind is MovementKind.OUTFLOW or (
                movement.tx_ref.lower() in sweeps
            )  # a rotation's sweep arrives in the new vault: its one posting covers both ends
            if settles and movement.tx_ref not in unauthorised:
                if movement.tx_ref not in proposals:
                    proposals[movement.tx_ref] = settlement.proposal_for(session, movement.tx_ref)
                proposal_id = proposals[movement.tx_ref]
                if proposal_id is not None:
                    generation = generations.get(movement.chain_key, 0) + 1
                    entry_id = settlement.post_spend(
                        session, proposal_id, generation, movement.block, self._clock
                    )
                    if entry_id is not None:
                        settled.append((movement, generation, entry_id))
                        continue
            generation = generations.get(movement.chain_key, 0) + 1
            request = self._request(
                session, observation.scope, movement, generation, unauthorised, retired
            )
            pending.append((movement, generation, request))
        if settled:
            self._insert_bookings(observation.scope, session, settled)
        for start in range(0, len(pending), BOOKING_BATCH):
            batch = pending[start : start + BOOKING_BATCH]
            recorded = ledger.record_batch(session, [r for _, _, r in batch], clock=self._clock)
            self._insert_bookings(
                observation.scope, session, [(m, g, recorded.ids[r.key]) for m, g, r in batch]
            )
            last = batch[-1][0].block.height
            self._progress(
                f"{observation.scope}: booked {start + len(batch)} of {len(pending)} movements "
                f"(up to block {last} of {observation.target.height})"
            )
        return len(pending) + len(settled), moved

    def _insert_bookings(
        self, scope: str, session: Session, booked: Sequence[tuple[Movement, int, int]]
    ) -> None:
        """One booking row per (movement, generation, entry id).

        Inserted as one Core ``executemany`` on the session's connection: the ORM's bulk insert
        of the same rows costs several times more, and nothing here needs the rows as objects.
        """
        now = self._clock()
        session.connection().execute(
            insert(BOOKINGS),
            [
                {
                    "scope": scope,
                    "chain_key": movement.chain_key,
                    "generation": generation,
                    "kind": movement.kind,
                    "asset": movement.asset.code,
                    "amount": movement.amount,
                    "tx_ref": movement.tx_ref,
                    "block_height": movement.block.height,
                    "block_hash": movement.block.hash,
                    "entry_id": entry_id,
                    "booked_at": now,
                }
                for movement, generation, entry_id in booked
            ],
        )

    def _request(
        self,
        session: Session,
        scope: str,
        movement: Movement,
        generation: int,
        unauthorised: set[str],
        retired: Rotation | None,
    ) -> EntryRequest:
        holdings = self._holdings_of(session, scope, movement.asset)
        code = movement.asset.code
        where = f"{movement.tx_ref} in block {movement.block.height}"
        if movement.kind is MovementKind.DEPOSIT:
            if retired is not None:  # the scope's vault was retired by a rotation
                raise_alarm(
                    session,
                    AlarmKind.RETIRED_VAULT_DEPOSIT,
                    f"retired-deposit:{movement.chain_key}",
                    scope,
                    f"{movement.amount} base units of {code} arrived at {scope} ({where}), but "
                    f"vault {retired.old_vault!r} was retired by rotation {retired.id} (swept to "
                    f"{retired.new_vault!r}): its keys include a replaced, perhaps compromised, "
                    "one. Sweep the coin to the new vault.",
                    tx_ref=movement.tx_ref,
                    run_id=self._run_id,
                    clock=self._clock,
                )
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
