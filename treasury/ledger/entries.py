"""Journal entries as values: legs, requests, stored records, their validation and payload hash.

Every ledger operation (posting, two-phase pending, reversal) builds the same validated, hashed
``Draft`` from these pieces before anything touches the database, so a refused request writes
nothing and a replayed idempotency key is recognised by one canonical payload hash.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from treasury.canonical import canonical_json
from treasury.exceptions import InvalidEntryError
from treasury.ledger.accounts import validate_code
from treasury.ledger.amounts import validate_amount
from treasury.ledger.models import DESCRIPTION_MAX_CHARS, KEY_MAX_CHARS, EntryKind, Side
from treasury.text import LINE_BREAKS, unstorable_characters, unstorable_message

MAX_LEGS_PER_ENTRY = 1000
"""Bounds an entry's size, and keeps SQLite's exact in-trigger balance sums far from overflow."""

PAYLOAD_HASH_TAG = b"treasury.ledger.entry.v1\x00"
"""Domain separator and version of the canonical payload hash."""


@dataclass(frozen=True)
class Leg:
    """One side of an entry: a positive amount (base units) debited or credited to an account."""

    account: str
    side: Side
    amount: int

    @classmethod
    def debit(cls, account: str, amount: int) -> Leg:
        """A debit leg."""
        return cls(account, Side.DEBIT, amount)

    @classmethod
    def credit(cls, account: str, amount: int) -> Leg:
        """A credit leg."""
        return cls(account, Side.CREDIT, amount)


@dataclass(frozen=True)
class EntryRequest:
    """What a client asks to record; ``pending`` reserves it for a later post or void."""

    key: str
    legs: tuple[Leg, ...]
    description: str = ""
    pending: bool = False


@dataclass(frozen=True)
class EntryRecord:
    """A stored entry with its legs in position order."""

    id: int
    key: str
    kind: EntryKind
    legs: tuple[Leg, ...]
    description: str
    recorded_at: datetime
    payload_hash: str
    pending_id: int | None
    reverses_id: int | None


@dataclass(frozen=True)
class Draft:
    """A validated, hashed entry not yet written."""

    key: str
    kind: EntryKind
    legs: tuple[Leg, ...]
    description: str
    pending_id: int | None
    reverses_id: int | None
    payload_hash: str


def validate_key(key: object) -> str:
    """Return an idempotency key that is printable, non-blank and short enough to store."""
    if (
        not isinstance(key, str)
        or not key.strip()
        or len(key) > KEY_MAX_CHARS
        or not key.isprintable()
    ):
        raise InvalidEntryError(
            f"The idempotency key {key!r} must be printable, non-blank text of at most "
            f"{KEY_MAX_CHARS} characters."
        )
    return key


_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
"""What ``treasury.text`` refuses in stored text (C0 controls but tab and line breaks, DEL, lone
surrogates), as one pattern: the batch path checks every description and must stay fast."""


def storable_description(description: object) -> bool:
    """Whether ``description`` is text every database can store: short enough, and without a
    NUL (PostgreSQL refuses it outright), another control character or a lone surrogate."""
    return (
        type(description) is str
        and len(description) <= DESCRIPTION_MAX_CHARS
        and _UNSTORABLE.search(description) is None
    )


def validate_description(description: object, field: str = "description") -> str:
    """Return a description (or reason) that is text short enough to store, without characters
    a database refuses or a screen garbles (``treasury.text``)."""
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX_CHARS:
        raise InvalidEntryError(
            f"The {field} must be text of at most {DESCRIPTION_MAX_CHARS} characters."
        )
    found = unstorable_characters(description, LINE_BREAKS)
    if found:
        raise InvalidEntryError(f"The {field} must be {unstorable_message(found)}.")
    return description


def validate_entry_id(value: object, field: str) -> int:
    """Return ``value`` if it can name an entry: a positive int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidEntryError(f"The {field} must be a positive int entry id, not {value!r}.")
    return value


def validate_legs(legs: object) -> tuple[Leg, ...]:
    """Return the legs as a tuple once their count, accounts, sides and amounts are valid."""
    if not isinstance(legs, tuple | list):
        raise InvalidEntryError("The legs must be a tuple of Leg values.")
    if not 2 <= len(legs) <= MAX_LEGS_PER_ENTRY:
        raise InvalidEntryError(
            f"An entry needs between 2 and {MAX_LEGS_PER_ENTRY} legs, not {len(legs)}."
        )
    for number, leg in enumerate(legs, start=1):
        if not isinstance(leg, Leg):
            raise InvalidEntryError(f"Leg {number} is a {type(leg).__name__}, not a Leg.")
        validate_code(leg.account, f"account of leg {number}")
        if not isinstance(leg.side, Side):
            raise InvalidEntryError(f"The side of leg {number} must be a Side, not {leg.side!r}.")
        validate_amount(leg.amount, f"amount of leg {number} ({leg.account})")
    return tuple(legs)


def payload_hash(
    kind: EntryKind,
    legs: Iterable[Leg],
    description: str,
    pending_id: int | None = None,
    reverses_id: int | None = None,
) -> str:
    """SHA-256 (hex) of the canonical request: what a repeated key must match to be a replay.

    Legs are sorted, so listing the same legs in another order is the same request; the time is
    left out, so a replay later is still a replay.
    """
    document = {
        "kind": kind.value,
        "legs": sorted([leg.account, leg.side.value, str(leg.amount)] for leg in legs),
        "description": description,
        "pending_id": pending_id,
        "reverses_id": reverses_id,
    }
    return hashlib.sha256(PAYLOAD_HASH_TAG + canonical_json(document).encode()).hexdigest()


def make_draft(
    key: str,
    kind: EntryKind,
    legs: tuple[Leg, ...],
    description: str,
    pending_id: int | None = None,
    reverses_id: int | None = None,
    hashed_legs: tuple[Leg, ...] | None = None,
) -> Draft:
    """Hash a validated request into a draft (``hashed_legs`` overrides the legs hashed)."""
    digest = payload_hash(
        kind, legs if hashed_legs is None else hashed_legs, description, pending_id, reverses_id
    )
    return Draft(key, kind, legs, description, pending_id, reverses_id, digest)
