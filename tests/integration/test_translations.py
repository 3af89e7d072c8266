"""Translations of officer-entered text on both databases: set, idempotent, audited, refused whole."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner
from workflow_support import DECREE, DESTINATION, World

from treasury import audit
from treasury.audit import AuditEvent
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV
from treasury.exceptions import ImmutableRecordError
from treasury.settings import API_TOKEN_ENV
from treasury.translations import (
    TEXT_MAX_CHARS,
    TranslationKind,
    TranslationOutcome,
    TranslationRow,
    current_translations,
    set_translation,
    set_translations,
    translations_by_key,
)
from treasury.workflow_exceptions import NotAuthorisedError, UnknownRecordError, WorkflowInputError

BANK_KY = "Кыргыз Республикасынын Улуттук банкы"
BANK_RU = "Национальный банк Кыргызской Республики"
DECREE_KY = "Резервди кайра бөлүштүрүү жарлыгы"


def _written(world: World) -> tuple[int, int]:
    """Translation rows and audit events so far."""
    with world.sessions() as session:
        rows = session.scalar(select(func.count()).select_from(TranslationRow)) or 0
        return rows, audit.head(session).sequence


def _set(world: World, *args: Any, officer: str = "admin") -> TranslationOutcome:
    with world.sessions.begin() as session:
        return set_translation(session, world.officers[officer], *args, now=world.clock())


def test_a_translation_is_added_once_and_a_change_is_a_new_audited_row(world: World) -> None:
    """The first wording is added with one audit event, the same wording again writes nothing,
    and a new wording is written beside the old one, audited with what it replaced."""
    before = _written(world)
    assert _set(world, "institution", "CB", "ky", BANK_KY) is TranslationOutcome.ADDED
    assert _written(world) == (before[0] + 1, before[1] + 1)
    assert _set(world, "institution", "CB", "ky", f"  {BANK_KY} ") is TranslationOutcome.UNCHANGED
    assert _written(world) == (before[0] + 1, before[1] + 1)
    world.clock.advance(minutes=5)
    assert _set(world, "institution", "CB", "ky", "Борбордук банк") is TranslationOutcome.CHANGED
    assert _written(world) == (before[0] + 2, before[1] + 2)
    with world.sessions() as session:
        assert translations_by_key(session, TranslationKind.INSTITUTION) == {
            "CB": {"ky": "Борбордук банк"}
        }
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.sequence.desc())).first()
        assert event is not None
        payload = json.loads(event.payload)
        assert payload == {
            "event": "translation_set",
            "kind": "institution",
            "key": "CB",
            "language": "ky",
            "text": "Борбордук банк",
            "previous": BANK_KY,
        }
        assert json.loads(event.refs)["officer_id"] == world.officers["admin"].id
        assert audit.verify(session).ok
        history = session.scalars(select(TranslationRow.text).order_by(TranslationRow.id)).all()
        assert history == [BANK_KY, "Борбордук банк"]


def test_every_kind_keys_an_existing_record(world: World) -> None:
    """Each kind is keyed by its record (code, reference, account, proposal id, address); the
    wordings in force are listed per kind and language."""
    wf = world.workflow()
    view = wf.propose(
        world.officers["proposer"], asset="BTC", amount=1_000_000, destination=DESTINATION,
        purpose="School roofs in Naryn", legal_basis=DECREE,
    )  # fmt: skip
    with world.sessions.begin() as session:
        outcomes = set_translations(
            session, world.officers["proposer"], TranslationKind.PURPOSE, str(view.id),
            {"ky": "Нарындагы мектептердин чатырлары", "ru": "Крыши школ в Нарыне"},
            now=world.clock(),
        )  # fmt: skip
        assert outcomes == {"ky": TranslationOutcome.ADDED, "ru": TranslationOutcome.ADDED}
        admin = world.officers["admin"]
        for kind, key, language, text in (
            ("legal_basis", DECREE, "ru", "Указ по ребалансировке резерва"),
            ("legal_basis_url", DECREE, "ru", "https://cbd.minjust.gov.kg/act/view/ru-ru/1"),
            ("account", "equity:btc", "ky", "Бөлүштүрүлө элек резерв"),
            ("payee", DESTINATION, "ru", "Поставщик"),
        ):
            assert set_translation(session, admin, kind, key, language, text, now=world.clock())
    with world.sessions() as session:
        listed = [(t.kind.value, t.key, t.language) for t in current_translations(session)]
    assert listed == [
        ("account", "equity:btc", "ky"),
        ("legal_basis", DECREE, "ru"),
        ("legal_basis_url", DECREE, "ru"),
        ("payee", DESTINATION, "ru"),
        ("purpose", str(view.id), "ky"),
        ("purpose", str(view.id), "ru"),
    ]


REFUSALS: list[tuple[tuple[str, ...], type[Exception], str]] = [
    (("decree", DECREE, "ky", "x"), WorkflowInputError, "kind 'decree' is not known"),
    (("institution", "CB", "en", "x"), WorkflowInputError, "'en' cannot be translated into"),
    (("institution", "CB", "kk", "x"), WorkflowInputError, "use one of: ky, ru"),
    (("institution", "CB", "ky", "Банк\nline"), WorkflowInputError, "U+000A"),
    (("institution", "CB", "ky", "Банк\x00"), WorkflowInputError, "U+0000"),
    (("institution", "CB", "ky", "ж" * (TEXT_MAX_CHARS + 1)), WorkflowInputError, "1001"),
    (("institution", "CB", "ky", "   "), WorkflowInputError, "1 to 1000 characters"),
    (("institution", "XX", "ky", "x"), UnknownRecordError, "institution code 'XX'"),
    (("purpose", "99", "ky", "x"), UnknownRecordError, "spend proposal id '99'"),
    (("purpose", "one", "ky", "x"), UnknownRecordError, "spend proposal id 'one'"),
    (("payee", "bcrt1qnowhere", "ky", "x"), UnknownRecordError, "allowlisted address"),
    (("account", "nope:btc", "ky", "x"), UnknownRecordError, "ledger account code"),
    (("legal_basis_url", DECREE, "ru", "http://a.kg/x"), WorkflowInputError, "https://"),
    (("legal_basis_url", DECREE, "ru", "javascript:alert(1)"), WorkflowInputError, "https://"),
]
"""(kind, key, language, text), the error and a part of its message."""


def test_a_refused_translation_writes_nothing(world: World) -> None:
    """Unknown kinds, languages and records, control characters, oversized or empty text and
    a non-https decree address are refused with a message naming what is wrong; nothing is written."""
    before = _written(world)
    for args, error, message in REFUSALS:
        with pytest.raises(error, match=re.escape(message)):
            _set(world, *args)
    assert _written(world) == before


def test_only_admins_and_proposers_enter_translations_and_a_bad_language_refuses_all(
    world: World,
) -> None:
    """An approver may not enter translations; a batch with one bad language writes none of it."""
    before = _written(world)
    with pytest.raises(NotAuthorisedError, match="needs the role admin or proposer"):
        _set(world, "institution", "CB", "ky", BANK_KY, officer="cb_approver")
    with pytest.raises(WorkflowInputError, match="'de'"), world.sessions.begin() as session:
        set_translations(
            session, world.officers["admin"], "institution", "CB",
            {"ky": BANK_KY, "de": "Zentralbank"}, now=world.clock(),
        )  # fmt: skip
    assert _written(world) == before


def test_a_stored_translation_cannot_be_edited_through_the_orm(world: World) -> None:
    """Rows are only appended: an ORM update is refused (a new wording is a new row)."""
    _set(world, "institution", "CB", "ru", BANK_RU)
    with world.sessions.begin() as session:
        row = session.scalars(select(TranslationRow)).one()
        row.text = "Другой банк"
        with pytest.raises(ImmutableRecordError):
            session.flush()


def test_cli_sets_and_lists_translations(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """`treasury translations set` enters a wording with an officer's token, says whether it
    changed anything, refuses clearly on one line; `list` prints what is in force; --help teaches
    the kinds and their keys."""
    monkeypatch.setenv(DATABASE_URL_ENV, world.url)
    monkeypatch.setenv(API_TOKEN_ENV, world.tokens["admin"])
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["translations", *args])
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = run("--help")
    assert code == 0
    for teaching in ("institution", "legal_basis_url", "proposal id", "ky and ru", "original (en)"):
        assert teaching in out
    code, out, _ = run("set", "--help")
    assert code == 0
    assert "treasury translations set institution CB ky" in out
    assert run("set", "institution", "CB", "ru", BANK_RU) == (
        0,
        "institution CB [ru]: added\n",
        "",
    )
    assert run("set", "institution", "CB", "ru", BANK_RU)[1] == "institution CB [ru]: unchanged\n"
    assert run("set", "legal_basis", DECREE, "ky", DECREE_KY)[0] == 0
    code, _, err = run("set", "institution", "CB", "fr", "Banque")
    assert code == 1
    assert err.startswith("error: The language 'fr' cannot be translated into")
    assert err.count("\n") == 1
    monkeypatch.delenv(API_TOKEN_ENV)
    code, _, err = run("set", "institution", "CB", "ky", BANK_KY)
    assert code == 1
    assert "an API token is required" in err
    code, out, _ = run("list")
    assert code == 0
    assert out.splitlines() == [
        f"institution\tCB\tru\t{BANK_RU}",
        f"legal_basis\t{DECREE}\tky\t" + DECREE_KY,
    ]
    assert run("list", "--kind", "legal_basis")[1].startswith("legal_basis\t")
    assert run("list", "--kind", "payee")[1] == "no translations entered of kind payee\n"
    code, _, err = run("list", "--kind", "decree")
    assert code == 2
    assert "'decree' is not a kind" in err
