"""The whole spend path on both real devnets: ceremony, vaults, deposits reconciled, a BTC and an
ETH spend proposed under a decree, approved and signed by two institutions' share quorums,
broadcast, confirmed, and booked pending-then-posted in a ledger that balances."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from reconcile_support import out_of_band_spend

from custody.bitcoin.rpc import btc_to_sats
from custody.bitcoin.spend import load_spend
from custody.devnet import BitcoinNode, EvmNode
from custody.exceptions import FingerprintMismatchError
from treasury import audit, ledger
from treasury.ledger import PendingState
from treasury.policy.rules import PolicyRefusedError
from treasury.proposals import ProposalState, SpendPosting
from treasury.reconcile import acknowledge, btc_scope, eth_scope, holdings_account, list_alarms
from treasury.story import DECREE, SAFE_VAULT, SATS_PER_BTC, WEI_PER_ETH, Reserve

log = logging.getLogger(__name__)

BTC_DEPOSITS_SATS = (60_000_000, 30_000_000, 10_000_000)
ETH_DEPOSIT_WEI = 20 * WEI_PER_ETH
TOKEN_DEPOSIT = 5_000 * 10**18
BTC_SPEND_SATS = SATS_PER_BTC // 4
ETH_SPEND_WEI = 3 * WEI_PER_ETH // 2


@pytest.fixture
def reserve(tmp_path: Path, bitcoin_node: BitcoinNode, evm_node: EvmNode) -> Iterator[Reserve]:
    """A reserve with ceremonies held, vaults open on both chains, deposits reconciled, and
    governance in place (its own vault name, so it shares the session nodes safely)."""
    story = Reserve(
        tmp_path / "reserve", bitcoin_node, evm_node, btc_vault=f"e2e-{uuid.uuid4().hex[:8]}"
    )
    story.hold_ceremonies(log.info)
    story.open_vaults(log.info)
    story.deposit(log.info, BTC_DEPOSITS_SATS, ETH_DEPOSIT_WEI, TOKEN_DEPOSIT)
    evm_node.rpc.call("evm_mine")
    story.reconcile(log.info)
    payee_btc = bitcoin_node.rpc.wallet("miner").call("getnewaddress", "", "bech32")
    story.govern(log.info, {"BTC": payee_btc, "ETH": Account.create().address})
    story.reconcile(log.info)
    yield story
    story.engine.dispose()


def _holdings(story: Reserve, asset: str) -> str:
    scope = (
        btc_scope(story.btc_vault)
        if asset == "BTC"
        else eth_scope(story.chain.chain_id, SAFE_VAULT)
    )
    return holdings_account(scope, asset)


def _chain_balance(story: Reserve, asset: str) -> int:
    if asset == "BTC":
        wallet = story.bitcoin.rpc.wallet(f"vault-{story.btc_vault}")
        return btc_to_sats(wallet.call("getbalances")["mine"]["trusted"])
    return story.chain.balance(story.safes.vault(SAFE_VAULT).address)


def test_deposits_are_booked_once_and_match_the_chain(reserve: Reserve) -> None:
    """After reconciliation each vault's ledger holdings equal its balance on chain."""
    with reserve.sessions() as session:
        for asset in ("BTC", "ETH"):
            assert ledger.balance(session, _holdings(reserve, asset)).posted == _chain_balance(
                reserve, asset
            )
        assert ledger.balance(session, _holdings(reserve, "BTC")).posted == sum(BTC_DEPOSITS_SATS)
        assert ledger.balance(session, _holdings(reserve, "ETH")).posted == ETH_DEPOSIT_WEI


@pytest.mark.parametrize(("asset", "amount"), [("BTC", BTC_SPEND_SATS), ("ETH", ETH_SPEND_WEI)])
def test_a_spend_is_approved_signed_broadcast_confirmed_and_posted(
    reserve: Reserve, asset: str, amount: int
) -> None:
    """Two institutions approve and sign with their share quorums; the ledger goes pending, then
    posted on confirmation, the payee receives the amount, the books balance and the audit log
    verifies."""
    wf = reserve.workflow()
    payee = reserve.payees[asset]
    view = reserve.propose_and_approve(wf, asset, amount, payee)
    assert view.state is ProposalState.APPROVED
    assert {a.institution for a in view.approvals} == {"NBKR", "ACH"}

    view = reserve.sign(wf, view.id, asset)
    assert view.state is ProposalState.SIGNED

    view = wf.broadcast(view.id, reserve.spenders()[asset])
    assert view.state is ProposalState.BROADCAST
    assert view.txid is not None
    with reserve.sessions() as session:
        entry = ledger.find_entry(session, SpendPosting.key_for(view.id))
        assert entry is not None
        state_at_broadcast = ledger.pending_state(session, entry.id)
    # A Safe execution is mined by the time it returns; a PSBT waits in the mempool.
    assert state_at_broadcast is PendingState.PENDING

    view = reserve.confirm(wf, view.id, asset)
    assert view.state is ProposalState.CONFIRMED
    reserve.reconcile(log.info)
    with reserve.sessions() as session:
        assert ledger.pending_state(session, entry.id) is PendingState.POSTED
        assert all(totals.balanced for totals in ledger.trial_balance(session))
        assert ledger.balance(session, _holdings(reserve, asset)).posted == _chain_balance(
            reserve, asset
        )
        assert audit.verify(session).ok
        assert list_alarms(session, only_open=True) == []
    if asset == "BTC":
        received = reserve.bitcoin.rpc.wallet("miner").call("getreceivedbyaddress", payee, 1)
        assert btc_to_sats(received) == amount
    else:
        assert reserve.chain.balance(payee) == amount


def test_a_signature_custody_kept_across_a_crash_still_needs_the_shares(reserve: Reserve) -> None:
    """If the process died after custody stored an institution's signature but before the
    workflow recorded it, signing again neither re-signs nor skips the key check."""
    wf = reserve.workflow()
    view = reserve.propose_and_approve(wf, "BTC", BTC_SPEND_SATS, reserve.payees["BTC"])
    spender = reserve.spenders()["BTC"]
    words, passphrase = reserve.shares_of("NBKR")
    with reserve.sessions() as session:
        row = wf._current_tx(session, view.id)  # the workflow's own record, as a restart reads it
        assert row is not None
        current = wf._prepared(row)
    spender.sign(current, "NBKR", words, passphrase)  # custody signed; the workflow never heard
    officer = reserve.officers["Elmira Asanova (NBKR)"]
    with pytest.raises(FingerprintMismatchError):
        wf.sign(officer, view.id, spender, words, "not-the-passphrase")
    assert wf.view(view.id).signed_by == ()
    view = wf.sign(officer, view.id, spender, words, passphrase)
    assert view.signed_by == ("NBKR",)
    with reserve.sessions() as session:
        assert load_spend(session, int(json.loads(current.payload)["spend_id"])).signed_by == (
            "National Bank",
        )


def test_an_out_of_band_spend_blocks_new_proposals_until_acknowledged(reserve: Reserve) -> None:
    """Keys used outside the system raise an alarm in one run; proposals are refused until
    oversight acknowledges it, and accepted again after the next run."""
    wf = reserve.workflow()
    proposer = reserve.officers["Asel Proposer (MOF)"]
    quorums = []
    for code in ("MOF", "ACH"):
        words, passphrase = reserve.shares_of(code)
        quorums.append((words, passphrase, reserve.transcripts[code].fingerprint))
    thief = reserve.bitcoin.rpc.wallet("miner").call("getnewaddress", "", "bech32")
    wallet = reserve.bitcoin.rpc.wallet(f"vault-{reserve.btc_vault}")
    txid = out_of_band_spend(reserve.bitcoin, wallet, thief, 10_000_000, quorums)
    reserve.bitcoin.mine(1)
    reserve.reconcile(log.info)
    with reserve.sessions() as session:
        (alarm,) = list_alarms(session, only_open=True)
    assert alarm.tx_ref == txid

    def propose() -> ProposalState:
        return wf.propose(
            proposer,
            asset="BTC",
            amount=BTC_SPEND_SATS,
            destination=reserve.payees["BTC"],
            purpose="Reserve rebalancing",
            legal_basis=DECREE,
        ).state

    with pytest.raises(PolicyRefusedError, match="reconciliation"):
        propose()
    with reserve.sessions.begin() as session:
        acknowledge(
            session,
            alarm.id,
            reserve.officers["Oversight committee (ACH)"],
            "Investigated: keys used outside the system; case opened.",
            clock=reserve.clock,
        )
    reserve.reconcile(log.info)
    assert propose() is ProposalState.PROPOSED
