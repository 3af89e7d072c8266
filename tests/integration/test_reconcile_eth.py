"""Reconciling Safe vaults on anvil: ether and ERC-20 deposits, reorgs, out-of-band executions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from reconcile_authority_support import SAFE_NAME, AuthorityWorld, authority_world
from reconcile_support import (
    INSTITUTIONS,
    Db,
    SafeInstitution,
    create_safe,
    deployed,
    migrated,
    rng_for,
    run,
    safe_institutions,
)

from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import (
    EthChain,
    SafeVaults,
    pack_signatures,
    sign_safe_tx_hash,
)
from custody.ethereum.dev_token import deploy_dev_token
from custody.ethereum.erc20 import transfer_calldata
from treasury.ledger import ETH, erc20_asset
from treasury.policy import ReconciliationOutcome
from treasury.reconcile import (
    AlarmKind,
    ReconcileGate,
    RunStatus,
    eth_scope,
    holdings_account,
    list_alarms,
    track_token,
)

log = logging.getLogger("tests.reconcile.eth")

ETHER_WEI = 10**18
TOKEN_SUPPLY = 10**27
RECIPIENT = "0x000000000000000000000000000000000000bEEF"


@dataclass
class EthWorld:
    db: Db
    node: EvmNode
    chain: EthChain
    vaults: SafeVaults
    safe: str
    token: str
    people: list[SafeInstitution]

    @property
    def payer(self) -> str:
        return self.chain.accounts()[0]

    @property
    def scope(self) -> str:
        return eth_scope(self.chain.chain_id, "reserve-eth")

    def holdings(self, asset_code: str) -> str:
        return holdings_account(self.scope, asset_code)

    @property
    def token_code(self) -> str:
        return erc20_asset(self.token, 18).code

    def send_ether(self, amount_wei: int) -> str:
        return self.chain.transact(
            self.payer, self.safe, b"", value=amount_wei, action="fund"
        ).tx_hash

    def send_tokens(self, amount: int) -> str:
        data = transfer_calldata(self.safe, amount)
        return self.chain.transact(self.payer, self.token, data, action="fund tokens").tx_hash


@pytest.fixture
def world(
    evm_node: EvmNode, db_url: str, test_seed: int, request: pytest.FixtureRequest
) -> Iterator[EthWorld]:
    chain = EthChain(evm_node.rpc)
    deployed(chain)
    db = migrated(db_url)
    token = deploy_dev_token(chain, chain.accounts()[0], TOKEN_SUPPLY)
    people = safe_institutions(test_seed)
    vaults = SafeVaults(
        chain, db.sessions, random_bytes=rng_for(test_seed, request.node.nodeid).randbytes
    )
    salt = rng_for(test_seed, request.node.nodeid).getrandbits(128)
    safe = create_safe(vaults, "reserve-eth", people, salt)
    with db.sessions.begin() as session:
        track_token(session, chain.chain_id, token, "DEV", 18)
    yield EthWorld(db, evm_node, chain, vaults, safe, token, people)
    db.engine.dispose()


def test_ether_and_token_deposits_are_booked_once(world: EthWorld) -> None:
    """Two ether deposits and an ERC-20 transfer to the Safe are booked after one run and never again."""
    world.send_ether(2 * ETHER_WEI)
    world.send_ether(3)
    world.send_tokens(12_345 * 10**18 + 7)
    rpc = world.node.rpc
    assert run(world.db, evm=rpc).status is RunStatus.SUCCEEDED
    assert world.db.posted(world.holdings(ETH.code)) == 2 * ETHER_WEI + 3
    assert world.db.posted(world.holdings(world.token_code)) == 12_345 * 10**18 + 7
    entries = world.db.entry_count()
    for _ in range(3):
        run(world.db, evm=rpc)
    assert world.db.entry_count() == entries
    assert len(world.db.bookings(world.scope)) == 3
    assert world.db.trial_balance_zero()
    with world.db.sessions() as session:
        for asset in ("ETH", world.token_code):
            facts = ReconcileGate().latest(session, asset)
            assert facts is not None
            assert facts.outcome is ReconciliationOutcome.MATCHED


def test_reorg_reverses_a_deposit_and_books_it_again_once(world: EthWorld) -> None:
    """A deposit reverted away by evm_revert is reversed; replayed into a new block it is booked once more."""
    rpc = world.node.rpc
    snapshot = rpc.call("evm_snapshot")
    tx = world.send_tokens(500)
    raw = rpc.call("eth_getRawTransactionByHash", tx)
    first_block = rpc.call("eth_getTransactionReceipt", tx)["blockHash"]
    run(world.db, evm=rpc)
    assert world.db.posted(world.holdings(world.token_code)) == 500

    log.info("reverting to the snapshot: the deposit's block leaves the chain")
    assert rpc.call("evm_revert", snapshot)
    rpc.call("anvil_mine", "0x3")  # a longer chain without the deposit
    run(world.db, evm=rpc)
    assert world.db.posted(world.holdings(world.token_code)) == 0
    assert world.db.trial_balance_zero()

    assert rpc.call("eth_sendRawTransaction", raw) == tx
    world.chain.wait_for_receipt(tx)  # anvil mines the replayed transaction asynchronously
    second_block = rpc.call("eth_getTransactionReceipt", tx)["blockHash"]
    assert second_block != first_block
    for _ in range(3):
        run(world.db, evm=rpc)
    bookings = world.db.bookings(world.scope)
    assert [(b.generation, b.block_hash, b.reversal_entry_id is None) for b in bookings] == [
        (1, first_block, False),
        (2, second_block, True),
    ]
    assert world.db.posted(world.holdings(world.token_code)) == 500
    assert world.db.trial_balance_zero()


@pytest.fixture
def authorised(
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    db_url: str,
    tmp_path: Path,
    test_seed: int,
    request: pytest.FixtureRequest,
) -> Iterator[AuthorityWorld]:
    """The Safe of the ceremonies' keys with a founded roster: spends approved by statements."""
    name = f"re{test_seed % 10**6}-{abs(hash(request.node.nodeid)) % 10**8}"
    found = authority_world(db_url, bitcoin_node, tmp_path, test_seed, name, evm_node)
    yield found
    found.db.engine.dispose()


def test_execution_signed_outside_the_system_raises_an_alarm(authorised: AuthorityWorld) -> None:
    """An approved Safe execution passes; one signed directly with the owner keys alarms and closes the gate."""
    assert authorised.evm is not None
    assert authorised.vaults is not None
    rpc, db, vaults = authorised.evm.rpc, authorised.db, authorised.vaults
    nodes = {"bitcoin": authorised.btc.node.rpc, "evm": rpc}  # the world's vaults on both chains
    holdings = holdings_account(eth_scope(authorised.chain.chain_id, SAFE_NAME), ETH.code)
    authorised.fund_safe(5 * ETHER_WEI)
    run(db, **nodes)

    log.info("an approved execution (officers' statements verified by the signers) passes")
    authorised.approved_safe_spend(ETHER_WEI)
    assert run(db, **nodes).status is RunStatus.SUCCEEDED
    with db.sessions() as session:
        assert list_alarms(session, only_open=True) == []
    assert db.posted(holdings) == 4 * ETHER_WEI

    log.info("a SafeTx signed with two owners' keys directly and submitted")
    rogue = vaults.new_safe_tx(SAFE_NAME, RECIPIENT, 2 * ETHER_WEI)
    signatures = pack_signatures(
        sign_safe_tx_hash(authorised.owner_key(institution), rogue.hash)
        for institution in INSTITUTIONS[1:]
    )
    receipt = vaults.submit(rogue, signatures, authorised.relayer)
    run(db, **nodes)
    with db.sessions() as session:
        (alarm,) = list_alarms(session, only_open=True)
        facts = ReconcileGate().latest(session, "ETH")
    assert alarm.kind is AlarmKind.UNAUTHORISED_OUTFLOW
    assert alarm.tx_ref == receipt.tx_hash
    assert rogue.hash_hex in alarm.detail
    assert facts is not None
    assert facts.outcome is ReconciliationOutcome.MISMATCHED
    assert db.posted(holdings) == 2 * ETHER_WEI
    assert db.trial_balance_zero()
