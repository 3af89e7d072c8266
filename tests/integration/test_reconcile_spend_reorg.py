"""Spends under reorgs and drops, on regtest and both databases: one net posting, voided once.

A confirmed spend that a reorg removes has its posting reversed and goes back to ``broadcast``;
mined again it is posted once more, however often that repeats. A spend the node dropped (mempool
expiry) is voided and failed once, past the timeout and not before; a drop that heals is forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from reconcile_authority_support import AuthorityWorld, authority_world
from spend_reorg_support import (
    audit_intact,
    confirm,
    context,
    expire_from_mempool,
    in_mempool,
    proposal_events,
    proposal_row,
    reconcile,
    spend_in_flight,
    spent_inputs,
    state_of,
    unspent,
)

from custody.devnet import BitcoinNode
from treasury import ledger
from treasury.ledger import PendingState
from treasury.proposals import ProposalState, SpendPosting
from treasury.reconcile import RunStatus, approved_outflows_account
from treasury.reconcile.accounts import fees_account
from treasury.reconcile.drops import DropPolicy

log = logging.getLogger("tests.reconcile.spend_reorg")

AMOUNT = 10_000_000
FUNDING = 200_000_000
TIMEOUT = timedelta(hours=6)


@pytest.fixture
def world(
    bitcoin_node: BitcoinNode,
    db_url: str,
    tmp_path: Path,
    test_seed: int,
    request: pytest.FixtureRequest,
) -> Iterator[AuthorityWorld]:
    """A funded vault, reconciled once, with the officers and roster of an approved spend."""
    name = f"sr{test_seed % 10**6}-{abs(hash(request.node.nodeid)) % 10**8}"
    found = authority_world(db_url, bitcoin_node, tmp_path, test_seed, name)
    found.btc.pay([FUNDING])
    assert reconcile(found).status is RunStatus.SUCCEEDED
    yield found
    found.db.engine.dispose()


def _pending_state(world: AuthorityWorld, proposal_id: int) -> PendingState:
    with world.sessions() as session:
        entry = ledger.find_entry(session, SpendPosting.key_for(proposal_id))
        assert entry is not None
        return ledger.pending_state(session, entry.id)


def _chain_balance(world: AuthorityWorld) -> int:
    coins = world.btc.wallet.call("listunspent", 1, 9_999_999, [], True)
    return sum(int(c["amount"] * 10**8) for c in coins)


def test_reorged_spend_is_reversed_back_to_broadcast_and_posted_once_when_mined_again(
    world: AuthorityWorld,
) -> None:
    """Twice reorged out and mined again, a confirmed spend keeps exactly one net posting."""
    rpc, db = world.btc.node.rpc, world.db
    ctx = context(world)
    proposal_id, txid = spend_in_flight(world, ctx, AMOUNT)
    block = world.btc.node.mine(1)[0]
    assert reconcile(world).status is RunStatus.SUCCEEDED
    confirm(world, ctx, proposal_id, txid)
    assert state_of(db, proposal_id) is ProposalState.CONFIRMED
    assert _pending_state(world, proposal_id) is PendingState.POSTED
    paid = db.posted(approved_outflows_account("BTC"))
    fees = db.posted(fees_account("BTC"))
    assert paid == AMOUNT
    assert fees > 0
    assert db.posted(world.btc.holdings) == _chain_balance(world) == FUNDING - AMOUNT - fees

    for round_number in (1, 2):
        log.info("round %d: invalidating block %s, which holds spend %s", round_number, block, txid)
        rpc.call("invalidateblock", block)
        world.btc.node.sync_wallets()
        assert in_mempool(world, txid)
        assert reconcile(world).status is RunStatus.SUCCEEDED
        assert state_of(db, proposal_id) is ProposalState.BROADCAST
        assert db.posted(approved_outflows_account("BTC")) == 0
        assert db.posted(fees_account("BTC")) == 0
        assert db.posted(world.btc.holdings) == FUNDING
        assert db.trial_balance_zero()
        assert proposal_events(db, proposal_id).count("reorged_out") == round_number
        with world.sessions() as session:
            reversal = ledger.find_entry(
                session, f"{SpendPosting.key_for(proposal_id)}:post"
                + ("" if round_number == 1 else f"#{round_number}") + ":reorg"
            )  # fmt: skip
        assert reversal is not None
        assert reversal.reverses_id is not None

        log.info("round %d: the spend is mined in a new block", round_number)
        block = world.btc.node.mine(1)[0]
        entries = db.entry_count()
        for _ in range(3):
            assert reconcile(world).status is RunStatus.SUCCEEDED
        assert db.entry_count() == entries + 1  # one re-posting, however often it runs
        assert state_of(db, proposal_id) is ProposalState.CONFIRMED
        assert db.posted(approved_outflows_account("BTC")) == AMOUNT
        assert db.posted(fees_account("BTC")) == fees
        assert db.posted(world.btc.holdings) == _chain_balance(world)
        assert db.trial_balance_zero()
        confirm(world, ctx, proposal_id, txid)  # the workflow's refresh: a replay, books nothing
        assert db.entry_count() == entries + 1

    active = [b for b in db.bookings(world.btc.scope) if b.tx_ref == txid]
    assert [(b.generation, b.reversal_entry_id is None) for b in active] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert proposal_events(db, proposal_id).count("mined_again") == 2
    assert audit_intact(db)


def test_spend_dropped_past_the_timeout_is_voided_and_failed_once(world: AuthorityWorld) -> None:
    """Expired from the mempool for six hours, a spend is voided, failed and its inputs freed, once."""
    db = world.db
    ctx = context(world)
    proposal_id, txid = spend_in_flight(world, ctx, AMOUNT)
    inputs = spent_inputs(world, txid)
    expire_from_mempool(world, txid)
    assert not inputs <= unspent(world)  # the wallet still counts the dropped spend's inputs spent

    start = datetime.now(UTC)
    assert reconcile(world, at=start).status is RunStatus.SUCCEEDED
    assert proposal_events(db, proposal_id)[-1] == "dropped_from_mempool"
    assert _pending_state(world, proposal_id) is PendingState.PENDING

    entries = db.entry_count()
    for _ in range(2):
        assert reconcile(world, at=start + TIMEOUT + timedelta(seconds=1)).status is (
            RunStatus.SUCCEEDED
        )
    assert db.entry_count() == entries + 1  # one void
    assert _pending_state(world, proposal_id) is PendingState.VOIDED
    row = proposal_row(db, proposal_id)
    assert row.state == ProposalState.FAILED.value
    assert row.closed_reason is not None
    assert "dropped" in row.closed_reason
    assert proposal_events(db, proposal_id).count("failed") == 1
    assert inputs <= unspent(world)  # abandoned in the wallet: the inputs fund the next spend
    assert db.posted(world.btc.holdings) == FUNDING == _chain_balance(world)
    with world.sessions() as session:
        assert ledger.balance(session, world.btc.holdings).available == FUNDING
    assert db.trial_balance_zero()
    assert audit_intact(db)


def test_spend_dropped_within_the_timeout_is_left_alone_and_a_healed_drop_is_forgotten(
    world: AuthorityWorld,
) -> None:
    """Before the timeout nothing is voided; once back in the mempool, the old drop never counts."""
    db = world.db
    ctx = context(world)
    proposal_id, txid = spend_in_flight(world, ctx, AMOUNT)
    raw = world.btc.wallet.call("gettransaction", txid, True)["hex"]
    expire_from_mempool(world, txid)
    start = datetime.now(UTC)
    reconcile(world, at=start)
    entries = db.entry_count()
    reconcile(world, at=start + TIMEOUT - timedelta(seconds=1))
    assert db.entry_count() == entries
    assert state_of(db, proposal_id) is ProposalState.BROADCAST
    assert _pending_state(world, proposal_id) is PendingState.PENDING

    log.info("someone sends the signed transaction again: the drop is healed")
    world.btc.node.rpc.call("sendrawtransaction", raw)
    world.btc.node.sync_wallets()
    reconcile(world, at=start + TIMEOUT)
    assert proposal_events(db, proposal_id)[-1] == "back_in_mempool"
    reconcile(world, at=start + 2 * TIMEOUT)
    assert state_of(db, proposal_id) is ProposalState.BROADCAST
    assert _pending_state(world, proposal_id) is PendingState.PENDING
    assert db.entry_count() == entries
    world.btc.node.mine(1)
    reconcile(world, at=start + 2 * TIMEOUT)
    assert _pending_state(world, proposal_id) is PendingState.POSTED
    assert db.trial_balance_zero()
    assert audit_intact(db)


def test_rebroadcast_policy_sends_a_dropped_spend_again(world: AuthorityWorld) -> None:
    """With the rebroadcast policy, a spend dropped past the timeout is sent again, not voided."""
    db = world.db
    ctx = context(world)
    proposal_id, txid = spend_in_flight(world, ctx, AMOUNT)
    expire_from_mempool(world, txid)
    start = datetime.now(UTC)
    reconcile(world, at=start, policy=DropPolicy.REBROADCAST)
    entries = db.entry_count()
    reconcile(world, at=start + TIMEOUT, policy=DropPolicy.REBROADCAST)
    assert in_mempool(world, txid)
    assert state_of(db, proposal_id) is ProposalState.BROADCAST
    assert _pending_state(world, proposal_id) is PendingState.PENDING
    assert db.entry_count() == entries
    assert proposal_events(db, proposal_id)[-2:] == ["rebroadcast", "back_in_mempool"]
    assert audit_intact(db)
