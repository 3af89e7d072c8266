"""The console views' pure parts: the key-file signature the console receives is paired only with
the officer's active roster key and refused in plain words otherwise; spans read naturally in each
language; every message the views' templates ask for exists, with the same fields, in ky/ru/en."""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from custody.authority import (
    ApprovalStatement,
    OfficerKeyKind,
    OfficerPublicKey,
    OfficerState,
    RosterState,
    StatementKind,
    verify_signature,
)
from custody.authority import roster_bodies as rb
from custody.authority.key_file import create_key_file, load_public_key, sign_digest
from treasury.api.console_i18n import CONSOLE_LOCALES_DIR, load_console_catalogues
from treasury.api.console_keyfile import KeyFileInputError, active_key_files, keyfile_signed
from treasury.api.console_views import duration
from treasury.api.errors import status_of
from treasury.audit import AuditKind
from treasury.officers import Officer, Role
from treasury.workflow_exceptions import NotAuthorisedError

TEMPLATES = Path(__file__).resolve().parents[2] / "treasury" / "api" / "console_templates"
VIEW_TEMPLATES = (
    "balances.html", "alarms.html", "audit.html", "policy.html", "allowlist.html",
    "keyfile_sign.html", "views_macros.html",
)  # fmt: skip
PASSPHRASE = "correct horse"
CATALOGUES = load_console_catalogues()

OFFICER = Officer(
    id=4, name="Aida", institution_id=2, institution_code="CB",
    roles=frozenset({Role.APPROVER}), revoked_at=None,
)  # fmt: skip


def _statement() -> ApprovalStatement:
    return ApprovalStatement(
        kind=StatementKind.APPROVE, proposal_id="7", chain="bitcoin:regtest", vault="BTC reserve",
        vault_id="wsh(sortedmulti(2,...))#abcd1234", asset="BTC", amount=40_000_000,
        destination="bcrt1qdestination0000000000000000000000000", tx_hash="ab" * 32,
        safe_nonce=None, max_fee=5_000, policy_hash="cd" * 32, legal_basis="DECREE-2026-17",
        expires_at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC), officer_id="4", institution="CB",
    )  # fmt: skip


def _roster(keys: list[OfficerPublicKey], *, active: bool = True) -> RosterState:
    officer = OfficerState(
        officer_id="4", name="Aida", institution="CB",
        roles=frozenset({rb.OfficerRole.APPROVER}), keys={k.key_id: k for k in keys},
        active=active,
    )  # fmt: skip
    return RosterState(
        name="test", institutions={}, rules=rb.RosterRules(), officers={"4": officer},
        policy_hash=None, policy_document=None, allowlist=(), decrees={}, head_hash=bytes(32),
    )  # fmt: skip


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "officer.json"
    create_key_file(path, PASSPHRASE, scrypt_n=2**10)
    return path


def _posted(key_file: Path) -> tuple[str, str, str]:
    """The three fields the browser posts for this key file's signature of the statement."""
    statement = _statement()
    signature = sign_digest(key_file, PASSPHRASE, statement.digest())
    return (
        statement.encode().decode("utf-8"),
        json.dumps({"kind": "secp256k1", "signature": signature.hex()}),
        load_public_key(key_file).public.hex(),
    )


def test_signature_is_paired_with_the_officers_roster_key(key_file: Path) -> None:
    """The posted signature is paired with the roster key of the posted public key, and it
    verifies against that key."""
    key = load_public_key(key_file)
    signed = keyfile_signed(_roster([key]), OFFICER, *_posted(key_file))
    assert signed.key_id == key.key_id
    assert signed.statement == _statement()
    verify_signature(key, signed.statement.digest(), signed.signature)


def test_a_key_not_in_the_roster_is_not_authorised(key_file: Path, tmp_path: Path) -> None:
    """A key file whose public key is not the officer's active roster key is refused, and so is
    any key of an officer no longer in office."""
    other_path = tmp_path / "other.json"
    create_key_file(other_path, PASSPHRASE, scrypt_n=2**10)
    other = load_public_key(other_path)
    with pytest.raises(NotAuthorisedError, match="not an active key of yours"):
        keyfile_signed(_roster([other]), OFFICER, *_posted(key_file))
    key = load_public_key(key_file)
    with pytest.raises(NotAuthorisedError):
        keyfile_signed(_roster([key], active=False), OFFICER, *_posted(key_file))
    assert active_key_files(_roster([key], active=False), OFFICER) == []
    assert active_key_files(None, OFFICER) == []


@pytest.mark.parametrize(
    ("signature", "public", "message"),
    [
        ("not json", None, "must be JSON"),
        ('{"kind": "secp256k1"}', None, "malformed"),
        (
            json.dumps({"kind": "webauthn-es256", "credential_id": "00", "authenticator_data": "00",
                        "client_data_json": "00", "signature": "00"}),
            None, "must be a secp256k1",
        ),
        (None, "02" + "00" * 31, "66 characters"),
        (None, "zz" * 33, "not hexadecimal"),
    ],
)  # fmt: skip
def test_malformed_fields_are_input_errors(
    key_file: Path, signature: str | None, public: str | None, message: str
) -> None:
    """Malformed posted fields are refused as input errors (HTTP 422), naming the field."""
    text, good_signature, good_public = _posted(key_file)
    key = load_public_key(key_file)
    with pytest.raises(KeyFileInputError, match=message) as refused:
        keyfile_signed(
            _roster([key]), OFFICER, text, signature or good_signature, public or good_public
        )
    assert status_of(refused.value) == 422


def test_only_secp256k1_keys_count_as_key_files(key_file: Path) -> None:
    """``active_key_files`` lists the officer's secp256k1 keys only."""
    key = load_public_key(key_file)
    assert key.kind is OfficerKeyKind.SECP256K1
    assert active_key_files(_roster([key]), OFFICER) == [key]


@pytest.mark.parametrize(
    ("lang", "span", "expected"),
    [
        ("en", timedelta(days=2, hours=1, minutes=5), "2 d 1 h"),
        ("en", timedelta(days=1), "1 d"),
        ("en", timedelta(hours=6), "6 h"),
        ("ru", timedelta(hours=2, minutes=5), "2 ч 5 мин"),
        ("ky", timedelta(minutes=7), "7 мүн."),
        ("ky", timedelta(days=3, hours=4), "3 күн 4 саат"),
        ("en", timedelta(seconds=-30), "0 min"),
    ],
)
def test_spans_read_naturally(lang: str, span: timedelta, expected: str) -> None:
    """Durations drop zero parts and are written in the page's language."""
    assert duration(CATALOGUES[lang], span) == expected


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_view_message_exists_in_every_language_with_the_same_fields() -> None:
    """The views' catalogues have the same keys and placeholders in ky, ru and en, and every
    literal key the views' templates ask for exists."""
    parts = {
        lang: json.loads((CONSOLE_LOCALES_DIR / f"views.{lang}.json").read_text(encoding="utf-8"))
        for lang in ("ky", "ru", "en")
    }
    for lang in ("ky", "ru"):
        assert set(parts[lang]) == set(parts["en"])
        for key, text in parts["en"].items():
            assert _fields(parts[lang][key]) == _fields(text), f"{lang} {key}"
            assert parts[lang][key] != text or key.startswith("views.span"), f"{lang} {key}"
    used = set()
    for name in VIEW_TEMPLATES:
        used |= set(
            re.findall(r"t\([\"'](views\.[a-z_.]+)[\"']\s*[,)]", (TEMPLATES / name).read_text())
        )
    assert used
    assert sorted(used - set(parts["en"])) == []


def test_every_audit_kind_has_a_name_in_every_language() -> None:
    """The audit page names each kind of event in the reader's language, not by its code."""
    for lang, catalogue in CATALOGUES.items():
        missing = [
            k.value for k in AuditKind if f"views.audit.kind.{k.value}" not in catalogue.messages
        ]
        assert missing == [], lang
