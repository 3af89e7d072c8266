"""The compromised-cosigner drill on regtest and both databases: a new ceremony and vault, the
sweep of every coin through the officers' workflow, booked as an internal transfer, the old vault
retired, and an attestation of the rotated reserve that the auditor's verifier accepts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from reserve_on_support import reserve_on, spend_keys
from sqlalchemy import select

from custody.bitcoin import next_receive_address
from custody.bitcoin.rpc import btc_to_sats, sats_to_btc
from custody.devnet import BitcoinNode, EvmNode
from custody.records import VaultRecord
from treasury import audit, ledger
from treasury.proposals import ProposalState, VaultRotationRow
from treasury.proposals.rotations import (
    retired_rotation,
    spending_vaults,
    sweep_arrival,
    sweep_arrivals,
)
from treasury.reconcile import btc_scope, holdings_account
from treasury.reconcile.accounts import approved_outflows_account, fees_account
from treasury.rotation import RotationError, internal_holdings, retire, start_rotation
from treasury.settings import Settings
from treasury.story import Reserve
from treasury.story.cast import INSTITUTIONS, POLICY, TREASURY_ADMIN, VAULT_THRESHOLD
from treasury.story.rotation import rotation_drill
from treasury.wiring import btc_vault_name

log = logging.getLogger(__name__)

SPEND_SATS = 30_000_000
"""Each of the two spends before the drill (0.3 BTC of the reserve's 1 BTC)."""


@pytest.fixture
def reserve(
    db_url: str, tmp_path: Path, bitcoin_node: BitcoinNode, evm_node: EvmNode
) -> Iterator[Reserve]:
    story = reserve_on(db_url, tmp_path / "reserve", bitcoin_node, evm_node)
    yield story
    story.engine.dispose()


def _posted(story: Reserve, account: str) -> int:
    with story.sessions() as session:
        return ledger.balance(session, account).posted


def _unspent(story: Reserve, vault: str) -> list[dict[str, object]]:
    coins: list[dict[str, object]] = story.bitcoin.rpc.wallet(f"vault-{vault}").call(
        "listunspent", 0, 9999999, [], True
    )
    return coins


def test_a_rotation_keeps_the_cosigner_set_from_staying_the_same(reserve: Reserve) -> None:
    """A rotation to the very same key set is refused before any vault or row is made."""
    with reserve.sessions() as session, pytest.raises(RotationError, match="same cosigners"):
        start_rotation(
            session,
            reserve.bitcoin.rpc,
            reserve.officers[TREASURY_ADMIN],
            old_vault=reserve.btc_vault,
            new_vault=f"{reserve.btc_vault}-same",
            threshold=VAULT_THRESHOLD,
            institutions=[i.name for i in INSTITUTIONS],
            reason="drill",
        )
    with reserve.sessions() as session:
        assert session.scalars(select(VaultRecord.name)).all() == [reserve.btc_vault]


def test_a_forged_rotation_cannot_book_a_payment_as_an_internal_transfer(reserve: Reserve) -> None:
    """A database writer adds a rotation whose sweep address is the allowlisted payee: a payment
    there is still booked as money leaving the reserve, since the address is not the vault's."""
    payee = reserve.payees["BTC"]
    with reserve.sessions() as session:
        session.add(
            VaultRotationRow(
                old_vault="forged-old",
                new_vault=reserve.btc_vault,
                reason="forged",
                started_by=reserve.officers[TREASURY_ADMIN].id,
                started_at=reserve.clock(),
                sweep_address=payee,
            )
        )
        session.flush()
        assert internal_holdings(session, "BTC", payee) is None
        session.rollback()


def test_compromised_cosigner_drill_sweeps_every_coin_as_an_internal_transfer(
    reserve: Reserve, services_node: EvmNode
) -> None:
    """Rotation plus sweep end to end: the old vault ends empty on chain and in the books, the new
    vault holds everything but the fee, the reserve's total moved only by the fee, the ledger has
    one hold and one posting for the sweep and nothing paid out, every asset balances, the old
    vault is retired (spends come from the new one) and an attestation after it verifies."""
    # Two ordinary spends first, so the sweep stays under the policy's veto threshold: a sweep
    # above it is also announced on the services chain (the public delay window), as any spend.
    wf = reserve.workflow()
    for _ in range(2):
        paid = reserve.sign(
            wf, reserve.propose_and_approve(wf, "BTC", SPEND_SATS, reserve.payees["BTC"]).id, "BTC"
        )
        paid = reserve.confirm(wf, wf.broadcast(paid.id, reserve.spenders()["BTC"]).id, "BTC")
        assert paid.state is ProposalState.CONFIRMED
    reserve.reconcile(log.info)
    old_vault = reserve.btc_vault
    old_holdings = holdings_account(btc_scope(old_vault), "BTC")
    fees_before = _posted(reserve, fees_account("BTC"))
    paid_before = _posted(reserve, approved_outflows_account("BTC"))
    chain_before = sum(btc_to_sats(Decimal(str(c["amount"]))) for c in _unspent(reserve, old_vault))

    drill = rotation_drill(reserve, log.info)

    rotation = drill.rotation
    assert rotation.retired
    assert reserve.btc_vault == rotation.new_vault
    new_holdings = holdings_account(btc_scope(rotation.new_vault), "BTC")
    # The chain: every coin left the old vault, one output arrived, no change.
    assert _unspent(reserve, old_vault) == []
    arrived = _unspent(reserve, rotation.new_vault)
    assert [btc_to_sats(Decimal(str(c["amount"]))) for c in arrived] == [drill.amount_sats]
    assert drill.amount_sats + drill.fee_sats == chain_before == drill.holdings_before
    assert drill.amount_sats < POLICY["assets"]["BTC"]["veto_threshold"]
    assert drill.sweep.fee == drill.fee_sats
    # The books: an internal transfer, the reserve's total down by the fee only.
    assert _posted(reserve, old_holdings) == 0
    assert _posted(reserve, new_holdings) == drill.holdings_after == drill.amount_sats
    assert _posted(reserve, fees_account("BTC")) == fees_before + drill.fee_sats
    assert _posted(reserve, approved_outflows_account("BTC")) == paid_before
    key = f"spend-proposal:{drill.sweep.id}"
    assert spend_keys(reserve, drill.sweep.id) == [key, f"{key}:post"]
    with reserve.sessions() as session:
        assert all(totals.balanced for totals in ledger.trial_balance(session))
        assert audit.verify(session).ok
        # Spends now come from the new vault; the old one is retired and its deposits alarm.
        assert spending_vaults(session) == [rotation.new_vault]
        assert btc_vault_name(session, Settings()) == rotation.new_vault
        assert retired_rotation(session, btc_scope(old_vault)) == rotation
        assert retired_rotation(session, btc_scope(rotation.new_vault)) is None
        assert drill.sweep.txid is not None
        assert sweep_arrival(session, btc_scope(rotation.new_vault), drill.sweep.txid) == (
            drill.sweep.id
        )
        assert sweep_arrival(session, btc_scope(old_vault), drill.sweep.txid) is None
        assert sweep_arrivals(session, btc_scope(rotation.new_vault)) == {drill.sweep.txid}
        assert sweep_arrivals(session, btc_scope(old_vault)) == set()

    # The attestation of the rotated reserve verifies against the live nodes.
    result = reserve.attest(log.info, services_node)
    assert result.path is not None
    report = reserve.verify(result.path, services_node)
    assert report.passed(), [f"{c.name}: {c.reason}" for c in report.failed()]

    _retirement_needs_a_confirmed_sweep(reserve, rotation.new_vault)
    _deposit_to_retired_vault_is_named(reserve, old_vault)


def _retirement_needs_a_confirmed_sweep(reserve: Reserve, rotated: str) -> None:
    """A second rotation (to a 3-of-3 of the original keys) cannot retire ``rotated`` unswept."""
    admin = reserve.officers[TREASURY_ADMIN]
    with reserve.sessions.begin() as session:
        again = start_rotation(
            session,
            reserve.bitcoin.rpc,
            admin,
            old_vault=rotated,
            new_vault=f"{rotated}-2",
            threshold=VAULT_THRESHOLD + 1,
            institutions=[i.name for i in INSTITUTIONS],
            reason="second drill",
            clock=reserve.clock,
        )
    with reserve.sessions() as session, pytest.raises(RotationError, match="not proposed yet"):
        retire(session, reserve.bitcoin.rpc, again.id, admin, clock=reserve.clock)
    with reserve.sessions() as session:
        assert spending_vaults(session) == [rotated]  # the second one's new vault is not yet


def _deposit_to_retired_vault_is_named(reserve: Reserve, retired: str) -> None:
    """A coin sent to the retired vault after its sweep is on chain; the reconciler's hook names
    the vault as retired (so the deposit raises an alarm, not a silent booking)."""
    rpc = reserve.bitcoin.rpc
    with reserve.sessions.begin() as session:
        _, address = next_receive_address(session, rpc, retired)
    rpc.wallet("miner").call("sendtoaddress", address, sats_to_btc(10_000))
    reserve.bitcoin.mine(1)
    assert len(_unspent(reserve, retired)) == 1
    with reserve.sessions() as session:
        found = retired_rotation(session, btc_scope(retired))
    assert found is not None
    assert found.old_vault == retired
