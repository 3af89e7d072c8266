"""The reconciler's Bitcoin balance on a real regtest vault: coins locked by a spend being
prepared are still the vault's, and spends after the confirmed block are added back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reconcile_support import BtcWorld, btc_world, migrated, run

from custody.bitcoin import observe
from custody.devnet import BitcoinNode
from treasury.reconcile import RunStatus
from treasury.reconcile.records import ResultRow

pytestmark = pytest.mark.integration


@pytest.fixture
def world(
    bitcoin_node: BitcoinNode,
    db_url: str,
    tmp_path: Path,
    test_seed: int,
    request: pytest.FixtureRequest,
) -> Iterator[BtcWorld]:
    db = migrated(db_url)
    name = f"bal{test_seed % 10**6}-{abs(hash(request.node.nodeid)) % 10**8}"
    yield btc_world(db, bitcoin_node, tmp_path, test_seed, name)
    db.engine.dispose()


def test_a_locked_coin_still_counts_in_the_balance_and_the_run_matches(world: BtcWorld) -> None:
    """A coin locked in the vault's wallet (as preparing a spend does) is in the chain balance."""
    world.pay([7_000_000])
    world.pay([3_000_000])
    wallet = world.wallet
    coin = wallet.call("listunspent", 1)[0]
    wallet.call("lockunspent", False, [{"txid": coin["txid"], "vout": coin["vout"]}])
    try:
        tip = observe.last_processed_block(wallet)
        assert observe.balance_at(wallet, tip, 1) == 10_000_000
        report = run(world.db, bitcoin=world.node.rpc)
    finally:
        wallet.call("lockunspent", True, [{"txid": coin["txid"], "vout": coin["vout"]}])
    assert report.status is RunStatus.SUCCEEDED
    with world.db.sessions() as session:
        result = session.query(ResultRow).filter(ResultRow.scope == world.scope).one()
    assert (result.chain_balance, result.ledger_balance, result.matched) == (
        10_000_000,
        10_000_000,
        True,
    )


def test_the_balance_at_the_confirmed_block_leaves_out_shallower_deposits(world: BtcWorld) -> None:
    """At the block two confirmations deep, a deposit in the tip block is not counted yet."""
    world.pay([2_000_000])
    wallet = world.wallet
    confirmed = observe.last_processed_block(wallet)
    world.pay([5_000_000])
    assert observe.balance_at(wallet, confirmed, 2) == 2_000_000
    assert observe.balance_at(wallet, observe.last_processed_block(wallet), 1) == 7_000_000
