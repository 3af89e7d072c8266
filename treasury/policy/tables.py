"""The policy's database tables, kept together because several policy modules read each one.

Policy versions, legal bases, the allowlist and the decisions are only ever inserted; an allowlist
entry becomes active by a row of its own in ``allowlist_activations`` when its quorum is reached.
Policy versions, legal bases and their ceilings, allowlist entries, approvals and activations are
immutable like the ledger: the database refuses UPDATE, DELETE and TRUNCATE (migration 0008) and
the mapper refuses ORM changes first with ``ImmutableRecordError``. The column sizes below are
shared with the proposals' tables, which store the same asset codes and addresses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from treasury.db import Base, UtcDateTime
from treasury.exceptions import ImmutableRecordError
from treasury.ledger.amounts import Amount

ASSET_CODE_MAX_CHARS = 64
"""The longest asset code a table stores (``BTC``, ``ETH``, a token's code)."""
ADDRESS_MAX_CHARS = 128
"""The longest destination address a table stores."""
REFERENCE_MAX_CHARS = 64
"""The longest legal basis reference (a decree's number) a table stores."""


class PolicyVersionRow(Base):
    """Policy versions are only ever inserted; a new version supersedes, nothing is edited."""

    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    document: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[int] = mapped_column(ForeignKey("officers.id"))


class LegalBasisRow(Base):
    __tablename__ = "legal_bases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(REFERENCE_MAX_CHARS), unique=True)
    title: Mapped[str] = mapped_column(String(400))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LegalBasisCeilingRow(Base):
    __tablename__ = "legal_basis_ceilings"

    legal_basis_id: Mapped[int] = mapped_column(ForeignKey("legal_bases.id"), primary_key=True)
    asset: Mapped[str] = mapped_column(String(ASSET_CODE_MAX_CHARS), primary_key=True)
    ceiling: Mapped[int] = mapped_column(Amount)


class AllowlistEntryRow(Base):
    __tablename__ = "allowlist_entries"
    __table_args__ = (Index("ix_allowlist_entries_asset_address", "asset", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset: Mapped[str] = mapped_column(String(ASSET_CODE_MAX_CHARS))
    address: Mapped[str] = mapped_column(String(ADDRESS_MAX_CHARS))
    label: Mapped[str] = mapped_column(String(200))
    requested_by: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AllowlistApprovalRow(Base):
    __tablename__ = "allowlist_approvals"

    entry_id: Mapped[int] = mapped_column(ForeignKey("allowlist_entries.id"), primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    approved_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AllowlistActivationRow(Base):
    """An allowlist entry's activation: appended once, when its approvals reach the quorum.

    ``active_from`` is the quorum time plus the delay of the policy in force then; a later policy
    does not move it.
    """

    __tablename__ = "allowlist_activations"

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("allowlist_entries.id"), primary_key=True, autoincrement=False
    )
    active_from: Mapped[datetime] = mapped_column(UtcDateTime)


class ReconciliationCheckpointRow(Base):
    __tablename__ = "reconciliation_checkpoints"
    __table_args__ = (
        Index("ix_reconciliation_checkpoints_asset_checked_at", "asset", "checked_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset: Mapped[str] = mapped_column(String(ASSET_CODE_MAX_CHARS))
    outcome: Mapped[str] = mapped_column(String(16))
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    detail: Mapped[str] = mapped_column(Text)


class PolicyDecisionRow(Base):
    """Every decision with its full inputs, so ``replay_decision`` can re-run it."""

    __tablename__ = "policy_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(16))
    policy_version: Mapped[int] = mapped_column(ForeignKey("policy_versions.version"))
    policy_hash: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[str] = mapped_column(Text)
    inputs_digest: Mapped[str] = mapped_column(String(64))
    allowed: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)


IMMUTABLE_MODELS = (
    PolicyVersionRow,
    LegalBasisRow,
    LegalBasisCeilingRow,
    AllowlistEntryRow,
    AllowlistApprovalRow,
    AllowlistActivationRow,
)
"""The policy rows that are never changed once written (the database refuses it too)."""


def _refuse_orm_change(_mapper: Any, _connection: Any, target: Any) -> None:
    raise ImmutableRecordError(
        f"{type(target).__name__} records are immutable; record a new version or entry instead."
    )


for _model in IMMUTABLE_MODELS:
    event.listen(_model, "before_update", _refuse_orm_change)
    event.listen(_model, "before_delete", _refuse_orm_change)
