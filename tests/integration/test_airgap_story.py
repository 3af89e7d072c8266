"""The demo's air-gapped step: one spend per chain signed through exported files by the offline
command as its own process, imported, broadcast, confirmed, and the books whole -- on both
databases."""

from __future__ import annotations

import logging
from pathlib import Path

from reserve_on_support import books_are_whole, reserve_on

from custody.devnet import BitcoinNode, EvmNode
from treasury.proposals import ProposalState
from treasury.story.airgap import AIRGAP_FOLDER, sign_through_files

log = logging.getLogger("tests.airgap_story")

BTC_SPEND_SATS = 5_000_000
ETH_SPEND_WEI = 10**17


def test_the_story_signs_a_spend_on_each_chain_through_files(
    db_url: str, tmp_path: Path, bitcoin_node: BitcoinNode, evm_node: EvmNode
) -> None:
    """``sign_through_files`` leaves each proposal SIGNED by NBKR and ACH with the files on disk;
    the normal path then broadcasts and confirms it and the books match the chains."""
    story = reserve_on(db_url, tmp_path / "story", bitcoin_node, evm_node)
    wf = story.workflow()
    for asset, amount in (("BTC", BTC_SPEND_SATS), ("ETH", ETH_SPEND_WEI)):
        view = story.propose_and_approve(wf, asset, amount, story.payees[asset])
        told: list[str] = []
        view = sign_through_files(story, wf, view.id, asset, told.append)
        verified = [line for line in told if "offline signer verified the approvals of" in line]
        assert len(verified) == 2, told
        assert all("nobody" not in line for line in verified), verified
        assert view.state is ProposalState.SIGNED
        assert set(view.signed_by) == {"NBKR", "ACH"}
        folder = story.workdir / AIRGAP_FOLDER / f"proposal-{view.id}"
        suffix = "*.signed.psbt" if asset == "BTC" else "*.signature.json"
        assert len(list(folder.glob(f"*/{suffix}"))) == 2
        view = wf.broadcast(view.id, story.spenders()[asset])
        assert view.state is ProposalState.BROADCAST
        view = story.confirm(wf, view.id, asset)
        assert view.state is ProposalState.CONFIRMED
    story.reconcile(log.info)
    for asset in ("BTC", "ETH"):
        books_are_whole(story, asset)
