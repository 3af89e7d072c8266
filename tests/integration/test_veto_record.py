"""A veto the audit log records must still stand (``treasury.proposals.veto_record``).

The signed case (a VETO statement deleted by a database writer) is attacked in
``test_database_attacker.py``; here the unsigned case before a roster exists: the proposal set back
from ``rejected`` is named by ``treasury audit verify``. Both databases.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from typer.testing import CliRunner
from workflow_support import DECREE, DESTINATION, World

from treasury.cli import app
from treasury.proposals import ProposalState
from treasury.proposals.veto_record import verify_vetoes
from treasury.settings import DATABASE_URL_ENV

BTC = 100_000_000


def test_a_veto_undone_in_the_proposal_row_is_named_by_audit_verify(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = world.workflow()
    view = wf.propose(
        world.officers["proposer"],
        asset="BTC",
        amount=6 * BTC,
        destination=DESTINATION,
        purpose="Large payment",
        legal_basis=DECREE,
    )
    vetoed = wf.veto(world.officers["oversight"], view.id, "Parliament objects.")
    assert vetoed.state is ProposalState.REJECTED
    monkeypatch.setenv(DATABASE_URL_ENV, world.url)
    intact = CliRunner().invoke(app, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "vetoes: all 1 recorded vetoes still stand" in intact.output

    with world.engine.begin() as connection:  # the database writer revives the proposal
        connection.execute(
            text("UPDATE spend_proposals SET state = 'proposed', closed_at = NULL WHERE id = :id"),
            {"id": view.id},
        )
    with world.sessions() as session:
        verdict = verify_vetoes(session)
    assert verdict.proposal_id == view.id
    named = CliRunner().invoke(app, ["audit", "verify"])
    assert named.exit_code == 1
    assert "intact:" in named.output  # the audit chain itself is untouched
    assert f"vetoes: proposal {view.id}: the audit log records its veto at #" in named.output
    assert "but the proposal is now proposed" in named.output
