"""The demo's relayers: a dedicated gas account per EVM chain, funded, watched and booked.

Until this step the story's Safe executions are relayed by each devnet's first account, which also
deployed the contracts and paid the deposits. ``open_relayers`` gives each chain a relayer of its
own (an anvil development account the node signs for, its balance set to nothing and then topped
up from the first account), hands it to the story's spenders, and has the reconciler take its
opening balance. After the spends, ``show_relayers`` reconciles each relayer again: the gas of
every Safe execution it sent is booked as a fee, its float in the ledger is compared with the
chain, and its low-balance threshold is shown (``treasury.reconcile.relayers``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from custody.clock import Clock
from custody.devnet import EvmNode
from custody.ethereum.chain import EthChain
from treasury.chains import DEFAULT_RELAYER_MIN_BALANCE, NATIVE_DECIMALS
from treasury.ledger import format_amount
from treasury.reconcile.ethereum import EthereumReader, native_asset
from treasury.reconcile.relayers import (
    RelayerOutcome,
    RelayerWatch,
    relayer_floats,
    watch_relayer,
)
from treasury.story.second_chain import SecondChain

Echo = Callable[[str], None]

RELAYER_ACCOUNT_INDEX = 7
"""Which development account relays (the story's payees are accounts 8 and 9)."""
RELAYER_FUNDING_WEI = 10**18
"""What each relayer is topped up with from the devnet's first account: one coin."""


class RelayedReserve(Protocol):
    """What the relayers' story reads of the reserve and changes in it (``story.Reserve``)."""

    sessions: sessionmaker[Session]
    evm: EvmNode
    relayer: str
    second_chain: SecondChain | None

    @property
    def clock(self) -> Clock: ...


@dataclass(frozen=True)
class StoryRelayer:
    """One chain's dedicated relayer in the story, and the watch the reconciler runs over it."""

    chain_name: str
    chain_id: int
    watch: RelayerWatch

    @property
    def native(self) -> str:
        return self.watch.reader.native.code


def _coins(wei: int) -> str:
    return format_amount(wei, NATIVE_DECIMALS).rstrip("0").rstrip(".")


def _fund(node: EvmNode, account_index: int) -> str:
    """A development account with its balance set to nothing, then topped up from the first."""
    chain = EthChain(node.rpc)
    accounts = chain.accounts()
    relayer = accounts[account_index]
    node.rpc.call("anvil_setBalance", relayer, hex(0))
    chain.transact(
        accounts[0], relayer, b"", action="top up the relayer", value=RELAYER_FUNDING_WEI
    )
    return relayer


def open_relayers(
    reserve: RelayedReserve, echo: Echo, *, account_index: int = RELAYER_ACCOUNT_INDEX
) -> tuple[StoryRelayer, ...]:
    """Give each chain a funded relayer of its own, relay the story's spends through it, and book
    its opening float. Prints one line per chain."""
    nodes: list[tuple[str, EvmNode, str, int | None]] = [("reserve", reserve.evm, "ETH", None)]
    second = reserve.second_chain
    if second is not None:
        nodes.append(
            (second.settings.name, second.node, second.settings.native_asset, second.safe.chain_id)
        )
    found = []
    for name, node, code, chain_id in nodes:
        relayer = _fund(node, account_index)
        reader = EthereumReader(
            node.rpc, native=native_asset(code, name), expected_chain_id=chain_id
        )
        watch = RelayerWatch(reader, relayer, DEFAULT_RELAYER_MIN_BALANCE)
        opened = watch_relayer(reserve.sessions, watch, clock=reserve.clock)
        found.append(StoryRelayer(name, reader.chain_id(), watch))
        echo(
            f"   relayer {relayer} on chain {reader.chain_id()}: {_coins(opened.chain_balance)} "
            f"{code} from the devnet's first account, booked as its float; warns below "
            f"{_coins(DEFAULT_RELAYER_MIN_BALANCE)} {code}"
        )
    reserve.relayer = found[0].watch.relayer
    if second is not None:
        reserve.second_chain = replace(second, relayer=found[1].watch.relayer)
    return tuple(found)


def show_relayers(
    reserve: RelayedReserve, relayers: tuple[StoryRelayer, ...], echo: Echo
) -> tuple[RelayerOutcome, ...]:
    """Reconcile each relayer after the spends: gas booked as fees, float against the chain.
    Prints one line per chain."""
    outcomes = []
    for story in relayers:
        outcome = watch_relayer(reserve.sessions, story.watch, clock=reserve.clock)
        with reserve.sessions() as session:
            gas = sum(
                f.gas_booked
                for f in relayer_floats(session)
                if (f.chain_id, f.relayer) == (story.chain_id, story.watch.relayer)
            )
        agreement = "matches" if outcome.ledger_balance == outcome.chain_balance else "DIFFERS from"
        echo(
            f"   relayer on chain {story.chain_id}: {_coins(gas)} {story.native} of gas booked "
            f"as fees; float {_coins(outcome.ledger_balance)} {story.native} {agreement} the "
            f"chain{' (LOW: top it up)' if outcome.low else ''}"
        )
        outcomes.append(outcome)
    return tuple(outcomes)


__all__ = ["StoryRelayer", "open_relayers", "show_relayers"]
