"""One reconciliation run over every vault, and the run's record.

Transactions: the run row is committed first (so a crash still shows a run that never
finished); then each vault is read from its chain with no database transaction open, and
everything learnt about it (reversals, bookings, settlements, its result, alarms, its cursor) is
written in ONE transaction. A vault is the unit because its cursor and its bookings must move
together, while one chain's node being down must not hold back the other chain's vaults. A node
failing mid-read leaves that vault exactly as it was; the next run resumes from its cursor.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from custody.clock import Clock, utc_now
from custody.records import VaultRecord
from treasury.exceptions import TreasuryError
from treasury.policy import ReconciliationOutcome, record_reconciliation
from treasury.reconcile.alarms import open_alarm_of, raise_alarm
from treasury.reconcile.bitcoin import BitcoinReader, btc_scope
from treasury.reconcile.booking import Booker, booked_state
from treasury.reconcile.drops import DEFAULT_DROP_TIMEOUT_S
from treasury.reconcile.errors import NodeUnavailableError, ReconcileError
from treasury.reconcile.ethereum import EthereumReader, TrackedToken, safe_reads
from treasury.reconcile.gate import ReconcileGate, newest_results
from treasury.reconcile.observation import Observation, Progress, no_progress
from treasury.reconcile.records import AlarmKind, RunRow, RunStatus
from treasury.reconcile.refresh import (
    DEFAULT_REFRESH_ALARM_PERCENT_LEFT,
    RefreshOutcome,
    check_alarm_percent,
    watch_refresh,
)
from treasury.reconcile.relayers import RelayerWatch, watch_relayer
from treasury.recovery_vaults import RecoveryVaultRow

log = logging.getLogger(__name__)

DEFAULT_MAX_CURSOR_AGE_S = 3600
"""A run that finds no successful run within this many seconds raises a stale-cursor alarm."""


@dataclass(frozen=True)
class VaultOutcome:
    scope: str
    ok: bool
    booked: int = 0
    reversed: int = 0
    height: int | None = None
    error: str | None = None
    unreachable: bool = False
    """The node did not answer: worth retrying after a backoff."""


@dataclass(frozen=True)
class RunReport:
    """A run's summary; ``run_id`` is ``None`` when another process held the run lock."""

    run_id: int | None
    status: RunStatus | None
    vaults: tuple[VaultOutcome, ...] = ()
    refresh: tuple[RefreshOutcome, ...] = ()
    """Each recovery vault's coins against its timelock, and what happened to its refresh alarm."""

    @property
    def skipped(self) -> bool:
        return self.run_id is None


@dataclass(frozen=True)
class _VaultJob:
    scope: str
    chain: str
    read: Callable[[Session], Observation]


class Reconciler:
    """Reconciles every Bitcoin vault and every Safe, each by its own chain's reader, once per ``run``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        bitcoin: BitcoinReader | None,
        ethereum: EthereumReader | Sequence[EthereumReader] | None,
        max_cursor_age_s: int = DEFAULT_MAX_CURSOR_AGE_S,
        drop_timeout_s: int = DEFAULT_DROP_TIMEOUT_S,
        refresh_alarm_percent_left: int = DEFAULT_REFRESH_ALARM_PERCENT_LEFT,
        clock: Clock = utc_now,
        progress: Progress = no_progress,
        relayers: Sequence[RelayerWatch] = (),
    ) -> None:
        self._sessions = sessions
        self._relayers = tuple(relayers)
        """Each chain's configured relayer, its float booked and compared after the vaults."""
        self._refresh_percent = check_alarm_percent(refresh_alarm_percent_left)
        self._bitcoin = bitcoin
        self._ethereum: tuple[EthereumReader, ...] = (
            ()
            if ethereum is None
            else (ethereum,)
            if isinstance(ethereum, EthereumReader)
            else tuple(ethereum)
        )
        """One reader per configured EVM chain (``treasury.chains``)."""
        self._max_age = timedelta(seconds=max_cursor_age_s)
        self._drop_timeout = timedelta(seconds=drop_timeout_s)
        self._clock = clock
        self._progress = progress

    def run(self) -> RunReport:
        """Reconcile every vault once (the caller holds the run lock)."""
        run_id = self._start()
        booker = Booker(run_id, self._clock, self._progress, drop_timeout=self._drop_timeout)
        outcomes = [self._vault(booker, run_id, job) for job in self._jobs()]
        outcomes += [self._relayer(run_id, watch) for watch in self._relayers]
        refresh = self._watch_refresh(run_id)
        failed = [o for o in outcomes if not o.ok]
        status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
        with self._sessions.begin() as session:
            row = session.get_one(RunRow, run_id)
            row.status = status
            row.finished_at = self._clock()
            row.booked = sum(o.booked for o in outcomes)
            row.reversed = sum(o.reversed for o in outcomes)
            row.error = "; ".join(f"{o.scope}: {o.error}" for o in failed)[:4000] or None
            self._checkpoint(session)
        log.info(
            "reconciliation run %d %s: %d vaults, %d booked, %d reversed",
            run_id, status.value, len(outcomes), row.booked, row.reversed,
            extra={"run_id": run_id},
        )  # fmt: skip
        return RunReport(run_id, status, tuple(outcomes), tuple(refresh))

    def _start(self) -> int:
        with self._sessions.begin() as session:
            now = self._clock()
            last = session.scalar(
                select(RunRow)
                .where(RunRow.status == RunStatus.SUCCEEDED)
                .order_by(RunRow.id.desc())
                .limit(1)
            )
            row = RunRow(
                started_at=now,
                pid=os.getpid(),
                host=socket.gethostname()[:200],
                status=RunStatus.RUNNING,
                booked=0,
                reversed=0,
            )
            session.add(row)
            session.flush()
            if last is not None and last.finished_at is not None:
                age = now - last.finished_at
                if age > self._max_age:
                    raise_alarm(
                        session,
                        AlarmKind.STALE_CURSOR,
                        f"stale:{last.id}",
                        "all",
                        f"The last successful reconciliation (run {last.id}) finished "
                        f"{int(age.total_seconds())} s ago, more than the "
                        f"{int(self._max_age.total_seconds())} s allowed.",
                        run_id=row.id,
                        clock=self._clock,
                    )
            return row.id

    def _jobs(self) -> list[_VaultJob]:
        jobs: list[_VaultJob] = []
        with self._sessions() as session:
            for name, wallet in session.execute(
                select(VaultRecord.name, VaultRecord.wallet_name).order_by(VaultRecord.id)
            ).all():
                jobs.append(
                    _VaultJob(btc_scope(name), "bitcoin", self._btc_reader(btc_scope(name), wallet))
                )
            for name, wallet in session.execute(
                select(RecoveryVaultRow.name, RecoveryVaultRow.wallet_name).order_by(
                    RecoveryVaultRow.id
                )
            ).all():
                jobs.append(
                    _VaultJob(btc_scope(name), "bitcoin", self._btc_reader(btc_scope(name), wallet))
                )
            for read in safe_reads(session, self._ethereum):
                if read.reader is None:
                    jobs.append(_VaultJob(read.scope, "ethereum", self._down(read.problem)))
                else:
                    jobs.append(
                        _VaultJob(
                            read.scope,
                            "ethereum",
                            self._eth_reader(read.reader, read.scope, read.address, read.tokens),
                        )
                    )
        return jobs

    def _btc_reader(self, scope: str, wallet: str) -> Callable[[Session], Observation]:
        def read(session: Session) -> Observation:
            if self._bitcoin is None:
                raise NodeUnavailableError("No bitcoind is configured for the reconciler.")
            state = booked_state(
                session, scope, "bitcoin", now=self._clock(), drop_timeout=self._drop_timeout
            )
            return self._bitcoin.observe(scope, wallet, state)

        return read

    @staticmethod
    def _eth_reader(
        ethereum: EthereumReader, scope: str, address: str, tokens: tuple[TrackedToken, ...]
    ) -> Callable[[Session], Observation]:
        def read(session: Session) -> Observation:
            state = booked_state(session, scope, "ethereum")
            return ethereum.observe(scope, address, tokens, state)

        return read

    @staticmethod
    def _down(problem: str | None) -> Callable[[Session], Observation]:
        def read(_session: Session) -> Observation:
            raise NodeUnavailableError(problem or "The EVM node did not answer eth_chainId.")

        return read

    def _vault(self, booker: Booker, run_id: int, job: _VaultJob) -> VaultOutcome:
        try:
            with self._sessions() as session:
                observation = job.read(session)
            with self._sessions.begin() as session:
                applied = booker.apply(session, observation)
        except NodeUnavailableError as exc:
            self._node_down(run_id, job, str(exc))
            return VaultOutcome(job.scope, ok=False, error=str(exc), unreachable=True)
        except (TreasuryError, ReconcileError) as exc:
            log.error("reconciling %s failed: %s", job.scope, exc, extra={"run_id": run_id})
            return VaultOutcome(job.scope, ok=False, error=str(exc))
        except Exception as exc:  # a node's unexpected answer must not stop the other vaults
            log.exception("reconciling %s failed", job.scope, extra={"run_id": run_id})
            return VaultOutcome(job.scope, ok=False, error=f"{type(exc).__name__}: {exc}")
        self._progress(
            f"{job.scope}: block {observation.target.height}, {applied.booked} booked, "
            f"{applied.reversed} reversed"
        )
        return VaultOutcome(
            job.scope, True, applied.booked, applied.reversed, observation.target.height
        )

    def _relayer(self, run_id: int, watch: RelayerWatch) -> VaultOutcome:
        """Book and compare one relayer (``relayers.py``); a failure fails the run, like a vault's."""
        scope = f"relayer:{watch.reader.expected_chain_id or 'first-chain'}:{watch.relayer}"
        try:
            found = watch_relayer(self._sessions, watch, run_id=run_id, clock=self._clock)
        except NodeUnavailableError as exc:
            self._node_down(run_id, _VaultJob(scope, "ethereum", self._down(None)), str(exc))
            return VaultOutcome(scope, ok=False, error=str(exc), unreachable=True)
        except (TreasuryError, ReconcileError) as exc:
            log.error("reconciling %s failed: %s", scope, exc, extra={"run_id": run_id})
            return VaultOutcome(scope, ok=False, error=str(exc))
        except Exception as exc:  # a node's unexpected answer must not stop the run's record
            log.exception("reconciling %s failed", scope, extra={"run_id": run_id})
            return VaultOutcome(scope, ok=False, error=f"{type(exc).__name__}: {exc}")
        self._progress(
            f"{found.scope}: block {found.height}, {found.booked} booked, float "
            f"{found.ledger_balance} (chain {found.chain_balance}){', LOW' if found.low else ''}"
        )
        return VaultOutcome(found.scope, True, found.booked, 0, found.height)

    def _watch_refresh(self, run_id: int) -> list[RefreshOutcome]:
        """The recovery vaults' windows and refresh alarms (``refresh.py``), after the bookings."""
        if self._bitcoin is None:
            return []
        return watch_refresh(
            self._sessions,
            self._bitcoin.rpc,
            self._refresh_percent,
            run_id=run_id,
            clock=self._clock,
        )

    def _node_down(self, run_id: int, job: _VaultJob, message: str) -> None:
        log.error("reconciling %s: %s", job.scope, message, extra={"run_id": run_id})
        with self._sessions.begin() as session:
            if not open_alarm_of(session, AlarmKind.NODE_UNREACHABLE, job.scope, None):
                raise_alarm(
                    session,
                    AlarmKind.NODE_UNREACHABLE,
                    f"node:{job.scope}:{run_id}",
                    job.scope,
                    f"Run {run_id} could not read {job.scope}: {message}",
                    run_id=run_id,
                    clock=self._clock,
                )

    def _checkpoint(self, session: Session) -> None:
        """Feed the policy's own checkpoint table too, so its default gate sees the same verdict."""
        gate = ReconcileGate()
        now = self._clock()
        for gate_asset in sorted({r.gate_asset for r in newest_results(session)}):
            facts = gate.latest(session, gate_asset)
            outcome = facts.outcome if facts else ReconciliationOutcome.MISMATCHED
            record_reconciliation(
                session, gate_asset, outcome, checked_at=now, detail="treasury.reconcile run"
            )
