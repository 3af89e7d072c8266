"""The ledger's tables: assets, accounts partitioned by asset, journal entries and their postings.

Every row is immutable once written (database triggers refuse UPDATE, DELETE and TRUNCATE; the
mapper refuses ORM changes first with ``ImmutableRecordError``). State changes are new rows: a
pending entry is resolved by a later ``post_pending`` or ``void_pending`` entry pointing at it,
and a mistake is corrected by a reversing entry pointing at it, each at most once (unique keys).

An entry declares ``posting_count``; its postings carry positions 1..n inserted in order, so the
database can tell a complete entry from a partial one (see migration 0004 for the checks).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from treasury.db import Base, UtcDateTime
from treasury.exceptions import ImmutableRecordError
from treasury.ledger.amounts import Amount

CODE_MAX_CHARS = 100
NAME_MAX_CHARS = 200
KEY_MAX_CHARS = 128
DESCRIPTION_MAX_CHARS = 500
MAX_DECIMALS = 77

_ID = BigInteger().with_variant(Integer, "sqlite")
"""64-bit ids on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit (the rowid)."""


class Side(enum.StrEnum):
    """The side of a posting."""

    DEBIT = "debit"
    CREDIT = "credit"

    @property
    def opposite(self) -> Side:
        """The other side (a reversing entry swaps every leg's side)."""
        return Side.CREDIT if self is Side.DEBIT else Side.DEBIT


class AccountType(enum.StrEnum):
    """The five classic account types; the type fixes the side on which a balance grows."""

    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    INCOME = "income"
    EXPENSE = "expense"

    @property
    def normal_side(self) -> Side:
        """Debit for assets and expenses, credit for liabilities, equity and income."""
        if self in (AccountType.ASSET, AccountType.EXPENSE):
            return Side.DEBIT
        return Side.CREDIT


class EntryKind(enum.StrEnum):
    """What an entry does; TigerBeetle's two-phase transfers as immutable records."""

    POSTED = "posted"
    """Posted directly (a reversing entry is one too, with ``reverses_id`` set)."""
    PENDING = "pending"
    """Reserved but not yet posted: counts in the pending balances until resolved."""
    POST_PENDING = "post_pending"
    """Posts a pending entry: carries the same legs, now counted as posted."""
    VOID_PENDING = "void_pending"
    """Voids a pending entry: no legs; the reservation is released."""


def _enum(kind: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class Asset(Base):
    """A currency the reserve holds, with the scale of its base unit."""

    __tablename__ = "ledger_assets"
    __table_args__ = (CheckConstraint(f"decimals BETWEEN 0 AND {MAX_DECIMALS}", name="decimals"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(CODE_MAX_CHARS), unique=True)
    chain: Mapped[str] = mapped_column(String(64))
    unit_name: Mapped[str] = mapped_column(String(32))
    decimals: Mapped[int] = mapped_column(SmallInteger)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Account(Base):
    """An account in exactly one asset; ``no_overdraft`` keeps its available balance >= 0."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (UniqueConstraint("id", "asset_id", name="uq_ledger_accounts_id_asset_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(CODE_MAX_CHARS), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_CHARS))
    type: Mapped[AccountType] = mapped_column(_enum(AccountType, "account_type"))
    asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"), index=True)
    no_overdraft: Mapped[bool] = mapped_column(Boolean)
    external_ref: Mapped[str | None] = mapped_column(String(NAME_MAX_CHARS))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())

    asset: Mapped[Asset] = relationship(lazy="joined")


class JournalEntry(Base):
    """One journal entry: balanced per asset, identified by its client's idempotency key."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(
            "(pending_id IS NULL) = (kind NOT IN ('post_pending', 'void_pending'))",
            name="pending_id_iff_resolution",
        ),
        CheckConstraint(
            "(posting_count IS NULL) = (kind = 'void_pending')", name="posting_count_iff_legs"
        ),
        CheckConstraint("posting_count IS NULL OR posting_count >= 2", name="posting_count"),
        CheckConstraint("reverses_id IS NULL OR kind = 'posted'", name="reversal_is_posted"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(KEY_MAX_CHARS), unique=True)
    kind: Mapped[EntryKind] = mapped_column(_enum(EntryKind, "entry_kind"))
    description: Mapped[str] = mapped_column(String(DESCRIPTION_MAX_CHARS))
    payload_hash: Mapped[str] = mapped_column(String(64))
    posting_count: Mapped[int | None] = mapped_column(Integer)
    pending_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), unique=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), unique=True)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class Posting(Base):
    """One leg of an entry: a positive amount on one side of one account."""

    __tablename__ = "ledger_postings"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "asset_id"], ["ledger_accounts.id", "ledger_accounts.asset_id"]
        ),
        CheckConstraint("position >= 1", name="position"),
        Index("ix_ledger_postings_account_id_entry_id", "account_id", "entry_id"),
    )

    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(Integer)
    asset_id: Mapped[int] = mapped_column(Integer)
    side: Mapped[Side] = mapped_column(_enum(Side, "side"))
    amount: Mapped[int] = mapped_column(Amount())


LEDGER_TABLES = ("ledger_assets", "ledger_accounts", "ledger_entries", "ledger_postings")


def _refuse_orm_change(_mapper: Any, _connection: Any, target: Any) -> None:
    raise ImmutableRecordError(
        f"{type(target).__name__} records are immutable; correct a journal entry with a "
        "reversing entry instead."
    )


for _model in (Asset, Account, JournalEntry, Posting):
    event.listen(_model, "before_update", _refuse_orm_change)
    event.listen(_model, "before_delete", _refuse_orm_change)
