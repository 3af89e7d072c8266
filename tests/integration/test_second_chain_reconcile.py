"""Reconciling Safes on two EVM chains at once: the reserve's anvil (ETH) and the BNB devnet (BNB),
each Safe read only from its own chain's configured node, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from reconcile_support import (
    Db,
    create_safe,
    deployed,
    migrated,
    rng_for,
    safe_institutions,
)

from custody.devnet import BNB_DEVNET_CHAIN_ID, EvmNode
from custody.ethereum import EthChain, SafeVaults
from treasury.chains import EvmChainSettings
from treasury.exceptions import UnknownAccountError
from treasury.policy import ReconciliationOutcome
from treasury.reconcile import (
    AlarmKind,
    EthereumReader,
    ReconcileGate,
    Reconciler,
    RunReport,
    RunStatus,
    eth_scope,
    holdings_account,
    list_alarms,
)
from treasury.reconcile.ethereum import chain_readers

log = logging.getLogger("tests.second_chain.reconcile")

WEI = 10**18
ETH_SAFE = "reserve-eth"
BNB_SAFE = "reserve-bnb"


@dataclass
class TwoChains:
    db: Db
    reserve: EthChain
    bnb: EthChain
    bnb_node: EvmNode
    eth_safe: str
    bnb_safe: str

    def bnb_chain(self, url: str | None = None) -> EvmChainSettings:
        """The BNB chain as configured (``url``: another node put in its place)."""
        return EvmChainSettings(
            "bnb", url or self.bnb_node.rpc_url, BNB_DEVNET_CHAIN_ID, native_asset="BNB"
        )

    def run(self, *chains: EvmChainSettings, reserve: bool = True) -> RunReport:
        readers = [EthereumReader(self.reserve.rpc)] if reserve else []
        return Reconciler(
            self.db.sessions, bitcoin=None, ethereum=[*readers, *chain_readers(chains)]
        ).run()

    def fund(self, chain: EthChain, safe: str, wei: int) -> None:
        chain.transact(chain.accounts()[0], safe, b"", value=wei, action="fund the Safe")

    def held(self, chain_id: int, safe: str, asset: str) -> int:
        """The posted holdings of ``asset`` in the Safe's scope (0 if it never had an account)."""
        try:
            return self.db.posted(holdings_account(eth_scope(chain_id, safe), asset))
        except UnknownAccountError:
            return 0

    def has_account(self, chain_id: int, safe: str, asset: str) -> bool:
        try:
            self.db.posted(holdings_account(eth_scope(chain_id, safe), asset))
        except UnknownAccountError:
            return False
        return True


@pytest.fixture
def world(
    evm_node: EvmNode,
    bnb_node: EvmNode,
    db_url: str,
    test_seed: int,
    request: pytest.FixtureRequest,
) -> Iterator[TwoChains]:
    """One 2-of-3 Safe per chain, owned by the same three institutions, in a fresh database."""
    db = migrated(db_url)
    people = safe_institutions(test_seed)
    safes = []
    for node, name in ((evm_node, ETH_SAFE), (bnb_node, BNB_SAFE)):
        chain = EthChain(node.rpc)
        deployed(chain)
        rng = rng_for(test_seed, request.node.nodeid, name)
        vaults = SafeVaults(chain, db.sessions, random_bytes=rng.randbytes)
        safes.append(create_safe(vaults, name, people, rng.getrandbits(128)))
    yield TwoChains(db, EthChain(evm_node.rpc), EthChain(bnb_node.rpc), bnb_node, *safes)
    db.engine.dispose()


def test_both_chains_are_booked_each_in_its_own_native_coin(world: TwoChains) -> None:
    """Ether paid to the reserve chain's Safe is booked as ETH and BNB paid to the BNB devnet's
    Safe as BNB, each under its own chain's scope, once; both gates are matched."""
    world.fund(world.reserve, world.eth_safe, 2 * WEI)
    world.fund(world.bnb, world.bnb_safe, 3 * WEI + 5)
    report = world.run(world.bnb_chain())
    assert report.status is RunStatus.SUCCEEDED, report
    assert {o.scope for o in report.vaults} == {
        eth_scope(31337, ETH_SAFE),
        eth_scope(BNB_DEVNET_CHAIN_ID, BNB_SAFE),
    }
    assert world.held(31337, ETH_SAFE, "ETH") == 2 * WEI
    assert world.held(BNB_DEVNET_CHAIN_ID, BNB_SAFE, "BNB") == 3 * WEI + 5
    assert not world.has_account(BNB_DEVNET_CHAIN_ID, BNB_SAFE, "ETH")
    assert not world.has_account(31337, ETH_SAFE, "BNB")
    world.run(world.bnb_chain())
    assert world.held(BNB_DEVNET_CHAIN_ID, BNB_SAFE, "BNB") == 3 * WEI + 5
    assert world.db.trial_balance_zero()
    with world.db.sessions() as session:
        for asset in ("ETH", "BNB"):
            facts = ReconcileGate().latest(session, asset)
            assert facts is not None
            assert facts.outcome is ReconciliationOutcome.MATCHED


def test_a_node_of_another_chain_in_a_chains_place_reads_nothing_and_alarms(
    world: TwoChains,
) -> None:
    """The BNB chain configured with the reserve node's URL (a slip, or a hostile edit): its Safe
    is not read from the wrong chain, the run fails with a node alarm naming the mismatch, and the
    reserve chain's Safe is still reconciled."""
    world.fund(world.reserve, world.eth_safe, WEI)
    world.fund(world.bnb, world.bnb_safe, WEI)
    report = world.run(world.bnb_chain(url=world.reserve.rpc.url))
    assert report.status is RunStatus.FAILED
    outcome = {o.scope: o for o in report.vaults}
    bnb = outcome[eth_scope(BNB_DEVNET_CHAIN_ID, BNB_SAFE)]
    assert not bnb.ok
    assert bnb.error is not None
    assert f"serves chain 31337, not the configured chain {BNB_DEVNET_CHAIN_ID}" in bnb.error
    assert outcome[eth_scope(31337, ETH_SAFE)].ok
    assert not world.has_account(BNB_DEVNET_CHAIN_ID, BNB_SAFE, "BNB")
    assert not world.has_account(BNB_DEVNET_CHAIN_ID, BNB_SAFE, "ETH")
    with world.db.sessions() as session:
        alarms = [(a.kind, a.scope) for a in list_alarms(session, only_open=True)]
    assert (AlarmKind.NODE_UNREACHABLE, eth_scope(BNB_DEVNET_CHAIN_ID, BNB_SAFE)) in alarms


def test_a_safe_on_a_chain_without_a_node_is_reported_not_skipped(world: TwoChains) -> None:
    """With only the reserve chain configured, the BNB Safe is not silently passed over: its
    reconciliation fails, naming the missing chain, and raises an alarm."""
    world.fund(world.bnb, world.bnb_safe, WEI)
    report = world.run()
    outcome = {o.scope: o for o in report.vaults}
    bnb = outcome[eth_scope(BNB_DEVNET_CHAIN_ID, BNB_SAFE)]
    assert not bnb.ok
    assert (
        bnb.error == f"No EVM node of chain {BNB_DEVNET_CHAIN_ID} is configured for the reconciler."
    )
    assert not world.has_account(BNB_DEVNET_CHAIN_ID, BNB_SAFE, "BNB")
    assert outcome[eth_scope(31337, ETH_SAFE)].ok
