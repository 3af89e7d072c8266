"""The tables of the officers' signed authority: the roster chain and the approval statements.

Both are append-only and hold only what the officers and ceremonies signed, in the exact bytes
they signed: a record's body is its canonical JSON text, a statement its canonical encoding, and
signatures their library JSON. Nothing here is trusted: the signers replay and re-verify every row
(``custody.authority``), so a database writer can at worst make a signer refuse. The database
still refuses UPDATE, DELETE and TRUNCATE (migration 0009) and requires each roster record to
extend the stored head; the mapper refuses ORM changes first with ``ImmutableRecordError``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from treasury.db import Base, UtcDateTime
from treasury.exceptions import ImmutableRecordError

__all__ = [
    "HASH_HEX_CHARS",
    "IMMUTABLE_MODELS",
    "KEY_ID_MAX_CHARS",
    "RECORD_KIND_MAX_CHARS",
    "ApprovalStatementRow",
    "RosterRecordRow",
]

HASH_HEX_CHARS = 64
"""A SHA-256 digest written as lowercase hex."""
RECORD_KIND_MAX_CHARS = 32
"""The longest roster record kind (``custody.authority.RecordKind`` values)."""
KEY_ID_MAX_CHARS = 64
"""The longest officer key id (``k1:``/``wa:`` and 16 hex today)."""


class RosterRecordRow(Base):
    """One record of the roster and policy chain, exactly as signed; never changed."""

    __tablename__ = "roster_records"

    sequence: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(RECORD_KIND_MAX_CHARS))
    body: Mapped[str] = mapped_column(Text)
    """The body's canonical JSON text (UTF-8 of the bytes the record hash covers)."""
    prev_hash: Mapped[str] = mapped_column(String(HASH_HEX_CHARS))
    hash: Mapped[str] = mapped_column(String(HASH_HEX_CHARS), unique=True)
    """The record hash when stored: a convenience for links and display, re-derived on replay."""
    signatures: Mapped[str] = mapped_column(Text)
    """A JSON list of ``RecordSignature.to_json()`` objects."""
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApprovalStatementRow(Base):
    """One officer's signed statement on one proposal; never changed."""

    __tablename__ = "approval_statements"
    __table_args__ = (UniqueConstraint("proposal_id", "statement_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("spend_proposals.id"), index=True)
    statement: Mapped[str] = mapped_column(Text)
    """The statement's canonical encoding (``ApprovalStatement.encode()``) as UTF-8 text."""
    statement_digest: Mapped[str] = mapped_column(String(HASH_HEX_CHARS))
    """``ApprovalStatement.digest()`` in hex: what the officer's key signed."""
    key_id: Mapped[str] = mapped_column(String(KEY_ID_MAX_CHARS))
    signature: Mapped[str] = mapped_column(Text)
    """The signature's ``to_json()`` object as JSON text."""
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


IMMUTABLE_MODELS = (RosterRecordRow, ApprovalStatementRow)
"""Rows that are only ever inserted (the database refuses changes too)."""


def _refuse_orm_change(_mapper: Any, _connection: Any, target: Any) -> None:
    raise ImmutableRecordError(
        f"{type(target).__name__} records are immutable; append a new signed record instead."
    )


for _model in IMMUTABLE_MODELS:
    event.listen(_model, "before_update", _refuse_orm_change)
    event.listen(_model, "before_delete", _refuse_orm_change)
