"""The spend workflow on both databases: policy refusals change nothing, approvals bind to the
prepared transaction, and a crash between any two persisted steps still broadcasts exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from log_support import rendered
from sqlalchemy import func, inspect, select, text
from workflow_support import (
    BTC_FEES,
    BTC_HOLDINGS,
    BTC_PAYMENTS,
    CHAIN_FEE_SATS,
    DECREE,
    DESTINATION,
    UNLISTED,
    SimulatedCrash,
    World,
    shares_of,
)

from treasury import audit, ledger
from treasury.db import Base
from treasury.ledger import PendingState
from treasury.officers import OfficerRoleRow, authenticate, get_officer
from treasury.policy import (
    LegalBasis,
    LegalBasisRow,
    PolicyDecisionRow,
    ReconciliationOutcome,
    RefusalCode,
    add_legal_basis,
    approve_destination,
    current_policy,
    replay_decision,
    request_destination,
)
from treasury.policy.rules import PolicyRefusedError
from treasury.proposals import ProposalState, ProposalView, SpendPosting, SpendProposalRow, Workflow
from treasury.workflow_exceptions import (
    AuthenticationError,
    DecisionReplayError,
    NotAuthorisedError,
    ProposalTransitionError,
    TransactionMismatchError,
    WorkflowInputError,
)

BTC = 100_000_000
SMALL = 1 * BTC
"""Below the veto threshold: no veto window."""
LARGE = 6 * BTC
"""At or above the veto threshold (5 BTC): a 24 h veto window after approval."""

WORKFLOW_TABLES = (
    "institutions",
    "officers",
    "officer_roles",
    "api_tokens",
    "policy_versions",
    "legal_bases",
    "legal_basis_ceilings",
    "allowlist_entries",
    "allowlist_approvals",
    "reconciliation_checkpoints",
    "policy_decisions",
    "spend_proposals",
    "prepared_transactions",
    "proposal_approvals",
    "proposal_signatures",
)
STATE_TABLES = (
    "spend_proposals",
    "prepared_transactions",
    "proposal_approvals",
    "proposal_signatures",
    "ledger_entries",
)
"""What a refusal must leave untouched (the decision log and audit log do record it)."""


def _propose(world: World, wf: Workflow, amount: int = SMALL, **overrides: Any) -> ProposalView:
    fields: dict[str, Any] = {
        "asset": "BTC",
        "amount": amount,
        "destination": DESTINATION,
        "purpose": "Pay the contractor",
        "legal_basis": DECREE,
    }
    fields.update(overrides)
    return wf.propose(world.officers["proposer"], **fields)


def _prepared(world: World, wf: Workflow, amount: int = SMALL) -> ProposalView:
    view = _propose(world, wf, amount)
    return wf.prepare(world.officers["proposer"], view.id, world.chain)


def _approved(world: World, wf: Workflow, amount: int = SMALL) -> ProposalView:
    view = _prepared(world, wf, amount)
    assert view.tx_hash is not None
    wf.approve(world.officers["cb_approver"], view.id, view.tx_hash)
    return wf.approve(world.officers["parl_approver"], view.id, view.tx_hash)


def _sign_all(world: World, wf: Workflow, proposal_id: int) -> ProposalView:
    view = wf.view(proposal_id)
    for name, code in (("cb_approver", "CB"), ("parl_approver", "PARL")):
        if code not in view.signed_by:
            shares, passphrase = shares_of(code)
            view = wf.sign(world.officers[name], proposal_id, world.chain, shares, passphrase)
    return view


def _snapshot(world: World) -> dict[str, list[tuple[Any, ...]]]:
    with world.engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]  # noqa: S608 - fixed table names
            for table in STATE_TABLES
        }


def _assert_refused(world: World, action: Callable[[], object], code: RefusalCode) -> None:
    before = _snapshot(world)
    with world.sessions() as session:
        decisions_before = len(session.scalars(select(PolicyDecisionRow.id)).all())
    with pytest.raises(PolicyRefusedError) as refused:
        action()
    assert code in {reason.code for reason in refused.value.decision.reasons}
    assert _snapshot(world) == before
    with world.sessions() as session:
        rows = session.scalars(select(PolicyDecisionRow).order_by(PolicyDecisionRow.id)).all()
    assert len(rows) == decisions_before + 1
    assert rows[-1].allowed is False
    assert code.value in rows[-1].reasons


# --- Migration --------------------------------------------------------------------------------


def test_migration_creates_exactly_the_workflow_models_tables(world: World) -> None:
    """Migration 0005 creates each workflow table with the columns and nullability of its model."""
    inspector = inspect(world.engine)
    for table in WORKFLOW_TABLES:
        model = Base.metadata.tables[table]
        migrated = {col["name"]: col["nullable"] for col in inspector.get_columns(table)}
        assert migrated == {col.name: col.nullable for col in model.columns}, table
    indexes = {ix["name"] for ix in inspector.get_indexes("proposal_approvals")}
    assert {
        "uq_proposal_approvals_standing_officer",
        "uq_proposal_approvals_standing_institution",
    } <= indexes


# --- Happy path -------------------------------------------------------------------------------


def test_a_spend_goes_from_proposal_to_confirmation_with_a_balanced_ledger(world: World) -> None:
    """Two institutions approve and sign; the broadcast books a pending entry that confirmation posts."""
    wf = world.workflow()
    view = _approved(world, wf)
    assert view.state is ProposalState.APPROVED
    view = _sign_all(world, wf, view.id)
    assert view.state is ProposalState.SIGNED
    view = wf.broadcast(view.id, world.chain)
    assert view.state is ProposalState.BROADCAST
    assert view.txid is not None
    with world.sessions() as session:
        pending = ledger.find_entry(session, SpendPosting.key_for(view.id))
        assert pending is not None
        assert ledger.pending_state(session, pending.id) is PendingState.PENDING
    world.chain.mine()
    view = wf.refresh(view.id, world.chain)
    assert view.state is ProposalState.CONFIRMED
    with world.sessions() as session:
        assert ledger.pending_state(session, pending.id) is PendingState.POSTED
        assert all(totals.balanced for totals in ledger.trial_balance(session))
        assert ledger.balance(session, BTC_PAYMENTS).posted == SMALL
        assert ledger.balance(session, BTC_FEES).posted == CHAIN_FEE_SATS
        assert audit.verify(session).ok
    assert world.chain.broadcasts == 1


def test_every_recorded_decision_replays_to_the_same_outcome(world: World) -> None:
    """An auditor re-running each stored decision from its inputs and policy gets the same verdict."""
    wf = world.workflow()
    view = _approved(world, wf)
    assert view.state is ProposalState.APPROVED
    with pytest.raises(PolicyRefusedError):
        _propose(world, wf, 11 * BTC)
    with world.sessions() as session:
        ids = session.scalars(select(PolicyDecisionRow.id)).all()
        assert len(ids) == 4  # submit, two approvals, one refused submit
        for decision_id in ids:
            recorded, replayed = replay_decision(session, decision_id)
            assert replayed == recorded.decision


def test_a_tampered_decision_input_fails_replay(world: World) -> None:
    """Editing a stored decision's inputs is detected by their digest."""
    wf = world.workflow()
    _propose(world, wf)
    with world.sessions.begin() as session:
        row = session.scalars(select(PolicyDecisionRow)).first()
        assert row is not None
        row.inputs = row.inputs.replace('"spent_24h":"0"', '"spent_24h":"1"')
        decision_id = row.id
    with world.sessions() as session, pytest.raises(DecisionReplayError, match="digest"):
        replay_decision(session, decision_id)


# --- Policy refusals (acceptance point 2) -----------------------------------------------------


def test_over_the_per_transaction_limit_is_refused(world: World) -> None:
    """A spend above the 10 BTC per-transaction limit is refused and no proposal is created."""
    wf = world.workflow()
    _assert_refused(world, lambda: _propose(world, wf, 11 * BTC), RefusalCode.OVER_PER_TX_LIMIT)


def test_over_the_rolling_24h_limit_is_refused(world: World) -> None:
    """With 9 BTC committed today, a further 7 BTC breaks the 15 BTC rolling 24 h limit."""
    wf = world.workflow()
    first = _approved(world, wf, 9 * BTC)
    assert first.state is ProposalState.APPROVED
    _assert_refused(world, lambda: _propose(world, wf, 7 * BTC), RefusalCode.OVER_DAILY_LIMIT)
    world.clock.advance(hours=25)
    world.reconcile()
    assert _propose(world, wf, 7 * BTC).state is ProposalState.PROPOSED


def test_a_destination_not_on_the_allowlist_is_refused(world: World) -> None:
    """An address never allowlisted cannot be paid."""
    wf = world.workflow()
    _assert_refused(
        world,
        lambda: _propose(world, wf, destination=UNLISTED),
        RefusalCode.DESTINATION_NOT_ALLOWED,
    )


def test_a_freshly_allowlisted_destination_waits_out_its_delay(world: World) -> None:
    """An address approved by the allowlist quorum is refused until its 48 h delay has passed."""
    with world.sessions.begin() as session:
        entry = request_destination(
            session, world.officers["proposer"], "BTC", UNLISTED, "New payee", now=world.clock()
        )
        policy = current_policy(session)
        approve_destination(
            session, world.officers["cb_approver"], entry.id, policy, now=world.clock()
        )
        approved = approve_destination(
            session, world.officers["parl_approver"], entry.id, policy, now=world.clock()
        )
    assert approved.active_from is not None
    wf = world.workflow()
    _assert_refused(
        world,
        lambda: _propose(world, wf, destination=UNLISTED),
        RefusalCode.DESTINATION_NOT_ALLOWED,
    )
    world.clock.advance(hours=48)
    world.reconcile()
    assert _propose(world, wf, destination=UNLISTED).state is ProposalState.PROPOSED


def test_the_proposer_may_not_approve(world: World) -> None:
    """An officer holding both roles still cannot approve their own proposal."""
    with world.sessions.begin() as session:
        session.add(OfficerRoleRow(officer_id=world.officers["proposer"].id, role="approver"))
    with world.sessions() as session:
        proposer = get_officer(session, world.officers["proposer"].id)
    wf = world.workflow()
    view = _prepared(world, wf)
    assert view.tx_hash is not None
    tx_hash = view.tx_hash
    _assert_refused(
        world, lambda: wf.approve(proposer, view.id, tx_hash), RefusalCode.PROPOSER_MAY_NOT_APPROVE
    )


def test_one_institution_cannot_approve_twice(world: World) -> None:
    """A second officer of an institution that already approved is refused."""
    wf = world.workflow()
    view = _prepared(world, wf)
    assert view.tx_hash is not None
    tx_hash = view.tx_hash
    wf.approve(world.officers["mof_approver"], view.id, tx_hash)
    _assert_refused(
        world,
        lambda: wf.approve(world.officers["mof_approver_2"], view.id, tx_hash),
        RefusalCode.INSTITUTION_ALREADY_APPROVED,
    )


def test_a_revoked_officer_cannot_approve_and_their_pending_approval_is_void(world: World) -> None:
    """Revocation voids the officer's standing approval (quorum lost) and refuses their next one."""
    wf = world.workflow()
    view = _approved(world, wf)
    assert view.tx_hash is not None
    tx_hash = view.tx_hash
    revoked = world.officers["cb_approver"]
    wf.revoke_officer(world.officers["cb_admin"], revoked.id)
    view = wf.view(view.id)
    assert view.state is ProposalState.PROPOSED
    voided = [a for a in view.approvals if a.officer_id == revoked.id]
    assert voided
    assert voided[0].voided_at is not None
    assert "revoked" in (voided[0].void_reason or "")
    _assert_refused(
        world, lambda: wf.approve(revoked, view.id, tx_hash), RefusalCode.OFFICER_REVOKED
    )
    with world.sessions() as session, pytest.raises(AuthenticationError):
        authenticate(session, world.tokens["cb_approver"], now=world.clock())


def test_an_expired_legal_basis_is_refused(world: World) -> None:
    """After the decree expires (30 days), approving a spend under it is refused."""
    wf = world.workflow()
    view = _prepared(world, wf)
    assert view.tx_hash is not None
    tx_hash = view.tx_hash
    world.clock.advance(days=31)
    world.reconcile()
    _assert_refused(
        world,
        lambda: wf.approve(world.officers["cb_approver"], view.id, tx_hash),
        RefusalCode.LEGAL_BASIS_EXPIRED,
    )


def test_an_already_expired_decree_cannot_be_registered(world: World) -> None:
    """A decree whose expiry has passed is refused at registration, and nothing is written."""
    with world.sessions() as session:
        before = session.scalar(select(func.count()).select_from(LegalBasisRow))
        head = audit.head(session)
    expired = LegalBasis(
        "Decree No. 1 of last year", "Lapsed", world.clock() - timedelta(seconds=1), {"BTC": 1}
    )
    with (
        world.sessions.begin() as session,
        pytest.raises(WorkflowInputError, match=r"expired .* before it was registered"),
    ):
        add_legal_basis(session, world.officers["admin"], expired, now=world.clock())
    with world.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LegalBasisRow)) == before
        assert audit.head(session) == head


def test_an_amount_above_the_decree_ceiling_is_refused(world: World) -> None:
    """Spends under one decree may not add up to more than its 20 BTC ceiling."""
    wf = world.workflow()
    for _ in range(2):
        view = _approved(world, wf, 9 * BTC)
        assert view.state is ProposalState.APPROVED
        world.clock.advance(hours=25)
        world.reconcile()
    _assert_refused(world, lambda: _propose(world, wf, 3 * BTC), RefusalCode.ABOVE_DECREE_CEILING)


def test_a_large_spend_cannot_be_signed_during_its_veto_window_and_oversight_can_veto(
    world: World,
) -> None:
    """Signing a 6 BTC spend is refused for 24 h after approval; oversight's veto then rejects it."""
    wf = world.workflow()
    view = _approved(world, wf, LARGE)
    assert view.veto_window_ends_at == world.clock() + timedelta(hours=24)
    shares, passphrase = shares_of("CB")
    _assert_refused(
        world,
        lambda: wf.sign(world.officers["cb_approver"], view.id, world.chain, shares, passphrase),
        RefusalCode.VETO_WINDOW_OPEN,
    )
    with pytest.raises(NotAuthorisedError):
        wf.veto(world.officers["cb_approver"], view.id, "Not my role")
    vetoed = wf.veto(world.officers["oversight"], view.id, "Parliament objects to this payment.")
    assert vetoed.state is ProposalState.REJECTED
    with pytest.raises(ProposalTransitionError):
        wf.sign(world.officers["cb_approver"], view.id, world.chain, shares, passphrase)


def test_after_the_veto_window_oversight_can_no_longer_veto_and_signing_proceeds(
    world: World,
) -> None:
    """Once the window has passed, the veto is refused and the spend can be signed."""
    wf = world.workflow()
    view = _approved(world, wf, LARGE)
    world.clock.advance(hours=24)
    world.reconcile()
    with pytest.raises(ProposalTransitionError, match="veto window"):
        wf.veto(world.officers["oversight"], view.id, "Too late")
    assert _sign_all(world, wf, view.id).state is ProposalState.SIGNED


@pytest.mark.parametrize(
    ("outcome", "age_hours", "code"),
    [
        (ReconciliationOutcome.MATCHED, 7, RefusalCode.RECONCILIATION_STALE),
        (ReconciliationOutcome.MISMATCHED, 0, RefusalCode.RECONCILIATION_MISMATCHED),
    ],
)
def test_no_spend_while_reconciliation_is_stale_or_mismatched(
    world: World, outcome: ReconciliationOutcome, age_hours: int, code: RefusalCode
) -> None:
    """A reconciliation older than 6 h, or one that found a mismatch, blocks proposing and broadcasting."""
    wf = world.workflow()
    signed = _sign_all(world, wf, _approved(world, wf).id)
    world.reconcile(outcome)
    world.clock.advance(hours=age_hours)
    _assert_refused(world, lambda: _propose(world, wf), code)
    _assert_refused(world, lambda: wf.broadcast(signed.id, world.chain), code)
    assert world.chain.broadcasts == 0


# --- Binding approvals to the prepared transaction ---------------------------------------------


def test_preparing_a_different_transaction_voids_the_approvals(world: World) -> None:
    """A fee change gives a new hash: standing approvals are voided and the old hash is refused."""
    wf = world.workflow()
    view = _approved(world, wf)
    old_hash = view.tx_hash
    assert old_hash is not None
    same = wf.prepare(world.officers["proposer"], view.id, world.chain)
    assert same.state is ProposalState.APPROVED
    assert same.tx_hash == old_hash
    world.chain.fee = 2 * CHAIN_FEE_SATS
    changed = wf.prepare(world.officers["proposer"], view.id, world.chain)
    assert changed.tx_hash != old_hash
    assert changed.state is ProposalState.PROPOSED
    assert all(a.voided_at is not None for a in changed.approvals)
    with pytest.raises(TransactionMismatchError):
        wf.approve(world.officers["mof_approver"], view.id, old_hash)
    assert changed.tx_hash is not None
    wf.approve(world.officers["cb_approver"], view.id, changed.tx_hash)
    again = wf.approve(world.officers["parl_approver"], view.id, changed.tx_hash)
    assert again.state is ProposalState.APPROVED


def test_a_signer_returning_another_transaction_is_refused(world: World) -> None:
    """If the signed transaction's hash is not the approved one, nothing is stored."""
    wf = world.workflow()
    view = _approved(world, wf)

    class SwappingChain:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def sign(self, prepared: Any, institution: str, shares: Any, passphrase: str) -> Any:
            signed = self.inner.sign(prepared, institution, shares, passphrase)
            return type(signed)("f" * 64, signed.summary, signed.payload, signed.fee)

    shares, passphrase = shares_of("CB")
    with pytest.raises(TransactionMismatchError):
        wf.sign(
            world.officers["cb_approver"], view.id, SwappingChain(world.chain), shares, passphrase
        )  # type: ignore[arg-type]
    assert wf.view(view.id).signed_by == ()


# --- State machine through the services ---------------------------------------------------------


def test_illegal_transitions_are_refused_and_change_nothing(world: World) -> None:
    """Approving a draft, signing or broadcasting an unapproved spend, or vetoing a confirmed one fails."""
    wf = world.workflow()
    draft = _propose(world, wf, submit=False)
    assert draft.state is ProposalState.DRAFT
    with pytest.raises(ProposalTransitionError):
        wf.prepare(world.officers["proposer"], draft.id, world.chain)
    proposed = _prepared(world, wf)
    shares, passphrase = shares_of("CB")
    with pytest.raises(ProposalTransitionError):
        wf.sign(world.officers["cb_approver"], proposed.id, world.chain, shares, passphrase)
    with pytest.raises(ProposalTransitionError):
        wf.broadcast(proposed.id, world.chain)
    done = _sign_all(world, wf, _approved(world, wf).id)
    wf.broadcast(done.id, world.chain)
    world.chain.mine()
    assert wf.refresh(done.id, world.chain).state is ProposalState.CONFIRMED
    before = _snapshot(world)
    with pytest.raises(ProposalTransitionError):
        wf.veto(world.officers["oversight"], done.id, "Too late")
    with pytest.raises(ProposalTransitionError):
        wf.reject(world.officers["cb_approver"], done.id, "Too late")
    assert _snapshot(world) == before
    assert wf.submit(world.officers["proposer"], draft.id).state is ProposalState.PROPOSED


def test_a_failed_transaction_voids_its_pending_ledger_entry(world: World) -> None:
    """When the chain reports the transaction failed, the spend fails and its reservation is voided."""
    wf = world.workflow()
    view = wf.broadcast(_sign_all(world, wf, _approved(world, wf).id).id, world.chain)
    assert view.txid is not None
    world.chain.failed.add(view.txid)
    assert wf.refresh(view.id, world.chain).state is ProposalState.FAILED
    with world.sessions() as session:
        pending = ledger.find_entry(session, SpendPosting.key_for(view.id))
        assert pending is not None
        assert ledger.pending_state(session, pending.id) is PendingState.VOIDED
        assert ledger.balance(session, BTC_HOLDINGS).available == 50 * BTC


# --- Crash safety (acceptance point 5) ----------------------------------------------------------


CRASH_POINTS = (
    "after_approval",
    "during_signing",
    "after_signing",
    "before_send",
    "after_send",
    "after_broadcast",
)


@pytest.mark.parametrize("crash_point", CRASH_POINTS)
def test_a_crash_between_persisted_steps_still_broadcasts_exactly_once(
    world: World, crash_point: str
) -> None:
    """Killing the process at each step and restarting ends confirmed, sent once, ledger posted once."""
    wf = world.workflow()
    proposal_id = _approved(world, wf).id
    chain = world.chain

    def crash(step: Callable[[], object]) -> None:
        with pytest.raises(SimulatedCrash):
            step()

    if crash_point == "during_signing":
        chain.crash_after_sign = True
        shares, passphrase = shares_of("CB")
        crash(
            lambda: wf.sign(world.officers["cb_approver"], proposal_id, chain, shares, passphrase)
        )
    elif crash_point != "after_approval":
        _sign_all(world, wf, proposal_id)
        if crash_point == "before_send":
            chain.crash_before_send = True
            crash(lambda: wf.broadcast(proposal_id, chain))
        elif crash_point == "after_send":
            chain.crash_after_send = True
            crash(lambda: wf.broadcast(proposal_id, chain))
        elif crash_point == "after_broadcast":
            wf.broadcast(proposal_id, chain)

    restarted = world.restart()
    state = restarted.view(proposal_id).state
    if state is ProposalState.APPROVED:
        _sign_all(world, restarted, proposal_id)
    restarted.resume({"BTC": chain})
    restarted.resume({"BTC": chain})  # a second restart finds nothing left to send
    chain.mine()
    final = restarted.resume({"BTC": chain})
    assert [view.state for view in final] == [ProposalState.CONFIRMED]
    assert chain.broadcasts == 1
    with world.sessions() as session:
        entries = ledger.list_entries(session, account=BTC_HOLDINGS)
        spend_keys = [e.key for e in entries if e.key.startswith("spend-proposal:")]
        assert spend_keys == [
            SpendPosting.key_for(proposal_id),
            f"{SpendPosting.key_for(proposal_id)}:post",
        ]
        assert all(totals.balanced for totals in ledger.trial_balance(session))
        assert ledger.balance(session, BTC_HOLDINGS).posted == 50 * BTC - SMALL - CHAIN_FEE_SATS
        assert audit.verify(session).ok


# --- Secrets ------------------------------------------------------------------------------------


def test_shares_passphrases_and_tokens_never_reach_the_database_or_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """After a full spend, no share word, passphrase or API token secret is in any table or log line
    (every field of every record, as the CLI and the API print it)."""
    caplog.set_level(logging.DEBUG)
    wf = world.workflow()
    proposal_id = _sign_all(world, wf, _approved(world, wf).id).id
    wf.broadcast(proposal_id, world.chain)
    secrets = [s for key in ("CB", "PARL") for s in (*shares_of(key)[0], shares_of(key)[1])]
    secrets += [token.split("_")[2] for token in world.tokens.values()]
    dump: list[str] = []
    with world.engine.connect() as conn:
        for table in inspect(world.engine).get_table_names():
            dump.extend(repr(tuple(row)) for row in conn.execute(text(f"SELECT * FROM {table}")))  # noqa: S608 - names from the inspector
    everything = (
        "\n".join(dump) + caplog.text + rendered(caplog.records) + repr(wf.view(proposal_id))
    )
    for secret in secrets:
        assert secret not in everything


def test_unsigned_proposals_expire_after_their_time_to_live(world: World) -> None:
    """A proposal still unapproved 7 days after drafting expires; a younger one does not."""
    wf = world.workflow()
    old = _propose(world, wf)
    world.clock.advance(days=6)
    world.reconcile()
    young = _propose(world, wf)
    world.clock.advance(days=1)
    assert wf.expire_due() == [old.id]
    assert wf.view(old.id).state is ProposalState.EXPIRED
    assert wf.view(young.id).state is ProposalState.PROPOSED
    with pytest.raises(ProposalTransitionError):
        wf.approve(world.officers["cb_approver"], old.id, "0" * 64)


def test_an_institution_cannot_sign_the_same_transaction_twice(world: World) -> None:
    """A second signature by the same institution is refused and the first one stands alone."""
    wf = world.workflow()
    view = _approved(world, wf)
    shares, passphrase = shares_of("CB")
    wf.sign(world.officers["cb_approver"], view.id, world.chain, shares, passphrase)
    with pytest.raises(WorkflowInputError, match="CB has already signed"):
        wf.sign(world.officers["cb_approver"], view.id, world.chain, shares, passphrase)
    assert wf.view(view.id).signed_by == ("CB",)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("purpose", "Pay the\x00contractor"),
        ("purpose", "Pay the\x1bcontractor"),
        ("destination", DESTINATION[:10] + "\n" + DESTINATION[10:]),
        ("destination", DESTINATION[:10] + "\t" + DESTINATION[10:]),
    ],
)
def test_text_a_database_cannot_store_is_refused_by_the_workflow_itself(
    world: World, field: str, value: str
) -> None:
    """Not only the API: a direct caller (the CLI) gets a WorkflowInputError naming the code
    point, and nothing is written, whichever database."""
    wf = world.workflow()
    with world.sessions() as session:
        head = audit.head(session)
        count = session.scalar(select(func.count()).select_from(SpendProposalRow))
    with pytest.raises(WorkflowInputError, match=r"must be text without control characters"):
        _propose(world, wf, **{field: value})
    with world.sessions() as session:
        assert audit.head(session) == head
        assert session.scalar(select(func.count()).select_from(SpendProposalRow)) == count


def test_a_multiline_purpose_is_still_accepted(world: World) -> None:
    """Line breaks are text a purpose may hold; only other control characters are refused."""
    view = _propose(world, world.workflow(), purpose="Pay the contractor\nfor the winter works")
    assert view.purpose == "Pay the contractor\nfor the winter works"
