"""Balances computed from the immutable postings, now or as of any entry id or time.

Posted amounts are the legs of ``posted`` and ``post_pending`` entries; pending amounts are the
legs of ``pending`` entries not yet resolved (posted or voided) at the cut-off. A posted pending
entry therefore moves from the pending columns to the posted ones without any row changing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import SQLColumnExpression, and_, exists, select, true
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from treasury.exceptions import InvalidEntryError, UnknownAccountError
from treasury.ledger.amounts import combine_sums, sum_columns
from treasury.ledger.models import Account, Asset, EntryKind, JournalEntry, Posting, Side


@dataclass(frozen=True)
class Cutoff:
    """Count only entries with ``id <= entry_id`` and/or ``recorded_at <= time`` (None: all)."""

    entry_id: int | None = None
    time: datetime | None = None

    def __post_init__(self) -> None:
        if self.entry_id is not None and (
            isinstance(self.entry_id, bool) or not isinstance(self.entry_id, int)
        ):
            raise InvalidEntryError(f"The as-of entry id must be an int, not {self.entry_id!r}.")
        if self.time is not None and self.time.tzinfo is None:
            raise InvalidEntryError("The as-of time must be timezone-aware (UTC).")

    def applied_to(self, entry: Any) -> ColumnElement[bool]:
        """The SQL condition that ``entry`` (the entries table or an alias) is within the cut-off."""
        conditions: list[ColumnElement[bool]] = []
        if self.entry_id is not None:
            conditions.append(entry.id <= self.entry_id)
        if self.time is not None:
            conditions.append(entry.recorded_at <= self.time)
        return and_(true(), *conditions)


NOW = Cutoff()


@dataclass(frozen=True)
class Totals:
    """Debit and credit totals, posted and pending, in base units."""

    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0


def available(totals: Totals, normal_side: Side) -> int:
    """Posted balance on ``normal_side`` minus pending legs against it (TigerBeetle's rule)."""
    if normal_side is Side.DEBIT:
        return totals.debits_posted - totals.credits_posted - totals.credits_pending
    return totals.credits_posted - totals.debits_posted - totals.debits_pending


@dataclass(frozen=True)
class Balance:
    """One account's balance. ``posted``/``pending`` are signed on the account's normal side."""

    account: str
    asset: str
    normal_side: Side
    totals: Totals

    @property
    def posted(self) -> int:
        """The posted balance, positive on the normal side."""
        t = self.totals
        net = t.debits_posted - t.credits_posted
        return net if self.normal_side is Side.DEBIT else -net

    @property
    def pending(self) -> int:
        """The net of unresolved pending legs, positive on the normal side."""
        t = self.totals
        net = t.debits_pending - t.credits_pending
        return net if self.normal_side is Side.DEBIT else -net

    @property
    def available(self) -> int:
        """Posted minus pending legs against the normal side (what no-overdraft keeps >= 0)."""
        return available(self.totals, self.normal_side)


@dataclass(frozen=True)
class AssetTotals:
    """One line of the trial balance: every account of one asset, summed."""

    asset: str
    totals: Totals

    @property
    def balanced(self) -> bool:
        """Double entry holds: debits equal credits, posted and pending separately."""
        t = self.totals
        return t.debits_posted == t.credits_posted and t.debits_pending == t.credits_pending


def _grouped_sums(
    session: Session, group: SQLColumnExpression[int], where: ColumnElement[bool], cutoff: Cutoff
) -> dict[int, Totals]:
    """Totals per value of ``group`` (a postings column) over postings matching ``where``."""
    dialect = session.get_bind().dialect.name
    resolution = aliased(JournalEntry)
    unresolved = ~exists().where(
        resolution.pending_id == JournalEntry.id, cutoff.applied_to(resolution)
    )
    buckets = (
        ("posted", JournalEntry.kind.in_([EntryKind.POSTED, EntryKind.POST_PENDING])),
        ("pending", and_(JournalEntry.kind == EntryKind.PENDING, unresolved)),
    )
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for bucket, kind_condition in buckets:
        query = (
            select(group, Posting.side, *sum_columns(Posting.amount, dialect))
            .join(JournalEntry, JournalEntry.id == Posting.entry_id)
            .where(where, kind_condition, cutoff.applied_to(JournalEntry))
            .group_by(group, Posting.side)
        )
        for row in session.execute(query):
            found[row[0]][f"{row[1]}s_{bucket}"] = combine_sums(row[2:], dialect)
    return {key: Totals(**values) for key, values in found.items()}


def totals_for(
    session: Session, account_ids: Iterable[int], cutoff: Cutoff = NOW
) -> dict[int, Totals]:
    """Totals per account id (accounts without postings are absent)."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    return _grouped_sums(session, Posting.account_id, Posting.account_id.in_(ids), cutoff)


def balances(
    session: Session, accounts: Sequence[str] | None = None, cutoff: Cutoff = NOW
) -> list[Balance]:
    """Balances of ``accounts`` (codes; all accounts by default), ordered by code."""
    query = select(Account).join(Account.asset).order_by(Account.code)
    if accounts is not None:
        query = query.where(Account.code.in_(accounts))
    rows = list(session.scalars(query))
    if accounts is not None:
        missing = sorted(set(accounts) - {row.code for row in rows})
        if missing:
            raise UnknownAccountError(f"The account code {missing[0]!r} names no account.")
    sums = totals_for(session, (row.id for row in rows), cutoff)
    return [
        Balance(row.code, row.asset.code, row.type.normal_side, sums.get(row.id, Totals()))
        for row in rows
    ]


def balance(session: Session, account: str, cutoff: Cutoff = NOW) -> Balance:
    """The balance of one account (``UnknownAccountError`` if the code names none)."""
    (found,) = balances(session, [account], cutoff)
    return found


def trial_balance(session: Session, cutoff: Cutoff = NOW) -> list[AssetTotals]:
    """Totals per registered asset, ordered by code; every line must be ``balanced``."""
    sums = _grouped_sums(session, Posting.asset_id, true(), cutoff)
    assets = session.execute(select(Asset.id, Asset.code).order_by(Asset.code))
    return [AssetTotals(code, sums.get(asset_id, Totals())) for asset_id, code in assets]
