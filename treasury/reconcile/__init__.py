"""Reconciliation: keeps the state ledger true to the chains.

Each run reads every vault at a confirmed block (``bitcoin.py``, ``ethereum.py``), books what it
finds exactly once, reverses what reorgs removed (``booking.py``; a spend's own posting too, its
proposal back to ``broadcast``: ``settlement.py``), fails spends the node dropped for longer than
a timeout (``drops.py``), authorises an outflow only on
the officers' verified signed statements (``authorisation.py``), compares balances, and raises
alarms (``alarms.py``) that block spends through the policy gate (``gate.py``) until officers
acknowledge them. Each chain's configured relayer has its float booked too: top-ups, the gas of
the Safes' executions as fees, and a low-balance warning that does not block (``relayers.py``).
``treasury.scheduler`` runs it on an interval, one process at a time (``lock.py``),
retrying a run whose node was unreachable (``retries.py``).
"""

from treasury.reconcile.accounts import (
    approved_outflows_account,
    holdings_account,
    inflows_account,
    suspense_account,
)
from treasury.reconcile.alarms import Alarm, acknowledge, get_alarm, list_alarms
from treasury.reconcile.bitcoin import BitcoinReader, btc_scope
from treasury.reconcile.errors import (
    AcknowledgementError,
    ChainMovedError,
    NodeUnavailableError,
    ReconcileConfigError,
    ReconcileError,
    UnknownAlarmError,
)
from treasury.reconcile.ethereum import EthereumReader, TrackedToken, eth_scope
from treasury.reconcile.gate import ReconcileGate, newest_results, reconciliation_gate
from treasury.reconcile.lock import run_lock
from treasury.reconcile.reconciler import Reconciler, RunReport, VaultOutcome
from treasury.reconcile.records import RECONCILE_TABLES, AlarmKind, RunStatus
from treasury.reconcile.relayers import RelayerWatch, relayer_floats, relayer_watches
from treasury.reconcile.service import (
    ReconcileSettings,
    configured_nodes,
    reconcile_now,
    track_token,
)

__all__ = [
    "RECONCILE_TABLES",
    "AcknowledgementError",
    "Alarm",
    "AlarmKind",
    "BitcoinReader",
    "ChainMovedError",
    "EthereumReader",
    "NodeUnavailableError",
    "ReconcileConfigError",
    "ReconcileError",
    "ReconcileGate",
    "ReconcileSettings",
    "Reconciler",
    "RelayerWatch",
    "RunReport",
    "RunStatus",
    "TrackedToken",
    "UnknownAlarmError",
    "VaultOutcome",
    "acknowledge",
    "approved_outflows_account",
    "btc_scope",
    "configured_nodes",
    "eth_scope",
    "get_alarm",
    "holdings_account",
    "inflows_account",
    "list_alarms",
    "newest_results",
    "reconcile_now",
    "reconciliation_gate",
    "relayer_floats",
    "relayer_watches",
    "run_lock",
    "suspense_account",
    "track_token",
]
