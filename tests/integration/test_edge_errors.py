"""Typed errors at the edges: every package's root error is a clear JSON answer from the API and
one `error:` line from the CLI, never a 500 or a traceback; API lines carry the proposal's id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from workflow_support import World, build_world, proposal_body

import treasury.cli.settings as settings_command
from custody.exceptions import (
    AbsurdFeeError,
    BitcoinRPCError,
    CustodyError,
    InsufficientSharesError,
)
from reporting.exceptions import NegativeAmountError, ReportingError
from treasury.api import create_app
from treasury.cli import app
from treasury.exceptions import TreasuryError
from treasury.logs import LogFormat, configure_logging
from treasury.proposals import PreparedTx, SpendRequest
from treasury.settings import SettingsReading
from treasury.workflow_exceptions import UnknownRecordError

BTC = 100_000_000
FAILURES: list[tuple[Exception, int]] = [
    (BitcoinRPCError("createpsbt", -28, "Loading wallet..."), 502),
    (AbsurdFeeError("The fee of 90000 sats exceeds the approved maximum of 50000 sats."), 409),
    (InsufficientSharesError("2 shares were given; the quorum needs 3."), 422),
    (NegativeAmountError("The amount of account 'A-1' is below zero."), 409),
]
"""Errors of custody and reporting a spender may raise, and the status that answers each."""


@dataclass
class FailingSpender:
    """A chain spender whose node or custody refuses: ``build`` logs a fact, then raises."""

    error: Exception

    def build(self, request: SpendRequest) -> PreparedTx:
        logging.getLogger("custody.bitcoin.spend").warning(
            "building the spend failed", extra={"asset": request.asset}
        )
        raise self.error


@pytest.fixture
def world(sqlite_url: str) -> Iterator[World]:
    built = build_world(sqlite_url)
    yield built
    built.engine.dispose()


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The test's logging set-up is undone after it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _propose(client: TestClient, world: World) -> int:
    created = client.post("/proposals", json=proposal_body(), headers=world.bearer("proposer"))
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


@pytest.mark.parametrize(
    ("error", "code"), FAILURES, ids=[type(error).__name__ for error, _ in FAILURES]
)
def test_a_custody_or_reporting_error_from_a_spender_is_a_clear_json_answer(
    world: World, error: Exception, code: int
) -> None:
    """The API answers a spender's CustodyError or ReportingError with its status and its one
    sentence as ``detail``, not an unhandled 500."""
    assert isinstance(error, CustodyError | ReportingError)
    spender = FailingSpender(error)
    api = create_app(world.workflow(), world.sessions, spenders={"BTC": spender}, clock=world.clock)
    client = TestClient(api, raise_server_exceptions=False)
    pid = _propose(client, world)
    headers = {"Authorization": f"Bearer {world.tokens['proposer']}"}
    answer = client.post(f"/proposals/{pid}/prepare", headers=headers)
    assert answer.status_code == code, answer.text
    assert answer.json() == {"detail": str(error)}


def test_api_log_lines_carry_the_proposal_id_and_every_fact(
    world: World, capsys: pytest.CaptureFixture[str], restored_logging: None
) -> None:
    """Configured as `treasury api serve` does, the API writes JSON lines; a line logged while
    preparing a proposal carries that proposal's id and the logger's ``extra=`` facts."""
    configure_logging(LogFormat.JSON, logging.WARNING)
    spender = FailingSpender(FAILURES[0][0])
    api = create_app(world.workflow(), world.sessions, spenders={"BTC": spender}, clock=world.clock)
    client = TestClient(api, raise_server_exceptions=False)
    pid = _propose(client, world)
    capsys.readouterr()
    headers = {"Authorization": f"Bearer {world.tokens['proposer']}"}
    assert client.post(f"/proposals/{pid}/prepare", headers=headers).status_code == 502
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    building = next(r for r in records if r["event"] == "building the spend failed")
    assert building["proposal_id"] == pid
    assert building["asset"] == "BTC"
    failed = next(r for r in records if r["event"].startswith("request failed"))
    assert (failed["proposal_id"], failed["status"]) == (pid, 502)


ROOT_ERRORS: list[Exception] = [
    CustodyError("The vault 'reserve' is not on this node."),
    TreasuryError("The ledger refused the entry."),
    UnknownRecordError("Proposal 9 does not exist."),
    ReportingError("The bundle's holdings root does not match its leaves."),
]


@pytest.mark.parametrize("error", ROOT_ERRORS, ids=[type(error).__name__ for error in ROOT_ERRORS])
def test_the_cli_prints_one_error_line_for_each_package_root(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error of any package root that a command does not handle itself ends the command
    with exit 1 and one `error:` line, no traceback."""

    def failing_read(_environ: Mapping[str, str]) -> SettingsReading:
        raise error

    monkeypatch.setattr(settings_command, "read_settings", failing_read)
    result = CliRunner().invoke(app, ["settings"])
    assert result.exit_code == 1
    assert result.stderr == f"error: {error}\n"
    assert "Traceback" not in result.output
