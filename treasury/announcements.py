"""The treasury's side of the public delay window: announce large spends, relay vetoes, show both.

The window itself is enforced by the signers (``custody.authority.delay``), which read the
services chain's window registry themselves; nothing here can open a window early or hide a
veto from them. This module:

- announces a proposal's spend in the registry (``announce``), from the treasury's publisher
  account, and records where it landed and when its window opens (``spend_announcements``);
  a process that dies between the two finds the announcement on chain and records it then;
- submits an officer's signed veto (``relay_veto``) -- any institution may also submit one
  itself, with no one's permission -- and records the vetoes the roster verifies
  (``spend_vetoes``), including ones found on chain (``record_chain_vetoes``);
- exports the pending spends with their window and veto status for the site
  (``pending_spends_export``, ``reporting/SPEC-export.md``).

Rows are only ever inserted; a database writer who deletes one hides it from the site, not from
the services chain or the signers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Integer, String, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from custody.authority.delay import (
    SpendAnnouncement,
    decode_veto,
    proposal_key,
)
from custody.authority.errors import AuthorityError
from custody.authority.quorum import SignedStatement, verify_veto
from custody.authority.roster_state import RosterState
from custody.ethereum.announcements import ServicesChainWindow, announce_spend, submit_veto
from reporting.attestation import evm_chain
from treasury.db import Base, UtcDateTime
from treasury.exceptions import ImmutableRecordError, TreasuryError
from treasury.ledger.amounts import Amount

__all__ = [
    "AnnouncementRow",
    "Publisher",
    "SpendVetoRow",
    "WindowError",
    "WindowStatus",
    "announce",
    "pending_spends_export",
    "record_chain_vetoes",
    "relay_veto",
]

HASH_CHARS = 66
ADDRESS_CHARS = 200
CODE_CHARS = 120


class WindowError(TreasuryError):
    """An announcement or veto cannot be made or recorded as asked."""


class WindowStatus(StrEnum):
    """Where a large spend stands in its public window, as the site shows it."""

    WAITING = "waiting"
    """Announced; the window has not passed: anyone may still veto."""
    OPEN = "open"
    """The window passed with no veto: the signers may sign."""
    VETOED = "vetoed"
    """An officer vetoed it: it can never be signed."""


class AnnouncementRow(Base):
    """A spend the treasury announced on the services chain; only ever inserted."""

    __tablename__ = "spend_announcements"
    __table_args__ = (Index("ix_spend_announcements_proposal", "proposal_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(Integer)
    chain: Mapped[str] = mapped_column(String(CODE_CHARS))
    asset: Mapped[str] = mapped_column(String(CODE_CHARS))
    amount: Mapped[int] = mapped_column(Amount)
    destination: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    tx_hash: Mapped[str] = mapped_column(String(HASH_CHARS))
    announcement_digest: Mapped[str] = mapped_column(String(HASH_CHARS), unique=True)
    services_chain_id: Mapped[int] = mapped_column(Integer)
    window_registry: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    """The window registry's address on the services chain."""
    services_tx: Mapped[str] = mapped_column(String(HASH_CHARS))
    announced_at: Mapped[datetime] = mapped_column(UtcDateTime)
    """The services chain's block time of the announcement: the window counts from it."""
    opens_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SpendVetoRow(Base):
    """A verified officer's veto seen on (or relayed to) the services chain; only ever inserted."""

    __tablename__ = "spend_vetoes"
    __table_args__ = (Index("ix_spend_vetoes_proposal", "proposal_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(Integer)
    officer_id: Mapped[str] = mapped_column(String(CODE_CHARS))
    institution: Mapped[str] = mapped_column(String(CODE_CHARS))
    statement_digest: Mapped[str] = mapped_column(String(HASH_CHARS), unique=True)
    services_tx: Mapped[str] = mapped_column(String(HASH_CHARS))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


def _refuse_orm_change(_mapper: Any, _connection: Any, target: Any) -> None:
    raise ImmutableRecordError(
        f"{type(target).__name__} rows are never changed: the services chain is the record."
    )


for _row in (AnnouncementRow, SpendVetoRow):
    event.listen(_row, "before_update", _refuse_orm_change)
    event.listen(_row, "before_delete", _refuse_orm_change)


@dataclass(frozen=True)
class Publisher:
    """Where and as whom the treasury announces: the services chain, registry, sender."""

    window: ServicesChainWindow
    sender: str
    """The publisher account the registry lets announce (on the devnet, a node account)."""


def announce(
    session: Session,
    publisher: Publisher,
    proposal_id: int,
    announcement: SpendAnnouncement,
    window_seconds: int,
) -> AnnouncementRow:
    """Announce ``announcement`` (unless the registry has it already) and record it.

    ``window_seconds`` is the policy's window, for the site's 'opens at'; the signers read
    their own from the signed policy.
    """
    if announcement.proposal_id != str(proposal_id):
        raise WindowError(
            f"The announcement names proposal {announcement.proposal_id}, not {proposal_id}."
        )
    digest = announcement.digest().hex()
    existing = session.scalars(
        select(AnnouncementRow).where(AnnouncementRow.announcement_digest == digest)
    ).first()
    if existing is not None:
        return existing
    window = publisher.window
    seen = window.observe(announcement.digest(), proposal_key(announcement.proposal_id))
    if seen.announced_at is None:
        landed = announce_spend(window.chain, window.registry, publisher.sender, announcement)
        announced_at, services_tx = landed.announced_at, landed.tx_hash
    else:  # announced by a process that died before recording it
        announced_at, services_tx = seen.announced_at, _announcement_tx(window, digest)
    row = AnnouncementRow(
        proposal_id=proposal_id,
        chain=announcement.chain,
        asset=announcement.asset,
        amount=announcement.amount,
        destination=announcement.destination,
        tx_hash=announcement.tx_hash,
        announcement_digest=digest,
        services_chain_id=window.chain.chain_id,
        window_registry=window.registry,
        services_tx=services_tx,
        announced_at=announced_at,
        opens_at=announced_at + timedelta(seconds=window_seconds),
    )
    session.add(row)
    session.flush()
    return row


def _announcement_tx(window: ServicesChainWindow, digest: str) -> str:
    for found, _, tx_hash in window.announcements():
        if found.digest().hex() == digest:
            return tx_hash
    raise WindowError(f"The registry knows announcement {digest} but logged no event for it.")


def _record_veto(
    session: Session, proposal_id: int, signed: SignedStatement, services_tx: str, now: datetime
) -> SpendVetoRow:
    digest = signed.statement.digest().hex()
    existing = session.scalars(
        select(SpendVetoRow).where(SpendVetoRow.statement_digest == digest)
    ).first()
    if existing is not None:
        return existing
    row = SpendVetoRow(
        proposal_id=proposal_id,
        officer_id=signed.statement.officer_id,
        institution=signed.statement.institution,
        statement_digest=digest,
        services_tx=services_tx,
        recorded_at=now,
    )
    session.add(row)
    session.flush()
    return row


def relay_veto(
    session: Session,
    window: ServicesChainWindow,
    submitter: str,
    state: RosterState,
    signed: SignedStatement,
    now: datetime,
) -> SpendVetoRow:
    """Verify an officer's veto against the roster, submit it on chain and record it."""
    try:
        verify_veto(state, signed)
    except AuthorityError as exc:
        raise WindowError(f"The veto does not verify against the roster: {exc}") from exc
    proposal_id = _proposal_number(signed.statement.proposal_id)
    landed = submit_veto(window.chain, window.registry, submitter, signed)
    return _record_veto(session, proposal_id, signed, landed.tx_hash, now)


def record_chain_vetoes(
    session: Session, window: ServicesChainWindow, state: RosterState, now: datetime
) -> int:
    """Record every genuine veto on chain for an announced proposal; return how many are new."""
    before = len(list(session.scalars(select(SpendVetoRow.id))))
    proposals = set(session.scalars(select(AnnouncementRow.proposal_id)))
    for proposal_id in sorted(proposals):
        key = proposal_key(str(proposal_id))
        for raw, tx_hash in window.vetoes(key):
            try:
                signed = decode_veto(raw)
                if signed.statement.proposal_id != str(proposal_id):
                    continue
                verify_veto(state, signed)
            except AuthorityError:
                continue  # anyone may submit; only what the roster verifies counts
            _record_veto(session, proposal_id, signed, tx_hash, now)
    return len(list(session.scalars(select(SpendVetoRow.id)))) - before


def _proposal_number(text: str) -> int:
    if not text.isdigit():
        raise WindowError(f"The veto names proposal {text!r}, not a treasury proposal number.")
    return int(text)


def _site_chain(chain: str) -> str:
    """A statement's chain name (``eip155:<id>``) as the bundles and the site name it."""
    family, _, rest = chain.partition(":")
    return evm_chain(int(rest)) if family == "eip155" and rest.isdigit() else chain


def pending_spends_export(session: Session, now: datetime) -> list[dict[str, Any]]:
    """``pending_spends`` of the export: every announced spend, its window and veto status."""
    vetoes: dict[int, SpendVetoRow] = {}
    for recorded in session.scalars(select(SpendVetoRow).order_by(SpendVetoRow.id)):
        vetoes.setdefault(recorded.proposal_id, recorded)
    found = []
    for row in session.scalars(select(AnnouncementRow).order_by(AnnouncementRow.id)):
        veto = vetoes.get(row.proposal_id)
        if veto is not None:
            status = WindowStatus.VETOED
        elif now < row.opens_at:
            status = WindowStatus.WAITING
        else:
            status = WindowStatus.OPEN
        found.append(
            {
                "proposal_id": row.proposal_id,
                "chain": _site_chain(row.chain),
                "asset": row.asset,
                "amount": str(row.amount),
                "destination": row.destination,
                "tx_hash": row.tx_hash,
                "announced_at": row.announced_at.isoformat(),
                "opens_at": row.opens_at.isoformat(),
                "status": status.value,
                "vetoed_by": None if veto is None else veto.institution,
                "services": {
                    "chain_id": row.services_chain_id,
                    "registry": row.window_registry,
                    "announcement_tx": row.services_tx,
                    "veto_tx": None if veto is None else veto.services_tx,
                },
            }
        )
    return found
