"""Read a Safe vault's ether and ERC-20 movements and balances at a confirmed block.

Events come from custody (``custody.ethereum.events``) over block ranges ending at the confirmed
block; every log's block hash is checked against the chain's block at that number, and balances
are read at the confirmed block by hash (EIP-1898, ``custody.ethereum.balances``), so a reorg
during the read is detected, not booked.

Movements: ether received by the Safe (also from internal calls), token transfers to the Safe,
a Safe execution's ether sent (value plus an ether gas refund), token transfers from the Safe.
Each execution's SafeTx hash is the evidence an approved Safe record must name.

One reader reads one EVM chain; the reserve has Safes on several (``treasury.chains``), so the
reconciler is given one reader per configured chain. A reader configured for a chain id refuses
a node that serves another (its Safes' movements would be another chain's), and books the chain's
native coin under its own asset code (``ETH``, ``BNB``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from eth_utils.address import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session

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
from custody.ethereum.records import SafeVaultRow
from custody.ethereum.rpc import EvmRPC
from custody.exceptions import EvmRPCError, RPCError
from treasury.chains import EvmChainSettings
from treasury.ledger import ETH, AssetSpec, erc20_asset
from treasury.reconcile.errors import ChainMovedError, NodeUnavailableError
from treasury.reconcile.observation import (
    BlockRef,
    BookedState,
    ChainBalance,
    Movement,
    Observation,
    Progress,
    SpendEvent,
    no_progress,
)
from treasury.reconcile.reader import ChainNode, ConfirmedReader
from treasury.reconcile.records import MovementKind, TrackedTokenRow

DEFAULT_MIN_CONFIRMATIONS_ETH = 1
NATIVE_DECIMALS = 18
"""Every EVM chain's native coin has 18 decimals."""
LOG_RANGE_BLOCKS = 2000
"""Blocks per ``eth_getLogs`` request (and per progress line)."""


def eth_scope(chain_id: int, vault_name: str) -> str:
    """The reconciliation scope of a Safe vault (by its name, unique per database)."""
    return f"eth:{chain_id}:{vault_name}"


def native_asset(code: str, chain: str) -> AssetSpec:
    """The ledger asset of an EVM chain's native coin: ``ETH`` is the ledger's own, any other
    (``BNB``) an 18-decimal coin of the chain named ``chain``."""
    if code == ETH.code:
        return ETH
    return AssetSpec(code=code, chain=chain, unit_name="wei", decimals=NATIVE_DECIMALS)


@dataclass(frozen=True)
class TrackedToken:
    """An ERC-20 watched in every Safe of its chain: its contract, symbol and decimals.

    Its results are gated under its asset code (``ERC20:<contract>``), the name proposals, the
    policy and the statements use, never under its symbol: two tokens may share a symbol (the
    same stablecoin on two chains), and one's match must not stand for the other's.
    """

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

    def __init__(
        self,
        rpc: EvmRPC,
        *,
        min_confirmations: int | None = None,
        progress: Progress = no_progress,
        native: AssetSpec = ETH,
        expected_chain_id: int | None = None,
    ) -> None:
        super().__init__(rpc, min_confirmations=min_confirmations, progress=progress)
        self.native = native
        """The chain's native coin as the ledger books it."""
        self.expected_chain_id = expected_chain_id
        """The chain the configuration says this node serves (``None``: whichever it serves)."""

    @cached_property
    def _chain(self) -> EthChain:
        """Custody's typed reads of the node."""
        return EthChain(self._rpc)

    @property
    def node(self) -> EthChain:
        """The node, as custody reads it (for the relayer's reader)."""
        return self._chain

    def chain_id(self) -> int:
        """The node's chain id; ``NodeUnavailableError`` if it is not the configured one (the
        configured chain's node is then missing, as if it did not answer)."""
        with self._node_answers():
            served = self._rpc.chain_id()
        if self.expected_chain_id is not None and served != self.expected_chain_id:
            raise NodeUnavailableError(
                f"The EVM node at {self._rpc.url} serves chain {served}, not the configured "
                f"chain {self.expected_chain_id}; its Safes are not read from it."
            )
        return served

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
        movements, spends = _movements(safe, tokens, events, self.native)
        native = self.native
        balances = [ChainBalance(native, native.code, ether_balance(chain, safe, target))]
        balances += [
            ChainBalance(t.asset, t.asset.code, token_balance(chain, t.address, safe, target))
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
    safe: str,
    tokens: Sequence[TrackedToken],
    events: Sequence[SafeEvent],
    native: AssetSpec = ETH,
) -> tuple[tuple[Movement, ...], tuple[SpendEvent, ...]]:
    """Ledger movements and spend events from the Safe's events, in chain order (the native
    coin's as ``native``)."""
    by_token: dict[str, AssetSpec] = {to_checksum_address(t.address): t.asset for t in tokens}
    movements: list[Movement] = []
    spends: list[SpendEvent] = []
    for event in events:
        at = event.at
        key = f"eth:{at.tx_hash}:{at.log_index}"
        if isinstance(event, EtherReceived):
            if event.amount_wei:
                movements.append(
                    Movement(
                        key, MovementKind.DEPOSIT, native, event.amount_wei, at.tx_hash, at.block
                    )
                )
        elif isinstance(event, SafeExecuted):
            spends.append(
                SpendEvent(at.tx_hash, event.safe_tx_hash, at.block, native_asset=native.code)
            )
            if event.ether_sent_wei:
                movements.append(
                    Movement(
                        key,
                        MovementKind.OUTFLOW,
                        native,
                        event.ether_sent_wei,
                        at.tx_hash,
                        at.block,
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


@dataclass(frozen=True)
class SafeRead:
    """One Safe to reconcile in a run: its scope, and the reader of its chain with the tracked
    tokens of that chain, or why it cannot be read this run (``problem``)."""

    scope: str
    address: str
    reader: EthereumReader | None
    tokens: tuple[TrackedToken, ...] = ()
    problem: str | None = None


def safe_reads(session: Session, readers: Sequence[EthereumReader]) -> list[SafeRead]:
    """Every Safe in the database, each paired with the reader of its own chain.

    Each reader is asked which chain its node serves (and a reader configured for a chain id
    refuses a node that serves another); a Safe is read only by the reader of its chain, with
    that chain's tracked tokens. A Safe whose chain's node did not answer, or on a chain no
    reader serves, gets its ``problem`` instead: it is never read from another chain's node, and
    the run reports it rather than passing over it.
    """
    served: dict[int, EthereumReader] = {}
    down: dict[int | None, str] = {}
    for reader in readers:
        try:
            served.setdefault(reader.chain_id(), reader)
        except NodeUnavailableError as exc:
            down[reader.expected_chain_id] = str(exc)
    tokens = {
        chain_id: tuple(
            TrackedToken(t.address, t.symbol, t.decimals)
            for t in session.scalars(
                select(TrackedTokenRow)
                .where(TrackedTokenRow.chain_id == chain_id)
                .order_by(TrackedTokenRow.id)
            )
        )
        for chain_id in served
    }
    reads: list[SafeRead] = []
    safes = session.execute(
        select(SafeVaultRow.chain_id, SafeVaultRow.name, SafeVaultRow.address).order_by(
            SafeVaultRow.id
        )
    ).all()
    for chain_id, name, address in safes:
        scope = eth_scope(chain_id, name)
        if chain_id in served:
            reads.append(SafeRead(scope, address, served[chain_id], tokens[chain_id]))
        elif chain_id in down or None in down:
            reads.append(SafeRead(scope, address, None, problem=down.get(chain_id, down.get(None))))
        elif not readers:
            reads.append(
                SafeRead(
                    scope, address, None, problem="No EVM node is configured for the reconciler."
                )
            )
        else:
            reads.append(
                SafeRead(
                    scope,
                    address,
                    None,
                    problem=f"No EVM node of chain {chain_id} is configured for the reconciler.",
                )
            )
    return reads


def chain_readers(
    chains: Sequence[EvmChainSettings], *, progress: Progress = no_progress
) -> list[EthereumReader]:
    """One reader per configured EVM chain with a node: its depth, its native coin, and the
    chain id its node must serve (``treasury.chains``)."""
    return [
        EthereumReader(
            EvmRPC(chain.rpc_url),
            min_confirmations=chain.confirmations,
            progress=progress,
            native=native_asset(chain.native_asset, chain.name),
            expected_chain_id=chain.chain_id,
        )
        for chain in chains
        if chain.rpc_url is not None
    ]
