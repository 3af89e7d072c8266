"""Each chain's relayer in the books: its float, its top-ups, the gas it pays, its balance watched.

The relayer (``custody.ethereum.relayer``) sends every reserve Safe's ``execTransaction`` and pays
its gas in the chain's native coin. Its coin is the treasury's operating money, so it has a
ledger account like a vault's holdings (``accounts.relayer_account``), and each run compares it
with the chain, as for a vault.

How its movements are found. A node keeps no index of an account's transactions, and a plain
transfer emits no event, so the reader reads every confirmed block since its cursor with its
transactions (``relayer_activity``) and keeps those sent by the relayer or paying it. What each
is booked as:

- a payment to the relayer: a **top-up**, debit the float, credit ``operations:relayer-funding``;
- a transaction the relayer sent to a reserve Safe of this chain whose receipt holds that Safe's
  ``ExecutionSuccess``/``ExecutionFailure``: its **gas** (``gasUsed * effectiveGasPrice``), debit
  ``fees:<asset>`` (the spends' own fees account), credit the float;
- anything else the relayer sent (a transfer, a call to another contract, ether sent along with
  an execution): **unexplained**, booked to ``operations:relayer-unexplained`` so the float still
  matches the chain, and a ``relayer_unexplained`` alarm opens that blocks spends until officers
  clear it, as for a vault's unexplained outflow: the relayer's key was used outside the system.

The first time a relayer is watched, its balance at the confirmed block is booked as an opening
top-up (it was funded before anyone watched), and reading starts after that block: history before
it is not scanned, so watching a long-lived account does not mean reading the chain from genesis.

Exactly once: every booking has a row unique per (chain, relayer, kind, transaction) and a ledger
entry whose idempotency key names the same; the rows, the entries, the comparison, the alarms and
the cursor are written in ONE transaction (serialised per relayer), so a rerun, a crash half-way
or two reconcilers at once book each transaction once. A booking row or entry removed behind the
reconciler's back is not silently booked again: the cursor is past it, so the float no longer
matches the chain and a ``balance_mismatch`` alarm opens.

The low-balance warning. Below ``relayer_min_balance`` a ``relayer_low`` alarm opens once; the
reconciler clears it itself when the chain shows the relayer refilled. It does not block spends
(``records.WARNING_KINDS``): blocking would not refill the relayer (a top-up is no spend of the
reserve), and the spends it would block are what the relayer is kept for.

Limitation: a reorganisation deeper than the chain's confirmations below the relayer's cursor is
not unwound; the run fails with ``ChainMovedError`` naming it, for an operator to look at.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from custody.blocks import BlockRef
from custody.clock import Clock, utc_now
from custody.ethereum.balances import ether_balance
from custody.ethereum.records import SafeVaultRow
from custody.ethereum.relayer import RelayerTx, relayer_activity
from custody.ethereum.rpc import EvmRPC
from treasury import audit, ledger
from treasury.audit import AuditKind
from treasury.chains import EvmChainSettings
from treasury.db import Base, UtcDateTime, begin_serialised_write
from treasury.ledger import AssetSpec, Leg
from treasury.ledger.amounts import Amount
from treasury.reconcile.accounts import (
    ACTOR,
    ensure_relayer_accounts,
    fees_account,
    relayer_funding_account,
    relayer_scope,
    relayer_unexplained_account,
)
from treasury.reconcile.alarms import open_alarm_of, raise_alarm
from treasury.reconcile.errors import ChainMovedError
from treasury.reconcile.ethereum import EthereumReader, native_asset
from treasury.reconcile.records import AlarmKind, AlarmRow, SignedAmount, _enum

log = logging.getLogger(__name__)

ADDRESS_CHARS = 42
HASH_CHARS = 66
OPENING_REF = "opening"
"""The ``tx_ref`` of a relayer's opening booking (its balance when first watched)."""
CLEARED_EVENT = "alarm_cleared"


class RelayerBookingKind(enum.StrEnum):
    """What one relayer booking recorded."""

    OPENING = "opening"
    TOP_UP = "top_up"
    GAS = "gas"
    UNEXPLAINED = "unexplained"


class RelayerCursorRow(Base):
    """How far a relayer's chain has been read, and its float against the chain there."""

    __tablename__ = "relayer_cursors"
    __table_args__ = (UniqueConstraint("chain_id", "relayer", name="uq_relayer_cursors_relayer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(Integer)
    relayer: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    height: Mapped[int] = mapped_column(Integer)
    block_hash: Mapped[str] = mapped_column(String(HASH_CHARS))
    chain_balance: Mapped[int] = mapped_column(Amount())
    ledger_balance: Mapped[int] = mapped_column(SignedAmount())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RelayerBookingRow(Base):
    """One booking of one relayer transaction (or of its opening balance), only ever inserted."""

    __tablename__ = "relayer_bookings"
    __table_args__ = (
        UniqueConstraint(
            "chain_id", "relayer", "kind", "tx_ref", name="uq_relayer_bookings_transaction"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(Integer)
    relayer: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    kind: Mapped[RelayerBookingKind] = mapped_column(
        _enum(RelayerBookingKind, "relayer_booking_kind")
    )
    tx_ref: Mapped[str] = mapped_column(String(HASH_CHARS))
    asset: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(Amount())
    block_height: Mapped[int] = mapped_column(Integer)
    block_hash: Mapped[str] = mapped_column(String(HASH_CHARS))
    entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The ledger entry (``None`` for an opening balance of zero, which moves nothing)."""
    booked_at: Mapped[datetime] = mapped_column(UtcDateTime())


RELAYER_TABLES = ("relayer_cursors", "relayer_bookings")
"""The tables migration 0023 creates."""


@dataclass(frozen=True)
class RelayerWatch:
    """One chain's relayer to watch: its chain's reader, its address, its threshold."""

    reader: EthereumReader
    relayer: str
    min_balance: int


def relayer_watches(chains: Sequence[EvmChainSettings]) -> list[RelayerWatch]:
    """A watch of every chain with a node and a configured relayer (the node's own account, the
    devnet fallback, is not watched: a devnet uses it for everything)."""
    return [
        RelayerWatch(
            EthereumReader(
                EvmRPC(chain.rpc_url),
                min_confirmations=chain.confirmations,
                native=native_asset(chain.native_asset, chain.name),
                expected_chain_id=chain.chain_id,
            ),
            chain.relayer,
            chain.relayer_min_balance,
        )
        for chain in chains
        if chain.rpc_url is not None and chain.relayer is not None
    ]


@dataclass(frozen=True)
class RelayerObservation:
    """What one read of a relayer found, up to one confirmed block."""

    chain_id: int
    relayer: str
    native: AssetSpec
    min_balance: int
    target: BlockRef
    opening: bool
    """First watch: the balance is booked as the opening top-up, no transactions are read."""
    txs: tuple[RelayerTx, ...]
    balance: int
    """The relayer's coin at ``target``, in base units."""

    @property
    def scope(self) -> str:
        return relayer_scope(self.chain_id, self.relayer)


@dataclass(frozen=True)
class RelayerOutcome:
    """What one run did for one relayer."""

    scope: str
    height: int
    booked: int
    chain_balance: int
    ledger_balance: int
    low: bool


def _start(session: Session, chain_id: int, relayer: str) -> BlockRef | None:
    """Where reading resumes: the cursor, else the opening booking's block, else nowhere yet."""
    cursor = session.scalar(
        select(RelayerCursorRow).where(
            RelayerCursorRow.chain_id == chain_id, RelayerCursorRow.relayer == relayer
        )
    )
    if cursor is not None:
        return BlockRef(cursor.height, cursor.block_hash)
    opening = session.scalar(
        select(RelayerBookingRow).where(
            RelayerBookingRow.chain_id == chain_id,
            RelayerBookingRow.relayer == relayer,
            RelayerBookingRow.kind == RelayerBookingKind.OPENING,
        )
    )
    return None if opening is None else BlockRef(opening.block_height, opening.block_hash)


def observe_relayer(watch: RelayerWatch, start: BlockRef | None) -> RelayerObservation:
    """Read the relayer's transactions after ``start`` up to the confirmed block, and its balance
    there; ``ChainMovedError`` if ``start`` or the target left the best chain meanwhile."""
    reader = watch.reader
    chain_id = reader.chain_id()
    chain = reader.node
    with reader.answering():
        height = chain.block_number() - reader.min_confirmations + 1
        if start is not None and chain.block_hash(start.height) != start.hash:
            raise ChainMovedError(
                f"The block {start.hash} at height {start.height}, where the relayer "
                f"{watch.relayer} of chain {chain_id} was last read, left the best chain: a "
                "reorganisation deeper than the chain's confirmations."
            )
        if start is not None and height <= start.height:
            target = start
            txs: tuple[RelayerTx, ...] = ()
        else:
            height = max(height, 0)
            target = BlockRef(height, str(chain.block_hash(height)))
            first = None if start is None else start.height + 1
            txs = (
                ()
                if first is None
                else tuple(relayer_activity(chain, watch.relayer, first, target.height))
            )
        balance = ether_balance(chain, watch.relayer, target)
        if chain.block_hash(target.height) != target.hash:
            raise ChainMovedError(f"Block {target.height} changed while the relayer was read.")
    return RelayerObservation(
        chain_id,
        watch.relayer,
        reader.native,
        watch.min_balance,
        target,
        start is None,
        txs,
        balance,
    )


def _lock(session: Session, scope: str) -> None:
    """Serialise writers of one relayer (SQLite: the write lock; PostgreSQL: an advisory lock)."""
    begin_serialised_write(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:scope))"), {"scope": scope})


@dataclass(frozen=True)
class _Booking:
    kind: RelayerBookingKind
    tx_ref: str
    amount: int
    block: BlockRef
    legs: tuple[Leg, ...]
    description: str


def _bookings(
    observation: RelayerObservation, float_code: str, safes: frozenset[str]
) -> list[_Booking]:
    """What to book from the observation (before looking at what was booked already)."""
    code = observation.native.code
    found: list[_Booking] = []
    if observation.opening:
        amount = observation.balance
        found.append(
            _Booking(
                RelayerBookingKind.OPENING,
                OPENING_REF,
                amount,
                observation.target,
                (Leg.debit(float_code, amount), Leg.credit(relayer_funding_account(code), amount)),
                f"Opening balance of relayer {observation.relayer} at block "
                f"{observation.target.height}",
            )
        )
        return found
    for tx in observation.txs:
        where = f"{tx.tx_hash} in block {tx.block.height}"
        if not tx.sent:
            found.append(
                _Booking(
                    RelayerBookingKind.TOP_UP,
                    tx.tx_hash,
                    tx.value_wei,
                    tx.block,
                    (
                        Leg.debit(float_code, tx.value_wei),
                        Leg.credit(relayer_funding_account(code), tx.value_wei),
                    ),
                    f"Top-up of relayer {observation.relayer} from {tx.sender}: {where}",
                )
            )
            continue
        sent_away = 0 if tx.to == tx.sender else tx.value_wei
        if tx.executed_safe is not None and tx.executed_safe in safes:
            gas, unexplained = tx.fee_wei, sent_away
        else:
            gas, unexplained = 0, tx.fee_wei + sent_away
        if gas:
            found.append(
                _Booking(
                    RelayerBookingKind.GAS,
                    tx.tx_hash,
                    gas,
                    tx.block,
                    (Leg.debit(fees_account(code), gas), Leg.credit(float_code, gas)),
                    f"Gas of Safe {tx.executed_safe}'s execution paid by relayer "
                    f"{observation.relayer}: {where}",
                )
            )
        if unexplained:
            found.append(
                _Booking(
                    RelayerBookingKind.UNEXPLAINED,
                    tx.tx_hash,
                    unexplained,
                    tx.block,
                    (
                        Leg.debit(relayer_unexplained_account(code), unexplained),
                        Leg.credit(float_code, unexplained),
                    ),
                    f"UNEXPLAINED spending of relayer {observation.relayer} (to "
                    f"{tx.to or 'a new contract'}): {where}",
                )
            )
    return found


def entry_key(chain_id: int, relayer: str, kind: RelayerBookingKind, tx_ref: str) -> str:
    """The ledger idempotency key of one relayer booking: by chain, kind and transaction hash
    (a transaction has one sender; a top-up between two relayers is two kinds), or by relayer for
    its opening balance."""
    ref = relayer.lower() if kind is RelayerBookingKind.OPENING else tx_ref
    return f"relayer:{chain_id}:{kind.value}:{ref}"


def apply_relayer(
    session: Session,
    observation: RelayerObservation,
    *,
    run_id: int | None = None,
    clock: Clock = utc_now,
) -> RelayerOutcome:
    """Book what the observation found, once; compare the float; open or clear the warnings;
    move the cursor. All in the caller's one transaction."""
    scope = observation.scope
    _lock(session, scope)
    chain_id, relayer = observation.chain_id, observation.relayer
    float_code = ensure_relayer_accounts(session, chain_id, relayer, observation.native, clock)
    safes = frozenset(
        session.scalars(select(SafeVaultRow.address).where(SafeVaultRow.chain_id == chain_id))
    )
    booked = 0
    for booking in _bookings(observation, float_code, safes):
        exists = session.scalar(
            select(RelayerBookingRow.id).where(
                RelayerBookingRow.chain_id == chain_id,
                RelayerBookingRow.relayer == relayer,
                RelayerBookingRow.kind == booking.kind,
                RelayerBookingRow.tx_ref == booking.tx_ref,
            )
        )
        if exists is not None:
            continue
        entry_id = None
        if booking.amount:
            entry = ledger.record_entry(
                session,
                entry_key(chain_id, relayer, booking.kind, booking.tx_ref),
                booking.legs,
                description=booking.description[:500],
                clock=clock,
            )
            entry_id = entry.id
        session.add(
            RelayerBookingRow(
                chain_id=chain_id,
                relayer=relayer,
                kind=booking.kind,
                tx_ref=booking.tx_ref,
                asset=observation.native.code,
                amount=booking.amount,
                block_height=booking.block.height,
                block_hash=booking.block.hash,
                entry_id=entry_id,
                booked_at=clock(),
            )
        )
        session.flush()
        booked += 1
        if booking.kind is RelayerBookingKind.UNEXPLAINED:
            raise_alarm(
                session,
                AlarmKind.RELAYER_UNEXPLAINED,
                f"relayer-unexplained:{chain_id}:{booking.tx_ref}",
                scope,
                f"The relayer {relayer} of chain {chain_id} spent {booking.amount} base units of "
                f"{observation.native.code} in {booking.tx_ref} (block {booking.block.height}), "
                "which executed no reserve Safe: its key was used outside the treasury.",
                asset=observation.native.code,
                tx_ref=booking.tx_ref,
                run_id=run_id,
                clock=clock,
            )
    held = ledger.balance(session, float_code).posted
    _compare(session, observation, held, run_id, clock)
    low = _watch_low(session, observation, run_id, clock)
    _move_cursor(session, observation, held, clock)
    if booked:
        log.info(
            "relayer %s: %d booked up to block %d", scope, booked, observation.target.height,
            extra={"run_id": run_id, "scope": scope},
        )  # fmt: skip
    return RelayerOutcome(scope, observation.target.height, booked, observation.balance, held, low)


def _compare(
    session: Session,
    observation: RelayerObservation,
    held: int,
    run_id: int | None,
    clock: Clock,
) -> None:
    """Open a ``balance_mismatch`` alarm when the float differs from the chain (once while open)."""
    difference = observation.balance - held
    code = observation.native.code
    if not difference or open_alarm_of(
        session, AlarmKind.BALANCE_MISMATCH, observation.scope, code
    ):
        return
    raise_alarm(
        session,
        AlarmKind.BALANCE_MISMATCH,
        f"mismatch:{observation.scope}:{code}:{observation.target.height}:{run_id}",
        observation.scope,
        f"At block {observation.target.height} ({observation.target.hash}) the relayer "
        f"{observation.relayer} holds {observation.balance} {code} base units on chain "
        f"{observation.chain_id}, the ledger's float {held} (difference {difference}).",
        asset=code,
        run_id=run_id,
        clock=clock,
    )


def _watch_low(
    session: Session, observation: RelayerObservation, run_id: int | None, clock: Clock
) -> bool:
    """Open the ``relayer_low`` warning once while the coin is below its threshold; clear it when
    the chain shows it refilled. Returns whether the relayer is low."""
    scope, code = observation.scope, observation.native.code
    low = observation.balance < observation.min_balance
    row = session.scalar(
        select(AlarmRow)
        .where(
            AlarmRow.kind == AlarmKind.RELAYER_LOW,
            AlarmRow.scope == scope,
            AlarmRow.cleared_at.is_(None),
        )
        .order_by(AlarmRow.id)
        .limit(1)
    )
    if low and row is None:
        raise_alarm(
            session,
            AlarmKind.RELAYER_LOW,
            f"relayer-low:{scope}:{observation.target.height}:{run_id}",
            scope,
            f"The relayer {observation.relayer} of chain {observation.chain_id} holds "
            f"{observation.balance} {code} base units at block {observation.target.height}, "
            f"below its threshold of {observation.min_balance}: top it up, or Safe executions "
            "will fail for want of gas.",
            asset=code,
            run_id=run_id,
            clock=clock,
        )
    elif not low and row is not None:
        row.cleared_at = clock()
        session.flush()
        audit.append(
            session,
            kind=AuditKind.RECONCILIATION,
            actor=ACTOR,
            refs={"alarm_id": row.id, "scope": scope},
            payload={
                "event": CLEARED_EVENT,
                "kind": AlarmKind.RELAYER_LOW.value,
                "balance": str(observation.balance),
                "height": observation.target.height,
            },
            clock=clock,
        )
        log.info(
            "relayer_low alarm %d of %s cleared: %d base units at block %d",
            row.id, scope, observation.balance, observation.target.height,
            extra={"alarm_id": row.id, "scope": scope, "run_id": run_id},
        )  # fmt: skip
    return low


def _move_cursor(
    session: Session, observation: RelayerObservation, held: int, clock: Clock
) -> None:
    cursor = session.scalar(
        select(RelayerCursorRow).where(
            RelayerCursorRow.chain_id == observation.chain_id,
            RelayerCursorRow.relayer == observation.relayer,
        )
    )
    if cursor is None:
        cursor = RelayerCursorRow(chain_id=observation.chain_id, relayer=observation.relayer)
        session.add(cursor)
    cursor.height = observation.target.height
    cursor.block_hash = observation.target.hash
    cursor.chain_balance = observation.balance
    cursor.ledger_balance = held
    cursor.updated_at = clock()
    session.flush()


def watch_relayer(
    sessions: sessionmaker[Session],
    watch: RelayerWatch,
    *,
    run_id: int | None = None,
    clock: Clock = utc_now,
) -> RelayerOutcome:
    """Read one relayer with no database transaction open, then book it in one transaction."""
    with sessions() as session:
        start = _start(session, watch.reader.chain_id(), watch.relayer)
    observation = observe_relayer(watch, start)
    with sessions.begin() as session:
        return apply_relayer(session, observation, run_id=run_id, clock=clock)


@dataclass(frozen=True)
class RelayerFloat:
    """A relayer's float as last reconciled (for the CLI and the demo)."""

    chain_id: int
    relayer: str
    height: int
    chain_balance: int
    ledger_balance: int
    gas_booked: int
    """Base units of gas booked as fees so far."""


def relayer_floats(session: Session) -> list[RelayerFloat]:
    """Every watched relayer's last comparison and the gas it has booked as fees."""
    floats = []
    for cursor in session.scalars(select(RelayerCursorRow).order_by(RelayerCursorRow.id)):
        gas = sum(
            session.scalars(
                select(RelayerBookingRow.amount).where(
                    RelayerBookingRow.chain_id == cursor.chain_id,
                    RelayerBookingRow.relayer == cursor.relayer,
                    RelayerBookingRow.kind == RelayerBookingKind.GAS,
                )
            )
        )
        floats.append(
            RelayerFloat(
                cursor.chain_id,
                cursor.relayer,
                cursor.height,
                cursor.chain_balance,
                cursor.ledger_balance,
                gas,
            )
        )
    return floats


__all__ = [
    "RELAYER_TABLES",
    "RelayerBookingKind",
    "RelayerBookingRow",
    "RelayerCursorRow",
    "RelayerFloat",
    "RelayerObservation",
    "RelayerOutcome",
    "RelayerWatch",
    "apply_relayer",
    "entry_key",
    "observe_relayer",
    "relayer_floats",
    "relayer_watches",
]
