"""The proposal tables: proposals, the transactions prepared for them, approvals, signatures.

Rows are the workflow's durable memory between crash-safe steps; ``treasury.migrate`` imports
this module (through the package) so Alembic and the schema test see every table.

Approvals and their voids are append-only, like the ledger: the database refuses UPDATE, DELETE
and TRUNCATE of ``proposal_approvals`` and ``proposal_approval_voids`` (migration 0008), and the
mapper refuses ORM changes first with ``ImmutableRecordError``. An approval is voided by
appending a void row, never by editing the approval.

Two tables make "one chain transaction per proposal" a database fact (migration 0014):
``spend_reservations`` (the chain-level identity a prepared transaction consumes, unique among
live reservations) and ``sealed_transactions`` (the fully signed transaction and its id, written
before it is sent, unique by txid).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    select,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column

from treasury.db import Base, UtcDateTime
from treasury.exceptions import ImmutableRecordError
from treasury.ledger.amounts import Amount
from treasury.policy import ADDRESS_MAX_CHARS, ASSET_CODE_MAX_CHARS

TX_HASH_MAX_CHARS = 130


class SpendProposalRow(Base):
    __tablename__ = "spend_proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset: Mapped[str] = mapped_column(String(ASSET_CODE_MAX_CHARS))
    amount: Mapped[int] = mapped_column(Amount)
    destination: Mapped[str] = mapped_column(String(ADDRESS_MAX_CHARS))
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis_id: Mapped[int] = mapped_column(ForeignKey("legal_bases.id"))
    proposer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    quorum_reached_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    broadcast_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    """Committed before the transaction is sent: a retry must ask the chain before resending."""
    txid: Mapped[str | None] = mapped_column(String(TX_HASH_MAX_CHARS), nullable=True)
    """Set when the signed transaction is sealed, before it is sent (write-ahead), so a crash
    after the send leaves the proposal recognisably the owner of what reached the chain."""
    broadcast_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("officers.id"), nullable=True)
    closed_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class PreparedTxRow(Base):
    """Every transaction ever prepared for a proposal; the current one is not superseded."""

    __tablename__ = "prepared_transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("spend_proposals.id"), index=True)
    tx_hash: Mapped[str] = mapped_column(String(TX_HASH_MAX_CHARS))
    summary: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    fee: Mapped[int] = mapped_column(Amount)
    prepared_at: Mapped[datetime] = mapped_column(UtcDateTime)
    superseded_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ApprovalVoidRow(Base):
    """The void of one approval: appended when its transaction changes or its officer is revoked.

    The approval itself is never edited; an approval is standing while it has no void row.
    """

    __tablename__ = "proposal_approval_voids"

    approval_id: Mapped[int] = mapped_column(
        ForeignKey("proposal_approvals.id"), primary_key=True, autoincrement=False
    )
    voided_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(Text)


class ApprovalRow(Base):
    """An approval of one prepared transaction; voided by a void row, never edited or deleted.

    ``attempt`` numbers an institution's approvals of a proposal (1, 2, ...). The unique indexes
    on ``attempt`` and the insert trigger of migration 0008 (a new attempt is accepted only when
    it is the next number and every earlier approval of the institution or the officer has a void)
    keep "one standing approval per officer and per institution" true even against concurrent
    requests: two requests racing for the same attempt collide on the index. The officer index is
    implied by the institution one (an officer belongs to one institution) and is kept as a guard.
    """

    __tablename__ = "proposal_approvals"
    __table_args__ = (
        Index(
            "uq_proposal_approvals_standing_officer",
            "proposal_id",
            "officer_id",
            "attempt",
            unique=True,
        ),
        Index(
            "uq_proposal_approvals_standing_institution",
            "proposal_id",
            "institution_id",
            "attempt",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("spend_proposals.id"), index=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    tx_hash: Mapped[str] = mapped_column(String(TX_HASH_MAX_CHARS))
    approved_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempt: Mapped[int] = mapped_column(Integer)
    """This institution's n-th approval of the proposal, counting voided ones (from 1)."""

    voided_at: Mapped[datetime | None] = column_property(
        select(ApprovalVoidRow.voided_at)
        .where(ApprovalVoidRow.approval_id == id)
        .correlate_except(ApprovalVoidRow)
        .scalar_subquery(),
        deferred=True,
    )
    """Read-only: the void's time, for queries (``ApprovalRow.voided_at.is_(None)``).

    Loaded when first read and not refreshed within the session; views join the void table
    instead. Assigning it raises ``ImmutableRecordError``.
    """
    void_reason: Mapped[str | None] = column_property(
        select(ApprovalVoidRow.reason)
        .where(ApprovalVoidRow.approval_id == id)
        .correlate_except(ApprovalVoidRow)
        .scalar_subquery(),
        deferred=True,
    )
    """Read-only: the void's reason (see ``voided_at``)."""


class SignatureRow(Base):
    """One institution's signature on one prepared transaction (no key material, only the fact)."""

    __tablename__ = "proposal_signatures"
    __table_args__ = (UniqueConstraint("proposal_id", "tx_hash", "institution_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("spend_proposals.id"))
    tx_hash: Mapped[str] = mapped_column(String(TX_HASH_MAX_CHARS))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    signed_at: Mapped[datetime] = mapped_column(UtcDateTime)


CLAIM_MAX_CHARS = 200
"""A claim names one chain-level resource: ``safe-nonce:<chain id>:<safe>:<nonce>`` or
``btc-input:<txid>:<vout>``."""


class ReservationRow(Base):
    """A chain-level resource (a Safe nonce, a Bitcoin input) one prepared transaction consumes.

    ``live`` is ``True`` while the reservation holds and NULL once released; the unique
    constraint on ``(claim, live)`` therefore allows one live reservation per claim on both
    databases (NULLs are distinct), so two proposals can never be prepared to spend the same
    input or execute at the same Safe nonce, however their requests race.
    """

    __tablename__ = "spend_reservations"
    __table_args__ = (UniqueConstraint("claim", "live"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("spend_proposals.id"), index=True)
    prepared_tx_id: Mapped[int] = mapped_column(ForeignKey("prepared_transactions.id"))
    claim: Mapped[str] = mapped_column(String(CLAIM_MAX_CHARS))
    live: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    reserved_at: Mapped[datetime] = mapped_column(UtcDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    released_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class SealedTxRow(Base):
    """A proposal's fully signed transaction and its chain id, recorded BEFORE it is sent.

    The write-ahead record: after a crash anywhere around the send, the retry, ``refresh`` and
    the reconciler find the chain's transaction under this id and know it is this proposal's.
    A proposal may be sealed again only while nothing it sealed reached the chain (e.g. a
    relayer's nonce was taken); ``txid`` is unique, so no two proposals own one transaction.
    """

    __tablename__ = "sealed_transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("spend_proposals.id"), index=True)
    tx_hash: Mapped[str] = mapped_column(String(TX_HASH_MAX_CHARS))
    """The prepared transaction's hash (PSBT unsigned txid or SafeTx hash) it seals."""
    txid: Mapped[str] = mapped_column(String(TX_HASH_MAX_CHARS), unique=True)
    raw: Mapped[str] = mapped_column(Text)
    """The signed transaction as it is sent (public data, never key material)."""
    sealed_at: Mapped[datetime] = mapped_column(UtcDateTime)


VAULT_NAME_MAX_CHARS = 200
"""A custody vault's name (``custody_btc_vaults.name``)."""


class VaultRotationRow(Base):
    """A Bitcoin vault replaced by a new one: the sweep that empties it, and when it retired.

    Written by ``treasury.rotation``. While ``retired_at`` is NULL the rotation is sweeping: spends
    still come from the old vault (the sweep is one of them) and the new vault is not yet the
    spending vault; once retired, the old vault pays nothing and a deposit to it is an alarm. A
    vault is the old (or the new) vault of at most one rotation.
    """

    __tablename__ = "btc_vault_rotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    old_vault: Mapped[str] = mapped_column(String(VAULT_NAME_MAX_CHARS), unique=True)
    new_vault: Mapped[str] = mapped_column(String(VAULT_NAME_MAX_CHARS), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    started_by: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sweep_address: Mapped[str] = mapped_column(String(ADDRESS_MAX_CHARS), unique=True)
    """The new vault's receive address the sweep pays: the ledger books a spend to it as an
    internal transfer into the new vault's holdings."""
    sweep_proposal_id: Mapped[int | None] = mapped_column(
        ForeignKey("spend_proposals.id"), nullable=True
    )
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    retired_by: Mapped[int | None] = mapped_column(ForeignKey("officers.id"), nullable=True)


class FeeBumpRow(Base):
    """A spend proposal that replaces (by fee) the broadcast transaction of an earlier one.

    Written by ``treasury.fee_bumps``. The bump is a proposal of its own (same asset, amount,
    destination and legal basis), approved and signed like any spend, with the officers' fee
    ceiling as its statements' ``max_fee``; once it is on chain the replaced proposal's
    transaction conflicts, so that proposal fails and its pending ledger entry is voided.
    """

    __tablename__ = "spend_fee_bumps"

    proposal_id: Mapped[int] = mapped_column(
        ForeignKey("spend_proposals.id"), primary_key=True, autoincrement=False
    )
    """The bump's own proposal."""
    replaces_proposal_id: Mapped[int] = mapped_column(ForeignKey("spend_proposals.id"))
    replaced_txid: Mapped[str] = mapped_column(String(TX_HASH_MAX_CHARS))
    fee_rate_sat_vb: Mapped[str] = mapped_column(String(32))
    """The replacement's fee rate, as a decimal string (sat/vB)."""
    fee_ceiling: Mapped[int] = mapped_column(Amount)
    """The most fee the replacement may pay (sats): what the approvers' statements name."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


def _refuse_orm_change(_mapper: Any, _connection: Any, target: Any) -> None:
    raise ImmutableRecordError(
        f"{type(target).__name__} records are immutable; void an approval by appending an "
        "ApprovalVoidRow instead."
    )


def _refuse_void_assignment(target: Any, _value: Any, _old: Any, _initiator: Any) -> None:
    raise ImmutableRecordError(
        f"Approval {target.id} cannot be voided by assignment; append an ApprovalVoidRow instead."
    )


for _model in (ApprovalRow, ApprovalVoidRow):
    event.listen(_model, "before_update", _refuse_orm_change)
    event.listen(_model, "before_delete", _refuse_orm_change)
for _attribute in (ApprovalRow.voided_at, ApprovalRow.void_reason):
    event.listen(_attribute, "set", _refuse_void_assignment)
