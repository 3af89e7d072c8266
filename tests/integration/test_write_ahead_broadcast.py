"""Write-ahead broadcast on both real chains and both databases: the process dies right after the
node accepted a spend and before anything was recorded; whichever of the reconciler (the
scheduler's job) and ``spend refresh`` runs first, the spend ends confirmed with exactly one chain
transaction and one posting, the books match the chain and the audit chain verifies."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from reserve_on_support import (
    CrashingSpender,
    SimulatedCrashError,
    books_are_whole,
    chain_balance,
    reserve_on,
    signed_spend,
    spend_keys,
)
from typer.testing import CliRunner

from custody.bitcoin.rpc import btc_to_sats
from custody.devnet import BitcoinNode, EvmNode
from treasury.cli import app
from treasury.cli import spend as spend_cli
from treasury.cli.officers import OfficerContext
from treasury.proposals import ProposalState, SpendPosting
from treasury.settings import Settings
from treasury.story import SAFE_VAULT, SATS_PER_BTC, WEI_PER_ETH, Reserve
from treasury.story.cast import PROPOSER

log = logging.getLogger(__name__)

AMOUNTS = {"BTC": SATS_PER_BTC // 4, "ETH": 3 * WEI_PER_ETH // 2}


@pytest.fixture
def reserve(
    db_url: str, tmp_path: Path, bitcoin_node: BitcoinNode, evm_node: EvmNode
) -> Iterator[Reserve]:
    story = reserve_on(db_url, tmp_path / "reserve", bitcoin_node, evm_node)
    yield story
    story.engine.dispose()


def _paid(story: Reserve, asset: str) -> int:
    """What the payee has received (confirmed, for Bitcoin)."""
    payee = story.payees[asset]
    if asset == "BTC":
        received = story.bitcoin.rpc.wallet("miner").call("getreceivedbyaddress", payee, 1)
        return btc_to_sats(received)
    return story.chain.balance(payee)


def _cli_refresh(
    reserve: Reserve, proposal_id: int, asset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run ``treasury spend refresh`` itself on the reserve's database, workflow and spender."""

    @contextlib.contextmanager
    def on_proposal(_token_file: str | None, _proposal_id: int) -> Iterator[OfficerContext]:
        yield OfficerContext(
            Settings(), reserve.sessions, reserve.workflow(), reserve.officers[PROPOSER]
        )

    monkeypatch.setattr(spend_cli, "_on_proposal", on_proposal)
    monkeypatch.setattr(spend_cli, "spender_for_proposal", lambda *_args: reserve.spenders()[asset])
    result = CliRunner().invoke(app, ["spend", "refresh", str(proposal_id)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("asset", ["BTC", "ETH"])
@pytest.mark.parametrize("order", ["reconcile_first", "refresh_first", "cli_refresh_first"])
def test_a_crash_after_the_send_ends_in_one_transaction_and_one_posting(
    reserve: Reserve, asset: str, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between "sent to the node" and "recorded", the spend is recognised as the
    proposal's own by the reconciler and by refresh, in either order: one transaction on chain,
    one hold and one posting, the vault's books equal the chain, no alarm."""
    amount = AMOUNTS[asset]
    before = chain_balance(reserve, asset)
    view = signed_spend(reserve, asset, amount)
    crashing = CrashingSpender(reserve, asset)
    wf = reserve.workflow()
    with pytest.raises(SimulatedCrashError):
        wf.broadcast(view.id, crashing)
    (sent,) = crashing.sent
    assert wf.view(view.id).state is ProposalState.SIGNED  # nothing recorded after the send
    assert wf.view(view.id).txid == sent  # ... but the write-ahead record names the transaction
    if asset == "BTC":
        reserve.bitcoin.mine(1)
    else:
        reserve.evm.rpc.call("evm_mine")

    restarted = reserve.workflow()
    spender = reserve.spenders()[asset]
    if order == "reconcile_first":
        reserve.reconcile(log.info)
        view = restarted.refresh(view.id, spender)
    elif order == "cli_refresh_first":
        # `treasury spend refresh` on a proposal left `signed` by the crash completes it.
        _cli_refresh(reserve, view.id, asset, monkeypatch)
        assert restarted.view(view.id).state is not ProposalState.SIGNED
        reserve.reconcile(log.info)
    else:
        view = restarted.refresh(view.id, spender)
        reserve.reconcile(log.info)
    reserve.reconcile(log.info)
    view = restarted.refresh(view.id, spender)

    assert view.state is ProposalState.CONFIRMED
    assert view.txid == sent
    assert _paid(reserve, asset) == amount
    key = SpendPosting.key_for(view.id)
    assert spend_keys(reserve, view.id) == [key, f"{key}:post"]
    books_are_whole(reserve, asset)
    if asset == "BTC":
        assert before - chain_balance(reserve, asset) == amount + (view.fee or 0)
    else:
        assert before - chain_balance(reserve, asset) == amount


def test_after_a_lost_ether_record_the_safe_is_repaired_and_the_next_spend_prepares(
    reserve: Reserve,
) -> None:
    """The Safe's nonce moved on chain but custody never recorded it: refresh finds the SafeTx by
    its ExecutionSuccess event, records it, and the next ETH proposal prepares (no resync)."""
    view = signed_spend(reserve, "ETH", AMOUNTS["ETH"])
    wf = reserve.workflow()
    with pytest.raises(SimulatedCrashError):
        wf.broadcast(view.id, CrashingSpender(reserve, "ETH"))
    vault = reserve.safes.vault(SAFE_VAULT)
    assert reserve.safes.read_state(vault.address).nonce == vault.nonce + 1  # the lost record
    view = wf.refresh(view.id, reserve.spenders()["ETH"])
    assert view.state is ProposalState.CONFIRMED
    assert reserve.safes.verify(reserve.safes.vault(SAFE_VAULT)).nonce == vault.nonce + 1
    nxt = reserve.propose_and_approve(wf, "ETH", AMOUNTS["ETH"], reserve.payees["ETH"])
    assert nxt.state is ProposalState.APPROVED
    reserve.reconcile(log.info)
    books_are_whole(reserve, "ETH")


@pytest.mark.parametrize("asset", ["BTC", "ETH"])
def test_a_crash_before_the_send_sends_the_recorded_transaction_once(
    reserve: Reserve, asset: str
) -> None:
    """Killed after the signed transaction was recorded but before it reached the node: the
    reconciler finds nothing to book, refresh sends it, and it is paid and posted once."""

    class DiesBeforeSend(CrashingSpender):
        def send(self, prepared: object, sealed: object) -> str:
            raise SimulatedCrashError("killed after the record, before the send")

    view = signed_spend(reserve, asset, AMOUNTS[asset])
    wf = reserve.workflow()
    with pytest.raises(SimulatedCrashError):
        wf.broadcast(view.id, DiesBeforeSend(reserve, asset))
    sealed_txid = wf.view(view.id).txid
    assert sealed_txid is not None
    reserve.reconcile(log.info)
    spender = reserve.spenders()[asset]
    view = wf.refresh(view.id, spender)
    assert view.state in (ProposalState.BROADCAST, ProposalState.CONFIRMED)
    if asset == "BTC":
        reserve.bitcoin.mine(1)
    else:
        reserve.evm.rpc.call("evm_mine")
    view = wf.refresh(view.id, spender)
    reserve.reconcile(log.info)
    assert view.state is ProposalState.CONFIRMED
    assert _paid(reserve, asset) == AMOUNTS[asset]
    key = SpendPosting.key_for(view.id)
    assert spend_keys(reserve, view.id) == [key, f"{key}:post"]
    books_are_whole(reserve, asset)
