"""The refresh alarm of recovery vaults: a coin's recovery path is about to open.

A recovery vault's coin becomes spendable by the recovery bodies alone once it has ``N``
confirmations (``custody.bitcoin.recovery.timelock``). The institutions prevent that by moving
the coin before then: a "refresh", a self-transfer back into the vault through the normal
approvals, whose outputs start their count again. Each reconciliation run reads, per vault, every
unspent coin of its watch-only wallet with the blocks left before its recovery path opens
(``read_windows``, no database transaction open) and then, in one transaction
(``apply_windows``):

- when some coin has at most ``alarm_percent_left`` percent of ``N`` left and no refresh alarm
  of the vault is open, one is opened (row, audit event, warning log) naming the soonest coin;
- when no coin is due and an alarm is open, it is cleared (the evidence is the chain: the coins
  were moved), with an audit event.

These alarms are kept apart from the reconciler's own (``alarms.py``): those say the books cannot
be trusted and block every spend until officers acknowledge them, while this one asks for a
spend (the refresh), so it must not block it, and it is cleared by the chain, not by a person.
A coin whose spend is waiting in the mempool is no longer listed as unspent by the wallet, so a
broadcast refresh counts as done; if it is dropped, the coin reappears and the alarm opens again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from custody.bitcoin.recovery import CoinRecoveryWindow, coin_windows
from custody.bitcoin.recovery.timelock import PERCENT
from custody.bitcoin.rpc import BitcoinRPC
from custody.clock import Clock, utc_now
from custody.exceptions import RPCError
from treasury import audit
from treasury.audit import AuditKind
from treasury.db import Base, UtcDateTime
from treasury.reconcile.accounts import ACTOR
from treasury.reconcile.errors import ReconcileConfigError
from treasury.recovery_vaults import StoredRecoveryVault, list_recovery_vaults

log = logging.getLogger(__name__)

DEFAULT_REFRESH_ALARM_PERCENT_LEFT = 20
"""The alarm opens when a coin has at most this share of ``N`` (in percent) left."""
NAME_MAX_CHARS = 200
DEDUPE_MAX_CHARS = 300
RAISED_EVENT = "refresh_alarm_raised"
CLEARED_EVENT = "refresh_alarm_cleared"


def check_alarm_percent(percent_left: int) -> int:
    """``percent_left`` if it is a whole percentage from 0 to 100, else ``ReconcileConfigError``."""
    if isinstance(percent_left, bool) or not isinstance(percent_left, int):
        raise ReconcileConfigError("The refresh alarm share must be a whole percentage.")
    if not 0 <= percent_left <= PERCENT:
        raise ReconcileConfigError(
            f"The refresh alarm share must be between 0 and {PERCENT} percent; got {percent_left}."
        )
    return percent_left


class RecoveryRefreshAlarmRow(Base):
    """A recovery vault's refresh alarm: open from the first due coin until none is due."""

    __tablename__ = "recovery_refresh_alarms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vault: Mapped[str] = mapped_column(String(NAME_MAX_CHARS))
    dedupe_key: Mapped[str] = mapped_column(String(DEDUPE_MAX_CHARS), unique=True)
    detail: Mapped[str] = mapped_column(Text)
    soonest_blocks_left: Mapped[int] = mapped_column(Integer)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime())
    raised_height: Mapped[int] = mapped_column(Integer)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cleared_height: Mapped[int | None] = mapped_column(Integer)


@dataclass(frozen=True)
class RefreshAlarm:
    """A refresh alarm as callers see it."""

    id: int
    vault: str
    detail: str
    soonest_blocks_left: int
    raised_at: datetime
    raised_height: int
    cleared_at: datetime | None
    cleared_height: int | None

    @property
    def open(self) -> bool:
        return self.cleared_at is None


def _view(row: RecoveryRefreshAlarmRow) -> RefreshAlarm:
    return RefreshAlarm(
        row.id,
        row.vault,
        row.detail,
        row.soonest_blocks_left,
        row.raised_at,
        row.raised_height,
        row.cleared_at,
        row.cleared_height,
    )


@dataclass(frozen=True)
class VaultWindows:
    """Every unspent coin of one recovery vault against its timelock, at one chain height."""

    vault: str
    delay_blocks: int
    height: int
    windows: tuple[CoinRecoveryWindow, ...]
    """Soonest first."""

    def due(self, percent_left: int) -> tuple[CoinRecoveryWindow, ...]:
        return tuple(w for w in self.windows if w.refresh_due(percent_left))


@dataclass(frozen=True)
class RefreshOutcome:
    """What one run found for one vault, and what it did to the vault's alarm."""

    vault: str
    windows: VaultWindows
    due: tuple[CoinRecoveryWindow, ...]
    raised: RefreshAlarm | None = None
    cleared: RefreshAlarm | None = None


def read_windows(rpc: BitcoinRPC, vault: StoredRecoveryVault) -> VaultWindows:
    """The vault's unspent coins (confirmed or not) with their blocks left, from its wallet."""
    wallet = rpc.wallet(vault.wallet_name)
    height = int(rpc.call("getblockcount"))
    unspent = wallet.call("listunspent", 0)
    windows = coin_windows(unspent, vault.delay_blocks)
    return VaultWindows(vault.name, vault.delay_blocks, height, tuple(windows))


def open_refresh_alarm(session: Session, vault: str) -> RefreshAlarm | None:
    row = session.scalar(
        select(RecoveryRefreshAlarmRow)
        .where(RecoveryRefreshAlarmRow.vault == vault, RecoveryRefreshAlarmRow.cleared_at.is_(None))
        .order_by(RecoveryRefreshAlarmRow.id)
        .limit(1)
    )
    return None if row is None else _view(row)


def list_refresh_alarms(session: Session, *, only_open: bool = False) -> list[RefreshAlarm]:
    """Refresh alarms, newest first (only the open ones if asked)."""
    query = select(RecoveryRefreshAlarmRow).order_by(RecoveryRefreshAlarmRow.id.desc())
    if only_open:
        query = query.where(RecoveryRefreshAlarmRow.cleared_at.is_(None))
    return [_view(row) for row in session.scalars(query)]


def apply_windows(
    session: Session,
    found: VaultWindows,
    percent_left: int,
    *,
    run_id: int | None = None,
    clock: Clock = utc_now,
) -> RefreshOutcome:
    """Open the vault's refresh alarm if a coin is due and none is open; clear it if none is due."""
    check_alarm_percent(percent_left)
    due = found.due(percent_left)
    now = clock()
    row = session.scalar(
        select(RecoveryRefreshAlarmRow)
        .where(
            RecoveryRefreshAlarmRow.vault == found.vault,
            RecoveryRefreshAlarmRow.cleared_at.is_(None),
        )
        .order_by(RecoveryRefreshAlarmRow.id)
        .limit(1)
    )
    if due and row is None:
        soonest = due[0]
        detail = (
            f"{len(due)} coin(s) of recovery vault {found.vault} have at most {percent_left}% of "
            f"the {found.delay_blocks}-block recovery delay left; the soonest, "
            f"{soonest.txid}:{soonest.vout}, opens to the recovery quorum in "
            f"{soonest.blocks_left} block(s) (height {found.height}). Refresh the vault: move its "
            "coins back into it through an approved spend."
        )
        row = RecoveryRefreshAlarmRow(
            vault=found.vault,
            dedupe_key=f"refresh:{found.vault}:{found.height}:{soonest.txid}:{soonest.vout}"[
                :DEDUPE_MAX_CHARS
            ],
            detail=detail,
            soonest_blocks_left=soonest.blocks_left,
            raised_at=now,
            raised_height=found.height,
        )
        session.add(row)
        session.flush()
        audit.append(
            session,
            kind=AuditKind.RECONCILIATION,
            actor=ACTOR,
            refs={"refresh_alarm_id": row.id, "scope": f"btc:{found.vault}"},
            payload={
                "event": RAISED_EVENT,
                "vault": found.vault,
                "height": found.height,
                "due": [f"{w.txid}:{w.vout}:{w.blocks_left}" for w in due],
                "percent_left": percent_left,
                "detail": detail,
            },
            clock=clock,
        )
        log.warning(
            "refresh alarm %d for recovery vault %s: %s", row.id, found.vault, detail,
            extra={"refresh_alarm_id": row.id, "vault": found.vault, "run_id": run_id},
        )  # fmt: skip
        return RefreshOutcome(found.vault, found, due, raised=_view(row))
    if not due and row is not None:
        row.cleared_at = now
        row.cleared_height = found.height
        session.flush()
        audit.append(
            session,
            kind=AuditKind.RECONCILIATION,
            actor=ACTOR,
            refs={"refresh_alarm_id": row.id, "scope": f"btc:{found.vault}"},
            payload={
                "event": CLEARED_EVENT,
                "vault": found.vault,
                "height": found.height,
                "soonest_blocks_left": found.windows[0].blocks_left if found.windows else None,
            },
            clock=clock,
        )
        log.info(
            "refresh alarm %d for recovery vault %s cleared at height %d: no coin is due",
            row.id, found.vault, found.height,
            extra={"refresh_alarm_id": row.id, "vault": found.vault, "run_id": run_id},
        )  # fmt: skip
        return RefreshOutcome(found.vault, found, due, cleared=_view(row))
    return RefreshOutcome(found.vault, found, due)


def watch_refresh(
    sessions: sessionmaker[Session],
    rpc: BitcoinRPC,
    percent_left: int = DEFAULT_REFRESH_ALARM_PERCENT_LEFT,
    *,
    run_id: int | None = None,
    clock: Clock = utc_now,
) -> list[RefreshOutcome]:
    """Read every recovery vault's windows, then update its alarm in its own transaction.

    A vault whose wallet cannot be read is skipped (logged): its alarm stays as it was, and the
    run's own node alarm names the unreachable node.
    """
    check_alarm_percent(percent_left)
    with sessions() as session:
        vaults = list_recovery_vaults(session)
    outcomes: list[RefreshOutcome] = []
    for vault in vaults:
        try:
            found = read_windows(rpc, vault)
        except RPCError as exc:
            log.error(
                "recovery vault %s: its coins' windows could not be read: %s", vault.name, exc,
                extra={"vault": vault.name, "run_id": run_id},
            )  # fmt: skip
            continue
        with sessions.begin() as session:
            outcomes.append(apply_windows(session, found, percent_left, run_id=run_id, clock=clock))
    return outcomes


def refresh_status(
    sessions: sessionmaker[Session], rpc: BitcoinRPC
) -> Sequence[tuple[VaultWindows, RefreshAlarm | None]]:
    """Each recovery vault's windows now and its open alarm (read only): for the CLI."""
    with sessions() as session:
        vaults = list_recovery_vaults(session)
    found = []
    for vault in vaults:
        windows = read_windows(rpc, vault)
        with sessions() as session:
            found.append((windows, open_refresh_alarm(session, vault.name)))
    return found
