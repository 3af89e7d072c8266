"""``reconcile_now``: one locked run against the given nodes and database; and its settings.

Which nodes and which database are the caller's to say (``treasury.settings`` resolves them at
the edge); credentials are read at run time and never stored with the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.bitcoin.rpc import BitcoinRPC
from custody.clock import Clock, utc_now
from custody.ethereum.rpc import EvmRPC
from custody.ethereum.signer import ERC20_ASSET_PREFIX
from custody.nodes import NodeEndpoints
from treasury.chains import EvmChainSettings
from treasury.db import make_engine, session_factory
from treasury.reconcile.bitcoin import DEFAULT_MIN_CONFIRMATIONS_BTC, BitcoinReader
from treasury.reconcile.drops import DEFAULT_DROP_TIMEOUT_S, DropPolicy
from treasury.reconcile.errors import ReconcileConfigError
from treasury.reconcile.ethereum import (
    DEFAULT_MIN_CONFIRMATIONS_ETH,
    EthereumReader,
    chain_readers,
)
from treasury.reconcile.lock import run_lock
from treasury.reconcile.observation import Progress, no_progress
from treasury.reconcile.reconciler import DEFAULT_MAX_CURSOR_AGE_S, Reconciler, RunReport
from treasury.reconcile.records import TrackedTokenRow
from treasury.reconcile.refresh import DEFAULT_REFRESH_ALARM_PERCENT_LEFT
from treasury.reconcile.relayers import relayer_watches


@dataclass(frozen=True)
class ReconcileSettings:
    """How deep a block must be before it is booked, how old a run may get, and what happens to
    a spend the node dropped (``drops.py``).

    Read from ``TREASURY_RECONCILE_*`` by ``treasury.settings``.
    """

    btc_min_confirmations: int = DEFAULT_MIN_CONFIRMATIONS_BTC
    eth_min_confirmations: int = DEFAULT_MIN_CONFIRMATIONS_ETH
    max_cursor_age_s: int = DEFAULT_MAX_CURSOR_AGE_S
    dropped_spend_timeout_s: int = DEFAULT_DROP_TIMEOUT_S
    dropped_spend_policy: DropPolicy = DropPolicy.VOID
    refresh_alarm_percent_left: int = DEFAULT_REFRESH_ALARM_PERCENT_LEFT
    """A recovery vault's refresh alarm opens when a coin has at most this share of ``N`` left."""


def configured_nodes(endpoints: NodeEndpoints) -> tuple[BitcoinRPC | None, EvmRPC | None]:
    """Clients of the bitcoind and reserve EVM node in ``endpoints`` (``None`` for a missing one)."""
    bitcoin = None if endpoints.bitcoin is None else endpoints.bitcoin.rpc()
    evm = None if endpoints.reserve_rpc_url is None else EvmRPC(endpoints.reserve_rpc_url)
    return bitcoin, evm


def reconcile_now(
    url: str | None = None,
    *,
    bitcoin: BitcoinRPC | None,
    evm: EvmRPC | None,
    settings: ReconcileSettings | None = None,
    clock: Clock = utc_now,
    progress: Progress = no_progress,
    evm_chains: Sequence[EvmChainSettings] = (),
    reserve_chain: EvmChainSettings | None = None,
) -> RunReport:
    """Run once if no other process is reconciling (else a skipped report), and dispose after.

    ``evm`` is the reserve's first EVM chain; ``evm_chains`` the further ones
    (``Settings.evm_chains``), each read by its own reader. Each chain's configured relayer is
    watched (``relayers.py``): the further chains' come with them, the first's with
    ``reserve_chain`` (``Settings.reserve_chain()``), read through ``evm``.
    """
    settings = settings or ReconcileSettings()
    ethereum = (
        []
        if evm is None
        else [
            EthereumReader(evm, min_confirmations=settings.eth_min_confirmations, progress=progress)
        ]
    )
    ethereum += chain_readers(evm_chains, progress=progress)
    relayed = list(evm_chains)
    if evm is not None and reserve_chain is not None and reserve_chain.relayer is not None:
        relayed.insert(0, replace(reserve_chain, rpc_url=evm.url))
    engine = make_engine(url)
    try:
        with run_lock(engine) as held:
            if not held:
                return RunReport(None, None)
            reconciler = Reconciler(
                session_factory(engine),
                bitcoin=None
                if bitcoin is None
                else BitcoinReader(
                    bitcoin,
                    min_confirmations=settings.btc_min_confirmations,
                    progress=progress,
                    drop_policy=settings.dropped_spend_policy,
                ),
                ethereum=ethereum,
                max_cursor_age_s=settings.max_cursor_age_s,
                drop_timeout_s=settings.dropped_spend_timeout_s,
                refresh_alarm_percent_left=settings.refresh_alarm_percent_left,
                clock=clock,
                progress=progress,
                relayers=relayer_watches(relayed),
            )
            return reconciler.run()
    finally:
        engine.dispose()


def track_token(session: Session, chain_id: int, address: str, symbol: str, decimals: int) -> None:
    """Watch an ERC-20 in every Safe of ``chain_id`` (idempotent; the caller commits)."""
    if not symbol or len(symbol) > 16 or not symbol.isalnum():
        raise ReconcileConfigError(f"The token symbol {symbol!r} must be 1-16 letters or digits.")
    if not 0 <= decimals <= 77:
        raise ReconcileConfigError(f"The token decimals must be between 0 and 77, not {decimals}.")
    existing = session.scalar(
        select(TrackedTokenRow).where(
            TrackedTokenRow.chain_id == chain_id, TrackedTokenRow.address == address
        )
    )
    elsewhere = session.scalar(
        select(TrackedTokenRow.chain_id).where(
            TrackedTokenRow.chain_id != chain_id,
            func.lower(TrackedTokenRow.address) == address.lower(),
        )
    )
    if elsewhere is not None:
        # The asset code ERC20:<contract> carries no chain id, so the same contract address on
        # two chains (a deterministic deployment, the same deployer and nonce) would be one asset
        # in the ledger, the policy's limits and the attestation's registry: refused outright.
        raise ReconcileConfigError(
            f"The token contract {address} is already tracked on chain {elsewhere}; its asset "
            f"code {ERC20_ASSET_PREFIX}{address} would name two tokens, so it cannot also be "
            f"tracked on chain {chain_id}."
        )
    if existing is None:
        session.add(
            TrackedTokenRow(chain_id=chain_id, address=address, symbol=symbol, decimals=decimals)
        )
        session.flush()
    elif (existing.symbol, existing.decimals) != (symbol, decimals):
        raise ReconcileConfigError(
            f"The token {address} is already tracked as {existing.symbol} with "
            f"{existing.decimals} decimals."
        )
