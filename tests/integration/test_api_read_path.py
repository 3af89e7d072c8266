"""The API's read path on both databases: one connection per read, returned however it ends.

The read routes (a proposal, the balances, the audit head) check the token and read in one
session; these tests hold them to the same answers, the same refusals in the same order, and
to giving back every connection they take.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from workflow_support import World, proposal_body

from treasury.api.schemas import AuditHeadOut, ProposalOut


@pytest.fixture
def client(world: World) -> TestClient:
    return world.api()


class PoolCounter:
    """Connections checked out of and back into the engine's pool."""

    def __init__(self, world: World) -> None:
        self.checkouts = 0
        self.checkins = 0
        event.listen(world.engine, "checkout", self._checkout)
        event.listen(world.engine, "checkin", self._checkin)

    def _checkout(self, *_args: Any) -> None:
        self.checkouts += 1

    def _checkin(self, *_args: Any) -> None:
        self.checkins += 1


def _prepared_proposal(world: World, client: TestClient) -> int:
    created = client.post("/proposals", json=proposal_body(), headers=world.bearer("proposer"))
    assert created.status_code == 201
    pid: int = created.json()["id"]
    prepared = client.post(f"/proposals/{pid}/prepare", headers=world.bearer("proposer"))
    assert prepared.status_code == 200
    return pid


@pytest.mark.parametrize("path", ["/proposals/{pid}", "/ledger/balances", "/audit/head"])
def test_a_read_takes_one_connection_and_gives_it_back(
    world: World, client: TestClient, path: str
) -> None:
    """The token check and the read share one checkout, returned before the next request."""
    url = path.format(pid=_prepared_proposal(world, client))
    counter = PoolCounter(world)
    for _ in range(3):
        response = client.get(url, headers=world.bearer("auditor"))
        assert response.status_code == 200
    assert counter.checkouts == 3
    assert counter.checkins == 3


def test_a_read_refused_after_the_token_check_gives_its_connection_back(
    world: World, client: TestClient
) -> None:
    """An unknown proposal (404) and a bad token (401) leave no connection checked out."""
    counter = PoolCounter(world)
    unknown = client.get("/proposals/999999", headers=world.bearer("auditor"))
    assert unknown.status_code == 404
    bad = client.get("/audit/head", headers={"Authorization": "Bearer trs_0000000000000000_00"})
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"] == "Bearer"
    assert counter.checkouts == 2
    assert counter.checkins == 2


def test_a_read_checks_the_token_before_the_path(world: World, client: TestClient) -> None:
    """An id out of range is 401 without a token (nothing read), 422 with a valid one."""
    counter = PoolCounter(world)
    assert client.get("/proposals/0").status_code == 401
    assert counter.checkouts == 0
    refused = client.get("/proposals/0", headers=world.bearer("auditor"))
    assert refused.status_code == 422
    assert "proposal_id" in refused.json()["detail"]
    assert counter.checkouts == counter.checkins == 1


def test_the_read_answers_are_the_workflow_views(world: World, client: TestClient) -> None:
    """A proposal read over HTTP is its workflow view, with its current transaction; the
    OpenAPI schema still names the response models of the routes that serialise their own."""
    pid = _prepared_proposal(world, client)
    read = client.get(f"/proposals/{pid}", headers=world.bearer("auditor"))
    assert read.headers["content-type"] == "application/json"
    view = world.workflow().view(pid)
    assert view.tx_hash is not None
    assert ProposalOut.model_validate(read.json()) == ProposalOut.of(view)
    head = AuditHeadOut.model_validate(
        client.get("/audit/head", headers=world.bearer("auditor")).json()
    )
    assert head.sequence > 0
    paths = client.get("/openapi.json").json()["paths"]
    for path, method, model in [
        ("/proposals/{proposal_id}", "get", "ProposalOut"),
        ("/proposals", "post", "ProposalOut"),
        ("/proposals/{proposal_id}/approve", "post", "ProposalOut"),
        ("/audit/head", "get", "AuditHeadOut"),
    ]:
        responses = paths[path][method]["responses"]
        answer = responses["201" if method == "post" and path == "/proposals" else "200"]
        assert answer["content"]["application/json"]["schema"]["$ref"].endswith(model)
    balances = paths["/ledger/balances"]["get"]["responses"]["200"]["content"]
    assert balances["application/json"]["schema"]["items"]["$ref"].endswith("BalanceOut")
