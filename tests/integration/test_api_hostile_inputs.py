"""Hostile values in well-formed requests, on both databases (issue 13, point 5).

Ids outside what an id column holds, text no database can store, and amounts that are not
exactly digits are each refused with 422 naming the field, before any query: every table's row
count stays as it was. Text with control characters is the one refusal that is recorded: one
``input_refused`` audit event under the officer who sent it, naming the field and the code
points found, never the text itself (``treasury.api.input_refusals``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select, table
from typer.testing import CliRunner
from workflow_support import DECREE, DESTINATION, UNLISTED, World, proposal_body

from treasury import audit
from treasury.api.console import LOGIN_CSRF_COOKIE, SESSION_COOKIE, csrf_token
from treasury.api.schemas import RECORD_ID_MAX
from treasury.audit import AuditKind
from treasury.cli import app as cli_app
from treasury.db import DATABASE_URL_ENV
from treasury.policy.tables import PolicyDecisionRow

pytestmark = pytest.mark.integration

BTC = 100_000_000
OUT_OF_RANGE_IDS = (2**63, 2**64, 10**30, RECORD_ID_MAX + 1, 2**63 - 1, 0, -1, -(2**63))
"""Ids no record can have on either database: above PostgreSQL's ``integer`` or below 1 (2^63
first: it was a 500 on both databases, 2^31 one on PostgreSQL; 0 and -1 were 404s)."""


@pytest.fixture
def client(world: World) -> TestClient:
    # A 500 must show as a status the assertions see, not as an exception in the test.
    return world.api(raise_server_exceptions=False)


def _rows(world: World) -> dict[str, int]:
    """Every table's row count: what a refused request must leave exactly as it was."""
    with world.sessions() as session:
        names = inspect(session.connection()).get_table_names()
        return {
            name: session.scalar(select(func.count()).select_from(table(name))) or 0
            for name in names
        }


def _head(world: World) -> tuple[int, str]:
    with world.sessions() as session:
        head = audit.head(session)
    return head.sequence, head.hash


def _events_after(world: World, sequence: int) -> list[dict[str, Any]]:
    """The audit events appended after ``sequence``, as kind, actor, refs and payload."""
    with world.sessions() as session:
        rows = session.scalars(
            select(audit.AuditEvent)
            .where(audit.AuditEvent.sequence > sequence)
            .order_by(audit.AuditEvent.sequence)
        ).all()
        return [
            {
                "kind": row.kind,
                "actor": row.actor,
                "refs": json.loads(row.refs),
                "payload": json.loads(row.payload),
            }
            for row in rows
        ]


def _chain_intact(world: World) -> None:
    with world.sessions() as session:
        verdict = audit.verify(session)
    assert verdict.ok, verdict.brk


def _console_login(world: World, client: TestClient, officer: str) -> str:
    """Log ``officer`` in to the console through its login form; returns the forms' CSRF token."""
    client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"token": world.tokens[officer], "csrf": client.cookies[LOGIN_CSRF_COOKIE]},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:300]
    return csrf_token(client.cookies[SESSION_COOKIE])


def _submitted(world: World, client: TestClient) -> int:
    response = client.post("/proposals", json=proposal_body(), headers=world.bearer("proposer"))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


# --- 1. ids ------------------------------------------------------------------------------------

ID_ROUTES = [
    ("get", "/proposals/{id}", "auditor", None, "proposal_id"),
    ("get", "/proposals/{id}/decisions", "auditor", None, "proposal_id"),
    ("get", "/proposals/{id}/statement", "mof_approver", None, "proposal_id"),
    ("post", "/proposals/{id}/prepare", "proposer", None, "proposal_id"),
    ("post", "/proposals/{id}/approve", "mof_approver", {"tx_hash": "a" * 64}, "proposal_id"),
    ("post", "/proposals/{id}/reject", "mof_approver", {"reason": "no"}, "proposal_id"),
    ("post", "/proposals/{id}/veto", "oversight", {"reason": "no"}, "proposal_id"),
    ("post", "/officers/{id}/tokens", "admin", None, "officer_id"),
    ("post", "/officers/{id}/revoke", "admin", None, "officer_id"),
]


@pytest.mark.parametrize(
    ("method", "path", "officer", "body", "field"),
    ID_ROUTES,
    ids=[f"{m}-{p}" for m, p, *_ in ID_ROUTES],
)
def test_an_id_outside_the_id_columns_range_gets_422_naming_it(
    world: World,
    client: TestClient,
    method: str,
    path: str,
    officer: str,
    body: dict[str, str] | None,
    field: str,
) -> None:
    """Ids below 1 or above 2^31-1 (2^63 included) are a 422 naming the id; nothing is written."""
    rows, head = _rows(world), _head(world)
    for record_id in OUT_OF_RANGE_IDS:
        response = client.request(
            method, path.format(id=record_id), json=body, headers=world.bearer(officer)
        )
        assert response.status_code == 422, (record_id, response.text)
        detail = response.json()["detail"]
        assert detail.startswith(f"Invalid request: path.{field}: Input should be "), detail
    assert _rows(world) == rows
    assert _head(world) == head


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/console/proposals/{id}"),
        ("post", "/console/proposals/{id}/approve"),
        ("post", "/console/proposals/{id}/reject"),
    ],
)
def test_the_console_refuses_an_id_outside_the_range_with_422(
    world: World, client: TestClient, method: str, path: str
) -> None:
    """The console's proposal pages and forms take the API's id type: 422, nothing written."""
    csrf = _console_login(world, client, "mof_approver")
    rows, head = _rows(world), _head(world)
    for record_id in OUT_OF_RANGE_IDS:
        form = {"csrf": csrf, "reason": "no", "tx_hash": "a" * 64} if method == "post" else None
        response = client.request(method, path.format(id=record_id), data=form)
        assert response.status_code == 422, (record_id, response.text[:300])
        assert "path.proposal_id: Input should be " in response.json()["detail"]
    assert _rows(world) == rows
    assert _head(world) == head


def test_the_largest_id_a_record_can_have_is_an_unknown_record(
    world: World, client: TestClient
) -> None:
    """2^31-1 is a valid id that names nothing: 404 on both databases, for proposals and officers."""
    response = client.get(f"/proposals/{RECORD_ID_MAX}", headers=world.bearer("auditor"))
    assert response.status_code == 404
    assert response.json()["detail"] == f"No spend proposal has the id {RECORD_ID_MAX}."
    response = client.post(f"/officers/{RECORD_ID_MAX}/revoke", headers=world.bearer("admin"))
    assert response.status_code == 404
    assert str(RECORD_ID_MAX) in response.json()["detail"]


# --- 2. text no database can store ------------------------------------------------------------

UNSTORABLE = {
    "nul": ("\x00", "U+0000"),
    "soh": ("\x01", "U+0001"),
    "escape": ("\x1b", "U+001B"),
    "delete": ("\x7f", "U+007F"),
    "lone-surrogate": ("\ud800", "U+D800"),
}


@pytest.mark.parametrize("field", ["asset", "destination", "purpose", "legal_basis"])
@pytest.mark.parametrize("kind", list(UNSTORABLE), ids=list(UNSTORABLE))
def test_unstorable_text_in_a_proposal_gets_422_and_the_refusal_is_audited(
    world: World, client: TestClient, field: str, kind: str
) -> None:
    """NUL, other controls and lone surrogates: 422 naming the field and the code point; no
    proposal or decision is written, and exactly one ``input_refused`` event records the refusal."""
    char, point = UNSTORABLE[kind]
    value = {
        **proposal_body(),
        field: proposal_body()[field][:3] + char + proposal_body()[field][3:],
    }
    rows, (sequence, _hash) = _rows(world), _head(world)
    # Sent as JSON escapes (\\u0000, \\ud800): a lone surrogate has no UTF-8 form to send raw.
    response = client.post(
        "/proposals",
        content=json.dumps(value),
        headers={**world.bearer("proposer"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert f"{field}: {field} must be text without control characters or lone surrogates" in detail
    assert f"(found {point})" in detail
    after = _rows(world)
    assert after == {**rows, "audit_events": rows["audit_events"] + 1}
    assert _events_after(world, sequence) == [
        {
            "kind": AuditKind.PROPOSAL.value,
            "actor": f"officer:{world.officers['proposer'].id}",
            "refs": {},
            "payload": {
                "event": "input_refused",
                "method": "POST",
                "route": "/proposals",
                "fields": [field],
                "found": [point],
            },
        }
    ]
    _chain_intact(world)


def test_a_nul_in_a_proposal_the_policy_would_refuse_is_recorded_not_lost(
    world: World, client: TestClient
) -> None:
    """Issue 13's case: over the per-transaction limit with a NUL in the purpose was a 500 on
    PostgreSQL with nothing kept. Now: 422 on both databases, the refusal recorded in the audit
    log under the proposer; the policy is not asked about malformed input, so no decision row."""
    rows, (sequence, _hash) = _rows(world), _head(world)
    response = client.post(
        "/proposals",
        json=proposal_body(amount=str(11 * BTC), purpose="Pay\x00 the contractor"),
        headers=world.bearer("proposer"),
    )
    assert response.status_code == 422, response.text
    assert (
        "purpose: purpose must be text without control characters or lone surrogates (found U+0000)"
        in (response.json()["detail"])
    )
    assert _rows(world)["policy_decisions"] == rows["policy_decisions"]
    assert _rows(world)["spend_proposals"] == rows["spend_proposals"]
    [event] = _events_after(world, sequence)
    assert event["payload"]["event"] == "input_refused"
    assert event["payload"]["fields"] == ["purpose"]
    assert event["actor"] == f"officer:{world.officers['proposer'].id}"
    _chain_intact(world)


def test_an_unlisted_destination_with_a_nul_no_longer_reaches_the_policy(
    world: World, client: TestClient
) -> None:
    """A NUL in an unlisted destination was a 409 on SQLite and a 500 on PostgreSQL: now 422 on
    both, the refusal audited, and the NUL never copied into a decision or a proposal."""
    rows, (sequence, _hash) = _rows(world), _head(world)
    response = client.post(
        "/proposals",
        json=proposal_body(destination=UNLISTED + "\x00"),
        headers=world.bearer("proposer"),
    )
    assert response.status_code == 422, response.text
    assert _rows(world) == {**rows, "audit_events": rows["audit_events"] + 1}
    assert _events_after(world, sequence)[0]["payload"]["fields"] == ["destination"]


def test_tabs_and_line_breaks_are_text_in_a_purpose_but_not_in_a_destination(
    world: World, client: TestClient
) -> None:
    """Free text keeps its tabs and line breaks; a one-line field refuses them (nothing audited
    for the accepted one, one refusal for the other)."""
    purpose = "Pay the contractor:\n\t- invoice 17\r\n\t- invoice 18"
    response = client.post(
        "/proposals", json=proposal_body(purpose=purpose), headers=world.bearer("proposer")
    )
    assert response.status_code == 201, response.text
    assert response.json()["purpose"] == purpose
    rows = _rows(world)
    response = client.post(
        "/proposals",
        json=proposal_body(destination=DESTINATION + "\t"),
        headers=world.bearer("proposer"),
    )
    assert response.status_code == 422
    assert "(found U+0009)" in response.json()["detail"]
    assert _rows(world) == {**rows, "audit_events": rows["audit_events"] + 1}


@pytest.mark.parametrize(("route", "officer"), [("reject", "mof_approver"), ("veto", "oversight")])
def test_a_nul_in_a_reason_gets_422_and_the_refusal_names_theproposal_body(
    world: World, client: TestClient, route: str, officer: str
) -> None:
    """Reject and veto reasons: 422, the proposal unchanged, the refusal audited under its id."""
    proposal_id = _submitted(world, client)
    rows, (sequence, _hash) = _rows(world), _head(world)
    response = client.post(
        f"/proposals/{proposal_id}/{route}",
        json={"reason": "not\x00 this"},
        headers=world.bearer(officer),
    )
    assert response.status_code == 422, response.text
    assert (
        "reason: reason must be text without control characters or lone surrogates (found U+0000)"
        in (response.json()["detail"])
    )
    assert _rows(world) == {**rows, "audit_events": rows["audit_events"] + 1}
    [event] = _events_after(world, sequence)
    assert event["refs"] == {"proposal_id": proposal_id}
    assert event["payload"]["route"] == f"/proposals/{{proposal_id}}/{route}"
    state = client.get(f"/proposals/{proposal_id}", headers=world.bearer("auditor")).json()["state"]
    assert state == "proposed"


def test_a_nul_in_a_new_officers_name_gets_422_and_is_audited_as_a_roster_change(
    world: World, client: TestClient
) -> None:
    """Officer administration takes the same text types: no officer added, the refusal audited."""
    rows, (sequence, _hash) = _rows(world), _head(world)
    response = client.post(
        "/officers",
        json={"institution": "MOF", "name": "Eve\x00", "roles": ["proposer"]},
        headers=world.bearer("admin"),
    )
    assert response.status_code == 422, response.text
    assert (
        "name: name must be text without control characters or lone surrogates (found U+0000)"
        in (response.json()["detail"])
    )
    assert _rows(world) == {**rows, "audit_events": rows["audit_events"] + 1}
    [event] = _events_after(world, sequence)
    assert event["kind"] == AuditKind.POLICY_CHANGE.value
    assert event["payload"]["route"] == "/officers"


def test_unauthenticated_unstorable_text_is_401_and_records_nothing(
    world: World, client: TestClient
) -> None:
    """Without a valid token there is no officer to record: 401 before the body, nothing written."""
    rows, head = _rows(world), _head(world)
    response = client.post("/proposals", json=proposal_body(purpose="x\x00"))
    assert response.status_code == 401
    assert _rows(world) == rows
    assert _head(world) == head


def test_a_nul_in_a_signed_statement_is_refused_without_a_500(
    world: World, client: TestClient
) -> None:
    """A signed statement carrying NULs is malformed input (4xx), never a database error."""
    proposal_id = _submitted(world, client)
    rows, head = _rows(world), _head(world)
    response = client.post(
        f"/proposals/{proposal_id}/approve",
        json={
            "tx_hash": "a" * 64,
            "signed": {
                "statement": {"proposal_id": "\x00"},
                "key_id": "k1:\x00",
                "signature": {"kind": "secp256k1\x00", "signature": "\x00"},
            },
        },
        headers=world.bearer("mof_approver"),
    )
    assert 400 <= response.status_code < 500, response.text
    assert _rows(world) == rows
    assert _head(world) == head


def test_the_console_refuses_a_nul_in_a_reason_with_422_and_audits_it(
    world: World, client: TestClient
) -> None:
    """The console's reject form: a 422 page naming the field, the proposal unchanged, audited."""
    proposal_id = _submitted(world, client)
    csrf = _console_login(world, client, "mof_approver")
    rows, (sequence, _hash) = _rows(world), _head(world)
    response = client.post(
        f"/console/proposals/{proposal_id}/reject",
        data={"csrf": csrf, "reason": "not\x00 this"},
        follow_redirects=False,
    )
    assert response.status_code == 422, response.text[:500]
    assert (
        "the reason must be text without control characters or lone surrogates (found U+0000)"
        in response.text
    )
    assert _rows(world) == {**rows, "audit_events": rows["audit_events"] + 1}
    [event] = _events_after(world, sequence)
    assert event["refs"] == {"proposal_id": proposal_id}
    assert event["payload"]["route"] == "/console/proposals/{proposal_id}/reject"
    assert event["actor"] == f"officer:{world.officers['mof_approver'].id}"


def test_the_console_login_refuses_a_nul_in_the_token_without_a_query(
    world: World, client: TestClient
) -> None:
    """A token with a NUL is no token: 422 on the login page, no cookie, nothing written."""
    page = client.get("/console/login")
    nonce = page.cookies.get("console_login_csrf")
    rows, head = _rows(world), _head(world)
    response = client.post(
        "/console/login",
        data={"csrf": nonce, "token": "trs_\x00_abc"},
        follow_redirects=False,
    )
    assert response.status_code == 422, response.text[:300]
    assert SESSION_COOKIE not in response.cookies
    assert _rows(world) == rows
    assert _head(world) == head


# --- 3. amounts ------------------------------------------------------------------------------

PADDED_OR_INEXACT_AMOUNTS = [
    " 100 ",
    " 100",
    "100 ",
    "100\n",
    "\t100",
    "+100",
    "0100",
    "1e2",
    "100.0",
    "\uff11\uff10\uff10",  # full-width "100"
    "1_00",
    "\u0661\u0660\u0660",  # Arabic-Indic "100"
]


@pytest.mark.parametrize("amount", PADDED_OR_INEXACT_AMOUNTS)
def test_an_amount_that_is_not_exactly_digits_gets_422_naming_it(
    world: World, client: TestClient, amount: str
) -> None:
    """Padding, signs, leading zeros, exponents, fractions, separators and non-ASCII digits are
    refused with 422 naming ``amount``; nothing is written."""
    rows, head = _rows(world), _head(world)
    response = client.post(
        "/proposals", json=proposal_body(amount=amount), headers=world.bearer("proposer")
    )
    assert response.status_code == 422, (amount, response.text)
    assert (
        "amount: amount must be a positive whole number of base units"
        in (response.json()["detail"])
    )
    assert _rows(world) == rows
    assert _head(world) == head


def test_an_amount_as_a_json_number_gets_422(world: World, client: TestClient) -> None:
    """100 (a JSON number, not a string) is refused: amounts travel as exact digit strings."""
    response = client.post(
        "/proposals", json={**proposal_body(), "amount": 100}, headers=world.bearer("proposer")
    )
    assert response.status_code == 422
    assert "amount: amount must be" in response.json()["detail"]


def test_an_exact_digit_string_is_the_amount(world: World, client: TestClient) -> None:
    """ "100" is accepted as 100 base units."""
    response = client.post(
        "/proposals", json=proposal_body(amount="100"), headers=world.bearer("proposer")
    )
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == "100"


@pytest.mark.parametrize("amount", PADDED_OR_INEXACT_AMOUNTS)
def test_the_cli_refuses_an_amount_that_is_not_exactly_digits(world: World, amount: str) -> None:
    """`treasury spend propose --amount` takes the API's rule (Python's int would read 100)."""
    rows, head = _rows(world), _head(world)
    result = CliRunner().invoke(
        cli_app,
        ["spend", "propose", "--asset", "BTC", "--amount", amount, "--destination", DESTINATION,
         "--purpose", "Pay the contractor", "--legal-basis", DECREE],
        env={DATABASE_URL_ENV: world.url, "TREASURY_API_TOKEN": world.tokens["proposer"]},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--amount'" in result.output
    assert _rows(world) == rows
    assert _head(world) == head


def test_the_cli_takes_an_exact_digit_string_as_the_amount(world: World) -> None:
    """`--amount 100` reaches the policy as 100 base units (which refuses it here: the CLI runs
    on the real clock, before the test world's allowlist and reconciliation are current)."""
    decisions = _rows(world)["policy_decisions"]
    result = CliRunner().invoke(
        cli_app,
        ["spend", "propose", "--asset", "BTC", "--amount", "100", "--destination", DESTINATION,
         "--purpose", "Pay the contractor", "--legal-basis", DECREE],
        env={DATABASE_URL_ENV: world.url, "TREASURY_API_TOKEN": world.tokens["proposer"]},
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: Policy version 1 refused"), result.output
    assert _rows(world)["policy_decisions"] == decisions + 1
    with world.sessions() as session:
        inputs = session.scalars(
            select(PolicyDecisionRow.inputs).order_by(PolicyDecisionRow.id.desc()).limit(1)
        ).one()
    assert json.loads(inputs)["spend"]["amount"] == "100"
