"""A liability leaf: one account's amounts, hidden behind a salt derived from a secret nonce.

Everything SPEC-merkle.md's *Liability leaves* section defines lives here: the canonical account
id bytes, the per-snapshot nonce and the salt it keys, and the leaf's body, hash and JSON form.
The fast builder ``reporting.sumtree`` and the reference tree both hash leaves this way.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reporting.exceptions import (
    AmountOverflowError,
    LeafError,
    NegativeAmountError,
    NonceError,
    ProofFormatError,
)
from reporting.merkle.encoding import (
    HASH_BYTES,
    MAX_AMOUNT_BASE_UNITS,
    SALT_TAG,
    SUM_WIDTH_BYTES,
    TAGS,
    TreeKind,
    domain_prefix,
)
from reporting.merkle.json_fields import json_field, parse_hex, parse_int

NONCE_BYTES = 32
"""Length of a fresh per-snapshot salt nonce, and the shortest nonce accepted, in bytes."""

MAX_ACCOUNT_ID_BYTES = 1024
"""Longest account id accepted, in UTF-8 bytes (its length is encoded on two bytes)."""


_LEAF_PREFIX = domain_prefix(TAGS[TreeKind.LIABILITIES].leaf)
"""``v || leaf tag``, the start of every liability leaf's hash preimage."""


def account_id_bytes(account_id: str) -> bytes:
    """Return the canonical encoding of an account id: its NFC UTF-8 bytes, checked."""
    if not isinstance(account_id, str) or not account_id:
        raise LeafError(f"The account id {account_id!r} is not a non-empty string.")
    if not unicodedata.is_normalized("NFC", account_id):
        raise LeafError(
            f"The account id {account_id!r} is not in Unicode NFC form; normalise it first so every party encodes it alike."
        )
    raw = account_id.encode("utf-8")
    if len(raw) > MAX_ACCOUNT_ID_BYTES:
        raise LeafError(
            f"The account id starting {account_id[:32]!r} is {len(raw)} bytes; at most {MAX_ACCOUNT_ID_BYTES} fit."
        )
    return raw


def new_snapshot_nonce(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> bytes:
    """Draw a fresh secret salt nonce for one snapshot (inject ``random_bytes`` in tests)."""
    return random_bytes(NONCE_BYTES)


def check_nonce(nonce: bytes) -> None:
    """Refuse a nonce too short to stop anyone from confirming a guessed allocation."""
    if not isinstance(nonce, bytes) or len(nonce) < NONCE_BYTES:
        raise NonceError(f"The snapshot nonce must be at least {NONCE_BYTES} random bytes.")


def derive_salt(nonce: bytes, account_id: str) -> bytes:
    """Return an account's salt: ``HMAC-SHA256(nonce, v || salt tag || account id)``."""
    check_nonce(nonce)
    message = domain_prefix(SALT_TAG) + account_id_bytes(account_id)
    return hmac.digest(nonce, message, "sha256")


def _check_amounts(amounts: Sequence[int], where: str) -> tuple[int, ...]:
    """Return amounts as a tuple of ints, refusing non-integers, negatives and overflow."""
    checked = tuple(amounts)
    for position, amount in enumerate(checked):
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise LeafError(
                f"Amount {position} of {where} is {amount!r}, not an integer of base units."
            )
        if amount < 0:
            raise NegativeAmountError(
                f"Amount {position} of {where} is {amount}; liabilities are zero or more base units."
            )
        if amount > MAX_AMOUNT_BASE_UNITS:
            raise AmountOverflowError(
                f"Amount {position} of {where} is {amount}, above the 128-bit limit of the v1 encoding."
            )
    return checked


@dataclass(frozen=True)
class LiabilityLeaf:
    """One account's liabilities in base units, one amount per asset of the tree's list."""

    account_id: str
    amounts: tuple[int, ...]
    salt: bytes = field(repr=False)

    def __post_init__(self) -> None:
        """Validate the id, the amounts and the salt's length."""
        account_id_bytes(self.account_id)
        _check_amounts(self.amounts, f"account {self.account_id!r}")
        if not isinstance(self.salt, bytes) or len(self.salt) != HASH_BYTES:
            raise LeafError(f"The salt of account {self.account_id!r} must be {HASH_BYTES} bytes.")

    def to_bytes(self) -> bytes:
        """Encode as ``salt || u16 id length || id || amounts`` (the leaf hash's body)."""
        raw = account_id_bytes(self.account_id)
        return (
            self.salt
            + len(raw).to_bytes(2, "big")
            + raw
            + b"".join(amount.to_bytes(SUM_WIDTH_BYTES, "big") for amount in self.amounts)
        )

    @classmethod
    def from_bytes(cls, data: bytes, asset_count: int) -> LiabilityLeaf:
        """Decode :meth:`to_bytes` output for a tree of ``asset_count`` assets."""
        if len(data) < HASH_BYTES + 2:
            raise ProofFormatError("The leaf bytes are too short to hold a salt and an id length.")
        id_length = int.from_bytes(data[HASH_BYTES : HASH_BYTES + 2], "big")
        start = HASH_BYTES + 2 + id_length
        if len(data) != start + SUM_WIDTH_BYTES * asset_count:
            raise ProofFormatError(
                f"The leaf bytes are {len(data)} long; an id of {id_length} bytes and {asset_count} amounts need {start + SUM_WIDTH_BYTES * asset_count}."
            )
        try:
            account_id = data[HASH_BYTES + 2 : start].decode("utf-8")
        except UnicodeDecodeError as error:
            raise ProofFormatError("The leaf's account id is not valid UTF-8.") from error
        amounts = tuple(
            int.from_bytes(data[offset : offset + SUM_WIDTH_BYTES], "big")
            for offset in range(start, len(data), SUM_WIDTH_BYTES)
        )
        return cls(account_id=account_id, amounts=amounts, salt=data[:HASH_BYTES])

    def leaf_hash(self) -> bytes:
        """Return ``SHA256(v || leaf tag || to_bytes())``."""
        return hashlib.sha256(_LEAF_PREFIX + self.to_bytes()).digest()

    def record(self) -> bytes:
        """Return the leaf's node record: its hash, then its amounts as 16-byte fields.

        The amounts end ``to_bytes()`` in the record's own encoding, so one encoding serves both
        (a proof's verification starts here, once per proof).
        """
        body = self.to_bytes()
        return (
            hashlib.sha256(_LEAF_PREFIX + body).digest()
            + body[len(body) - SUM_WIDTH_BYTES * len(self.amounts) :]
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able form; amounts are decimal strings, exact in any JSON reader."""
        return {
            "account_id": self.account_id,
            "amounts": [str(amount) for amount in self.amounts],
            "salt": self.salt.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LiabilityLeaf:
        """Parse :meth:`to_dict` output, refusing missing fields and non-decimal amounts."""
        account_id = json_field(data, "account_id", str, "leaf")
        amounts = tuple(
            parse_int(text, f"amount of account {account_id!r}")
            for text in json_field(data, "amounts", list, "leaf")
        )
        return cls(
            account_id=account_id,
            amounts=amounts,
            salt=parse_hex(json_field(data, "salt", str, "leaf"), "leaf salt"),
        )
