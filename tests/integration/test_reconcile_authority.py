"""The reconciler authorises an outflow only on the officers' verified statements (issue 12).

Real bitcoind and anvil, both databases. A roster founded with the ceremonies' own keys, approvers'
statements stored through the treasury and checked by custody's gated signers: such a spend is
booked as approved with no alarm. Everything else -- a spend signed with embit or a raw SafeTx,
a custody-level spend whose rows exist but no statements, statements altered or forged in the
database, a vetoed proposal -- raises UNAUTHORISED_OUTFLOW in the first run that sees it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from authority_support import k1_public, k1_sign, private_key
from reconcile_authority_support import (
    ETH_PAYEE,
    AuthorityWorld,
    authority_world,
    drop_statement_triggers,
)
from reconcile_support import INSTITUTIONS, run
from sqlalchemy import select, text, update

from custody.authority import ApprovalStatement, SignedStatement, StatementKind
from custody.authority.gate import BreakGlass
from custody.bitcoin import broadcast_spend, sign_spend
from custody.clock import utc_now
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import pack_signatures, sign_safe_tx_hash
from custody.ethereum.records import SafeTxRow
from custody.records import SpendRecord
from custody.shamir import parse_shares
from treasury.authority.tables import ApprovalStatementRow
from treasury.ledger import ETH
from treasury.policy import ReconciliationOutcome
from treasury.proposals.tables import PreparedTxRow
from treasury.reconcile import (
    Alarm,
    AlarmKind,
    ReconcileGate,
    RunStatus,
    acknowledge,
    approved_outflows_account,
    list_alarms,
    suspense_account,
)
from treasury.reconcile.break_glass import record_break_glass

log = logging.getLogger("tests.reconcile.authority")

BTC = 100_000_000
ETHER_WEI = 10**18


def _world(
    db_url: str,
    node: BitcoinNode,
    tmp_path: Path,
    seed: int,
    request: pytest.FixtureRequest,
    evm: EvmNode | None = None,
) -> AuthorityWorld:
    name = f"ra{seed % 10**6}-{abs(hash(request.node.nodeid)) % 10**8}"
    return authority_world(db_url, node, tmp_path, seed, name, evm)


@pytest.fixture
def world(
    bitcoin_node: BitcoinNode,
    db_url: str,
    tmp_path: Path,
    test_seed: int,
    request: pytest.FixtureRequest,
) -> Iterator[AuthorityWorld]:
    built = _world(db_url, bitcoin_node, tmp_path, test_seed, request)
    built.btc.pay([3 * BTC])
    assert run(built.db, bitcoin=bitcoin_node.rpc).status is RunStatus.SUCCEEDED
    yield built
    built.db.engine.dispose()


@pytest.fixture
def safe_world(
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    db_url: str,
    tmp_path: Path,
    test_seed: int,
    request: pytest.FixtureRequest,
) -> Iterator[AuthorityWorld]:
    built = _world(db_url, bitcoin_node, tmp_path, test_seed, request, evm_node)
    built.fund_safe(5 * ETHER_WEI)
    assert run(built.db, bitcoin=bitcoin_node.rpc, evm=evm_node.rpc).status is RunStatus.SUCCEEDED
    yield built
    built.db.engine.dispose()


def _open_alarms(world: AuthorityWorld) -> list[Alarm]:
    with world.sessions() as session:
        return list_alarms(session, only_open=True)


def _outflow_alarm(world: AuthorityWorld, tx_ref: str) -> Alarm:
    (alarm,) = [a for a in _open_alarms(world) if a.tx_ref == tx_ref]
    assert alarm.kind is AlarmKind.UNAUTHORISED_OUTFLOW
    return alarm


def _btc_run(world: AuthorityWorld) -> None:
    world.btc.node.mine(1)
    assert run(world.db, bitcoin=world.btc.node.rpc).status is RunStatus.SUCCEEDED


def _eth_run(world: AuthorityWorld) -> None:
    assert world.evm is not None
    report = run(world.db, bitcoin=world.btc.node.rpc, evm=world.evm.rpc)
    assert report.status is RunStatus.SUCCEEDED


def _gate(world: AuthorityWorld, asset: str) -> ReconciliationOutcome:
    with world.sessions() as session:
        facts = ReconcileGate().latest(session, asset)
    assert facts is not None
    return facts.outcome


# --- the legitimate path -----------------------------------------------------------------------


def test_spend_approved_by_verified_statements_is_booked_without_alarm(
    world: AuthorityWorld,
) -> None:
    """A spend the approvers signed statements for, signed by custody's gated signers, books as approved."""
    _proposal_id, txid = world.approved_btc_spend(BTC // 2)
    _btc_run(world)
    assert _open_alarms(world) == []
    fee = world.btc.wallet.call("gettransaction", txid)["fee"]
    paid = BTC // 2 + round(-fee * 10**8)
    assert world.db.posted(approved_outflows_account("BTC")) == paid
    assert world.db.posted(suspense_account("BTC")) == 0
    assert _gate(world, "BTC") is ReconciliationOutcome.MATCHED
    assert world.db.trial_balance_zero()


def test_safe_spend_approved_by_verified_statements_is_booked_without_alarm(
    safe_world: AuthorityWorld,
) -> None:
    """A SafeTx the approvers signed statements for, cosigned through the gate, books as approved."""
    safe_world.approved_safe_spend(ETHER_WEI)
    _eth_run(safe_world)
    assert _open_alarms(safe_world) == []
    assert safe_world.db.posted(approved_outflows_account(ETH.code)) == ETHER_WEI
    assert safe_world.db.posted(suspense_account(ETH.code)) == 0
    assert _gate(safe_world, "ETH") is ReconciliationOutcome.MATCHED
    assert safe_world.db.trial_balance_zero()


# --- out-of-band spends ------------------------------------------------------------------------


def test_embit_spend_without_any_proposal_is_alarmed_in_one_run(world: AuthorityWorld) -> None:
    """A spend signed directly with embit from the vault keys alarms in the first run after it."""
    external = world.destinations["BTC"]
    txid = world.btc.out_of_band_spend(external, BTC)
    _btc_run(world)
    alarm = _outflow_alarm(world, txid)
    assert "no proposal's current prepared transaction is this one" in alarm.detail
    assert world.db.posted(suspense_account("BTC")) > BTC  # the amount plus the fee
    assert world.db.posted(approved_outflows_account("BTC")) == 0
    assert _gate(world, "BTC") is ReconciliationOutcome.MISMATCHED


def test_raw_safe_tx_executed_with_the_owner_keys_is_alarmed_in_one_run(
    safe_world: AuthorityWorld,
) -> None:
    """A SafeTx signed with two owners' keys and submitted directly alarms in the first run."""
    assert safe_world.vaults is not None
    rogue = safe_world.vaults.new_safe_tx("reserve-eth", ETH_PAYEE, 2 * ETHER_WEI)
    signatures = pack_signatures(
        sign_safe_tx_hash(safe_world.owner_key(i), rogue.hash) for i in list(safe_world.quorums)[1:]
    )
    receipt = safe_world.vaults.submit(rogue, signatures, safe_world.relayer)
    _eth_run(safe_world)
    alarm = _outflow_alarm(safe_world, receipt.tx_hash)
    assert rogue.hash_hex in alarm.detail
    assert safe_world.db.posted(suspense_account(ETH.code)) == 2 * ETHER_WEI
    assert _gate(safe_world, "ETH") is ReconciliationOutcome.MISMATCHED


# --- rows the officers never signed for ----------------------------------------------------------


def test_custody_spend_and_proposal_rows_without_statements_are_unauthorised(
    world: AuthorityWorld,
) -> None:
    """A custody spend, proposal and prepared transaction naming the txid do not authorise it."""
    proposal_id, spend_id, psbt = world.btc_proposal(world.destinations["BTC"], BTC)
    txid = world.sign_out_of_band(psbt)
    world.mark_broadcast(proposal_id, txid)
    with world.sessions() as session:
        record = session.get_one(SpendRecord, spend_id)
        assert record.unsigned_txid == txid  # the rows the old rule took as authority
        assert session.scalar(select(PreparedTxRow.tx_hash).where(
            PreparedTxRow.proposal_id == proposal_id)) == txid  # fmt: skip
    _btc_run(world)
    alarm = _outflow_alarm(world, txid)
    assert f"proposal {proposal_id}: No approval statements were presented" in alarm.detail
    assert world.db.posted(approved_outflows_account("BTC")) == 0


def test_stored_safe_tx_and_proposal_without_statements_are_unauthorised(
    safe_world: AuthorityWorld,
) -> None:
    """A SafeTx stored in safe_transactions and prepared for a proposal is not an approval."""
    proposal_id, safe_tx = safe_world.safe_proposal(ETH_PAYEE, ETHER_WEI)
    signatures = pack_signatures(
        sign_safe_tx_hash(safe_world.owner_key(i), safe_tx.hash)
        for i in list(safe_world.quorums)[:2]
    )
    assert safe_world.vaults is not None
    receipt = safe_world.vaults.submit(safe_tx, signatures, safe_world.relayer)
    with safe_world.sessions() as session:
        stored = session.scalar(
            select(SafeTxRow.id).where(SafeTxRow.safe_tx_hash == safe_tx.hash_hex)
        )
    assert stored is not None
    _eth_run(safe_world)
    alarm = _outflow_alarm(safe_world, receipt.tx_hash)
    assert f"proposal {proposal_id}: No approval statements were presented" in alarm.detail
    assert safe_world.db.posted(suspense_account(ETH.code)) == ETHER_WEI


# --- statements a database writer altered or forged ----------------------------------------------


def _alter_statement(world: AuthorityWorld, row_id: int, statement: ApprovalStatement) -> None:
    with world.db.engine.begin() as connection:
        connection.execute(
            update(ApprovalStatementRow)
            .where(ApprovalStatementRow.id == row_id)
            .values(
                statement=statement.encode().decode(), statement_digest=statement.digest().hex()
            )
        )


def test_statements_altered_in_the_database_do_not_authorise(world: AuthorityWorld) -> None:
    """Genuine statements re-pointed by SQL (triggers dropped) at a bigger spend fail their signatures."""
    proposal_id, _spend_id, approved = world.btc_proposal(world.destinations["BTC"], BTC // 10)
    world.approve_btc(proposal_id, approved)

    log.info("the writer builds a 2 BTC spend to the same payee and re-points the proposal at it")
    _other, _spend, bigger = world.btc_proposal(world.destinations["BTC"], 2 * BTC)
    spend = world.btc_spend(bigger)
    drop_statement_triggers(world.db.engine)
    with world.sessions() as session:
        rows = session.scalars(
            select(ApprovalStatementRow).where(ApprovalStatementRow.proposal_id == proposal_id)
        ).all()
    assert len(rows) == 2
    for row in rows:
        genuine = ApprovalStatement.parse(row.statement.encode())
        _alter_statement(
            world, row.id, replace(genuine, tx_hash=spend.tx_hash, amount=spend.amount)
        )
    with world.db.engine.begin() as connection:
        connection.execute(
            update(PreparedTxRow)
            .where(PreparedTxRow.proposal_id == proposal_id)
            .values(
                tx_hash=spend.tx_hash,
                payload=json.dumps({"spend_id": _spend, "psbt": bigger.to_string()}),
            )
        )
    txid = world.sign_out_of_band(bigger)
    assert txid == spend.tx_hash
    _btc_run(world)
    alarm = _outflow_alarm(world, txid)
    assert f"proposal {proposal_id}:" in alarm.detail
    assert "is not signed by their key" in alarm.detail
    assert world.db.posted(approved_outflows_account("BTC")) == 0


def test_statements_forged_with_another_key_do_not_authorise(world: AuthorityWorld) -> None:
    """Statements inserted by SQL in the approvers' names but signed by the writer's key are refused."""
    proposal_id, _spend_id, psbt = world.btc_proposal(world.destinations["BTC"], BTC)
    spend = world.btc_spend(psbt)
    forger = private_key("the database writer's own key")
    for approver in ("MOF approver", "NB approver"):
        genuine_shape = world.statement(
            proposal_id, spend, world.btc.vault.name, approver, max_fee=50_000
        ).statement
        forged = SignedStatement(
            genuine_shape, k1_public(forger).key_id, k1_sign(forger, genuine_shape.digest())
        )
        with world.db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO approval_statements (proposal_id, statement, statement_digest, "
                    "key_id, signature, recorded_at) VALUES (:p, :s, :d, :k, :g, CURRENT_TIMESTAMP)"
                ),
                {
                    "p": proposal_id,
                    "s": forged.statement.encode().decode(),
                    "d": forged.statement.digest().hex(),
                    "k": forged.key_id,
                    "g": json.dumps(forged.signature.to_json(), sort_keys=True),
                },
            )
    txid = world.sign_out_of_band(psbt)
    _btc_run(world)
    alarm = _outflow_alarm(world, txid)
    assert "not one of their active keys" in alarm.detail


def test_vetoed_proposal_is_unauthorised_even_with_a_quorum(world: AuthorityWorld) -> None:
    """Two institutions' genuine approvals and a genuine veto: the outflow is unauthorised."""
    proposal_id, _spend_id, psbt = world.btc_proposal(world.destinations["BTC"], BTC)
    world.approve_btc(proposal_id, psbt)
    veto = world.statement(
        proposal_id, world.btc_spend(psbt), world.btc.vault.name, "AC approver",
        kind=StatementKind.VETO, max_fee=50_000,
    )  # fmt: skip
    world.store(proposal_id, veto)
    txid = world.sign_out_of_band(psbt)
    _btc_run(world)
    alarm = _outflow_alarm(world, txid)
    assert "vetoed proposal" in alarm.detail


# --- break-glass ---------------------------------------------------------------------------------


def test_break_glass_spend_is_booked_with_a_break_glass_alarm_never_authorised(
    world: AuthorityWorld,
) -> None:
    """Every institution signing under break-glass: booked to suspense, a BREAK_GLASS alarm, no authorisation."""
    spend_id, psbt = world.build_btc(world.destinations["BTC"], BTC)
    reason = "test: the officers' keys are unreachable during a drill"
    for institution in INSTITUTIONS:
        with world.sessions.begin() as session:
            sign_spend(
                session, spend_id, institution,
                parse_shares(world.btc.shares[institution][:2]), "",
                authority=BreakGlass(reason),
            )  # fmt: skip
            record_break_glass(
                session,
                chain="bitcoin:regtest",
                vault=world.btc.vault.name,
                tx_hash=world.btc_spend(psbt).tx_hash,
                institution=institution,
                reason=reason,
                clock=utc_now,
            )
    with world.sessions.begin() as session:
        txid = broadcast_spend(session, world.btc.node.rpc, spend_id)

    log.info("officers clear the signing alarms before the spend is mined")
    for alarm in _open_alarms(world):
        assert alarm.kind is AlarmKind.BREAK_GLASS
        for officer in ("MOF admin", "NB admin"):
            with world.sessions.begin() as session:
                acknowledge(session, alarm.id, world.officers[officer], "Drill acknowledged.")
    assert _open_alarms(world) == []

    _btc_run(world)
    (alarm,) = _open_alarms(world)
    assert (alarm.kind, alarm.tx_ref) == (AlarmKind.BREAK_GLASS, txid)
    assert "under break-glass" in alarm.detail
    assert all(name in alarm.detail for name in INSTITUTIONS)
    assert world.db.posted(suspense_account("BTC")) > BTC
    assert world.db.posted(approved_outflows_account("BTC")) == 0
    assert _gate(world, "BTC") is ReconciliationOutcome.MISMATCHED
    _btc_run(world)
    assert len(_open_alarms(world)) == 1  # kept, not raised again
