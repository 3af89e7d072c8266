"""The treasury's record of break-glass signatures: who signed without the officers, and why.

Custody signs only a transaction covered by the officers' signed approval statements, except on
the break-glass path: an institution's share holders, at the signing machine, choose to sign
without statements (``--break-glass --reason``) in an emergency. Each such signature is
recorded here, once, in an append-only table (migration 0010 refuses UPDATE and DELETE on both
databases, TRUNCATE on PostgreSQL; the mapper refuses ORM changes first), together with an audit
event and a ``BREAK_GLASS`` alarm, so the officers learn of it at once and must clear it.

The reconciler reads ``break_glass_signatures_for`` to tell an emergency outflow from an
unexplained one; the custody CLIs read it to require every institution's signature before a
break-glass transaction is broadcast or executed. ``tx_hash`` is the hash the signers signed:
a PSBT's unsigned txid (equal to the final txid for segwit) or a SafeTx hash (``0x``-prefixed,
lowercase). ``vault`` names the vault as the reconciler's scopes do: a Bitcoin vault's name, a
Safe's checksummed address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, event, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from custody.clock import Clock
from custody.ethereum.records import SafeVaultRow
from treasury import audit
from treasury.audit import AuditKind
from treasury.db import Base, UtcDateTime
from treasury.exceptions import ImmutableRecordError, TreasuryError
from treasury.reconcile.alarms import raise_alarm
from treasury.reconcile.bitcoin import btc_scope
from treasury.reconcile.ethereum import eth_scope
from treasury.reconcile.records import AlarmKind
from treasury.text import unstorable_characters, unstorable_message

__all__ = [
    "BREAK_GLASS_ACTOR",
    "BreakGlassRecordError",
    "BreakGlassSignature",
    "BreakGlassSignatureRow",
    "break_glass_signatures_for",
    "record_break_glass",
]

log = logging.getLogger(__name__)

CHAIN_MAX_CHARS = 64
"""A chain as statements name it: ``bitcoin:regtest``, ``eip155:31337``."""
VAULT_MAX_CHARS = 200
TX_HASH_MAX_CHARS = 66
"""A txid (64 hex) or a ``0x``-prefixed SafeTx hash (66)."""
INSTITUTION_MAX_CHARS = 200
REASON_MAX_CHARS = 500
"""As ``custody.authority.gate.BREAK_GLASS_REASON_MAX``: the holders' reason, whole."""
BREAK_GLASS_ACTOR = "custody:break-glass"
"""The audit actor: the share holders at the signing machine, not an officer or the server."""


class BreakGlassRecordError(TreasuryError, ValueError):
    """A break-glass record with an empty or unstorable field (the message names it)."""


class BreakGlassSignatureRow(Base):
    """One institution's break-glass signature of one transaction; never changed."""

    __tablename__ = "break_glass_signatures"
    __table_args__ = (Index("ix_break_glass_signatures_chain_tx_hash", "chain", "tx_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain: Mapped[str] = mapped_column(String(CHAIN_MAX_CHARS))
    vault: Mapped[str] = mapped_column(String(VAULT_MAX_CHARS))
    tx_hash: Mapped[str] = mapped_column(String(TX_HASH_MAX_CHARS))
    institution: Mapped[str] = mapped_column(String(INSTITUTION_MAX_CHARS))
    reason: Mapped[str] = mapped_column(String(REASON_MAX_CHARS))
    signed_at: Mapped[datetime] = mapped_column(UtcDateTime)


def _refuse_orm_change(_mapper: Any, _connection: Any, target: Any) -> None:
    raise ImmutableRecordError(
        f"{type(target).__name__} records are immutable; a break-glass signature stays on record."
    )


event.listen(BreakGlassSignatureRow, "before_update", _refuse_orm_change)
event.listen(BreakGlassSignatureRow, "before_delete", _refuse_orm_change)


@dataclass(frozen=True)
class BreakGlassSignature:
    """A recorded break-glass signature, as callers see it."""

    id: int
    chain: str
    vault: str
    tx_hash: str
    institution: str
    reason: str
    signed_at: datetime

    @classmethod
    def of(cls, row: BreakGlassSignatureRow) -> BreakGlassSignature:
        return cls(
            id=row.id,
            chain=row.chain,
            vault=row.vault,
            tx_hash=row.tx_hash,
            institution=row.institution,
            reason=row.reason,
            signed_at=row.signed_at,
        )


def _checked(name: str, value: str, limit: int, allowed: frozenset[str] = frozenset()) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BreakGlassRecordError(
            f"The break-glass {name} must be non-empty text of at most {limit} characters."
        )
    found = unstorable_characters(value, allowed)
    if found:
        raise BreakGlassRecordError(f"The break-glass {name} must be {unstorable_message(found)}.")
    return value


def _normal_hash(tx_hash: str) -> str:
    return tx_hash.strip().lower()


def _scope(session: Session, chain: str, vault: str) -> str:
    """The reconciler's own scope of the vault (``btc_scope``/``eth_scope``), so the alarm is
    listed and cleared under the vault the reconciler reports; a Safe is found by its address."""
    if not chain.startswith("eip155:"):
        return btc_scope(vault)
    chain_id = int(chain.removeprefix("eip155:"))
    name = session.scalar(
        select(SafeVaultRow.name).where(
            SafeVaultRow.chain_id == chain_id, func.lower(SafeVaultRow.address) == vault.lower()
        )
    )
    return eth_scope(chain_id, name if name is not None else vault)


def record_break_glass(
    session: Session,
    *,
    chain: str,
    vault: str,
    tx_hash: str,
    institution: str,
    reason: str,
    clock: Clock,
) -> BreakGlassSignature:
    """Record ``institution``'s break-glass signature of ``tx_hash``, audit it, raise an alarm.

    Call in the same transaction that stores the signature, so one is never kept without the
    other. Refuses (``BreakGlassRecordError``) before writing anything if a field is empty, too
    long or unstorable. The alarm (``AlarmKind.BREAK_GLASS``, one per recorded signature) blocks
    new spends until officers clear it.
    """
    chain = _checked("chain", chain, CHAIN_MAX_CHARS)
    vault = _checked("vault", vault, VAULT_MAX_CHARS)
    tx_hash = _normal_hash(_checked("transaction hash", tx_hash, TX_HASH_MAX_CHARS))
    institution = _checked("institution", institution, INSTITUTION_MAX_CHARS)
    reason = _checked("reason", reason.strip(), REASON_MAX_CHARS)
    row = BreakGlassSignatureRow(
        chain=chain,
        vault=vault,
        tx_hash=tx_hash,
        institution=institution,
        reason=reason,
        signed_at=clock(),
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        kind=AuditKind.APPROVAL,
        actor=BREAK_GLASS_ACTOR,
        refs={"break_glass_id": row.id, "tx_hash": tx_hash},
        payload={
            "event": "break_glass_signed",
            "chain": chain,
            "vault": vault,
            "institution": institution,
            "reason": reason,
        },
        clock=clock,
    )
    raise_alarm(
        session,
        AlarmKind.BREAK_GLASS,
        f"break_glass:{row.id}",
        _scope(session, chain, vault),
        f"{institution} signed transaction {tx_hash} of vault {vault} on {chain} under "
        f"break-glass, without the officers' approval statements. Reason: {reason}",
        tx_ref=tx_hash,
        clock=clock,
    )
    log.warning(
        "break-glass signature recorded: chain=%s vault=%s tx_hash=%s institution=%s",
        chain,
        vault,
        tx_hash,
        institution,
        extra={"break_glass_id": row.id, "tx_hash": tx_hash},
    )
    return BreakGlassSignature.of(row)


def break_glass_signatures_for(
    session: Session, chain: str, tx_hash: str
) -> tuple[BreakGlassSignature, ...]:
    """Every recorded break-glass signature of ``tx_hash`` on ``chain``, oldest first."""
    rows = session.scalars(
        select(BreakGlassSignatureRow)
        .where(
            BreakGlassSignatureRow.chain == chain,
            BreakGlassSignatureRow.tx_hash == _normal_hash(tx_hash),
        )
        .order_by(BreakGlassSignatureRow.id)
    )
    return tuple(BreakGlassSignature.of(row) for row in rows)
