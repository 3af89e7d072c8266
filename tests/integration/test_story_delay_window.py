"""The demo's delay-window act on real devnets: a large ether spend waits out its public window
(the signer refuses while the services chain says the window is open, even though the treasury's
clock says it is over, then signs), and a large bitcoin spend is vetoed on the services chain by
the oversight officer's own key. The export then lists both with their window and veto status."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from reserve_on_support import reserve_on

from custody.devnet import BitcoinNode, EvmNode
from treasury.announcements import pending_spends_export
from treasury.proposals import ProposalState
from treasury.story.delay_window import open_window_registry, vetoed_spend, waited_spend

log = logging.getLogger(__name__)


def test_one_spend_waits_out_its_window_and_one_is_vetoed(
    sqlite_url: str,
    tmp_path: Path,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    services_node: EvmNode,
) -> None:
    """Both acts run as the demo runs them; the lines say what the signer refused and why."""
    reserve = reserve_on(sqlite_url, tmp_path / "story", bitcoin_node, evm_node)
    lines: list[str] = []
    story = open_window_registry(services_node, lines.append)
    waited = waited_spend(reserve, story, reserve.payees["ETH"], lines.append)
    assert waited.state in (ProposalState.BROADCAST, ProposalState.CONFIRMED)
    assert any(
        "the signer refuses and signs nothing" in line and "runs until" in line for line in lines
    )
    vetoed = vetoed_spend(reserve, story, reserve.payees["BTC"], lines.append)
    assert vetoed.state is ProposalState.REJECTED
    with reserve.sessions() as session:
        exported = pending_spends_export(session, reserve.clock() + timedelta(seconds=1))
    assert [(p["proposal_id"], p["status"]) for p in exported] == [
        (waited.id, "open"),
        (vetoed.id, "vetoed"),
    ]
    log.info("\n".join(lines))
