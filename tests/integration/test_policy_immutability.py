"""The policy's state at rest, on both databases: the database refuses edits, an edit made with the
triggers dropped is refused when the policy is next used, and ``policy verify`` names it.

What ``policy verify`` does and does not detect is stated test by test (see also the docstring of
``treasury.policy.replay``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import typer
from alembic import command
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner
from workflow_support import DECREE, DESTINATION, World

from treasury import migrate
from treasury.cli import app as treasury_app
from treasury.cli.policy_verify import verify
from treasury.db import DATABASE_URL_ENV, make_engine
from treasury.exceptions import ImmutableRecordError
from treasury.policy import (
    MismatchKind,
    PolicyDecisionRow,
    PolicyVersionRow,
    StoredPolicyAlteredError,
    current_policy,
    policy_version,
    verify_decisions,
)
from treasury.policy.rules import PolicyRefusedError
from treasury.proposals import ApprovalRow, ProposalState, ProposalView

BTC = 100_000_000
PER_TX_LIMIT = 10 * BTC
"""The per-transaction limit of ``workflow_support.POLICY``."""
PROTECTED_TABLES = (
    "policy_versions",
    "legal_bases",
    "legal_basis_ceilings",
    "allowlist_entries",
    "allowlist_approvals",
    "allowlist_activations",
    "officer_roles",
    "proposal_approvals",
    "proposal_approval_voids",
)
ATTACKS: dict[str, tuple[str, ...]] = {
    "policy_versions": (
        "UPDATE policy_versions SET document = replace(document, '1000000000', '9000000000')",
        "DELETE FROM policy_versions",
    ),
    "legal_bases": (
        "UPDATE legal_bases SET title = 'Any purpose whatsoever'",
        "DELETE FROM legal_bases",
    ),
    "legal_basis_ceilings": (
        "UPDATE legal_basis_ceilings SET ceiling = ceiling",
        "DELETE FROM legal_basis_ceilings",
    ),
    "allowlist_entries": (
        "UPDATE allowlist_entries SET address = 'bcrt1qattacker'",
        "DELETE FROM allowlist_entries",
    ),
    "allowlist_approvals": (
        "UPDATE allowlist_approvals SET officer_id = officer_id",
        "DELETE FROM allowlist_approvals",
    ),
    "allowlist_activations": (
        "UPDATE allowlist_activations SET active_from = active_from",
        "DELETE FROM allowlist_activations",
    ),
    "officer_roles": ("UPDATE officer_roles SET role = 'admin'", "DELETE FROM officer_roles"),
    "proposal_approvals": (
        "UPDATE proposal_approvals SET tx_hash = 'ff'",
        "DELETE FROM proposal_approvals",
    ),
    "proposal_approval_voids": (
        "UPDATE proposal_approval_voids SET reason = 'never happened'",
        "DELETE FROM proposal_approval_voids",
    ),
}


def _approved_then_reprepared(world: World) -> ProposalView:
    """A proposal approved twice, re-prepared (voiding both), and approved again by one institution."""
    wf = world.workflow()
    view = wf.propose(
        world.officers["proposer"],
        asset="BTC",
        amount=BTC,
        destination=DESTINATION,
        purpose="Pay the contractor",
        legal_basis=DECREE,
    )
    view = wf.prepare(world.officers["proposer"], view.id, world.chain)
    assert view.tx_hash is not None
    wf.approve(world.officers["cb_approver"], view.id, view.tx_hash)
    wf.approve(world.officers["parl_approver"], view.id, view.tx_hash)
    world.chain.fee *= 2
    view = wf.prepare(world.officers["proposer"], view.id, world.chain)
    assert view.tx_hash is not None
    return wf.approve(world.officers["cb_approver"], view.id, view.tx_hash)


def _snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            table: sorted(
                (tuple(row) for row in conn.execute(text(f"SELECT * FROM {table}"))),  # noqa: S608 - fixed table names
                key=repr,
            )
            for table in PROTECTED_TABLES
        }


def _drop_triggers(engine: Engine, *tables: str) -> None:
    """Disable the immutability triggers of ``tables``, as someone with DDL rights could."""
    with engine.begin() as connection:
        for table in tables:
            if engine.dialect.name == "sqlite":
                connection.execute(text(f"DROP TRIGGER {table}_immutable_update"))
                connection.execute(text(f"DROP TRIGGER {table}_immutable_delete"))
            else:
                connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))


def _as_attacker(engine: Engine, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def _raised_limit_document(world: World) -> str:
    with world.sessions() as session:
        row = session.get(PolicyVersionRow, 1)
        assert row is not None
        document = json.loads(row.document)
    document["assets"]["BTC"]["per_tx_limit"] = 100 * BTC
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _policy_verify(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``policy verify`` as the CLI would, through a one-command typer app."""
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)
    app = typer.Typer()
    app.command()(verify)
    return CliRunner().invoke(app, [])


# --- The database refuses ----------------------------------------------------------------------


@pytest.mark.parametrize("table", PROTECTED_TABLES)
def test_the_database_refuses_updates_and_deletes_of_policy_state(world: World, table: str) -> None:
    """A database writer's UPDATE, DELETE (and TRUNCATE on PostgreSQL) of the table is refused, and nothing changes."""
    _approved_then_reprepared(world)
    before = _snapshot(world.engine)
    assert before[table], f"{table} must hold rows for its row triggers to be tested"
    statements = list(ATTACKS[table])
    if world.engine.dialect.name == "postgresql":
        statements.append(f"TRUNCATE {table} CASCADE")
    for statement in statements:
        with pytest.raises(IntegrityError, match="immutable"), world.engine.begin() as connection:
            connection.execute(text(statement))
    assert _snapshot(world.engine) == before


def test_orm_changes_to_policy_and_approval_rows_are_refused(world: World) -> None:
    """Editing a policy version, deleting an approval or assigning its void through the ORM raises ImmutableRecordError."""
    _approved_then_reprepared(world)
    with world.sessions() as session:
        row = session.get(PolicyVersionRow, 1)
        assert row is not None
        row.document = row.document.replace("1000000000", "9000000000")
        with pytest.raises(ImmutableRecordError):
            session.flush()
        session.rollback()
        approval = session.scalars(select(ApprovalRow)).first()
        assert approval is not None
        with pytest.raises(ImmutableRecordError, match="ApprovalVoidRow"):
            approval.voided_at = world.clock()
        session.delete(approval)
        with pytest.raises(ImmutableRecordError):
            session.flush()


def test_voids_are_rows_of_their_own_and_views_read_them(world: World) -> None:
    """Re-preparing voids the standing approvals by appending voids; the view and the query expression see them."""
    view = _approved_then_reprepared(world)
    assert view.state is ProposalState.PROPOSED
    voided = [a for a in view.approvals if a.voided_at is not None]
    standing = [a for a in view.approvals if a.voided_at is None]
    assert [a.institution for a in voided] == ["CB", "PARL"]
    assert all("prepared transaction changed" in (a.void_reason or "") for a in voided)
    assert [(a.institution, a.tx_hash) for a in standing] == [("CB", view.tx_hash)]
    with world.sessions() as session:
        institutions = session.scalars(
            select(ApprovalRow.institution_id).where(
                ApprovalRow.proposal_id == view.id, ApprovalRow.voided_at.is_(None)
            )
        ).all()
        attempts = session.scalars(
            select(ApprovalRow.attempt).where(ApprovalRow.proposal_id == view.id)
            .order_by(ApprovalRow.id)
        ).all()  # fmt: skip
    assert institutions == [world.officers["cb_approver"].institution_id]
    assert attempts == [1, 1, 2]


def test_the_database_refuses_a_second_standing_approval(world: World) -> None:
    """A raw insert of a standing approval next to one, a reused attempt, or a foreign officer is refused."""
    view = _approved_then_reprepared(world)
    cb, parl = world.officers["cb_approver"], world.officers["parl_approver"]
    insert = (
        "INSERT INTO proposal_approvals (proposal_id, officer_id, institution_id, tx_hash, "
        "approved_at, attempt) VALUES (:p, :o, :i, :h, :t, :a)"
    )
    before = _snapshot(world.engine)
    attempts = (
        ({"o": cb.id, "i": cb.institution_id, "a": 3}, "standing approval"),
        ({"o": world.officers["mof_approver"].id, "i": cb.institution_id, "a": 3}, "belong"),
        ({"o": parl.id, "i": parl.institution_id, "a": 1}, "next one"),
    )
    for values, message in attempts:
        with pytest.raises(IntegrityError, match=message), world.engine.begin() as connection:
            connection.execute(
                text(insert), {"p": view.id, "h": view.tx_hash, "t": world.clock(), **values}
            )
    assert _snapshot(world.engine) == before
    wf = world.workflow()
    assert view.tx_hash is not None
    assert wf.approve(parl, view.id, view.tx_hash).state is ProposalState.APPROVED


# --- Policy at rest, with the triggers dropped ---------------------------------------------------


def test_a_raised_limit_is_refused_when_the_policy_is_next_read(
    world: World, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raising the per-transaction limit in the stored document: reading it, and a spend judged under it, are refused."""
    _drop_triggers(world.engine, "policy_versions")
    with world.engine.begin() as connection:
        connection.execute(
            text("UPDATE policy_versions SET document = :d WHERE version = 1"),
            {"d": _raised_limit_document(world)},
        )
    with world.sessions() as session:
        with pytest.raises(StoredPolicyAlteredError, match="version 1"):
            current_policy(session)
        with pytest.raises(StoredPolicyAlteredError):
            policy_version(session, 1)
        decisions_before = len(session.scalars(select(PolicyDecisionRow.id)).all())
    wf = world.workflow()
    with pytest.raises(StoredPolicyAlteredError):
        wf.propose(
            world.officers["proposer"],
            asset="BTC",
            amount=20 * BTC,
            destination=DESTINATION,
            purpose="Above the real limit",
            legal_basis=DECREE,
        )
    with world.sessions() as session:
        assert len(session.scalars(select(PolicyDecisionRow.id)).all()) == decisions_before
    result = _policy_verify(db_url, monkeypatch)
    assert result.exit_code == 1
    assert "not reproduced (policy_altered)" in result.output
    assert "Policy version 1" in result.output


def test_a_rehashed_policy_is_accepted_at_read_but_named_by_verify(world: World) -> None:
    """If the attacker also rewrites the stored hash (and every decision's), reads accept it; the audit log's hash names it."""
    view = _approved_then_reprepared(world)
    assert view.state is ProposalState.PROPOSED
    document = _raised_limit_document(world)
    forged_hash = hashlib.sha256(document.encode()).hexdigest()
    _drop_triggers(world.engine, "policy_versions")
    with world.engine.begin() as connection:
        connection.execute(
            text("UPDATE policy_versions SET document = :d, content_hash = :h WHERE version = 1"),
            {"d": document, "h": forged_hash},
        )
        connection.execute(text("UPDATE policy_decisions SET policy_hash = :h"), {"h": forged_hash})
    with world.sessions() as session:
        assert current_policy(session).document.assets["BTC"].per_tx_limit == 100 * BTC
        verdict = verify_decisions(session)
    assert verdict.mismatch is not None
    assert verdict.mismatch.kind is MismatchKind.POLICY_NOT_AUDITED
    assert verdict.mismatch.policy_version == 1
    assert "recorded" in verdict.mismatch.message


def test_a_deleted_policy_version_is_named_by_verify(world: World) -> None:
    """Deleting a policy version (with its decisions) leaves the audit log's policy_set event, which verify names."""
    _drop_triggers(world.engine, "policy_versions")
    _as_attacker(world.engine, "DELETE FROM policy_decisions", "DELETE FROM policy_versions")
    with world.sessions() as session:
        verdict = verify_decisions(session)
    assert verdict.mismatch is not None
    assert verdict.mismatch.kind is MismatchKind.POLICY_NOT_AUDITED
    assert "deleted" in verdict.mismatch.message


# --- Replaying the decisions ---------------------------------------------------------------------


def test_every_decision_reproduces_and_the_command_says_so(
    world: World, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an untouched database all decisions, allowed and refused, reproduce; the command exits 0 with the count."""
    _approved_then_reprepared(world)
    wf = world.workflow()
    with pytest.raises(PolicyRefusedError):
        wf.propose(
            world.officers["proposer"],
            asset="BTC",
            amount=PER_TX_LIMIT + 1,
            destination=DESTINATION,
            purpose="Too much",
            legal_basis=DECREE,
        )
    with world.sessions() as session:
        count = len(session.scalars(select(PolicyDecisionRow.id)).all())
        verdict = verify_decisions(session)
    assert count == 5  # the submit, three approvals, the refused submit
    assert verdict.ok
    assert verdict.decisions_checked == count
    result = _policy_verify(db_url, monkeypatch)
    assert result.exit_code == 0, result.output
    assert f"reproduced: all {count} decisions under 1 intact policy versions" in result.output
    audit_result = CliRunner().invoke(treasury_app, ["audit", "verify"])
    assert audit_result.exit_code == 0, audit_result.output
    assert f"policy: all {count} decisions reproduce under 1 intact policy versions" in (
        audit_result.output
    )


def test_a_flipped_outcome_is_named_with_its_decision(
    world: World, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Marking a refused decision as allowed (digest untouched) is named: the replay refuses it again."""
    wf = world.workflow()
    with pytest.raises(PolicyRefusedError):
        wf.propose(
            world.officers["proposer"],
            asset="BTC",
            amount=PER_TX_LIMIT + 1,
            destination=DESTINATION,
            purpose="Too much",
            legal_basis=DECREE,
        )
    with world.sessions() as session:
        refused = session.scalars(
            select(PolicyDecisionRow.id).where(PolicyDecisionRow.allowed.is_(False))
        ).one()
    _as_attacker(
        world.engine,
        f"UPDATE policy_decisions SET allowed = true, reasons = '[]' WHERE id = {refused}",  # noqa: S608 - an int
    )
    with world.sessions() as session:
        verdict = verify_decisions(session)
    assert verdict.mismatch is not None
    assert verdict.mismatch.kind is MismatchKind.OUTCOME_DIFFERS
    assert verdict.mismatch.decision_id == refused
    result = _policy_verify(db_url, monkeypatch)
    assert result.exit_code == 1
    assert f"Decision {refused} recorded allowed=True" in result.output
    # The auditor's one command names it too, while the audit log itself is intact.
    audit_result = CliRunner().invoke(treasury_app, ["audit", "verify"])
    assert audit_result.exit_code == 1
    assert "intact:" in audit_result.output
    assert f"policy: not reproduced (outcome_differs): Decision {refused}" in audit_result.output


def test_what_verify_does_not_detect_is_stated(world: World) -> None:
    """Limits of replay: deleting an approval row, or rewriting a decision's inputs with its digest, reproduces.

    Replay re-runs each decision on the inputs it recorded, so the approval rows themselves are
    protected only by the database's refusal (tested above) and, in issue 12, by signatures.
    """
    view = _approved_then_reprepared(world)
    _drop_triggers(world.engine, "proposal_approvals", "proposal_approval_voids")
    _as_attacker(
        world.engine,
        f"DELETE FROM proposal_approval_voids WHERE approval_id IN (SELECT id FROM proposal_approvals WHERE proposal_id = {view.id})",  # noqa: S608 - an int
        f"DELETE FROM proposal_approvals WHERE proposal_id = {view.id}",  # noqa: S608 - an int
    )
    with world.sessions() as session:
        row = session.scalars(select(PolicyDecisionRow).order_by(PolicyDecisionRow.id)).first()
        assert row is not None
        inputs = row.inputs.replace(f'"amount":"{BTC}"', f'"amount":"{BTC // 2}"')
        assert inputs != row.inputs
        first_id = row.id
    with world.engine.begin() as connection:
        connection.execute(
            text("UPDATE policy_decisions SET inputs = :i, inputs_digest = :d WHERE id = :id"),
            {"i": inputs, "d": hashlib.sha256(inputs.encode()).hexdigest(), "id": first_id},
        )
    with world.sessions() as session:
        assert verify_decisions(session).ok


# --- Migration 0008 moves the data ---------------------------------------------------------------


def test_migration_moves_voids_and_activations_and_downgrades_back(db_url: str) -> None:
    """Upgrading a 0007 database turns voided_at/active_from into void and activation rows, numbers attempts, and downgrade restores them."""
    migrate.upgrade(db_url, "0007")
    engine = make_engine(db_url)
    t0, t1 = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC)
    rows = {
        "institutions (id, code, name, created_at)": [(1, "CB", "Central Bank", t0)],
        "officers (id, institution_id, name, created_at)": [(1, 1, "a", t0), (2, 1, "b", t0)],
        "legal_bases (id, reference, title, expires_at, created_at)": [(1, "D", "d", t1, t0)],
        "spend_proposals (id, asset, amount, destination, purpose, legal_basis_id, proposer_id, "
        "state, created_at)": [(1, "BTC", 100, "bcrt1q", "p", 1, 2, "proposed", t0)],
        "proposal_approvals (id, proposal_id, officer_id, institution_id, tx_hash, approved_at, "
        "voided_at, void_reason)": [
            (1, 1, 1, 1, "aa", t0, t1, "changed"),
            (2, 1, 1, 1, "bb", t1, None, None),
        ],
        "allowlist_entries (id, asset, address, label, requested_by, requested_at, active_from)": [
            (1, "BTC", "bcrt1qa", "a", 1, t0, t1),
            (2, "BTC", "bcrt1qb", "b", 1, t0, None),
        ],
    }
    try:
        with engine.begin() as connection:
            for target, values in rows.items():
                count = len(values[0])
                marks = ", ".join(f":v{n}" for n in range(count))
                for value in values:
                    connection.execute(
                        text(f"INSERT INTO {target} VALUES ({marks})"),  # noqa: S608 - fixed names
                        {f"v{n}": v for n, v in enumerate(value)},
                    )
        migrate.upgrade(db_url, "0008")
        with engine.connect() as connection:
            voids = connection.execute(
                text("SELECT approval_id, reason FROM proposal_approval_voids")
            ).all()
            attempts = connection.execute(
                text("SELECT id, attempt FROM proposal_approvals ORDER BY id")
            ).all()
            activations = connection.execute(
                text("SELECT entry_id FROM allowlist_activations")
            ).all()
        assert [tuple(v) for v in voids] == [(1, "changed")]
        assert [tuple(a) for a in attempts] == [(1, 1), (2, 2)]
        assert [tuple(a) for a in activations] == [(1,)]
        command.downgrade(migrate.alembic_config(db_url), "0007")
        with engine.connect() as connection:
            back = connection.execute(
                text("SELECT id, void_reason FROM proposal_approvals ORDER BY id")
            ).all()
            active = connection.execute(
                text("SELECT id FROM allowlist_entries WHERE active_from IS NOT NULL")
            ).all()
        assert [tuple(b) for b in back] == [(1, "changed"), (2, None)]
        assert [tuple(a) for a in active] == [(1,)]
        migrate.upgrade(db_url)
    finally:
        engine.dispose()
