"""`POST /proposals` names a tracked token by its symbol, as `treasury spend propose` does: the API
resolves it to the token's asset code before the policy judges it (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_utils.address import to_checksum_address
from fastapi.testclient import TestClient
from workflow_support import DECREE, DESTINATION, World, build_world

from custody.ethereum.vault import VaultOwner
from custody.ethereum.vault_store import VaultStore
from treasury.api import create_app
from treasury.reconcile import track_token
from treasury.settings import Settings

CHAIN_ID = 31337
TOKEN = to_checksum_address("0x" + "ab" * 20)
CODE = f"ERC20:{TOKEN}"
SAFE = to_checksum_address("0x" + "cd" * 20)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    """The workflow world, with one Safe recorded and KGST tracked on its chain."""
    built = build_world(db_url)
    owners = [
        VaultOwner(f"inst {i}", to_checksum_address(f"0x{i:040x}"), f"{i:08x}") for i in (1, 2, 3)
    ]
    VaultStore(built.sessions).add_vault("safe-reserve", CHAIN_ID, SAFE, 2, owners)
    with built.sessions.begin() as session:
        track_token(session, CHAIN_ID, TOKEN, "KGST", 18)
    yield built
    built.engine.dispose()


def _propose(world: World, asset: str) -> dict[str, object]:
    app = create_app(world.workflow(), world.sessions, clock=world.clock, settings=Settings())
    response = TestClient(app).post(
        "/proposals",
        headers={"Authorization": f"Bearer {world.tokens['proposer']}"},
        json={"asset": asset, "amount": "1000", "destination": DESTINATION,
              "purpose": "Pay the contractor", "legal_basis": DECREE},
    )  # fmt: skip
    body: dict[str, object] = response.json()
    body["status"] = response.status_code
    return body


def test_a_symbol_is_judged_as_its_tokens_code(world: World) -> None:
    """`KGST` and `erc20:<lowercase contract>` reach the policy as the one checksummed code (which
    this policy sets no limits for), while an unknown name is judged as given."""
    for asset, judged in (("KGST", CODE), (CODE.lower(), CODE), ("NOPE", "NOPE")):
        answer = _propose(world, asset)
        assert answer["status"] == 409, answer
        reasons = answer["reasons"]
        assert isinstance(reasons, list)
        assert reasons[0] == {
            "code": "asset_not_in_policy",
            "message": f"The policy sets no limits for {judged}, so it cannot be spent.",
        }
