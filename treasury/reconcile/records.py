"""The reconciler's tables: cursors, bookings, runs, results, alarms and their acknowledgements.

Ledger entries are referred to by id without foreign keys, so this migration (0007) only needs
the baseline; the ledger's own tables stay immutable while a booking row records, once, that its
entry was reversed.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from treasury.db import Base, UtcDateTime
from treasury.ledger.amounts import AMOUNT_DIGITS, Amount

SCOPE_MAX_CHARS = 120
"""A vault's scope: ``btc:<vault name>`` or ``eth:<chain id>:<Safe address>``."""
CHAIN_KEY_MAX_CHARS = 100
"""A movement's chain identity: ``btc:<txid>:<vout>``, ``eth:<tx hash>:<log index>``."""
HASH_MAX_CHARS = 66
ASSET_MAX_CHARS = 100
DETAIL_MAX_CHARS = 2000


class SignedAmount(TypeDecorator[int]):
    """A signed int of up to 78 digits (a difference of balances), stored as decimal text."""

    impl = String(AMOUNT_DIGITS + 2)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"A signed amount must be an int, not {type(value).__name__}.")
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


def _enum(kind: type[enum.StrEnum], name: str) -> SqlEnum:
    return SqlEnum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


class MovementKind(enum.StrEnum):
    """What a booking recorded: money into the vault, or out of it."""

    DEPOSIT = "deposit"
    OUTFLOW = "outflow"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AlarmKind(enum.StrEnum):
    """Why the books cannot be trusted until officers have looked."""

    UNAUTHORISED_OUTFLOW = "unauthorised_outflow"
    """Money left a vault in a transaction no approved spend or Safe record explains."""
    BALANCE_MISMATCH = "balance_mismatch"
    NODE_UNREACHABLE = "node_unreachable"
    STALE_CURSOR = "stale_cursor"
    """No successful run within the configured age."""
    BREAK_GLASS = "break_glass"
    """An institution's share holders signed without the officers' statements (emergency path)."""
    RETIRED_VAULT_DEPOSIT = "retired_vault_deposit"
    """A deposit reached a vault retired by a rotation (its keys include a replaced one)."""
    RELAYER_UNEXPLAINED = "relayer_unexplained"
    """The relayer sent a transaction that is no execution of a reserve Safe (its key was used
    outside the treasury); its cost is booked to the relayer's unexplained outflows."""
    RELAYER_LOW = "relayer_low"
    """A warning, not a block: the relayer's coin is below its threshold; top it up. Cleared by
    the reconciler itself once the chain shows it refilled (``reconcile/relayers.py``)."""

    @property
    def is_warning(self) -> bool:
        """Whether this kind is a warning (``WARNING_KINDS``): it blocks no spend, and the
        console shows it as a warning rather than as a block."""
        return self in WARNING_KINDS


WARNING_KINDS = frozenset({AlarmKind.RELAYER_LOW})
"""Alarm kinds that ask for an action outside the spend workflow and do not say the books are
wrong: the spend gate ignores them (``gate.py``), and the reconciler clears them itself."""


class CursorRow(Base):
    """How far a vault's chain has been booked: a block by hash, with its height."""

    __tablename__ = "reconcile_cursors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(SCOPE_MAX_CHARS), unique=True)
    height: Mapped[int] = mapped_column(Integer)
    block_hash: Mapped[str] = mapped_column(String(HASH_MAX_CHARS))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BookingRow(Base):
    """One booking of one chain movement; ``generation`` counts re-bookings after reorgs.

    At most one booking of a chain key is active (not reversed) at a time; a reorg reverses it
    (``reversal_entry_id``) and a reappearance books generation + 1 under a new ledger key.
    """

    __tablename__ = "reconcile_bookings"
    __table_args__ = (
        UniqueConstraint("chain_key", "generation", name="uq_reconcile_bookings_key_generation"),
        Index("ix_reconcile_bookings_scope_height", "scope", "block_height"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(SCOPE_MAX_CHARS))
    chain_key: Mapped[str] = mapped_column(String(CHAIN_KEY_MAX_CHARS))
    generation: Mapped[int] = mapped_column(Integer)
    kind: Mapped[MovementKind] = mapped_column(_enum(MovementKind, "movement_kind"))
    asset: Mapped[str] = mapped_column(String(ASSET_MAX_CHARS))
    amount: Mapped[int] = mapped_column(Amount())
    tx_ref: Mapped[str] = mapped_column(String(HASH_MAX_CHARS))
    block_height: Mapped[int] = mapped_column(Integer)
    block_hash: Mapped[str] = mapped_column(String(HASH_MAX_CHARS))
    entry_id: Mapped[int] = mapped_column(Integer)
    booked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reversal_entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reversed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class RunRow(Base):
    """One reconciliation run: who ran it (pid, host), when, and how it ended."""

    __tablename__ = "reconcile_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(200))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"))
    booked: Mapped[int] = mapped_column(Integer, default=0)
    reversed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ResultRow(Base):
    """One vault and asset compared at one confirmed block: chain, ledger and their difference."""

    __tablename__ = "reconcile_results"
    __table_args__ = (Index("ix_reconcile_results_scope_asset", "scope", "asset", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("reconcile_runs.id"), index=True)
    scope: Mapped[str] = mapped_column(String(SCOPE_MAX_CHARS))
    asset: Mapped[str] = mapped_column(String(ASSET_MAX_CHARS))
    gate_asset: Mapped[str] = mapped_column(String(ASSET_MAX_CHARS))
    """The asset's name in spend proposals (``BTC``, ``ETH``, a token symbol)."""
    chain_balance: Mapped[int] = mapped_column(Amount())
    ledger_balance: Mapped[int] = mapped_column(SignedAmount())
    difference: Mapped[int] = mapped_column(SignedAmount())
    """Chain minus ledger, in base units."""
    height: Mapped[int] = mapped_column(Integer)
    block_hash: Mapped[str] = mapped_column(String(HASH_MAX_CHARS))
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    matched: Mapped[bool] = mapped_column(Boolean)


class AlarmRow(Base):
    """An alarm; open until acknowledged by the required officers (``cleared_at`` set)."""

    __tablename__ = "reconcile_alarms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[AlarmKind] = mapped_column(_enum(AlarmKind, "alarm_kind"))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    """One alarm per cause: a txid for an outflow; per scope and opening for the others."""
    scope: Mapped[str] = mapped_column(String(SCOPE_MAX_CHARS))
    asset: Mapped[str | None] = mapped_column(String(ASSET_MAX_CHARS), nullable=True)
    tx_ref: Mapped[str | None] = mapped_column(String(HASH_MAX_CHARS), nullable=True)
    detail: Mapped[str] = mapped_column(String(DETAIL_MAX_CHARS))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("reconcile_runs.id"), nullable=True)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AcknowledgementRow(Base):
    """Who acknowledged an alarm, in which role, when and why."""

    __tablename__ = "reconcile_alarm_acks"
    __table_args__ = (
        UniqueConstraint("alarm_id", "officer_id", name="uq_reconcile_alarm_acks_officer"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("reconcile_alarms.id"), index=True)
    officer_id: Mapped[int] = mapped_column(Integer)
    officer_name: Mapped[str] = mapped_column(String(200))
    institution: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(DETAIL_MAX_CHARS))
    acknowledged_at: Mapped[datetime] = mapped_column(UtcDateTime())


class TrackedTokenRow(Base):
    """An ERC-20 the reconciler watches in every Safe vault of its chain."""

    __tablename__ = "reconcile_tracked_tokens"
    __table_args__ = (
        UniqueConstraint("chain_id", "address", name="uq_reconcile_tracked_tokens_address"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(42))
    symbol: Mapped[str] = mapped_column(String(16))
    decimals: Mapped[int] = mapped_column(Integer)


SCHEDULER_JOBS_TABLE = "reconcile_scheduler_jobs"

scheduler_jobs = Table(
    SCHEDULER_JOBS_TABLE,
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),  # APScheduler's epoch seconds, not money
    Column("job_state", LargeBinary, nullable=False),
)
"""APScheduler's job table, exactly as its ``SQLAlchemyJobStore`` declares it. Migration 0007
creates it, so that two schedulers starting at once do not race to create it (PostgreSQL
refuses the loser with a duplicate type name)."""

RECONCILE_TABLES = (
    "reconcile_cursors",
    "reconcile_bookings",
    "reconcile_runs",
    "reconcile_results",
    "reconcile_alarms",
    "reconcile_alarm_acks",
    "reconcile_tracked_tokens",
    SCHEDULER_JOBS_TABLE,
)
"""The tables migration 0007 creates."""
