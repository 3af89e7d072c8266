"""The treasury's record of announced spends and vetoes, against a real services chain, on both
databases: announced once (also after dying between chain and database), vetoes verified against
the roster before they count, vetoes an institution submitted itself found on chain, the export's
window status, and rows that cannot be changed."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from authority_support import SPEND, Deployment, k1_sign
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from custody.authority.delay import SpendAnnouncement
from custody.authority.statement import StatementKind
from custody.devnet import EvmNode
from custody.ethereum.announcements import (
    ServicesChainWindow,
    announce_spend,
    deploy_window_registry,
    submit_veto,
)
from custody.ethereum.chain import EthChain
from treasury.announcements import (
    AnnouncementRow,
    Publisher,
    WindowError,
    announce,
    pending_spends_export,
    record_chain_vetoes,
    relay_veto,
)
from treasury.exceptions import ImmutableRecordError

WINDOW_SECONDS = 600


@pytest.fixture(scope="module")
def chain(services_node: EvmNode) -> EthChain:
    return EthChain(services_node.rpc)


@pytest.fixture
def publisher(chain: EthChain) -> Publisher:
    sender = chain.accounts()[0]
    registry = deploy_window_registry(chain, sender, sender)
    return Publisher(ServicesChainWindow(chain, registry), sender)


def _announcement(proposal: int, amount: int = SPEND.amount) -> SpendAnnouncement:
    return SpendAnnouncement.for_spend(str(proposal), replace(SPEND, amount=amount))


def test_a_spend_is_announced_once_and_recorded_after_a_crash(
    sessions: sessionmaker[Session], publisher: Publisher
) -> None:
    """A second call records nothing new; a spend announced on chain by a process that died
    before its commit is recorded from the chain (same block time and transaction)."""
    with sessions.begin() as session:
        first = announce(session, publisher, 1, _announcement(1), WINDOW_SECONDS)
        assert first.opens_at == first.announced_at + timedelta(seconds=WINDOW_SECONDS)
        again = announce(session, publisher, 1, _announcement(1), WINDOW_SECONDS)
        assert again.id == first.id
    window = publisher.window
    landed = announce_spend(window.chain, window.registry, publisher.sender, _announcement(2))
    with sessions.begin() as session:
        recovered = announce(session, publisher, 2, _announcement(2), WINDOW_SECONDS)
        assert (recovered.announced_at, recovered.services_tx) == (
            landed.announced_at,
            landed.tx_hash,
        )
    with sessions.begin() as session, pytest.raises(WindowError):
        announce(session, publisher, 3, _announcement(4), WINDOW_SECONDS)


def test_vetoes_count_only_when_the_roster_verifies_them(
    sessions: sessionmaker[Session], publisher: Publisher
) -> None:
    """A forged veto is refused before anything is sent; one an institution submitted itself
    is found on chain; the export shows waiting, open and vetoed spends."""
    d = Deployment.build()
    state = d.state()
    window = publisher.window
    with sessions.begin() as session:
        announce(session, publisher, 5, _announcement(5), WINDOW_SECONDS)
        announce(session, publisher, 6, _announcement(6, SPEND.amount + 1), 0)
        announced = announce(session, publisher, 7, _announcement(7, SPEND.amount + 2), 60)
        now = announced.announced_at
    veto = d.statement("sao-olga", kind=StatementKind.VETO, proposal_id="5")
    forged = replace(d.signed(veto), signature=k1_sign(b"\x05" * 32, veto.digest()))
    before = window.vetoes(bytes(32))
    with sessions.begin() as session, pytest.raises(WindowError, match="does not verify"):
        relay_veto(session, window, window.chain.accounts()[4], state, forged, now)
    assert window.vetoes(bytes(32)) == before
    submit_veto(window.chain, window.registry, window.chain.accounts()[4], forged)
    submit_veto(window.chain, window.registry, window.chain.accounts()[4], d.signed(veto))
    with sessions.begin() as session:
        assert record_chain_vetoes(session, window, state, now) == 1
        assert record_chain_vetoes(session, window, state, now) == 0
    other = d.statement("cb-alice", kind=StatementKind.VETO, proposal_id="7")
    with sessions.begin() as session:
        relay_veto(session, window, window.chain.accounts()[4], state, d.signed(other), now)
    with sessions() as session:
        exported = pending_spends_export(session, now + timedelta(seconds=1))
    assert [(p["proposal_id"], p["status"], p["vetoed_by"]) for p in exported] == [
        (5, "vetoed", "SAO"),
        (6, "open", None),
        (7, "vetoed", "CB"),
    ]
    with sessions.begin() as session:
        announce(session, publisher, 9, _announcement(9, SPEND.amount + 3), WINDOW_SECONDS)
        exported = pending_spends_export(session, now + timedelta(seconds=1))
    assert exported[-1]["status"] == "waiting"
    assert json.loads(json.dumps(exported))[0]["services"]["registry"] == window.registry


def test_announcement_rows_cannot_be_changed(
    sessions: sessionmaker[Session], publisher: Publisher
) -> None:
    """The ORM refuses to move a window or delete an announcement."""
    with sessions.begin() as session:
        announce(session, publisher, 8, _announcement(8), WINDOW_SECONDS)
    with sessions.begin() as session:
        row = session.scalars(select(AnnouncementRow).where(AnnouncementRow.proposal_id == 8)).one()
        row.opens_at = row.announced_at
        with pytest.raises(ImmutableRecordError):
            session.flush()
        session.rollback()
