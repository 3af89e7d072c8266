"""The demo's second EVM chain: after the ceremonies, a Safe on the BNB devnet owned by the same
institutions, funded, and reconciled as BNB through the chain list."""

from __future__ import annotations

import logging
from pathlib import Path

from custody.devnet import BNB_DEVNET_CHAIN_ID, BitcoinNode, EvmNode
from treasury import ledger
from treasury.reconcile import RunStatus, eth_scope, holdings_account, reconcile_now
from treasury.story import Reserve
from treasury.story.proofs import node_endpoints
from treasury.story.second_chain import (
    BNB_DEPOSIT_WEI,
    BNB_SAFE_VAULT,
    open_second_chain,
    reconcile_chains,
    verifier_nodes,
)

log = logging.getLogger(__name__)


def test_the_second_chain_act_opens_a_safe_that_reconciles_as_bnb(
    tmp_path: Path, bitcoin_node: BitcoinNode, evm_node: EvmNode, bnb_node: EvmNode,
    services_node: EvmNode,
) -> None:  # fmt: skip
    """The BNB Safe is owned 2-of-3 by the three ceremony keys, holds the deposit, is booked as
    BNB under its own chain's scope, and the auditor's nodes name the BNB node for its chain."""
    story = Reserve(tmp_path / "reserve", bitcoin_node, evm_node, btc_vault="second-chain")
    story.hold_ceremonies(log.info)
    second = open_second_chain(story, bnb_node, log.info)
    assert second.safe.chain_id == BNB_DEVNET_CHAIN_ID
    assert {o.address for o in second.safe.owners} == {
        t.eth_address for t in story.transcripts.values()
    }
    assert second.safe.threshold == 2
    report = reconcile_now(
        story.database_url, bitcoin=None, evm=None, evm_chains=reconcile_chains(second)
    )
    assert report.status is RunStatus.SUCCEEDED, report
    with story.sessions() as session:
        holdings = holdings_account(eth_scope(BNB_DEVNET_CHAIN_ID, BNB_SAFE_VAULT), "BNB")
        assert ledger.balance(session, holdings).posted == BNB_DEPOSIT_WEI
    nodes = verifier_nodes(node_endpoints(bitcoin_node, evm_node, services_node), second)
    assert nodes.evm_endpoints()[-1] == (BNB_DEVNET_CHAIN_ID, bnb_node.rpc_url)
    story.engine.dispose()
