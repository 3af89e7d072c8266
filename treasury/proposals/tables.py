"""The proposal tables: proposals, the transactions prepared for them, approvals, signatures.

Rows are the workflow's durable memory between crash-safe steps; ``treasury.migrate`` imports
this module (through the package) so Alembic and the schema test see every table.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from treasury.db import Base, UtcDateTime
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


_STANDING = "voided_at IS NULL"


class ApprovalRow(Base):
    """An approval of one prepared transaction; voided, never deleted.

    Partial unique indexes make "one standing approval per officer and per institution" hold
    even against concurrent requests.
    """

    __tablename__ = "proposal_approvals"
    __table_args__ = (
        Index(
            "uq_proposal_approvals_standing_officer",
            "proposal_id",
            "officer_id",
            unique=True,
            sqlite_where=text(_STANDING),
            postgresql_where=text(_STANDING),
        ),
        Index(
            "uq_proposal_approvals_standing_institution",
            "proposal_id",
            "institution_id",
            unique=True,
            sqlite_where=text(_STANDING),
            postgresql_where=text(_STANDING),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("spend_proposals.id"), index=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    tx_hash: Mapped[str] = mapped_column(String(TX_HASH_MAX_CHARS))
    approved_at: Mapped[datetime] = mapped_column(UtcDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    void_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


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
