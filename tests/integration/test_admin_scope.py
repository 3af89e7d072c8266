"""Admin scope on both databases: an admin acts only inside its own institution.

Through the real API (FastAPI's TestClient), the CLI and the domain functions: another
institution's officers cannot be added, given tokens or revoked (403 / one ``error:`` line, naming
both institutions, with nothing written), the same actions inside one's own institution work,
founding is refused once an institution has an admin, and one institution's admin can no longer
assemble a two-institution approval quorum alone.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from token_files import token_file
from typer.testing import CliRunner
from workflow_support import World, proposal_body

from custody.clock import utc_now
from treasury import audit, migrate, officers
from treasury.cli import app as cli_app
from treasury.db import DATABASE_URL_ENV, make_engine, session_factory
from treasury.officers import (
    ApiTokenRow,
    Founding,
    InstitutionRow,
    OfficerRoleRow,
    OfficerRow,
    Role,
    authenticate,
)
from treasury.proposals import ApprovalRow
from treasury.workflow_exceptions import AuthenticationError, NotAuthorisedError

log = logging.getLogger("tests")


@dataclass(frozen=True)
class Snapshot:
    """What an administrative action could write: row counts, revocations, the audit head (every
    write of the workflow, voiding an approval included, appends an audit event)."""

    counts: tuple[int, ...]
    officer_revocations: tuple[Any, ...]
    token_revocations: tuple[Any, ...]
    audit_head: audit.ChainHead


def _snapshot(sessions: sessionmaker[Session]) -> Snapshot:
    with sessions() as session:
        counts = tuple(
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (InstitutionRow, OfficerRow, OfficerRoleRow, ApiTokenRow, ApprovalRow)
        )
        return Snapshot(
            counts,
            tuple(session.scalars(select(OfficerRow.revoked_at).order_by(OfficerRow.id))),
            tuple(session.scalars(select(ApiTokenRow.revoked_at).order_by(ApiTokenRow.id))),
            audit.head(session),
        )


@pytest.fixture
def client(world: World) -> TestClient:
    return world.api()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_scope_refusal(detail: str, own: str, other: str) -> None:
    assert f"admin of {own}" in detail
    assert f"of {other}: an admin acts only inside its own institution" in detail


# --- The API ------------------------------------------------------------------------------------


def test_an_admin_cannot_add_an_officer_to_another_institution(
    world: World, client: TestClient
) -> None:
    """MOF's admin adding an approver (or an admin) to CB gets 403 naming MOF and CB; nothing is written."""
    before = _snapshot(world.sessions)
    for roles in (["approver"], ["admin"], ["oversight"]):
        response = client.post(
            "/officers",
            json={"institution": "CB", "name": "Mallory", "roles": roles},
            headers=_auth(world.tokens["admin"]),
        )
        assert response.status_code == 403, response.text
        _assert_scope_refusal(response.json()["detail"], "MOF", "CB")
    assert _snapshot(world.sessions) == before


def test_an_admin_cannot_issue_a_token_for_another_institutions_officer(
    world: World, client: TestClient
) -> None:
    """MOF's admin asking for a token of CB's approver or CB's admin gets 403; nothing is written."""
    before = _snapshot(world.sessions)
    for name in ("cb_approver", "cb_admin"):
        officer_id = world.officers[name].id
        response = client.post(
            f"/officers/{officer_id}/tokens", headers=_auth(world.tokens["admin"])
        )
        assert response.status_code == 403, response.text
        detail = response.json()["detail"]
        _assert_scope_refusal(detail, "MOF", "CB")
        assert f"issue a token for officer {officer_id}" in detail
        assert "trs_" not in response.text
    assert _snapshot(world.sessions) == before


def test_an_admin_cannot_revoke_another_institutions_officer(
    world: World, client: TestClient
) -> None:
    """MOF's admin revoking CB's approver (who approved a spend) gets 403: nothing revoked or voided."""
    created = client.post(
        "/proposals",
        json=proposal_body(),
        headers=_auth(world.tokens["proposer"]),
    ).json()
    prepared = client.post(
        f"/proposals/{created['id']}/prepare", headers=_auth(world.tokens["proposer"])
    ).json()
    approved = client.post(
        f"/proposals/{created['id']}/approve",
        json={"tx_hash": prepared["tx_hash"]},
        headers=_auth(world.tokens["cb_approver"]),
    )
    assert approved.status_code == 200
    before = _snapshot(world.sessions)
    target = world.officers["cb_approver"].id
    response = client.post(f"/officers/{target}/revoke", headers=_auth(world.tokens["admin"]))
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    _assert_scope_refusal(detail, "MOF", "CB")
    assert f"revoke officer {target}" in detail
    assert _snapshot(world.sessions) == before
    with world.sessions() as session:
        assert authenticate(session, world.tokens["cb_approver"], now=world.clock()).id == target
    status = client.get(f"/proposals/{created['id']}", headers=_auth(world.tokens["auditor"]))
    assert [a["institution"] for a in status.json()["approvals"]] == ["CB"]


def test_the_same_actions_inside_ones_own_institution_still_work(
    world: World, client: TestClient
) -> None:
    """MOF's admin adds a MOF approver, issues its token (which authenticates) and revokes it; CB's admin revokes CB's approver."""
    admin = _auth(world.tokens["admin"])
    added = client.post(
        "/officers",
        json={"institution": "MOF", "name": "Nadia", "roles": ["approver", "proposer"]},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    officer = added.json()
    assert (officer["institution"], officer["roles"]) == ("MOF", ["approver", "proposer"])
    issued = client.post(f"/officers/{officer['id']}/tokens", headers=admin)
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    assert client.get("/proposals", headers=_auth(token)).status_code == 200
    revoked = client.post(f"/officers/{officer['id']}/revoke", headers=admin)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert client.get("/proposals", headers=_auth(token)).status_code == 401
    target = world.officers["cb_approver"].id
    by_cb = client.post(f"/officers/{target}/revoke", headers=_auth(world.tokens["cb_admin"]))
    assert by_cb.status_code == 200, by_cb.text
    listed = client.get("/officers", headers=_auth(world.tokens["auditor"])).json()
    assert {o["id"]: o["revoked_at"] is not None for o in listed}[target] is True


def test_only_admins_administer_even_inside_their_institution(
    world: World, client: TestClient
) -> None:
    """A CB approver cannot add a CB officer nor issue itself a token (403, role named); nothing written."""
    before = _snapshot(world.sessions)
    approver = _auth(world.tokens["cb_approver"])
    response = client.post(
        "/officers",
        json={"institution": "CB", "name": "Extra", "roles": ["approver"]},
        headers=approver,
    )
    assert response.status_code == 403
    assert "needs the role admin" in response.json()["detail"]
    own = world.officers["cb_approver"].id
    assert client.post(f"/officers/{own}/tokens", headers=approver).status_code == 403
    assert _snapshot(world.sessions) == before


def test_one_admin_can_no_longer_assemble_a_two_institution_quorum_alone(
    world: World, client: TestClient
) -> None:
    """MOF's admin staffs MOF and gets one institution's approval; a second MOF approval does not
    count, the first step towards a second institution (an approver in CB or PARL, a CB or PARL
    officer's token, an officer of a newly registered institution) is refused, and the spend
    stays unapproved."""
    admin = _auth(world.tokens["admin"])

    def staff(name: str, role: str) -> str:
        added = client.post(
            "/officers", json={"institution": "MOF", "name": name, "roles": [role]}, headers=admin
        )
        assert added.status_code == 201, added.text
        issued = client.post(f"/officers/{added.json()['id']}/tokens", headers=admin)
        assert issued.status_code == 201, issued.text
        token: str = issued.json()["token"]
        return token

    log.info("the admin staffs its own institution with a proposer and two approvers")
    proposer, approver, second = (
        staff("Mallory P", "proposer"),
        staff("Mallory A", "approver"),
        staff("Mallory B", "approver"),
    )
    pid = client.post(
        "/proposals",
        json=proposal_body(purpose="Quietly moved"),
        headers=_auth(proposer),
    ).json()["id"]  # fmt: skip
    tx_hash = client.post(f"/proposals/{pid}/prepare", headers=_auth(proposer)).json()["tx_hash"]
    first = client.post(
        f"/proposals/{pid}/approve", json={"tx_hash": tx_hash}, headers=_auth(approver)
    )
    assert first.status_code == 200
    assert first.json()["state"] == "proposed"

    log.info("a second approval from the same institution does not count")
    again = client.post(
        f"/proposals/{pid}/approve", json={"tx_hash": tx_hash}, headers=_auth(second)
    )
    assert again.status_code == 409

    log.info("every way to a second institution's approval is refused at its first step")
    before = _snapshot(world.sessions)
    for code in ("CB", "PARL"):
        added = client.post(
            "/officers",
            json={"institution": code, "name": "Mallory C", "roles": ["approver"]},
            headers=admin,
        )
        assert added.status_code == 403
        _assert_scope_refusal(added.json()["detail"], "MOF", code)
    for name in ("cb_approver", "parl_approver", "cb_admin"):
        issued = client.post(f"/officers/{world.officers[name].id}/tokens", headers=admin)
        assert issued.status_code == 403
    assert _snapshot(world.sessions) == before

    status = client.get(f"/proposals/{pid}", headers=_auth(world.tokens["auditor"])).json()
    assert status["state"] == "proposed"
    assert [a["institution"] for a in status["approvals"]] == ["MOF"]

    log.info("an institution the admin registers itself stays empty: the admin cannot staff it")
    with world.sessions.begin() as session:
        officers.add_institution(
            session, "SHELL", "Shell body", actor=world.officers["admin"], now=world.clock()
        )
    with world.sessions.begin() as session, pytest.raises(NotAuthorisedError, match="of SHELL"):
        officers.add_officer(
            session, "SHELL", "Mallory S", [Role.APPROVER], actor=world.officers["admin"],
            now=world.clock(),
        )  # fmt: skip
    shell = client.post(
        "/officers",
        json={"institution": "SHELL", "name": "Mallory S", "roles": ["admin"]},
        headers=admin,
    )
    assert shell.status_code == 403


# --- The domain functions -------------------------------------------------------------------------


def test_an_officer_value_altered_in_memory_does_not_widen_the_scope(world: World) -> None:
    """An ``Officer`` claiming CB's institution, or the admin role, is judged by what is stored."""
    before = _snapshot(world.sessions)
    with world.sessions() as session:
        cb = officers.institution_by_code(session, "CB")
    disguised = replace(world.officers["admin"], institution_id=cb.id, institution_code="CB")
    promoted = replace(world.officers["cb_approver"], roles=frozenset({Role.ADMIN}))
    for actor, match in ((disguised, "admin of MOF"), (promoted, "needs the role admin")):
        with world.sessions.begin() as session, pytest.raises(NotAuthorisedError, match=match):
            officers.add_officer(
                session, "CB", "Mallory", [Role.APPROVER], actor=actor, now=world.clock()
            )
        with world.sessions.begin() as session, pytest.raises(NotAuthorisedError, match=match):
            officers.issue_token(
                session, world.officers["cb_approver"].id, actor=actor, now=world.clock()
            )
    assert _snapshot(world.sessions) == before


def test_a_revoked_admin_administers_nothing(world: World) -> None:
    """Once revoked (by its own institution's admin), an admin's ``Officer`` value adds nobody."""
    wf = world.workflow()
    cb_admin = world.officers["cb_admin"]
    wf.revoke_officer(cb_admin, cb_admin.id)
    before = _snapshot(world.sessions)
    with world.sessions.begin() as session, pytest.raises(NotAuthorisedError, match="revoked"):
        officers.add_officer(
            session, "CB", "Late", [Role.APPROVER], actor=cb_admin, now=world.clock()
        )
    assert _snapshot(world.sessions) == before


def test_founding_is_refused_once_an_institution_has_an_active_admin(world: World) -> None:
    """The operator founds only an institution without an active admin: never over CB's admin,
    and again once CB's last admin is revoked."""
    before = _snapshot(world.sessions)
    with (
        world.sessions.begin() as session,
        pytest.raises(NotAuthorisedError, match="CB already has an active admin"),
    ):
        officers.found_admin(session, "CB", "Usurper", operator="founding", now=world.clock())
    for target in ("cb_approver", "cb_admin"):
        with world.sessions.begin() as session, pytest.raises(NotAuthorisedError):
            officers.issue_token(
                session, world.officers[target].id, actor=Founding("x"), now=world.clock()
            )
    assert _snapshot(world.sessions) == before

    world.workflow().revoke_officer(world.officers["cb_admin"], world.officers["cb_admin"].id)
    with world.sessions.begin() as session:
        admin, token = officers.found_admin(
            session, "CB", "New CB admin", operator="founding", now=world.clock()
        )
    assert admin.institution_code == "CB"
    with world.sessions() as session:
        assert authenticate(session, token, now=world.clock()).id == admin.id
        newest = audit.events(session, after=before.audit_head.sequence, limit=1000)
    founded = [e for e in newest if json.loads(e.refs).get("officer_id") == admin.id]
    assert [(e.actor, json.loads(e.payload)["event"]) for e in founded] == [
        ("founding", "officer_added"),
        ("founding", "token_issued"),
    ]


# --- The CLI --------------------------------------------------------------------------------------


def test_the_cli_refuses_cross_institution_administration_with_one_line(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bootstrap MOF, register and found NBKR; MOF's admin cannot add, tokenise or revoke NBKR's
    officers (exit 1, one ``error:`` line naming MOF and NBKR, nothing written); NBKR's admin can."""
    migrate.upgrade(db_url)
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)
    runner = CliRunner()
    engine = make_engine(db_url)
    sessions = session_factory(engine)

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(cli_app, list(args))
        return result.exit_code, result.stdout, result.stderr

    def ok(*args: str) -> str:
        code, out, err = run(*args)
        assert code == 0, err
        return out

    try:
        mof = ok(
            "officers", "bootstrap", "--institution", "MOF", "--institution-name", "Ministry",
            "--admin-name", "Ada",
        ).strip().rsplit(" ", 1)[1]  # fmt: skip
        registered = ok("officers", "add-institution", "NBKR", "National Bank", *token_file(mof))
        assert "treasury officers found NBKR" in registered
        founded = ok("officers", "found", "NBKR", "--admin-name", "Nur")
        assert " of NBKR; token (shown once" in founded
        nbkr = founded.strip().rsplit(" ", 1)[1]
        added = ok("officers", "add", "Bek", "--institution", "NBKR", "--role", "approver",
                   *token_file(nbkr))  # fmt: skip
        nbkr_approver = added.split()[1]

        before = _snapshot(sessions)
        attempts = (
            ("officers", "add", "Mallory", "--institution", "NBKR", "--role", "approver"),
            ("officers", "issue-token", nbkr_approver),
            ("officers", "revoke", nbkr_approver),
        )
        for attempt in attempts:
            code, out, err = run(*attempt, *token_file(mof))
            assert (code, out) == (1, ""), attempt
            assert err.startswith("error: Officer 1 (Ada) is an admin of MOF and cannot ")
            assert err.endswith("of NBKR: an admin acts only inside its own institution.\n")
            assert err.count("\n") == 1
        code, _, err = run("officers", "found", "NBKR", "--admin-name", "Usurper")
        assert code == 1
        assert err.startswith("error: Institution NBKR already has an active admin")
        code, _, err = run("officers", "bootstrap", "--institution", "CB",
                           "--institution-name", "Bank", "--admin-name", "Bo")  # fmt: skip
        assert code == 1
        assert err.startswith("error: officers already exist")
        assert _snapshot(sessions) == before

        token = ok("officers", "issue-token", nbkr_approver, *token_file(nbkr)).strip()
        assert ok("spend", "list", *token_file(token)) == ""
        assert ok("officers", "revoke", nbkr_approver, *token_file(nbkr)).startswith(
            f"officer {nbkr_approver} revoked at "
        )
        with sessions() as session, pytest.raises(AuthenticationError):
            authenticate(session, token, now=utc_now())
    finally:
        engine.dispose()
