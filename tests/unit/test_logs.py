"""Structured logging: every ``extra=`` fact printed, business ids on every line, JSON at the
server edges."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping

import pytest
from typer.testing import CliRunner

import treasury.cli.settings as settings_command
from treasury.cli import app
from treasury.logs import LogFormat, bound_ids, configure_logging
from treasury.settings import SettingsReading

TXID = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """Each test's logging set-up is undone after it, so no other test prints through it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_cli_prints_a_fact_given_only_in_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A txid a module logs only in ``extra=`` appears on the CLI's log line, as key=value."""
    real = settings_command.read_settings

    def logging_read(environ: Mapping[str, str]) -> SettingsReading:
        logging.getLogger("custody.bitcoin.spend").warning(
            "broadcast spend", extra={"txid": TXID, "spend_id": 7}
        )
        return real(environ)

    monkeypatch.setattr(settings_command, "read_settings", logging_read)
    result = CliRunner().invoke(app, ["settings"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stderr.splitlines() if "broadcast spend" in line)
    assert f"txid={TXID}" in line
    assert "spend_id=7" in line
    assert "custody.bitcoin.spend" in line
    assert "TREASURY_DATABASE_URL" in result.stdout  # the command's own output is untouched
    assert "broadcast spend" not in result.stdout


def test_info_lines_appear_only_with_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without -v the CLI shows warnings only; with -v its INFO lines too, facts included."""
    real = settings_command.read_settings

    def logging_read(environ: Mapping[str, str]) -> SettingsReading:
        logging.getLogger("treasury.reconcile.reconciler").info("run started", extra={"run_id": 41})
        return real(environ)

    monkeypatch.setattr(settings_command, "read_settings", logging_read)
    logging.getLogger().setLevel(logging.WARNING)  # as in a fresh process (the fixture restores)
    quiet = CliRunner().invoke(app, ["settings"])
    assert "run started" not in quiet.stderr
    loud = CliRunner().invoke(app, ["-v", "settings"])
    assert "run_id=41" in loud.stderr


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_bound_ids_are_on_every_line_inside_the_block(
    log_format: LogFormat, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ids bound where an operation starts reach every line logged inside it, whichever module
    logs; an explicit ``extra=`` fact wins over a bound id of the same name; outside, none."""
    configure_logging(log_format, logging.INFO)
    with bound_ids(proposal_id=12, txid=None):
        logging.getLogger("treasury.proposals").info("approved")
        logging.getLogger("custody.ethereum.chain").info(
            "transaction mined", extra={"tx_hash": "0xabc", "proposal_id": 13}
        )
    logging.getLogger("treasury.proposals").info("after")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    if log_format is LogFormat.JSON:
        records = [json.loads(line) for line in lines]
        assert [r["event"] for r in records] == ["approved", "transaction mined", "after"]
        assert [r.get("proposal_id") for r in records] == [12, 13, None]
        assert records[1]["tx_hash"] == "0xabc"
        assert records[1]["logger"] == "custody.ethereum.chain"
        assert {"timestamp", "level"} <= set(records[0])
        assert "txid" not in records[0]
    else:
        assert "proposal_id=12" in lines[0]
        assert "proposal_id=13" in lines[1]
        assert "tx_hash=0xabc" in lines[1]
        assert "proposal_id" not in lines[2]


def test_json_lines_carry_the_exception_text(capsys: pytest.CaptureFixture[str]) -> None:
    """A logged exception stays inside its one JSON line (collectors read one object a line)."""
    configure_logging(LogFormat.JSON, logging.WARNING)
    try:
        raise RuntimeError("the node closed the connection")
    except RuntimeError:
        logging.getLogger("treasury.reconcile").exception("reconciling failed", extra={"run_id": 3})
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["run_id"] == 3
    assert "RuntimeError: the node closed the connection" in record["exception"]
