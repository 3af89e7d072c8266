"""A recovery vault in the treasury, on regtest and both databases: stored, reconciled, refreshed.

The vault's primary keys are the three institutions' ceremony keys and its recovery keys three
recovery bodies' own SLIP-39 ceremonies; ``N`` is 10 blocks and the refresh alarm opens at 20% of
``N`` left (2 blocks). Mining through the thresholds: no alarm at 3 blocks left, an alarm at 2
(audited, and not blocking spends); a refresh, proposed, approved by officers' signed statements,
signed by the institutions' quorum through the gated miniscript signer, broadcast and booked as
an internal movement, clears it; the books match the chain and the watch-only wallet built from
the export; the refreshed coins' recovery path is closed again (``non-BIP68-final``) until ``N``
more blocks, then the recovery bodies' spend confirms.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from embit.psbt import PSBT
from reconcile_authority_support import CODES, MAX_FEE_SATS, AuthorityWorld, authority_world
from reconcile_support import INSTITUTIONS, reconciler, rng_for
from sqlalchemy import select
from typer.testing import CliRunner

from custody.authority.errors import AuthorizationError
from custody.bitcoin.approval import Payment
from custody.bitcoin.descriptor import Branch
from custody.bitcoin.psbt import parse_psbt
from custody.bitcoin.recovery import (
    SpendPath,
    VaultCoin,
    build_psbt,
    extract_transaction,
    finalize_psbt,
    sign_vault_psbt,
    spend_under_review,
)
from custody.bitcoin.rpc import btc_to_sats, sats_to_btc
from custody.ceremony import (
    CeremonyPlan,
    ShareFiles,
    load_transcript,
    read_share_file,
    run_ceremony,
)
from custody.exceptions import BitcoinRPCError
from custody.keys import signing_keys
from custody.shamir import combine_shares, parse_shares
from treasury import ledger
from treasury.audit import AuditEvent
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV
from treasury.proposals import LedgerSpendHook, SpendAccounts, SpendPosting, SpendRequest
from treasury.reconcile import ReconcileGate, RunReport, RunStatus, btc_scope, list_alarms
from treasury.reconcile.accounts import approved_outflows_account, fees_account, holdings_account
from treasury.reconcile.refresh import list_refresh_alarms
from treasury.recovery_spending import RecoveryVaultSpender, RefreshLedgerHook
from treasury.recovery_vaults import (
    RecoveryVaultError,
    StoredRecoveryVault,
    create_recovery_vault,
    issue_address,
    locate_address,
)
from treasury.settings import BITCOIN_RPC_URL_ENV
from treasury.workflow_exceptions import TransactionMismatchError

log = logging.getLogger("tests.recovery_vault_treasury")

DELAY_BLOCKS = 10
ALARM_PERCENT_LEFT = 20
FUNDING_SATS = 100_000_000
REFRESH_SATS = 60_000_000
FEE_RATE = 2
BODIES = ("Recovery Body One", "Recovery Body Two", "Recovery Body Three")


@dataclass
class RecoveryWorld:
    world: AuthorityWorld
    vault: StoredRecoveryVault
    body_shares: dict[str, list[str]]

    @property
    def scope(self) -> str:
        return btc_scope(self.vault.name)

    @property
    def holdings(self) -> str:
        return holdings_account(self.scope, "BTC")

    def reconcile(self) -> RunReport:
        report = reconciler(self.world.db, bitcoin=self.world.btc.node.rpc).run()
        assert report.status is RunStatus.SUCCEEDED, report
        return report

    def spender(self) -> RecoveryVaultSpender:
        return RecoveryVaultSpender(
            self.world.sessions,
            self.world.btc.node.rpc,
            self.vault.name,
            CODES,
            fee_rate_sat_vb=FEE_RATE,
            max_fee_sats=MAX_FEE_SATS,
        )

    def issue(self) -> str:
        with self.world.sessions.begin() as session:
            return issue_address(session, self.vault.name)[1]


@pytest.fixture
def recovery(
    bitcoin_node, db_url: str, tmp_path: Path, test_seed: int, request: pytest.FixtureRequest
) -> Iterator[RecoveryWorld]:  # type: ignore[no-untyped-def]
    """The reconciler's authority world, three recovery bodies' ceremonies, a recovery vault."""
    name = f"rv{test_seed % 10**6}-{abs(hash(request.node.nodeid)) % 10**8}"
    world = authority_world(db_url, bitcoin_node, tmp_path, test_seed, name)
    body_shares: dict[str, list[str]] = {}
    for number, body in enumerate(BODIES):
        delivery = ShareFiles(tmp_path / "bodies" / str(number))
        with world.sessions.begin() as session:
            run_ceremony(
                session,
                CeremonyPlan(body, ("X", "Y", "Z"), 2),
                delivery,
                "",
                random_bytes=rng_for(test_seed, name, "body", number).randbytes,
                rng=rng_for(test_seed, name, "body"),
            )
        body_shares[body] = [read_share_file(path) for path in delivery.written]
    with world.sessions.begin() as session:
        vault = create_recovery_vault(
            session,
            bitcoin_node.rpc,
            f"{name}-recovery",
            primary=INSTITUTIONS,
            primary_threshold=2,
            recovery=BODIES,
            recovery_threshold=2,
            recovery_delay_blocks=DELAY_BLOCKS,
            actor="test",
        )
    yield RecoveryWorld(world, vault, body_shares)
    bitcoin_node.rpc.call("unloadwallet", vault.wallet_name)
    world.db.engine.dispose()


def _mine_to(recovery: RecoveryWorld, blocks_left: int) -> None:
    """Mine until the vault's soonest coin has exactly ``blocks_left`` before recovery opens."""
    node = recovery.world.btc.node
    coins = node.rpc.wallet(recovery.vault.wallet_name).call("listunspent", 1)
    confirmations = min(int(c["confirmations"]) for c in coins)
    missing = DELAY_BLOCKS - blocks_left - confirmations
    assert missing >= 0
    if missing:
        node.mine(missing)


def _outcome(report: RunReport, vault: str):  # type: ignore[no-untyped-def]
    (found,) = [o for o in report.refresh if o.vault == vault]
    return found


def _recovery_spend(recovery: RecoveryWorld) -> str:
    """The recovery bodies One and Three sign a spend of every vault coin to the miner."""
    node = recovery.world.btc.node
    policy = recovery.vault.policy
    with recovery.world.sessions() as session:
        coins = []
        for coin in node.rpc.wallet(recovery.vault.wallet_name).call("listunspent", 1):
            located = locate_address(session, recovery.vault.id, coin["address"])
            assert located is not None
            coins.append(
                VaultCoin(coin["txid"], coin["vout"], btc_to_sats(coin["amount"]), *located)
            )
        fingerprints = {b: load_transcript(session, b).fingerprint for b in BODIES}
    total = sum(c.amount_sats for c in coins)
    payee = node.rpc.wallet("miner").call("getnewaddress", "", "bech32")
    psbt = build_psbt(
        policy,
        coins,
        [Payment(payee, total - 10_000)],
        path=SpendPath.RECOVERY,
        fee_rate_sat_vb=FEE_RATE,
        change_index=999,
    )
    signed = []
    for body in (BODIES[0], BODIES[2]):
        copy = PSBT.from_string(psbt.to_string())
        seed = combine_shares(parse_shares(recovery.body_shares[body][:2]), "")
        with signing_keys(seed, fingerprints[body]) as keys:
            sign_vault_psbt(copy, policy, keys)
        signed.append(copy.to_string())
    combined = PSBT.from_string(node.rpc.call("combinepsbt", signed))
    assert set(finalize_psbt(combined, policy)) == {SpendPath.RECOVERY}
    return str(extract_transaction(combined).to_string())


def test_the_refresh_alarm_opens_at_its_share_and_an_approved_refresh_clears_it(
    recovery: RecoveryWorld,
) -> None:
    """Funded, reconciled, mined to 3 then 2 blocks left: the alarm opens at 2 (20% of 10), is
    audited and does not block spends; the refresh through statements, gated signers and the
    satisfier confirms, books only the fee, and the next run clears the alarm; books, chain and
    the export's watch-only wallet agree; the refreshed coins are closed to the recovery bodies
    until N more blocks, then their spend confirms."""
    world, vault = recovery.world, recovery.vault
    node = world.btc.node
    wallet = node.rpc.wallet(vault.wallet_name)
    node.rpc.wallet("miner").call("sendtoaddress", recovery.issue(), sats_to_btc(FUNDING_SATS))
    node.mine(1)

    first = _outcome(recovery.reconcile(), vault.name)
    assert [w.blocks_left for w in first.windows.windows] == [DELAY_BLOCKS - 1]
    assert first.due == ()
    assert first.raised is None
    assert world.db.posted(recovery.holdings) == FUNDING_SATS

    _mine_to(recovery, 3)
    log.info("3 blocks left: 30%% of N, above the 20%% share")
    assert _outcome(recovery.reconcile(), vault.name).raised is None
    with world.sessions() as session:
        assert list_refresh_alarms(session, only_open=True) == []

    _mine_to(recovery, 2)
    log.info("2 blocks left: the alarm opens")
    raised = _outcome(recovery.reconcile(), vault.name).raised
    assert raised is not None
    assert raised.soonest_blocks_left == 2
    again = _outcome(recovery.reconcile(), vault.name)
    assert again.raised is None
    assert len(again.due) == 1
    with world.sessions() as session:
        (alarm,) = list_refresh_alarms(session, only_open=True)
        assert alarm.id == raised.id
        events = [
            json.loads(e.payload).get("event")
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.sequence))
        ]
        assert events.count("refresh_alarm_raised") == 1
        assert list_alarms(session, only_open=True) == []  # not a books alarm: spends go on
        facts = ReconcileGate().latest(session, "BTC")
        assert facts is not None
        assert facts.outcome.value == "matched"

    log.info("the refresh: proposal, statements, gated signers, broadcast")
    destination = recovery.issue()
    world.allow("BTC", destination)
    proposal_id = world.proposal("BTC", REFRESH_SATS, destination)
    spender = recovery.spender()
    prepared = spender.build(SpendRequest(proposal_id, "BTC", REFRESH_SATS, destination))
    world.prepare(proposal_id, prepared.tx_hash, json.loads(prepared.payload), prepared.fee)

    with pytest.raises(AuthorizationError):  # no statements yet: the signer refuses
        spender.sign(prepared, "MOF", world.btc.shares[CODES["MOF"]][:2], "")

    psbt = parse_psbt(json.loads(prepared.payload)["psbt"])
    spend = spend_under_review(psbt, vault.policy)
    assert (spend.destination, spend.amount, spend.tx_hash) == (
        destination,
        REFRESH_SATS,
        prepared.tx_hash,
    )
    for approver in ("MOF approver", "NB approver"):
        world.store(
            proposal_id,
            world.statement(proposal_id, spend, vault.name, approver, max_fee=MAX_FEE_SATS),
        )
    for code in ("MOF", "NB"):
        prepared = spender.sign(prepared, code, world.btc.shares[CODES[code]][:2], "")
    sealed = spender.seal(prepared)
    assert sealed.txid == prepared.tx_hash

    accounts = {
        "BTC": SpendAccounts(
            recovery.holdings, approved_outflows_account("BTC"), fees_account("BTC")
        )
    }
    hook = RefreshLedgerHook(LedgerSpendHook(accounts), accounts, {vault.name: recovery.holdings})
    with world.sessions.begin() as session:
        hook.hold(
            session,
            SpendPosting(proposal_id, "BTC", REFRESH_SATS, prepared.fee, destination, sealed.txid),
        )
    assert spender.send(prepared, sealed) == sealed.txid
    assert spender.send(prepared, sealed) == sealed.txid  # sending again is not an error
    world.mark_broadcast(proposal_id, sealed.txid)
    node.mine(1)
    assert spender.confirmations(sealed.txid) == 1

    cleared = _outcome(recovery.reconcile(), vault.name)
    assert cleared.cleared is not None
    assert cleared.cleared.id == raised.id
    assert cleared.due == ()
    assert {w.blocks_left for w in cleared.windows.windows} == {DELAY_BLOCKS - 1}
    assert len(cleared.windows.windows) == 2  # the refreshed payment and its change
    with world.sessions() as session:
        assert list_refresh_alarms(session, only_open=True) == []
        assert list_alarms(session, only_open=True) == []
        assert all(line.balanced for line in ledger.trial_balance(session))
    fee = prepared.fee
    assert world.db.posted(recovery.holdings) == FUNDING_SATS - fee
    assert world.db.posted(fees_account("BTC")) == fee
    assert world.db.posted(approved_outflows_account("BTC")) == 0
    balance = btc_to_sats(wallet.call("getbalances")["mine"]["trusted"])
    assert balance == FUNDING_SATS - fee

    log.info("the refreshed coins are closed to the recovery bodies until N more blocks")
    tx_hex = _recovery_spend(recovery)
    node.mine(DELAY_BLOCKS - 2)  # the refreshed coins now have N - 1 confirmations
    (verdict,) = node.rpc.call("testmempoolaccept", [tx_hex])
    assert verdict["reject-reason"] == "non-BIP68-final"
    with pytest.raises(BitcoinRPCError, match="non-BIP68-final"):
        node.rpc.call("sendrawtransaction", tx_hex)
    node.mine(1)
    txid = node.rpc.call("sendrawtransaction", tx_hex)
    node.mine(1)
    assert wallet.call("gettransaction", txid)["confirmations"] == 1


def test_the_spender_refuses_altered_payloads_and_non_institutions(
    recovery: RecoveryWorld,
) -> None:
    """A payload whose PSBT is not the approved transaction, another vault's payload, and a
    recovery body (or unknown code) asked to sign through the workflow are refused before any
    signature; a second vault of the same name is refused."""
    world, vault = recovery.world, recovery.vault
    node = world.btc.node
    node.rpc.wallet("miner").call("sendtoaddress", recovery.issue(), sats_to_btc(FUNDING_SATS))
    node.mine(1)
    spender = recovery.spender()
    destination = world.destinations["BTC"]
    prepared = spender.build(SpendRequest(1, "BTC", 1_000_000, destination))
    other = spender.build(SpendRequest(2, "BTC", 2_000_000, destination))
    forged = type(prepared)(prepared.tx_hash, prepared.summary, other.payload, prepared.fee)
    shares = world.btc.shares[CODES["MOF"]][:2]
    with pytest.raises(TransactionMismatchError, match="not the approved"):
        spender.sign(forged, "MOF", shares, "")
    body = json.loads(prepared.payload)
    body["vault"] = "elsewhere"
    moved = type(prepared)(prepared.tx_hash, prepared.summary, json.dumps(body), prepared.fee)
    with pytest.raises(TransactionMismatchError, match="vault"):
        spender.sign(moved, "MOF", shares, "")
    with pytest.raises(TransactionMismatchError, match="no ceremony mapped"):
        spender.sign(prepared, "R1", recovery.body_shares[BODIES[0]][:2], "")
    with world.sessions.begin() as session, pytest.raises(RecoveryVaultError, match="exists"):
        create_recovery_vault(
            session,
            node.rpc,
            vault.name,
            primary=INSTITUTIONS,
            primary_threshold=2,
            recovery=BODIES,
            recovery_threshold=2,
            recovery_delay_blocks=DELAY_BLOCKS,
            actor="test",
        )


def test_the_recovery_commands_issue_export_and_show_the_windows(recovery: RecoveryWorld) -> None:
    """`treasury recovery address/export/status` on the stored vault: the export carries the
    full miniscript (timelock included), status shows each coin's blocks left and marks it due at
    the alarm's share; `create` with a taken name is one error line."""
    node = recovery.world.btc.node
    env = {
        DATABASE_URL_ENV: recovery.world.db.url,
        BITCOIN_RPC_URL_ENV: (
            f"http://{node.rpc_user}:{node.rpc_password}@127.0.0.1:{node.rpc_port}"
        ),
    }
    runner = CliRunner()
    name = recovery.vault.name
    issued = runner.invoke(app, ["recovery", "address", name], env=env)
    assert issued.exit_code == 0, issued.output
    deposit = issued.output.split()[0]
    assert deposit == recovery.vault.policy.address(Branch.RECEIVE, 0)
    exported = runner.invoke(app, ["recovery", "export", name], env=env)
    assert exported.exit_code == 0, exported.output
    assert f"older({DELAY_BLOCKS})" in exported.output
    assert exported.output.startswith(recovery.vault.policy.multipath_text())
    assert "BSMS 1.0" in exported.output
    node.rpc.wallet("miner").call("sendtoaddress", deposit, sats_to_btc(FUNDING_SATS))
    node.mine(DELAY_BLOCKS - 2)
    shown = runner.invoke(app, ["recovery", "status"], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"{name}: N={DELAY_BLOCKS} blocks" in shown.output
    assert "2 blocks before recovery opens REFRESH DUE" in shown.output
    relaxed = runner.invoke(app, ["recovery", "status", "--alarm-percent", "10"], env=env)
    assert "REFRESH DUE" not in relaxed.output
    again = runner.invoke(
        app,
        [
            "recovery", "create", name, "--primary", INSTITUTIONS[0], "--recovery", BODIES[0],
            "--delay-blocks", "10", "--primary-threshold", "1", "--recovery-threshold", "1",
        ],
        env=env,
    )  # fmt: skip
    assert again.exit_code != 0
    assert "already exists" in again.output
