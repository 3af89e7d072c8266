"""The demo's delay-window act on real devnets: a large ether spend waits out its public window
(the signer refuses while the services chain says the window is open, even though the treasury's
clock says it is over, then signs), and a large bitcoin spend is vetoed on the services chain by
the oversight officer's own key. The export then lists both with their window and veto status."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reserve_on_support import reserve_on

from custody.devnet import BitcoinNode, EvmNode
from treasury.announcements import pending_spends_export
from treasury.proposals import ProposalState
from treasury.story.delay_window import open_window_registry, vetoed_spend, waited_spend

log = logging.getLogger(__name__)

AHEAD = timedelta(days=2)


def _latest_time(node: EvmNode) -> int:
    return int(node.rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)


def test_one_spend_waits_out_its_window_and_one_is_vetoed(
    sqlite_url: str,
    tmp_path: Path,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    services_node: EvmNode,
) -> None:
    """Both acts run as the demo runs them; the lines say what the signer refused and why.

    The services chain is anyone's chain and runs on its own clock: here it is two days ahead
    of the treasury's (as a shared devnet moved on by others may be), so the window is judged
    on that chain's time, and the story must wait it out there, not on its own clock."""
    reserve = reserve_on(sqlite_url, tmp_path / "story", bitcoin_node, evm_node)
    services_now = _latest_time(services_node)
    services_node.rpc.call(
        "evm_setNextBlockTimestamp",
        max(services_now, int(reserve.clock().timestamp())) + int(AHEAD.total_seconds()),
    )
    services_node.rpc.call("evm_mine")
    lines: list[str] = []
    story = open_window_registry(services_node, lines.append)
    waited = waited_spend(reserve, story, reserve.payees["ETH"], lines.append)
    assert waited.state in (ProposalState.BROADCAST, ProposalState.CONFIRMED)
    assert any(
        "the signer refuses and signs nothing" in line and "runs until" in line for line in lines
    )
    vetoed = vetoed_spend(reserve, story, reserve.payees["BTC"], lines.append)
    assert vetoed.state is ProposalState.REJECTED
    judged_at = datetime.fromtimestamp(_latest_time(services_node) + 1, tz=UTC)
    with reserve.sessions() as session:
        exported = pending_spends_export(session, judged_at)
    assert [(p["proposal_id"], p["status"]) for p in exported] == [
        (waited.id, "open"),
        (vetoed.id, "vetoed"),
    ]
    log.info("\n".join(lines))
