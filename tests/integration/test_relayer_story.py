"""The demo's relayer step on a real anvil: a dedicated relayer funded and booked as its float, the
story's Safe execution relayed through it, and its gas shown as booked fees (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from reconcile_support import (
    Db,
    create_safe,
    deployed,
    eth_key,
    migrated,
    rng_for,
    safe_institutions,
)
from sqlalchemy.orm import Session, sessionmaker

from custody.clock import Clock
from custody.devnet import EvmNode
from custody.ethereum import EthChain, SafeVaults, sign_safe_tx_hash
from treasury.reconcile.accounts import fees_account
from treasury.story.relayers import RELAYER_FUNDING_WEI, open_relayers, show_relayers
from treasury.story.second_chain import SecondChain

SAFE = "story-relayed"
STORY_ACCOUNT = 6
"""A development account no other test uses as a relayer."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class StandIn:
    """What the relayers' story reads of ``story.Reserve``: sessions, clock, node, relayer."""

    sessions: sessionmaker[Session]
    evm: EvmNode
    relayer: str
    clock: Clock = field(default=_now)
    second_chain: SecondChain | None = None


@pytest.fixture
def db(db_url: str) -> Iterator[Db]:
    found = migrated(db_url)
    yield found
    found.engine.dispose()


def test_the_story_relays_through_a_funded_relayer_and_books_its_gas(
    evm_node: EvmNode, db: Db, test_seed: int, request: pytest.FixtureRequest
) -> None:
    """open_relayers funds the account with one coin and books it; a Safe execution relayed by it
    afterwards appears in show_relayers as gas booked as fees, the float matching the chain; it
    prints one line per chain each time."""
    chain = EthChain(evm_node.rpc)
    deployed(chain)
    rng = rng_for(test_seed, request.node.nodeid)
    people = safe_institutions(test_seed)
    vaults = SafeVaults(chain, db.sessions, random_bytes=rng.randbytes)
    safe = create_safe(vaults, SAFE, people, rng.getrandbits(128))
    chain.transact(chain.accounts()[0], safe, b"", value=10**15, action="fund the Safe")
    reserve = StandIn(db.sessions, evm_node, chain.accounts()[0])
    lines: list[str] = []
    (story,) = open_relayers(reserve, lines.append, account_index=STORY_ACCOUNT)
    assert reserve.relayer == chain.accounts()[STORY_ACCOUNT] == story.watch.relayer
    assert len(lines) == 1
    assert "1 ETH" in lines[0]
    assert "0.05 ETH" in lines[0]
    assert story.native == "ETH"

    safe_tx = vaults.propose(SAFE, vaults.new_safe_tx(SAFE, chain.accounts()[9], 1))
    for person in people[:2]:
        vaults.add_signature(
            safe_tx.hash_hex, sign_safe_tx_hash(eth_key(person), safe_tx.hash).encode()
        )
    receipt = vaults.execute(safe_tx.hash_hex, reserve.relayer)
    raw = chain.rpc.call("eth_getTransactionReceipt", receipt.tx_hash)
    gas = int(raw["gasUsed"], 16) * int(raw["effectiveGasPrice"], 16)

    (outcome,) = show_relayers(reserve, (story,), lines.append)
    assert len(lines) == 2
    assert "matches the chain" in lines[1]
    assert outcome.ledger_balance == outcome.chain_balance == RELAYER_FUNDING_WEI - gas
    assert db.posted(fees_account("ETH")) == gas
