"""The treasury's export, the site's only view of the treasury's books: what it holds, and how the
site refuses a malformed one (reporting/SPEC-export.md)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from workflow_support import DECREE, World

from reporting.site import EXPORT_FORMAT, SourceError, SpendState, load_export
from treasury.db import make_engine, session_factory
from treasury.publication import ExportError, write_export

EXPORTED_AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _numbers(value: Any) -> list[Any]:
    """Every JSON number in ``value``, with the key it sits under."""
    if isinstance(value, dict):
        found = [(key, v) for key, v in value.items() if isinstance(v, int | float)]
        return found + [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def test_export_holds_the_executed_spend_with_its_approvers_and_amounts_as_strings(
    site_world: World, tmp_path: Path
) -> None:
    """The export names its format, lists the confirmed spend with the institutions that approved
    the executed transaction, and writes no amount as a JSON number; the site reads it back."""
    path = write_export(site_world.sessions, tmp_path / "export.json", exported_at=EXPORTED_AT)
    document = json.loads(path.read_text("utf-8"))
    assert document["format"] == EXPORT_FORMAT == "national-reserve-export/1"
    assert document["exported_at"] == EXPORTED_AT.isoformat()
    [spend] = document["spends"]
    assert spend["state"] == "confirmed"
    assert spend["amount"] == "25000000"
    assert sorted(spend["approved_by"]) == ["CB", "PARL"]
    assert spend["legal_basis"] == DECREE
    assert {key for key, _ in _numbers(document)} <= {"proposal_id", "decimals"}
    records = load_export(path)
    [executed] = records.spends
    assert executed.state is SpendState.CONFIRMED
    assert executed.amount == 25_000_000
    assert executed.approving_institutions == ("Central Bank", "Parliament")
    assert executed.legal_basis_title == "Reserve rebalancing decree"
    assert records.decimals["BTC"] == 8
    assert [fund.account for fund in records.funds] == ["equity:btc"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(format="national-reserve-export/2"), "has the format"),
        (lambda d: d["spends"][0].update(amount=25_000_000), "spends[0].amount"),
        (lambda d: d["funds"][0].update(posted="1.5"), "funds[0].posted"),
        (lambda d: d["spends"][0].update(approved_by=["XX"]), "spends[0].approved_by"),
        (lambda d: d["spends"][0].update(legal_basis="DECREE-0"), "spends[0].legal_basis"),
        (lambda d: d["spends"][0].update(state="approved"), "spends[0].state"),
        (lambda d: d["spends"][0].update(executed_at="2026-05-01 12:00"), "spends[0].executed_at"),
        (lambda d: d["assets"][0].update(decimals=8.0), "assets[0].decimals"),
        (lambda d: d.pop("institutions"), "institutions must be a JSON array"),
    ],
)
def test_a_malformed_export_is_refused_naming_the_field(
    site_world: World, tmp_path: Path, change: Any, field: str
) -> None:
    """Any field out of the spec stops the publish with a ``SourceError`` naming the file and field."""
    path = write_export(site_world.sessions, tmp_path / "export.json", exported_at=EXPORTED_AT)
    document = json.loads(path.read_text("utf-8"))
    change(document)
    path.write_text(json.dumps(document), "utf-8")
    with pytest.raises(SourceError, match=re.escape(str(path))) as refused:
        load_export(path)
    assert field in str(refused.value)


def test_an_unreadable_export_or_database_is_a_typed_error(tmp_path: Path) -> None:
    """A missing or non-JSON export is a ``SourceError``; an unmigrated database an ``ExportError``
    that says how to fix it."""
    with pytest.raises(SourceError, match="cannot be read"):
        load_export(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("{", "utf-8")
    with pytest.raises(SourceError, match="is not JSON"):
        load_export(tmp_path / "broken.json")
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    try:
        with pytest.raises(ExportError, match="treasury db upgrade"):
            write_export(session_factory(engine), tmp_path / "export.json", exported_at=EXPORTED_AT)
    finally:
        engine.dispose()
    assert not (tmp_path / "export.json").exists()
