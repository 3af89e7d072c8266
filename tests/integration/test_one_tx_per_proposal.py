"""One chain transaction per proposal, on both real chains and both databases: two proposals
never share a Safe nonce (so never a SafeTx) nor a Bitcoin input, the database itself refuses a
second live holder of either, and a proposal's broadcast adopts only its own transaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from reserve_on_support import books_are_whole, chain_balance, reserve_on, spend_keys
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from custody.bitcoin.spend import spend_inputs
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum.safe_vaults import SafeTxNotNextError
from treasury.proposals import ProposalState, ReservationRow, SpendPosting
from treasury.story import SAFE_VAULT, SATS_PER_BTC, WEI_PER_ETH, Reserve
from treasury.story.cast import PROPOSER

log = logging.getLogger(__name__)

ETH_AMOUNT = WEI_PER_ETH
BTC_AMOUNT = SATS_PER_BTC // 5


@pytest.fixture
def reserve(
    db_url: str, tmp_path: Path, bitcoin_node: BitcoinNode, evm_node: EvmNode
) -> Iterator[Reserve]:
    story = reserve_on(db_url, tmp_path / "reserve", bitcoin_node, evm_node)
    yield story
    story.engine.dispose()


def _live_claims(story: Reserve, proposal_id: int) -> set[str]:
    with story.sessions() as session:
        return set(
            session.scalars(
                select(ReservationRow.claim).where(
                    ReservationRow.proposal_id == proposal_id, ReservationRow.live.is_(True)
                )
            )
        )


def test_two_equal_ether_proposals_each_get_their_own_safe_tx_and_pay_once(
    reserve: Reserve,
) -> None:
    """Same amount, same destination: each proposal reserves its own Safe nonce, so each has its
    own SafeTx; the later one cannot run first, and neither adopts the other's execution. Each
    pays once and is posted once; the books match the chain with no alarm."""
    wf = reserve.workflow()
    payee = reserve.payees["ETH"]
    start_nonce = reserve.safes.vault(SAFE_VAULT).nonce
    first = reserve.propose_and_approve(wf, "ETH", ETH_AMOUNT, payee)
    second = reserve.propose_and_approve(wf, "ETH", ETH_AMOUNT, payee)
    assert first.tx_hash != second.tx_hash
    assert first.tx_summary is not None
    assert second.tx_summary is not None
    assert (first.tx_summary["nonce"], second.tx_summary["nonce"]) == (
        start_nonce,
        start_nonce + 1,
    )
    assert _live_claims(reserve, first.id).isdisjoint(_live_claims(reserve, second.id))
    reserve.sign(wf, first.id, "ETH")
    reserve.sign(wf, second.id, "ETH")
    spender = reserve.spenders()["ETH"]

    with pytest.raises(SafeTxNotNextError):  # its nonce waits for the first's
        wf.broadcast(second.id, spender)
    assert reserve.chain.balance(payee) == 0
    assert wf.view(second.id).state is ProposalState.SIGNED

    first = wf.refresh(wf.broadcast(first.id, spender).id, spender)
    assert first.state is ProposalState.CONFIRMED
    second = wf.refresh(second.id, spender)  # the retried broadcast sends its own SafeTx
    assert second.state is ProposalState.CONFIRMED
    assert second.txid is not None
    assert second.txid != first.txid
    assert reserve.chain.balance(payee) == 2 * ETH_AMOUNT
    for view in (first, second):
        key = SpendPosting.key_for(view.id)
        assert spend_keys(reserve, view.id) == [key, f"{key}:post"]
    reserve.reconcile(log.info)
    books_are_whole(reserve, "ETH")


def test_a_closed_proposal_releases_its_nonce_to_the_next(reserve: Reserve) -> None:
    """A withdrawn proposal's Safe nonce is free again: the next proposal is prepared at it."""
    wf = reserve.workflow()
    payee = reserve.payees["ETH"]
    first = reserve.propose_and_approve(wf, "ETH", ETH_AMOUNT, payee)
    assert first.tx_summary is not None
    wf.reject(reserve.officers[PROPOSER], first.id, "Withdrawn by its proposer.")
    assert _live_claims(reserve, first.id) == set()
    second = reserve.propose_and_approve(wf, "ETH", 2 * ETH_AMOUNT, payee)
    assert second.tx_summary is not None
    assert second.tx_summary["nonce"] == first.tx_summary["nonce"]


def test_two_bitcoin_proposals_never_share_an_input(reserve: Reserve) -> None:
    """Two proposals that one coin could each fund are built from different coins; both are
    paid and posted once; a database writer cannot give one proposal's input to the other."""
    wf = reserve.workflow()
    payee = reserve.payees["BTC"]
    before = chain_balance(reserve, "BTC")
    first = reserve.propose_and_approve(wf, "BTC", BTC_AMOUNT, payee)
    second = reserve.propose_and_approve(wf, "BTC", BTC_AMOUNT, payee)
    inputs = []
    with reserve.sessions() as session:
        for view in (first, second):
            row = wf._current_tx(session, view.id)
            assert row is not None
            inputs.append(set(spend_inputs(json.loads(row.payload)["psbt"])))
    assert inputs[0]
    assert inputs[1]
    assert inputs[0].isdisjoint(inputs[1])
    first_claims, second_claims = _live_claims(reserve, first.id), _live_claims(reserve, second.id)
    assert first_claims == {f"btc-input:{o.txid}:{o.vout}" for o in inputs[0]}
    assert first_claims.isdisjoint(second_claims)

    with reserve.sessions() as session:
        prepared_id = session.scalar(
            select(ReservationRow.prepared_tx_id).where(ReservationRow.proposal_id == second.id)
        )
    steal = text(
        "INSERT INTO spend_reservations (proposal_id, prepared_tx_id, claim, live, reserved_at) "
        "VALUES (:p, :t, :c, :live, :at)"
    )
    values = {
        "p": second.id,
        "t": prepared_id,
        "c": sorted(first_claims)[0],
        "live": True,
        "at": datetime.now(UTC),
    }
    with reserve.engine.connect() as conn, pytest.raises(IntegrityError):
        conn.execute(steal, values)

    spender = reserve.spenders()["BTC"]
    for view in (first, second):
        reserve.sign(wf, view.id, "BTC")
        wf.broadcast(view.id, spender)
    reserve.bitcoin.mine(1)
    for view in (first, second):
        done = wf.refresh(view.id, spender)
        assert done.state is ProposalState.CONFIRMED
        key = SpendPosting.key_for(view.id)
        assert spend_keys(reserve, view.id) == [key, f"{key}:post"]
    fees = (first.fee or 0) + (second.fee or 0)
    assert before - chain_balance(reserve, "BTC") == 2 * BTC_AMOUNT + fees
    reserve.reconcile(log.info)
    books_are_whole(reserve, "BTC")
