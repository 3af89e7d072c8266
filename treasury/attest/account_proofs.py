"""Account holders' proof packages at any time: keep each liability tree's secret, rebuild, issue.

An attestation publishes only the liability tree's root (and the public accounts in full); every
other account holder checks their own inclusion with a *package* (``reporting.merkle``): the
root, their own leaf with its salt, and its inclusion proof. The salts come from a secret
snapshot nonce, and the proof needs the whole tree, so the attesting process alone could once
issue packages. Now ``keep_liability_tree`` stores, in the same transaction as the attestation,
what rebuilds the tree (``records.LiabilitySecretRecord``: the nonce, the asset list, the leaf
level and the salts' lookup keys), and ``issue_package`` rebuilds it in any later process and
refuses to hand out anything unless the rebuilt root is the one the bundle published.

The holder's credential is a short code per account and attestation, derived from the kept
nonce (so nothing more is stored, and a new attestation gives new codes)::

    code = Crockford-base32( HMAC-SHA256(nonce, "national-reserve/holder-code/v1" 0x00 || id) )
           first 50 bits, written XXXXX-XXXXX

The treasury hands each holder their code with the attestation notice (``treasury proofs
code``); the holder gives account id and code to the API (``POST /holders/proof``) or the site.
The message cannot collide with a salt's (a salt's HMAC message starts 0x01 0x16), so the code
says nothing of the salt, and the salt in a package says nothing of the code. Fifty bits are
beyond online guessing; a wrong code and an account outside the tree are refused alike.

A package exposes what the Merkle sum proof needs and nothing more: the root, the holder's own
leaf and salt, and one sibling record (hash and subtree sums) per level. No other account's salt
or id is in it. The nonce, the leaf level and the codes never reach a log, an error or a
``repr``.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.clock import Clock, utc_now
from reporting.bundle import Bundle
from reporting.exceptions import MerkleError, UnknownLeafError
from reporting.merkle.liability_leaf import account_id_bytes
from reporting.merkle.root import TreeRoot
from reporting.sumtree import LiabilityTree
from treasury.attest.errors import AttestError
from treasury.attest.records import AttestationRecord, LiabilitySecretRecord

log = logging.getLogger(__name__)

SECRET_FORMAT_VERSION = 1
"""Layout of ``LiabilitySecretRecord.leaf_records``/``salt_keys``: ``reporting.sumtree`` v1."""
HOLDER_CODE_TAG = b"national-reserve/holder-code/v1\x00"
"""Domain of the code's HMAC message; its first byte is not the salt message's 0x01."""
HOLDER_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32: no I, L, O or U, so a code read aloud or retyped is not misread."""
HOLDER_CODE_CHARS = 10
"""Characters of a code (5 bits each: 50 bits), written in two groups of five."""
HOLDER_CODE_GROUP_CHARS = 5
HOLDER_CODE_MAX_INPUT_CHARS = 32
"""Longest text accepted as a code (spaces and hyphens included) before it is even read."""
_READ_AS = {"O": "0", "I": "1", "L": "1"}
"""Letters people type for the digits Crockford's alphabet leaves out."""


class AccountProofError(AttestError):
    """An account's proof package cannot be issued."""


class AttestationNotFoundError(AccountProofError, LookupError):
    """No attestation of that sequence number is recorded."""


class TreeNotKeptError(AccountProofError, LookupError):
    """The attestation exists but its liability tree's secret was not kept (made before 0015)."""


class KeptTreeMismatchError(AccountProofError):
    """The kept tree does not rebuild to the root the bundle published: nothing is issued."""


class AccountNotInTreeError(AccountProofError, LookupError):
    """The account has no leaf in this attestation's liability tree."""


class HolderCodeError(AccountProofError, PermissionError):
    """The account id and code do not match (or the account is not in the tree)."""


@dataclass(frozen=True)
class KeptTree:
    """One attestation's liability tree, rebuilt from the database and checked against its bundle."""

    sequence: int
    bundle_digest: str
    tree: LiabilityTree
    nonce: bytes

    def __repr__(self) -> str:
        """Name the attestation and the tree's root; never the nonce."""
        return f"KeptTree(sequence={self.sequence}, bundle_digest={self.bundle_digest}, tree={self.tree!r})"

    def package(self, account_id: str) -> dict[str, Any]:
        """The package of ``account_id``, labelled with this attestation."""
        try:
            return self.tree.package(account_id, attestation=(self.sequence, self.bundle_digest))
        except UnknownLeafError:
            raise AccountNotInTreeError(
                f"Attestation {self.sequence}'s liability tree has no leaf for account "
                f"{account_id!r}."
            ) from None

    def holder_code(self, account_id: str) -> str:
        """The code the treasury gives ``account_id``'s holder for this attestation."""
        return holder_code(self.nonce, account_id)


def holder_code(nonce: bytes, account_id: str) -> str:
    """``account_id``'s code for the tree of ``nonce`` (see the module docstring)."""
    digest = hmac.digest(nonce, HOLDER_CODE_TAG + account_id_bytes(account_id), "sha256")
    value = int.from_bytes(digest[:8], "big") >> (64 - 5 * HOLDER_CODE_CHARS)
    chars = "".join(
        HOLDER_CODE_ALPHABET[(value >> (5 * (HOLDER_CODE_CHARS - 1 - i))) & 31]
        for i in range(HOLDER_CODE_CHARS)
    )
    return f"{chars[:HOLDER_CODE_GROUP_CHARS]}-{chars[HOLDER_CODE_GROUP_CHARS:]}"


def normalise_code(text: str) -> str | None:
    """A typed code in canonical form (``XXXXX-XXXXX``), or None if it cannot be one.

    Case, spaces and hyphens are ignored and O, I, L read as 0, 1, 1, as Crockford intends.
    """
    if len(text) > HOLDER_CODE_MAX_INPUT_CHARS or not text.isascii():
        return None
    chars = "".join(_READ_AS.get(c, c) for c in text.upper() if c not in " -")
    if len(chars) != HOLDER_CODE_CHARS or any(c not in HOLDER_CODE_ALPHABET for c in chars):
        return None
    return f"{chars[:HOLDER_CODE_GROUP_CHARS]}-{chars[HOLDER_CODE_GROUP_CHARS:]}"


def _bundle_root(record: AttestationRecord) -> TreeRoot:
    """The liability root the recorded bundle states (parsed, so its digest is recomputed)."""
    bundle = Bundle.from_bytes(record.bundle_json)
    return TreeRoot.from_dict(bundle.body["liabilities"]["root"])


def keep_liability_tree(
    session: Session, record: AttestationRecord, tree: LiabilityTree, *, clock: Clock = utc_now
) -> LiabilitySecretRecord:
    """Store what rebuilds ``tree``, the liability tree of the recorded attestation ``record``.

    Call it in the transaction that records the attestation, so a bundle is never recorded
    without the means of issuing its packages. Refuses a tree whose root, or whose rebuilt
    root, is not the one the bundle states.
    """
    stated = _bundle_root(record)
    leaf_records, salt_keys, nonce = tree.leaf_records(), tree.salt_keys(), tree.snapshot_nonce()
    rebuilt = LiabilityTree.from_leaf_records(tree.root.assets, leaf_records, salt_keys, nonce)
    if tree.root.digest() != stated.digest() or rebuilt.root.digest() != stated.digest():
        raise KeptTreeMismatchError(
            f"The liability tree given for attestation {record.sequence} has root "
            f"{tree.root.digest().hex()}, but its bundle states {stated.digest().hex()}."
        )
    secret = LiabilitySecretRecord(
        attestation_id=record.id,
        format_version=SECRET_FORMAT_VERSION,
        assets_json=json.dumps(list(tree.root.assets)),
        leaf_count=tree.root.leaf_count,
        root_digest=stated.digest().hex(),
        nonce=nonce,
        leaf_records=leaf_records,
        salt_keys=salt_keys,
        created_at=clock(),
    )
    session.add(secret)
    session.flush()
    log.info(
        "liability tree kept: sequence=%d leaves=%d root=%s",
        record.sequence,
        tree.root.leaf_count,
        stated.digest().hex(),
    )
    return secret


def _recorded(session: Session, sequence: int) -> AttestationRecord:
    """The recorded attestation ``sequence``, or ``AttestationNotFoundError``."""
    record = session.scalar(select(AttestationRecord).where(AttestationRecord.sequence == sequence))
    if record is None:
        raise AttestationNotFoundError(f"No attestation number {sequence} is recorded.")
    return record


def _not_kept(sequence: int) -> TreeNotKeptError:
    return TreeNotKeptError(
        f"Attestation {sequence}'s liability tree was not kept (it predates kept trees), "
        "so its proof packages cannot be issued again."
    )


def kept_nonce(session: Session, sequence: int) -> bytes:
    """Attestation ``sequence``'s kept nonce alone (one small read): enough to check a holder's
    code before the whole tree is read and rebuilt, so a wrong code costs no rebuild."""
    record = _recorded(session, sequence)
    nonce = session.scalar(
        select(LiabilitySecretRecord.nonce).where(LiabilitySecretRecord.attestation_id == record.id)
    )
    if nonce is None:
        raise _not_kept(sequence)
    return bytes(nonce)


def check_holder_code(nonce: bytes, sequence: int, account_id: str, code: str) -> None:
    """Raise ``HolderCodeError`` unless ``code`` is ``account_id``'s code for the tree of
    ``nonce``. A malformed or wrong code and a text that is not a valid account id get the same
    error; the code is compared in constant time."""
    typed = normalise_code(code)
    try:
        expected: str | None = holder_code(nonce, account_id)
    except MerkleError:
        expected = None
    if typed is None or expected is None or not hmac.compare_digest(typed, expected):
        raise HolderCodeError(
            f"The account id and code do not open a proof package of attestation {sequence}."
        )


def kept_tree(session: Session, sequence: int) -> KeptTree:
    """Rebuild attestation ``sequence``'s liability tree from the database, checked.

    Raises ``AttestationNotFoundError``, ``TreeNotKeptError``, or ``KeptTreeMismatchError`` if
    the rebuilt root is not the one the recorded bundle states (nothing is issued then).
    """
    record = _recorded(session, sequence)
    secret = session.scalar(
        select(LiabilitySecretRecord).where(LiabilitySecretRecord.attestation_id == record.id)
    )
    if secret is None:
        raise _not_kept(sequence)
    if secret.format_version != SECRET_FORMAT_VERSION:
        raise KeptTreeMismatchError(
            f"Attestation {sequence}'s kept tree has format {secret.format_version}; this "
            f"treasury reads format {SECRET_FORMAT_VERSION}."
        )
    stated = _bundle_root(record)
    try:
        tree = LiabilityTree.from_leaf_records(
            tuple(json.loads(secret.assets_json)),
            bytes(secret.leaf_records),
            bytes(secret.salt_keys),
            bytes(secret.nonce),
        )
    except MerkleError:
        raise KeptTreeMismatchError(
            f"Attestation {sequence}'s kept liability tree is damaged; nothing is issued."
        ) from None
    if tree.root.digest() != stated.digest() or secret.root_digest != stated.digest().hex():
        log.warning(
            "kept liability tree does not rebuild to the published root: sequence=%d", sequence
        )
        raise KeptTreeMismatchError(
            f"Attestation {sequence}'s kept liability tree rebuilds to root "
            f"{tree.root.digest().hex()}, not the published {stated.digest().hex()}; "
            "nothing is issued."
        )
    return KeptTree(sequence, record.digest, tree, bytes(secret.nonce))


def issue_package(session: Session, sequence: int, account_id: str) -> dict[str, Any]:
    """The proof package of ``account_id`` in attestation ``sequence`` (the treasury's own act)."""
    return kept_tree(session, sequence).package(account_id)


def holder_package(session: Session, sequence: int, account_id: str, code: str) -> dict[str, Any]:
    """The package, for a holder who proves it is theirs with their code (``open_package``)."""
    return open_package(kept_tree(session, sequence), account_id, code)


def open_package(tree: KeptTree, account_id: str, code: str) -> dict[str, Any]:
    """``account_id``'s package from ``tree`` if ``code`` is its holder code.

    A malformed or wrong code, and a text that is not a valid account id, are refused with the
    same ``HolderCodeError``; the code is compared in constant time.
    """
    check_holder_code(tree.nonce, tree.sequence, account_id, code)
    return tree.package(account_id)


__all__ = [
    "HOLDER_CODE_CHARS",
    "AccountNotInTreeError",
    "AccountProofError",
    "AttestationNotFoundError",
    "HolderCodeError",
    "KeptTree",
    "KeptTreeMismatchError",
    "TreeNotKeptError",
    "check_holder_code",
    "holder_code",
    "holder_package",
    "issue_package",
    "keep_liability_tree",
    "kept_nonce",
    "kept_tree",
    "normalise_code",
    "open_package",
]
