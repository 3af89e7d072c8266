"""Set-up for spends under reorgs and drops: a real approved spend held by the workflow's own code.

``reconcile_authority_support`` gives the vault, the officers and a founded roster; here a spend
goes the legitimate way (officers' statements, custody's gated signers, bitcoind) and is then
recorded by the workflow's own ``record_broadcast`` (the pending ledger entry) and confirmed by its
own ``settle`` at the depth the node reports, so the reconciler meets exactly what production
leaves behind. ``expire_from_mempool`` drops a transaction the way a node really does: bitcoind's
mempool expiry (``-mempoolexpiry``, 336 h), reached by moving the node's clock forward.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from reconcile_authority_support import AuthorityWorld
from reconcile_support import INSTITUTIONS, Db
from sqlalchemy import select

from custody.bitcoin import broadcast_spend, sign_spend
from custody.shamir import parse_shares
from treasury import audit
from treasury.proposals import LedgerSpendHook, ProposalState, SpendAccounts, SpendProposalRow
from treasury.proposals.broadcasting import record_broadcast, settle
from treasury.proposals.context import WorkflowContext
from treasury.proposals.rows import current_tx, prepared
from treasury.reconcile import (
    BitcoinReader,
    ReconcileGate,
    Reconciler,
    RunReport,
    approved_outflows_account,
)
from treasury.reconcile.accounts import fees_account
from treasury.reconcile.drops import DropPolicy

MEMPOOL_EXPIRY = timedelta(days=15)
"""Past bitcoind's default ``-mempoolexpiry`` of 336 hours."""
LONG_AGO_S = 10**8
"""A cursor age no test reaches: moving the reconciler's clock must not raise stale alarms."""


def context(world: AuthorityWorld) -> WorkflowContext:
    """The workflow's context over the reconciler's accounts (as ``treasury.wiring`` builds it)."""
    accounts = SpendAccounts(
        world.btc.holdings, approved_outflows_account("BTC"), fees_account("BTC")
    )
    return WorkflowContext(
        world.sessions,
        LedgerSpendHook({"BTC": accounts}),
        lambda: datetime.now(UTC),
        ReconcileGate(),
        {"BTC": 1},
    )


def spend_in_flight(world: AuthorityWorld, ctx: WorkflowContext, amount: int) -> tuple[int, str]:
    """An approved spend signed by custody's gated signers, sent, and recorded by the workflow."""
    proposal_id, spend_id, psbt = world.btc_proposal(world.destinations["BTC"], amount)
    world.approve_btc(proposal_id, psbt)
    evidence = world.evidence(proposal_id)
    for institution in INSTITUTIONS[:2]:
        with world.sessions.begin() as session:
            sign_spend(
                session, spend_id, institution,
                parse_shares(world.btc.shares[institution][:2]), "", authority=evidence,
            )  # fmt: skip
    with world.sessions.begin() as session:
        txid = broadcast_spend(session, world.btc.node.rpc, spend_id)
    with world.sessions.begin() as session:
        row = session.get_one(SpendProposalRow, proposal_id)
        row.state = ProposalState.SIGNED.value
        row.broadcast_started_at = datetime.now(UTC)

    def record(session):  # type: ignore[no-untyped-def]
        tx = current_tx(session, proposal_id)
        assert tx is not None
        record_broadcast(ctx, session, proposal_id, prepared(tx), txid)

    ctx.write(record)
    world.btc.node.sync_wallets()
    return proposal_id, txid


def confirm(world: AuthorityWorld, ctx: WorkflowContext, proposal_id: int, txid: str) -> None:
    """The workflow's refresh: settle at the depth the vault's wallet reports."""
    depth = int(world.btc.wallet.call("gettransaction", txid, True)["confirmations"])
    ctx.write(lambda session: settle(ctx, session, proposal_id, depth))


def state_of(db: Db, proposal_id: int) -> ProposalState:
    with db.sessions() as session:
        return ProposalState(session.get_one(SpendProposalRow, proposal_id).state)


def proposal_events(db: Db, proposal_id: int) -> list[str]:
    """The ``event`` of every audit event about the proposal, oldest first."""
    found: list[str] = []
    with db.sessions() as session:
        after = 0
        while batch := audit.events(session, after=after, limit=500):
            for event in batch:
                if json.loads(event.refs) == {"proposal_id": proposal_id}:
                    found.append(str(json.loads(event.payload).get("event")))
            after = batch[-1].sequence
    return found


def audit_intact(db: Db) -> bool:
    with db.sessions() as session:
        return audit.verify(session).ok


def reconcile(
    world: AuthorityWorld,
    *,
    at: datetime | None = None,
    timeout_s: int = 6 * 3600,
    policy: DropPolicy = DropPolicy.VOID,
) -> RunReport:
    """One reconciliation run whose clock reads ``at`` (now by default)."""
    moment = at
    reader = BitcoinReader(world.btc.node.rpc, drop_policy=policy)
    return Reconciler(
        world.sessions,
        bitcoin=reader,
        ethereum=None,
        max_cursor_age_s=LONG_AGO_S,
        drop_timeout_s=timeout_s,
        clock=(lambda: moment) if moment is not None else (lambda: datetime.now(UTC)),
    ).run()


def expire_from_mempool(world: AuthorityWorld, txid: str) -> None:
    """Let bitcoind's mempool expiry drop ``txid``: its clock jumps ahead, a new send triggers it."""
    rpc = world.btc.node.rpc
    miner = rpc.wallet("miner")
    rpc.call("setmocktime", int(time.time() + MEMPOOL_EXPIRY.total_seconds()))
    try:
        miner.call("sendtoaddress", miner.call("getnewaddress"), Decimal("0.001"))
    finally:
        rpc.call("setmocktime", 0)
    world.btc.node.sync_wallets()
    assert txid not in rpc.call("getrawmempool")


def in_mempool(world: AuthorityWorld, txid: str) -> bool:
    return txid in world.btc.node.rpc.call("getrawmempool")


def unspent(world: AuthorityWorld) -> set[tuple[str, int]]:
    """The vault wallet's spendable coins (``listunspent``, watch-only included)."""
    coins = world.btc.wallet.call("listunspent", 0, 9_999_999, [], True)
    return {(c["txid"], int(c["vout"])) for c in coins}


def spent_inputs(world: AuthorityWorld, txid: str) -> set[tuple[str, int]]:
    decoded = world.btc.wallet.call("gettransaction", txid, True, True)["decoded"]
    return {(i["txid"], int(i["vout"])) for i in decoded["vin"]}


def proposal_row(db: Db, proposal_id: int) -> SpendProposalRow:
    with db.sessions() as session:
        row = session.scalar(select(SpendProposalRow).where(SpendProposalRow.id == proposal_id))
        assert row is not None
        session.expunge(row)
        return row
