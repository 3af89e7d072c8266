"""The REST API on both databases: OpenAPI served, 401/403/422 with clear messages, the happy path."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from workflow_support import DESTINATION, World, proposal_body

BTC = 100_000_000


@pytest.fixture
def client(world: World) -> TestClient:
    return world.api()


def test_openapi_schema_is_served_with_every_operation(client: TestClient) -> None:
    """/openapi.json lists the spend, ledger and audit routes and the bearer scheme."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert {"/proposals", "/proposals/{proposal_id}/approve", "/proposals/{proposal_id}/veto",
            "/ledger/balances", "/audit/head", "/audit/verify"} <= set(schema["paths"])  # fmt: skip
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer trs_0000000000000000_deadbeef"},
        {"Authorization": "Bearer nonsense"},
    ],
    ids=["missing", "unknown", "malformed"],
)
def test_a_missing_or_bad_token_gets_401(client: TestClient, headers: dict[str, str]) -> None:
    """No token, an unknown token or a malformed one is refused with 401 and a Bearer challenge."""
    response = client.get("/proposals", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]


def test_a_tampered_token_gets_401(world: World, client: TestClient) -> None:
    """A real token with one character of its secret changed does not authenticate."""
    token = world.tokens["proposer"]
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    response = client.get("/proposals", headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("officer", "method", "path", "body"),
    [
        ("auditor", "post", "/proposals", proposal_body()),
        ("proposer", "post", "/proposals/1/veto", {"reason": "no"}),
        ("proposer", "post", "/proposals/1/approve", {"tx_hash": "a" * 64}),
        ("proposer", "get", "/audit/verify", None),
    ],
)
def test_a_wrong_role_gets_403(
    world: World, client: TestClient, officer: str, method: str, path: str, body: object
) -> None:
    """An auditor cannot propose; a proposer cannot veto, approve or verify the audit log."""
    response = client.request(method, path, json=body, headers=world.bearer(officer))
    assert response.status_code == 403
    assert "needs the role" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            proposal_body(amount="1.5"),
            "amount: amount must be a positive whole number of base units",
        ),
        (proposal_body(amount="0"), "amount: amount must be a positive whole number of base units"),
        (
            {**proposal_body(), "destination": ""},
            "destination: String should have at least 1 character",
        ),
        (
            {k: v for k, v in proposal_body().items() if k != "legal_basis"},
            "legal_basis: Field required",
        ),
    ],
    ids=["fractional", "zero", "empty-destination", "no-legal-basis"],
)
def test_bad_input_gets_422_naming_the_field(
    world: World, client: TestClient, body: dict[str, str], field: str
) -> None:
    """Malformed proposals are refused with 422 and a one-sentence message naming the field."""
    response = client.post("/proposals", json=body, headers=world.bearer("proposer"))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("Invalid request: ")
    assert field in detail
    assert client.get("/proposals", headers=world.bearer("auditor")).json() == []


def test_an_unknown_legal_basis_gets_404_naming_it(world: World, client: TestClient) -> None:
    """Citing a decree that is not registered is refused with 404 and a message naming it."""
    response = client.post(
        "/proposals",
        json={**proposal_body(), "legal_basis": "NO-SUCH-DECREE"},
        headers=world.bearer("proposer"),
    )
    assert response.status_code == 404
    assert "NO-SUCH-DECREE" in response.json()["detail"]


def test_a_policy_refusal_gets_409_with_its_reason_codes(world: World, client: TestClient) -> None:
    """Over the per-transaction limit the API answers 409 and lists the refusal code."""
    response = client.post(
        "/proposals", json=proposal_body(amount=str(11 * BTC)), headers=world.bearer("proposer")
    )
    assert response.status_code == 409
    assert [r["code"] for r in response.json()["reasons"]] == ["over_per_tx_limit"]


def test_happy_path_propose_prepare_approve_then_read(world: World, client: TestClient) -> None:
    """A proposal made, prepared and approved by two institutions over HTTP reaches approved."""
    created = client.post("/proposals", json=proposal_body(), headers=world.bearer("proposer"))
    assert created.status_code == 201
    proposal = created.json()
    assert proposal["state"] == "proposed"
    assert proposal["amount"] == str(BTC)
    pid = proposal["id"]
    prepared = client.post(f"/proposals/{pid}/prepare", headers=world.bearer("proposer")).json()
    tx_hash = prepared["tx_hash"]
    assert prepared["tx_summary"]["destination"] == DESTINATION
    wrong = client.post(
        f"/proposals/{pid}/approve", json={"tx_hash": "b" * 64}, headers=world.bearer("cb_approver")
    )
    assert wrong.status_code == 409
    for officer in ("cb_approver", "parl_approver"):
        response = client.post(
            f"/proposals/{pid}/approve", json={"tx_hash": tx_hash}, headers=world.bearer(officer)
        )
        assert response.status_code == 200
    status = client.get(f"/proposals/{pid}", headers=world.bearer("auditor")).json()
    assert status["state"] == "approved"
    assert sorted(a["institution"] for a in status["approvals"]) == ["CB", "PARL"]
    listed = client.get(
        "/proposals", params={"state": "approved"}, headers=world.bearer("auditor")
    ).json()
    assert [p["id"] for p in listed] == [pid]
    decisions = client.get(f"/proposals/{pid}/decisions", headers=world.bearer("auditor")).json()
    assert [d["action"] for d in decisions] == ["submit", "approve", "approve"]
    assert all(d["allowed"] for d in decisions)
    balances = client.get("/ledger/balances", headers=world.bearer("auditor")).json()
    assert {b["account"]: b["posted"] for b in balances}["vault:btc"] == str(50 * BTC)
    head = client.get("/audit/head", headers=world.bearer("auditor")).json()
    verified = client.get("/audit/verify", headers=world.bearer("auditor")).json()
    assert verified["ok"] is True
    assert verified["head"] == head
    rejected = client.post(
        f"/proposals/{pid}/reject",
        json={"reason": "Changed plans"},
        headers=world.bearer("mof_approver"),
    )
    assert rejected.json()["state"] == "rejected"
