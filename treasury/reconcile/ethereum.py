"""Read a Safe vault's ether and ERC-20 movements and balances at a confirmed block.

Events come from custody (``custody.ethereum.events``) over block ranges ending at the confirmed
block; every log's block hash is checked against the chain's block at that number, and balances
are read at the confirmed block by hash (EIP-1898, ``custody.ethereum.balances``), so a reorg
during the read is detected, not booked.

Movements: ether received by the Safe (also from internal calls), token transfers to the Safe,
a Safe execution's ether sent (value plus an ether gas refund), token transfers from the Safe.
Each execution's SafeTx hash is the evidence an approved Safe record must name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from eth_utils.address import to_checksum_address

from custody.ethereum.balances import ether_balance, token_balance
from custody.ethereum.chain import EthChain
from custody.ethereum.events import (
    EtherReceived,
    LogRef,
    SafeEvent,
    SafeExecuted,
    TokenTransferred,
    safe_logs,
)
from custody.ethereum.rpc import EvmRPC
from custody.exceptions import EvmRPCError, RPCError
from treasury.ledger import ETH, AssetSpec, erc20_asset
from treasury.reconcile.errors import ChainMovedError
from treasury.reconcile.observation import (
    BlockRef,
    BookedState,
    ChainBalance,
    Movement,
    Observation,
    SpendEvent,
)
from treasury.reconcile.reader import ChainNode, ConfirmedReader
from treasury.reconcile.records import MovementKind

DEFAULT_MIN_CONFIRMATIONS_ETH = 1
LOG_RANGE_BLOCKS = 2000
"""Blocks per ``eth_getLogs`` request (and per progress line)."""


def eth_scope(chain_id: int, vault_name: str) -> str:
    """The reconciliation scope of a Safe vault (by its name, unique per database)."""
    return f"eth:{chain_id}:{vault_name}"


@dataclass(frozen=True)
class TrackedToken:
    """An ERC-20 watched in every Safe: its contract, proposal symbol and decimals."""

    address: str
    symbol: str
    decimals: int

    @property
    def asset(self) -> AssetSpec:
        return erc20_asset(to_checksum_address(self.address), self.decimals)


def _unreachable(exc: RPCError) -> bool:
    """The EVM node could not be reached (an error it answers with carries a code)."""
    return isinstance(exc, EvmRPCError) and exc.code is None


class EthereumReader(ConfirmedReader[EvmRPC]):
    """Observations of Safe vaults from one EVM node."""

    kind = ChainNode("ethereum", "The EVM node", DEFAULT_MIN_CONFIRMATIONS_ETH, _unreachable)

    @cached_property
    def _chain(self) -> EthChain:
        """Custody's typed reads of the node."""
        return EthChain(self._rpc)

    def chain_id(self) -> int:
        with self._node_answers():
            return self._rpc.chain_id()

    def _canonical(self, height: int) -> str | None:
        return self._chain.block_hash(height)

    def observe(
        self, scope: str, safe: str, tokens: Sequence[TrackedToken], state: BookedState
    ) -> Observation:
        """Read the Safe up to the confirmed block; ``ChainMovedError`` if it reorganised meanwhile."""
        with self._node_answers():
            return self._observe(scope, to_checksum_address(safe), tokens, state)

    def _observe(
        self, scope: str, safe: str, tokens: Sequence[TrackedToken], state: BookedState
    ) -> Observation:
        chain = self._chain
        height, resume = self._window(state, chain.block_number())
        if (idle := self._nothing_new(scope, height, resume)) is not None:
            return idle
        target = BlockRef(height, str(chain.block_hash(height)))
        first = 0 if resume.start is None else resume.start.height + 1
        logs: list[LogRef] = []
        events: list[SafeEvent] = []
        for start in range(first, height + 1, LOG_RANGE_BLOCKS):
            end = min(start + LOG_RANGE_BLOCKS - 1, height)
            read = safe_logs(chain, safe, [t.address for t in tokens], start, end)
            logs += read.logs
            events += read.events
            self._progress(f"{scope}: read blocks {start}..{end} of {height}")
        self._check_hashes(logs, target)
        movements, spends = _movements(safe, tokens, events)
        balances = [ChainBalance(ETH, "ETH", ether_balance(chain, safe, target))]
        balances += [
            ChainBalance(t.asset, t.symbol, token_balance(chain, t.address, safe, target))
            for t in tokens
        ]
        failed = tuple(tx for tx in state.in_flight if chain.reverted(tx))
        if chain.block_hash(height) != target.hash:
            raise ChainMovedError(f"Block {height} changed while vault {scope} was read.")
        return Observation(
            scope,
            self.chain,
            target,
            resume.orphaned_above,
            movements,
            spends,
            tuple(balances),
            failed,
        )

    def _check_hashes(self, logs: list[LogRef], target: BlockRef) -> None:
        seen: dict[int, str] = {target.height: target.hash}
        for log in logs:
            number = log.block.height
            if number not in seen:
                seen[number] = str(self._canonical(number))
            if log.removed or seen[number] != log.block.hash:
                raise ChainMovedError(
                    f"A log of transaction {log.tx_hash} names block {log.block.hash}, "
                    f"which is not the chain's block {number} any more."
                )


def _movements(
    safe: str, tokens: Sequence[TrackedToken], events: Sequence[SafeEvent]
) -> tuple[tuple[Movement, ...], tuple[SpendEvent, ...]]:
    """Ledger movements and spend events from the Safe's events, in chain order."""
    by_token: dict[str, AssetSpec] = {to_checksum_address(t.address): t.asset for t in tokens}
    movements: list[Movement] = []
    spends: list[SpendEvent] = []
    for event in events:
        at = event.at
        key = f"eth:{at.tx_hash}:{at.log_index}"
        if isinstance(event, EtherReceived):
            if event.amount_wei:
                movements.append(
                    Movement(key, MovementKind.DEPOSIT, ETH, event.amount_wei, at.tx_hash, at.block)
                )
        elif isinstance(event, SafeExecuted):
            spends.append(SpendEvent(at.tx_hash, event.safe_tx_hash, at.block))
            if event.ether_sent_wei:
                movements.append(
                    Movement(
                        key, MovementKind.OUTFLOW, ETH, event.ether_sent_wei, at.tx_hash, at.block
                    )
                )
        elif isinstance(event, TokenTransferred):
            if not event.amount or event.sender == event.receiver:
                continue
            kind = MovementKind.DEPOSIT if event.receiver == safe else MovementKind.OUTFLOW
            asset = by_token[event.token]
            movements.append(Movement(key, kind, asset, event.amount, at.tx_hash, at.block))
            if kind is MovementKind.OUTFLOW and not any(s.tx_ref == at.tx_hash for s in spends):
                spends.append(SpendEvent(at.tx_hash, None, at.block))
    return tuple(movements), _explained(spends)


def _explained(events: list[SpendEvent]) -> tuple[SpendEvent, ...]:
    """Drop the placeholder of a token outflow whose transaction also executed a SafeTx."""
    executed = {e.tx_ref for e in events if e.evidence is not None}
    return tuple(e for e in events if e.evidence is not None or e.tx_ref not in executed)
