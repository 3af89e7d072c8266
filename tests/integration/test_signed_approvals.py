"""Signed approvals in the workflow, on both databases: once the roster is founded an approval
must carry the officer's own signed statement of exactly this spend, checked before anything is
written; without a genesis the workflow is unchanged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from signed_approvals_support import (
    MAX_FEE_SATS,
    VAULT_ID,
    Roster,
    StatementChain,
    found_roster,
)
from sqlalchemy import text
from workflow_support import (
    DECREE,
    DESTINATION,
    SHARES,
    UNLISTED,
    World,
    build_world,
    shares_of,
)

from custody.authority import (
    SignedStatement,
    SpendUnderReview,
    StatementKind,
    verify_authorization,
)
from treasury.authority.statements import human_summary, signed_from_json, signed_to_json
from treasury.authority.store import roster_state, statements_for
from treasury.proposals import ProposalState, ProposalView, Workflow
from treasury.workflow_exceptions import (
    NotAuthorisedError,
    NotConfiguredError,
    TransactionMismatchError,
    WorkflowInputError,
)

BTC = 100_000_000
SMALL = 1 * BTC
STATE_TABLES = (
    "spend_proposals",
    "prepared_transactions",
    "proposal_approvals",
    "proposal_signatures",
    "approval_statements",
    "policy_decisions",
)
"""What a refused approval must leave untouched."""


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    built = build_world(db_url)
    built.chain = StatementChain(SHARES, required_signatures=2)
    yield built
    built.engine.dispose()


@pytest.fixture
def roster(world: World) -> Roster:
    return found_roster(world)


def _prepared(world: World, wf: Workflow, amount: int = SMALL) -> ProposalView:
    view = wf.propose(
        world.officers["proposer"],
        asset="BTC",
        amount=amount,
        destination=DESTINATION,
        purpose="Pay the contractor",
        legal_basis=DECREE,
    )
    return wf.prepare(world.officers["proposer"], view.id, world.chain)


def _signed(
    world: World, roster: Roster, wf: Workflow, name: str, proposal_id: int
) -> SignedStatement:
    statement = wf.statement(world.officers[name], proposal_id)
    return roster.sign(name, statement)


def _snapshot(world: World) -> dict[str, list[tuple[Any, ...]]]:
    with world.engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]  # noqa: S608 - fixed table names
            for table in STATE_TABLES
        }


def _refused(world: World, error: type[Exception], action: Callable[[], object]) -> str:
    before = _snapshot(world)
    with pytest.raises(error) as refused:
        action()
    assert _snapshot(world) == before, "a refused approval wrote something"
    return str(refused.value)


def test_signed_approvals_are_stored_and_the_spend_proceeds(world: World, roster: Roster) -> None:
    """Two institutions' signed statements are stored with their approvals, verify as a quorum
    for the prepared transaction, and the spend is signed, broadcast and confirmed."""
    wf = world.workflow()
    view = _prepared(world, wf)
    assert view.tx_hash is not None
    statement = wf.statement(world.officers["cb_approver"], view.id)
    assert statement.vault_id == VAULT_ID
    assert statement.max_fee == MAX_FEE_SATS
    assert statement.amount == SMALL
    assert statement.destination == DESTINATION
    assert statement.tx_hash == view.tx_hash
    assert statement.officer_id == str(world.officers["cb_approver"].id)
    assert statement.legal_basis == DECREE
    assert human_summary(statement).startswith(
        f"APPROVE proposal {view.id}: 1 BTC (100000000 sat) to {DESTINATION}"
    )
    signed = [
        _signed(world, roster, wf, name, view.id) for name in ("cb_approver", "parl_approver")
    ]
    wf.approve(world.officers["cb_approver"], view.id, view.tx_hash, signed[0])
    view = wf.approve(world.officers["parl_approver"], view.id, view.tx_hash, signed[1])
    assert view.state is ProposalState.APPROVED
    with world.sessions() as session:
        stored = statements_for(session, view.id)
        state = roster_state(session)
    assert stored == tuple(signed)
    assert state is not None
    spend = SpendUnderReview(
        chain="bitcoin:regtest",
        vault_id=VAULT_ID,
        asset="BTC",
        amount=SMALL,
        destination=DESTINATION,
        tx_hash=view.tx_hash,
        fee=world.chain.fee,
        safe_nonce=None,
    )
    authorization = verify_authorization(state, stored, spend, world.clock())
    assert authorization.institutions == ("CB", "PARL")
    for name, code in (("cb_approver", "CB"), ("parl_approver", "PARL")):
        shares, passphrase = shares_of(code)
        view = wf.sign(world.officers[name], view.id, world.chain, shares, passphrase)
    view = wf.broadcast(view.id, world.chain)
    world.chain.mine()
    view = wf.refresh(view.id, world.chain)
    assert view.state is ProposalState.CONFIRMED


def test_an_approval_without_a_signature_is_refused_once_the_roster_is_founded(
    world: World, roster: Roster
) -> None:
    """With a genesis stored, an unsigned approval is refused and nothing is written."""
    wf = world.workflow()
    view = _prepared(world, wf)
    assert view.tx_hash is not None
    message = _refused(
        world,
        WorkflowInputError,
        lambda: wf.approve(world.officers["cb_approver"], view.id, str(view.tx_hash)),
    )
    assert "must carry your signed statement" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 2 * BTC),
        ("destination", UNLISTED),
        ("tx_hash", "ab" * 32),
        ("max_fee", MAX_FEE_SATS * 10),
        ("vault_id", VAULT_ID.replace("aaaaaaaa", "cccccccc")),
        ("legal_basis", "DECREE-OTHER"),
        ("policy_hash", "00" * 32),
    ],
)
def test_a_statement_of_another_spend_is_refused_with_nothing_written(
    world: World, roster: Roster, field: str, value: object
) -> None:
    """A genuinely signed statement that names another amount, destination, transaction, fee,
    vault, legal basis or policy than the proposal as it stands is refused by the server."""
    wf = world.workflow()
    view = _prepared(world, wf)
    assert view.tx_hash is not None
    actor = world.officers["cb_approver"]
    altered = replace(wf.statement(actor, view.id), **{field: value})
    signed = roster.sign("cb_approver", altered)
    message = _refused(
        world,
        TransactionMismatchError,
        lambda: wf.approve(actor, view.id, str(view.tx_hash), signed),
    )
    assert field in message


def test_a_statement_signed_with_another_officers_key_is_refused(
    world: World, roster: Roster
) -> None:
    """A statement made out to one approver but signed with another's key -- under either key
    id -- or another approver's genuine statement submitted as one's own, is refused."""
    wf = world.workflow()
    view = _prepared(world, wf)
    tx_hash = str(view.tx_hash)
    cb = world.officers["cb_approver"]
    statement = wf.statement(cb, view.id)
    by_other = roster.sign("mof_approver", statement)
    message = _refused(
        world, NotAuthorisedError, lambda: wf.approve(cb, view.id, tx_hash, by_other)
    )
    assert "not one of their active keys" in message
    forged = SignedStatement(statement, roster.key("cb_approver").key_id, by_other.signature)
    message = _refused(world, NotAuthorisedError, lambda: wf.approve(cb, view.id, tx_hash, forged))
    assert "is not signed by their key" in message
    genuine = roster.sign("cb_approver", statement)
    parl = world.officers["parl_approver"]
    message = _refused(
        world, NotAuthorisedError, lambda: wf.approve(parl, view.id, tx_hash, genuine)
    )
    assert "made out to officer" in message


def test_an_expired_or_overlong_statement_is_refused(world: World, roster: Roster) -> None:
    """A statement past its expiry, or valid for longer than the server accepts, is refused."""
    wf = world.workflow()
    view = _prepared(world, wf)
    actor = world.officers["cb_approver"]
    statement = wf.statement(actor, view.id)
    for expires_at in (world.clock() - timedelta(seconds=1), world.clock() + timedelta(days=30)):
        signed = roster.sign("cb_approver", replace(statement, expires_at=expires_at))
        _refused(
            world,
            WorkflowInputError,
            lambda s=signed: wf.approve(actor, view.id, str(view.tx_hash), s),
        )


def test_a_roster_without_the_policy_in_force_refuses_approvals(world: World) -> None:
    """If the signed roster does not set the policy the treasury enforces, the signers would
    refuse every approval; the server says so at once."""
    roster = found_roster(world, with_policy=False)
    wf = world.workflow()
    view = _prepared(world, wf)
    actor = world.officers["cb_approver"]
    signed = roster.sign("cb_approver", wf.statement(actor, view.id))
    message = _refused(
        world, NotConfiguredError, lambda: wf.approve(actor, view.id, str(view.tx_hash), signed)
    )
    assert "roster chain" in message


def test_a_signed_veto_is_stored_and_a_wrong_kind_refused(world: World, roster: Roster) -> None:
    """Oversight's signed VETO statement is stored with the veto; an APPROVE statement is not one."""
    wf = world.workflow()
    view = _prepared(world, wf)
    oversight = world.officers["oversight"]
    approve_kind = roster.sign("oversight", wf.statement(oversight, view.id))
    _refused(
        world,
        WorkflowInputError,
        lambda: wf.veto(oversight, view.id, "Not needed", approve_kind),
    )
    veto = roster.sign("oversight", wf.statement(oversight, view.id, StatementKind.VETO))
    view = wf.veto(oversight, view.id, "Not needed", veto)
    assert view.state is ProposalState.REJECTED
    with world.sessions() as session:
        assert statements_for(session, view.id) == (veto,)


def test_without_a_genesis_approvals_are_unchanged_and_signatures_refused(world: World) -> None:
    """No roster: an approval needs no signature, and one given cannot be verified so is refused."""
    wf = world.workflow()
    view = _prepared(world, wf)
    assert view.tx_hash is not None
    other = _prepared(world, wf)
    roster = Roster(world)
    roster.secrets["cb_approver"] = b"\x01" * 32
    signed = roster.sign("cb_approver", wf.statement(world.officers["cb_approver"], other.id))
    _refused(
        world,
        WorkflowInputError,
        lambda: wf.approve(world.officers["cb_approver"], other.id, str(other.tx_hash), signed),
    )
    view = wf.approve(world.officers["cb_approver"], view.id, view.tx_hash)
    assert [a.institution for a in view.approvals] == ["CB"]


def test_signed_statements_round_trip_through_json(world: World, roster: Roster) -> None:
    """The API's JSON form of a signed statement parses back to the same statement and signature,
    and a malformed one is a clear input error."""
    wf = world.workflow()
    view = _prepared(world, wf)
    signed = _signed(world, roster, wf, "cb_approver", view.id)
    assert signed_from_json(signed_to_json(signed)) == signed
    broken = signed_to_json(signed)
    broken["statement"]["amount"] = "1.5"
    with pytest.raises(WorkflowInputError):
        signed_from_json(broken)
