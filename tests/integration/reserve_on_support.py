"""The demo's reserve (``treasury.story.Reserve``) on a database the test chooses, ready to spend.

``Reserve`` keeps its own SQLite file; the tests of one transaction per proposal and of the
write-ahead broadcast run on both databases, so this moves a fresh reserve onto ``db_url`` before
any step writes, then holds the ceremonies, opens the vaults, deposits, reconciles and founds the
governance exactly as the end-to-end test does.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

from eth_account import Account

from custody.bitcoin.rpc import btc_to_sats
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import SafeVaults
from treasury import audit, ledger, migrate
from treasury.db import make_engine, session_factory
from treasury.proposals import PreparedTx, ProposalView, SealedTx
from treasury.reconcile import btc_scope, eth_scope, holdings_account, list_alarms
from treasury.story import SAFE_VAULT, Reserve
from treasury.workflow_exceptions import WorkflowError

log = logging.getLogger(__name__)

BTC_DEPOSITS_SATS = (60_000_000, 30_000_000, 10_000_000)
ETH_DEPOSIT_WEI = 20 * 10**18
TOKEN_DEPOSIT = 5_000 * 10**18


class SimulatedCrashError(WorkflowError):
    """The process died here (raised by a test's spender wrapper)."""


def reserve_on(db_url: str, folder: Path, bitcoin: BitcoinNode, evm: EvmNode) -> Reserve:
    """A governed reserve with funded vaults on both chains, its records on ``db_url``."""
    story = Reserve(folder, bitcoin, evm, btc_vault=f"one-{uuid.uuid4().hex[:8]}")
    story.engine.dispose()
    migrate.upgrade(db_url)
    story.database_url = db_url
    story.engine = make_engine(db_url)
    story.sessions = session_factory(story.engine)
    story.safes = SafeVaults(story.chain, story.sessions)
    story.hold_ceremonies(log.info)
    story.open_vaults(log.info)
    story.deposit(log.info, BTC_DEPOSITS_SATS, ETH_DEPOSIT_WEI, TOKEN_DEPOSIT)
    evm.rpc.call("evm_mine")
    story.reconcile(log.info)
    payee_btc = bitcoin.rpc.wallet("miner").call("getnewaddress", "", "bech32")
    story.govern(log.info, {"BTC": payee_btc, "ETH": Account.create().address})
    story.reconcile(log.info)
    return story


def holdings(story: Reserve, asset: str) -> str:
    """The ledger account of the vault of ``asset``."""
    scope = (
        btc_scope(story.btc_vault)
        if asset == "BTC"
        else eth_scope(story.chain.chain_id, SAFE_VAULT)
    )
    return holdings_account(scope, asset)


def chain_balance(story: Reserve, asset: str) -> int:
    """What the vault of ``asset`` holds on its chain (confirmed)."""
    if asset == "BTC":
        wallet = story.bitcoin.rpc.wallet(f"vault-{story.btc_vault}")
        return btc_to_sats(wallet.call("getbalances")["mine"]["trusted"])
    return story.chain.balance(story.safes.vault(SAFE_VAULT).address)


def signed_spend(story: Reserve, asset: str, amount: int) -> ProposalView:
    """A proposal to the allowlisted payee, prepared, approved and signed by two institutions."""
    wf = story.workflow()
    view = story.propose_and_approve(wf, asset, amount, story.payees[asset])
    return story.sign(wf, view.id, asset)


def send_raw(story: Reserve, asset: str, sealed: SealedTx) -> None:
    """Give the sealed transaction to the node (and, on Ethereum, wait until it is mined)."""
    if asset == "BTC":
        story.bitcoin.rpc.call("sendrawtransaction", sealed.raw)
    else:
        story.evm.rpc.call("eth_sendRawTransaction", json.loads(sealed.raw)["raw"])
        story.chain.wait_for_receipt(sealed.txid)


class CrashingSpender:
    """A real chain spender whose process dies right after the node accepted the transaction
    (``send``), before anything is recorded (custody's own record included)."""

    def __init__(self, story: Reserve, asset: str) -> None:
        self._story = story
        self._asset = asset
        self._inner = story.spenders()[asset]
        self.sent: list[str] = []

    def build(self, request: object) -> PreparedTx:
        raise AssertionError("only broadcast is crashed")

    def sign(self, *args: object) -> PreparedTx:
        raise AssertionError("only broadcast is crashed")

    def seal(self, prepared: PreparedTx) -> SealedTx:
        return self._inner.seal(prepared)

    def send(self, prepared: PreparedTx, sealed: SealedTx) -> str:
        send_raw(self._story, self._asset, sealed)
        self.sent.append(sealed.txid)
        raise SimulatedCrashError(
            "killed after the node accepted the transaction, before the record"
        )

    def find_broadcast(self, prepared: PreparedTx, sealed: SealedTx | None) -> str | None:
        return self._inner.find_broadcast(prepared, sealed)

    def confirmations(self, txid: str) -> int:
        return self._inner.confirmations(txid)


def spend_keys(story: Reserve, proposal_id: int) -> list[str]:
    """The ledger keys of a proposal's own entries (its hold and its posting)."""
    prefix = f"spend-proposal:{proposal_id}"
    with story.sessions() as session:
        return sorted(
            e.key
            for e in ledger.list_entries(session, limit=100_000)
            if e.key == prefix or e.key.startswith(prefix + ":")
        )


def books_are_whole(story: Reserve, asset: str) -> None:
    """The ledger's holdings equal the chain's, every asset balances, the audit chain verifies,
    and no alarm is open."""
    with story.sessions() as session:
        assert ledger.balance(session, holdings(story, asset)).posted == chain_balance(story, asset)
        assert all(totals.balanced for totals in ledger.trial_balance(session))
        assert audit.verify(session).ok
        assert list_alarms(session, only_open=True) == []
