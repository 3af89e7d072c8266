"""The demo's recovery vault act through the real workflow, on regtest and both databases.

Recovery bodies' ceremonies and key health proofs, the vault, the refresh alarm at its share of
``N``, and the refresh proposed, approved with the approvers' signed statements, signed by two
institutions through the gated miniscript signer, broadcast and confirmed by the workflow, booked
as an internal movement (only the fee leaves the vault's holdings), the alarm cleared.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from reserve_on_support import reserve_on

from custody.bitcoin.rpc import btc_to_sats
from custody.devnet import BitcoinNode, EvmNode
from treasury import audit, ledger
from treasury.proposals import ProposalState
from treasury.proposals.tables import SpendProposalRow
from treasury.reconcile import list_alarms
from treasury.reconcile.accounts import fees_account
from treasury.reconcile.refresh import list_refresh_alarms
from treasury.story import Reserve
from treasury.story.recovery import DELAY_BLOCKS, FUNDING_SATS, recovery_vault_story

log = logging.getLogger(__name__)


@pytest.fixture
def reserve(
    db_url: str, tmp_path: Path, bitcoin_node: BitcoinNode, evm_node: EvmNode
) -> Iterator[Reserve]:
    story = reserve_on(db_url, tmp_path / "reserve", bitcoin_node, evm_node)
    yield story
    story.engine.dispose()


def test_the_recovery_vault_act_refreshes_through_the_workflow(reserve: Reserve) -> None:
    """The alarm opens at 20% of N, the refresh confirms through the workflow, the alarm clears,
    the books hold the funding less the fee and match the export's watch-only wallet."""
    fees_before = _posted(reserve, fees_account("BTC"))
    story = recovery_vault_story(reserve, log.info, vault_name=f"recovery-{uuid.uuid4().hex[:8]}")
    assert story.alarm_blocks_left == DELAY_BLOCKS * 20 // 100
    with reserve.sessions() as session:
        alarms = list_refresh_alarms(session)
        assert len(alarms) == 1
        assert not alarms[0].open
        assert list_alarms(session, only_open=True) == []
        assert all(line.balanced for line in ledger.trial_balance(session))
        assert audit.verify(session).ok
        proposal = session.get_one(SpendProposalRow, story.refresh_proposal_id)
        assert proposal.state == ProposalState.CONFIRMED.value
    assert 0 < story.fee_sats < 10_000
    assert story.holdings_after == FUNDING_SATS - story.fee_sats
    assert _posted(reserve, fees_account("BTC")) - fees_before == story.fee_sats
    wallet = reserve.bitcoin.rpc.wallet(story.vault.wallet_name)
    assert btc_to_sats(wallet.call("getbalances")["mine"]["trusted"]) == story.holdings_after


def _posted(story: Reserve, account: str) -> int:
    with story.sessions() as session:
        return ledger.balance(session, account).posted
