"""Fee bumps through the workflow on regtest and both databases: a stuck spend is replaced by a
bump proposal the officers approve under a fee ceiling; the replacement confirms, the stuck
proposal fails, and the ledger holds one posting of the payment and of the final fee. A database
writer who swaps in a replacement with a higher fee or another output gets no signature, and a
crash between the send and its record still books the bump once."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from reserve_on_support import CrashingSpender, SimulatedCrashError, books_are_whole, reserve_on
from reserve_on_support import spend_keys as keys_of
from sqlalchemy import select, update

from custody.authority import AuthorityError
from custody.bitcoin import Payment
from custody.bitcoin.spend import build_spend, bump_spend, load_spend
from custody.devnet import BitcoinNode, EvmNode
from treasury import ledger
from treasury.fee_bumps import BumpSpender, propose_bump
from treasury.proposals import PreparedTx, PreparedTxRow, ProposalState, ProposalView, Workflow
from treasury.reconcile.accounts import approved_outflows_account, fees_account
from treasury.story import Reserve
from treasury.story.cast import APPROVERS, PROPOSER
from treasury.story.rotation import BUMP_FEE_CEILING_SATS, fee_bump
from treasury.workflow_exceptions import TransactionMismatchError

log = logging.getLogger(__name__)

AMOUNT_SATS = 10_000_000
BUMP_RATE = Decimal(12)
CEILING_SATS = 20_000


@pytest.fixture
def reserve(
    db_url: str, tmp_path: Path, bitcoin_node: BitcoinNode, evm_node: EvmNode
) -> Iterator[Reserve]:
    story = reserve_on(db_url, tmp_path / "reserve", bitcoin_node, evm_node)
    yield story
    story.engine.dispose()


def _approve(reserve: Reserve, wf: Workflow, view: ProposalView) -> ProposalView:
    """Both approvers sign the statement of the proposal's transaction and approve with it."""
    assert view.tx_hash is not None
    for approver in APPROVERS.values():
        officer = reserve.officers[approver]
        signed = reserve.officer_keys[approver].sign_statement(wf.statement(officer, view.id))
        view = wf.approve(officer, view.id, view.tx_hash, signed=signed)
    return view


def _stuck_and_bump(reserve: Reserve) -> tuple[Workflow, ProposalView, ProposalView, BumpSpender]:
    """A spend broadcast and left in the mempool, and its bump proposal prepared and approved."""
    wf = reserve.workflow()
    spender = reserve.spenders()["BTC"]
    payee = reserve.payees["BTC"]
    stuck = reserve.sign(wf, reserve.propose_and_approve(wf, "BTC", AMOUNT_SATS, payee).id, "BTC")
    stuck = wf.broadcast(stuck.id, spender)
    assert stuck.state is ProposalState.BROADCAST
    proposer = reserve.officers[PROPOSER]
    bump = propose_bump(
        wf,
        reserve.sessions,
        proposer,
        stuck.id,
        fee_rate_sat_vb=BUMP_RATE,
        fee_ceiling_sats=CEILING_SATS,
        clock=reserve.clock,
    )
    bumper = BumpSpender(reserve.sessions, reserve.bitcoin.rpc, spender)
    bump = wf.prepare(proposer, bump.id, bumper)
    statement = wf.statement(reserve.officers[APPROVERS["NBKR"]], bump.id)
    assert (statement.amount, statement.destination) == (AMOUNT_SATS, payee)
    assert statement.max_fee == CEILING_SATS  # the ceiling is what the officers sign
    return wf, stuck, _approve(reserve, wf, bump), bumper


def _mempool(reserve: Reserve) -> set[str]:
    return set(reserve.bitcoin.rpc.call("getrawmempool"))


def _posted(reserve: Reserve, account: str) -> int:
    with reserve.sessions() as session:
        return ledger.balance(session, account).posted


def test_a_bump_through_the_workflow_confirms_and_is_booked_once(reserve: Reserve) -> None:
    """The story's fee bump: the approved, signed bump replaces the stuck transaction and
    confirms; the stuck proposal fails and its pending entry is voided; the ledger pays the
    amount once and the bump's fee once; the reconciler finds the books matching the chain."""
    paid_before = _posted(reserve, approved_outflows_account("BTC"))
    fees_before = _posted(reserve, fees_account("BTC"))
    done = fee_bump(reserve, log.info, AMOUNT_SATS)
    stuck, bump = done.stuck, done.bump
    assert (stuck.state, bump.state) == (ProposalState.FAILED, ProposalState.CONFIRMED)
    assert bump.fee is not None
    assert stuck.fee is not None
    assert stuck.fee < bump.fee <= BUMP_FEE_CEILING_SATS
    assert bump.tx_summary is not None
    assert bump.tx_summary["replaces_txid"] == stuck.txid
    wallet = reserve.bitcoin.rpc.wallet(f"vault-{reserve.btc_vault}")
    assert int(wallet.call("gettransaction", stuck.txid)["confirmations"]) < 0  # replaced
    assert int(wallet.call("gettransaction", bump.txid)["confirmations"]) == 1
    assert keys_of(reserve, stuck.id) == [
        f"spend-proposal:{stuck.id}",
        f"spend-proposal:{stuck.id}:void",
    ]
    assert keys_of(reserve, bump.id) == [
        f"spend-proposal:{bump.id}",
        f"spend-proposal:{bump.id}:post",
    ]
    assert _posted(reserve, approved_outflows_account("BTC")) == paid_before + AMOUNT_SATS
    assert _posted(reserve, fees_account("BTC")) == fees_before + bump.fee
    reserve.reconcile(log.info)
    books_are_whole(reserve, "BTC")


def test_the_signer_refuses_a_replacement_the_officers_did_not_approve(reserve: Reserve) -> None:
    """An ordinary spender cannot prepare a bump proposal; a database writer who swaps the
    approved bump for one paying a higher fee under a raised ceiling, or for one paying another
    output, is refused by the signer, which signs nothing."""
    wf, stuck, bump, bumper = _stuck_and_bump(reserve)
    # Prepared by the vault's ordinary spender, a bump would be a second payment: refused.
    with pytest.raises(TransactionMismatchError, match="fee bump"):
        wf.prepare(reserve.officers[PROPOSER], bump.id, reserve.spenders()["BTC"])
    assert wf.view(bump.id).tx_hash == bump.tx_hash
    rpc = reserve.bitcoin.rpc
    with reserve.sessions() as session:
        approved = session.scalar(
            select(PreparedTxRow).where(
                PreparedTxRow.proposal_id == bump.id, PreparedTxRow.superseded_at.is_(None)
            )
        )
        assert approved is not None
        stuck_spend = json.loads(
            session.scalars(
                select(PreparedTxRow.payload).where(PreparedTxRow.proposal_id == stuck.id)
            ).one()
        )["spend_id"]
    with reserve.sessions.begin() as session:
        greedy = bump_spend(session, rpc, stuck_spend, Decimal(150), 1_000_000)  # ceiling raised
        other = build_spend(
            session,
            rpc,
            reserve.btc_vault,
            [Payment(rpc.wallet("miner").call("getnewaddress", "", "bech32"), AMOUNT_SATS)],
            Decimal(2),
            CEILING_SATS,
        )
    words, passphrase = reserve.shares_of("NBKR")
    for swapped in (greedy, other):
        assert swapped.fee_sats > CEILING_SATS or swapped is other
        tx_hash = swapped.approval.unsigned_txid
        payload = json.dumps({"spend_id": swapped.id, "psbt": swapped.unsigned_psbt})
        with reserve.sessions.begin() as session:  # the writer re-points the approved bump
            session.execute(
                update(PreparedTxRow)
                .where(PreparedTxRow.id == approved.id)
                .values(tx_hash=tx_hash, payload=payload, fee=swapped.fee_sats)
            )
        with pytest.raises(AuthorityError):
            bumper.sign(
                PreparedTx(tx_hash, {}, payload, swapped.fee_sats), "NBKR", words, passphrase
            )
        with reserve.sessions() as session:
            assert load_spend(session, swapped.id).signed_by == ()


def test_a_crash_between_the_send_and_its_record_books_the_bump_once(reserve: Reserve) -> None:
    """The process dies after the node accepted the replacement, before anything was recorded;
    the refresh after the restart adopts it from the chain: one hold, one posting."""
    wf, stuck, bump, bumper = _stuck_and_bump(reserve)
    bump = reserve.sign(wf, bump.id, "BTC")
    crashing = CrashingSpender(reserve, "BTC")
    with pytest.raises(SimulatedCrashError):
        wf.broadcast(bump.id, crashing)
    assert crashing.sent[0] in _mempool(reserve)
    wf = reserve.workflow()  # the restarted process
    assert wf.refresh(bump.id, bumper).state is ProposalState.BROADCAST
    reserve.bitcoin.mine(1)
    assert wf.refresh(bump.id, bumper).state is ProposalState.CONFIRMED
    assert wf.refresh(stuck.id, reserve.spenders()["BTC"]).state is ProposalState.FAILED
    assert keys_of(reserve, bump.id) == [
        f"spend-proposal:{bump.id}",
        f"spend-proposal:{bump.id}:post",
    ]
    reserve.reconcile(log.info)
    books_are_whole(reserve, "BTC")
