"""Translations of the text officers enter, so the Kyrgyz and Russian site shows no English data.

Officers enter institution names, decree titles, fund names, spend purposes and payee labels once,
in the original language (``ORIGINAL_LANGUAGE``, English: the language the records are entered
in). Parliament reads the site in Kyrgyz and Russian, and a message catalogue cannot hold text
that did not exist when the site was built, so each such text is translated here, with the data:
one row per (kind, key, language), where the key names the record the text belongs to (an
institution's code, a decree's reference, an account's code, a proposal's id, a payee's address).

Rows are only ever appended: a changed translation is a new row, and the newest row of a
(kind, key, language) is the one in force, so every wording the public ever saw stays on record.
Each added or changed text appends an audit event in the caller's transaction; entering the same
text again writes nothing. A refusal (unknown kind, language or record, a control character, an
oversized text, an officer without the role) raises before anything is written.

``legal_basis_url`` is the one kind that is not a wording: a decree's official text is published
separately in each state language, so the address of the text in Kyrgyz and in Russian is kept
per language beside the title's translation, and the site links each page to its own language.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ForeignKey, Index, Integer, String, Text, event, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from treasury import audit
from treasury.audit import AuditKind
from treasury.db import Base, UtcDateTime
from treasury.exceptions import ImmutableRecordError
from treasury.ledger import Account
from treasury.officers import InstitutionRow, Officer, Role
from treasury.policy.tables import AllowlistEntryRow, LegalBasisRow
from treasury.proposals import SpendProposalRow
from treasury.text import unstorable_characters, unstorable_message
from treasury.workflow_exceptions import NotAuthorisedError, UnknownRecordError, WorkflowInputError

__all__ = [
    "LANGUAGES",
    "ORIGINAL_LANGUAGE",
    "TEXT_MAX_CHARS",
    "Translation",
    "TranslationKind",
    "TranslationOutcome",
    "TranslationRow",
    "current_translations",
    "set_translation",
    "set_translations",
    "translations_by_key",
]

ORIGINAL_LANGUAGE = "en"
"""The language the records themselves are entered in; their own text is the original."""

LANGUAGES = ("ky", "ru")
"""The languages a text may be translated into: Kyrgyz and Russian, the site's other languages."""

TEXT_MAX_CHARS = 1000
"""The longest translated text (a decree title is at most 400 characters, a purpose a paragraph)."""

KEY_MAX_CHARS = 128
"""The longest key: an allowlisted address (128) or an account code (100)."""

KIND_MAX_CHARS = 32
LANGUAGE_MAX_CHARS = 8

TRANSLATION_SET_EVENT = "translation_set"
"""The audit payload's ``event`` of an added or changed translation."""


class TranslationKind(enum.StrEnum):
    """What a translation translates; the key of each kind names one record."""

    INSTITUTION = "institution"
    """An institution's name; key: the institution's code (``CB``)."""
    LEGAL_BASIS = "legal_basis"
    """A decree's title; key: its reference (``DECREE-2026-17``)."""
    LEGAL_BASIS_URL = "legal_basis_url"
    """The https address of a decree's official text in that language; key: its reference."""
    ACCOUNT = "account"
    """A ledger account's (a fund's) name; key: the account code (``reserve:unallocated-inflows:BTC``)."""
    PURPOSE = "purpose"
    """A spend proposal's purpose; key: the proposal id (``7``)."""
    PAYEE = "payee"
    """An allowlisted destination's label; key: the address exactly as allowlisted."""


class TranslationOutcome(enum.StrEnum):
    """What ``set_translation`` did."""

    ADDED = "added"
    """The first text for this kind, key and language: written and audited."""
    CHANGED = "changed"
    """A different text than the one in force: written as a new row and audited."""
    UNCHANGED = "unchanged"
    """The same text as the one in force: nothing written."""


class TranslationRow(Base):
    """One wording of one record's text in one language; only ever inserted."""

    __tablename__ = "translations"
    __table_args__ = (Index("ix_translations_kind_key_language", "kind", "key", "language"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(KIND_MAX_CHARS))
    key: Mapped[str] = mapped_column(String(KEY_MAX_CHARS))
    language: Mapped[str] = mapped_column(String(LANGUAGE_MAX_CHARS))
    text: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(UtcDateTime)
    set_by: Mapped[int] = mapped_column(ForeignKey("officers.id"))


def _refuse_orm_change(_mapper: Any, _connection: Any, target: Any) -> None:
    raise ImmutableRecordError(
        "Translation records are immutable; set the new wording with set_translation instead."
    )


event.listen(TranslationRow, "before_update", _refuse_orm_change)
event.listen(TranslationRow, "before_delete", _refuse_orm_change)


@dataclass(frozen=True)
class Translation:
    """The wording in force of one record's text in one language."""

    kind: TranslationKind
    key: str
    language: str
    text: str
    set_at: datetime
    set_by: int


def _kind(kind: TranslationKind | str) -> TranslationKind:
    try:
        return TranslationKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in TranslationKind)
        raise WorkflowInputError(
            f"The translation kind {kind!r} is not known; use one of: {known}."
        ) from None


def _language(language: str) -> str:
    if language not in LANGUAGES:
        raise WorkflowInputError(
            f"The language {language!r} cannot be translated into; use one of: "
            f"{', '.join(LANGUAGES)} (the entered text itself is the original, "
            f"{ORIGINAL_LANGUAGE!r})."
        )
    return language


def _text(kind: TranslationKind, text: str) -> str:
    found = unstorable_characters(text)
    if found:
        raise WorkflowInputError(
            f"The translated text must be one line of {unstorable_message(found)}."
        )
    value = text.strip()
    if not value or len(value) > TEXT_MAX_CHARS:
        raise WorkflowInputError(
            f"The translated text must be 1 to {TEXT_MAX_CHARS} characters long "
            f"(it has {len(value)})."
        )
    if kind is TranslationKind.LEGAL_BASIS_URL:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc or any(c.isspace() for c in value):
            raise WorkflowInputError(
                f"A legal_basis_url must be an https:// address without spaces, not {value!r}."
            )
    return value


def _record_exists(session: Session, kind: TranslationKind, key: str) -> bool:
    if kind is TranslationKind.INSTITUTION:
        query = select(InstitutionRow.id).where(InstitutionRow.code == key)
    elif kind in (TranslationKind.LEGAL_BASIS, TranslationKind.LEGAL_BASIS_URL):
        query = select(LegalBasisRow.id).where(LegalBasisRow.reference == key)
    elif kind is TranslationKind.ACCOUNT:
        query = select(Account.id).where(Account.code == key)
    elif kind is TranslationKind.PAYEE:
        query = select(AllowlistEntryRow.id).where(AllowlistEntryRow.address == key)
    else:
        if not key.isascii() or not key.isdigit():
            return False
        query = select(SpendProposalRow.id).where(SpendProposalRow.id == int(key))
    return session.scalar(query.limit(1)) is not None


_RECORD_NAMES = {
    TranslationKind.INSTITUTION: "institution code",
    TranslationKind.LEGAL_BASIS: "legal basis reference",
    TranslationKind.LEGAL_BASIS_URL: "legal basis reference",
    TranslationKind.ACCOUNT: "ledger account code",
    TranslationKind.PURPOSE: "spend proposal id",
    TranslationKind.PAYEE: "allowlisted address",
}


def _key(session: Session, kind: TranslationKind, key: str) -> str:
    if not key or len(key) > KEY_MAX_CHARS or key != key.strip() or unstorable_characters(key):
        raise WorkflowInputError(
            f"The translation key must be 1 to {KEY_MAX_CHARS} characters without surrounding "
            "spaces or control characters."
        )
    if not _record_exists(session, kind, key):
        raise UnknownRecordError(
            f"No record has the {_RECORD_NAMES[kind]} {key!r}, so there is nothing to translate; "
            "enter the record first, then its translations."
        )
    return key


def _in_force(session: Session, kind: TranslationKind, key: str, language: str) -> str | None:
    return session.scalar(
        select(TranslationRow.text)
        .where(
            TranslationRow.kind == kind.value,
            TranslationRow.key == key,
            TranslationRow.language == language,
        )
        .order_by(TranslationRow.id.desc())
        .limit(1)
    )


def set_translations(
    session: Session,
    actor: Officer,
    kind: TranslationKind | str,
    key: str,
    texts: Mapping[str, str],
    *,
    now: datetime,
) -> dict[str, TranslationOutcome]:
    """Set the wording of ``key``'s text per language (admin or proposer); outcome per language.

    Every language and text is checked before any is written, so a refusal writes nothing. Each
    added or changed wording appends one audit event in the caller's transaction.
    """
    actor.require(Role.ADMIN, Role.PROPOSER)
    if not actor.is_active(now):
        raise NotAuthorisedError(f"Officer {actor.id} is revoked and cannot enter translations.")
    checked_kind = _kind(kind)
    checked_key = _key(session, checked_kind, key)
    checked = {_language(language): _text(checked_kind, text) for language, text in texts.items()}
    if not checked:
        raise WorkflowInputError("No translation was given: name at least one language.")
    outcomes: dict[str, TranslationOutcome] = {}
    for language, text in checked.items():
        previous = _in_force(session, checked_kind, checked_key, language)
        if previous == text:
            outcomes[language] = TranslationOutcome.UNCHANGED
            continue
        row = TranslationRow(
            kind=checked_kind.value,
            key=checked_key,
            language=language,
            text=text,
            set_at=now,
            set_by=actor.id,
        )
        session.add(row)
        session.flush()
        # Translations are public wording of the records the policy governs (decrees, payees,
        # funds); until the audit log has a kind of its own for them they are policy changes.
        audit.append(
            session,
            kind=AuditKind.TRANSLATION,
            actor=f"officer:{actor.id}",
            refs={"officer_id": actor.id, "translation_id": row.id},
            payload={
                "event": TRANSLATION_SET_EVENT,
                "kind": checked_kind.value,
                "key": checked_key,
                "language": language,
                "text": text,
                "previous": previous,
            },
            clock=lambda: now,
        )
        outcomes[language] = (
            TranslationOutcome.ADDED if previous is None else TranslationOutcome.CHANGED
        )
    return outcomes


def set_translation(
    session: Session,
    actor: Officer,
    kind: TranslationKind | str,
    key: str,
    language: str,
    text: str,
    *,
    now: datetime,
) -> TranslationOutcome:
    """Set one wording (see ``set_translations``): added, changed, or unchanged (nothing written)."""
    return set_translations(session, actor, kind, key, {language: text}, now=now)[language]


def current_translations(
    session: Session, kind: TranslationKind | None = None
) -> list[Translation]:
    """The wording in force of every (kind, key, language), optionally of one kind, sorted."""
    newest = select(func.max(TranslationRow.id)).group_by(
        TranslationRow.kind, TranslationRow.key, TranslationRow.language
    )
    if kind is not None:
        newest = newest.where(TranslationRow.kind == kind.value)
    rows = session.scalars(select(TranslationRow).where(TranslationRow.id.in_(newest))).all()
    found = [
        Translation(
            TranslationKind(row.kind), row.key, row.language, row.text, row.set_at, row.set_by
        )
        for row in rows
    ]
    return sorted(found, key=lambda t: (t.kind.value, t.key, t.language))


def translations_by_key(session: Session, kind: TranslationKind) -> dict[str, dict[str, str]]:
    """Key to ``{language: text}`` of the wordings in force of one kind (only languages entered)."""
    found: dict[str, dict[str, str]] = {}
    for translation in current_translations(session, kind):
        found.setdefault(translation.key, {})[translation.language] = translation.text
    return found
