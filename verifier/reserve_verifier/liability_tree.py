"""Liability leaves, proofs, private packages and public listings, checked from ``SPEC-merkle.md``.

A leaf is ``salt (32) || u16 len(id) || id (NFC UTF-8) || u128 amount per asset``, hashed as
``H(0x01 || 0x11 || leaf)``; its record is that hash and its amounts. Leaves are ordered by
ascending salt, where ``salt = HMAC-SHA256(snapshot nonce, 0x01 || 0x16 || id)``.

The verifier's own code, independent of the treasury's builder; the two are cross-tested.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reserve_verifier.exceptions import TreeError, TreeMismatchError
from reserve_verifier.tree import (
    HASH_BYTES,
    MAX_SUM,
    SUM_BYTES,
    Proof,
    Root,
    Tree,
    check_assets,
    check_version,
    decimal,
    fold,
    hash_hex,
    json_field,
    known_fields,
    parse_proof,
    parse_root,
    root_from,
    top,
)

MAX_ACCOUNT_ID_BYTES = 1024
"""Longest account id, in UTF-8 bytes."""

PACKAGE_FIELDS = frozenset({"version", "attestation", "root", "leaf", "proof"})
"""The fields of an account's private package (SPEC-merkle, R-PKG-1); others are refused."""

ROOT_FIELDS = frozenset({"version", "tree", "assets", "leaf_count", "node_hash", "sums", "digest"})
"""The fields of a root's JSON form."""

LEAF_FIELDS = frozenset({"account_id", "amounts", "salt"})
"""The fields of a liability leaf's JSON form."""

PROOF_FIELDS = frozenset({"version", "tree", "leaf_index", "siblings"})
"""The fields of an inclusion proof's JSON form."""

SIBLING_FIELDS = frozenset({"hash", "sums"})
"""The fields of one sibling record in a proof."""

LABEL_FIELDS = frozenset({"sequence", "digest"})
"""The fields of a package's optional ``attestation`` label (which attestation it is for)."""


def account_id_bytes(account_id: str) -> bytes:
    """An account id's NFC UTF-8 bytes, 1 to 1024 of them."""
    if not isinstance(account_id, str) or not account_id:
        raise TreeError(f"The account id {account_id!r} is not a non-empty string.")
    if unicodedata.normalize("NFC", account_id) != account_id:
        raise TreeError(
            f"The account id {account_id!r} is not in Unicode NFC form; normalise it first so every party encodes it alike."
        )
    raw = account_id.encode("utf-8")
    if len(raw) > MAX_ACCOUNT_ID_BYTES:
        raise TreeError(
            f"The account id starting {account_id[:32]!r} is {len(raw)} bytes; at most {MAX_ACCOUNT_ID_BYTES} fit."
        )
    return raw


def derive_salt(nonce: bytes, account_id: str) -> bytes:
    """An account's salt from the snapshot nonce (only the treasury and the vectors know it)."""
    message = Tree.LIABILITIES.prefix("salt") + account_id_bytes(account_id)
    return hmac.new(nonce, message, hashlib.sha256).digest()


@dataclass(frozen=True)
class LiabilityLeaf:
    """One account's amounts (one per asset of the tree) and its salt."""

    account_id: str
    amounts: tuple[int, ...]
    salt: bytes = field(repr=False)

    def __post_init__(self) -> None:
        """Refuse an id, amount or salt the leaf encoding cannot hold."""
        account_id_bytes(self.account_id)
        where = f"account {self.account_id!r}"
        for position, value in enumerate(self.amounts):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TreeError(
                    f"Amount {position} of {where} is {value!r}, not an integer of base units."
                )
            if value < 0:
                raise TreeError(
                    f"Amount {position} of {where} is {value}; liabilities are zero or more base units."
                )
            if value > MAX_SUM:
                raise TreeError(
                    f"Amount {position} of {where} is {value}, above the 128-bit limit of the v1 encoding."
                )
        if not isinstance(self.salt, bytes) or len(self.salt) != HASH_BYTES:
            raise TreeError(f"The salt of account {self.account_id!r} must be {HASH_BYTES} bytes.")

    def encoding(self) -> bytes:
        """``salt || u16 len(id) || id || u128 amounts``."""
        raw = account_id_bytes(self.account_id)
        return (
            self.salt
            + len(raw).to_bytes(2, "big")
            + raw
            + b"".join(value.to_bytes(SUM_BYTES, "big") for value in self.amounts)
        )

    def record(self) -> tuple[bytes, tuple[int, ...]]:
        """The leaf's hash and amounts: what a proof folds up from."""
        digest = hashlib.sha256(Tree.LIABILITIES.prefix("leaf") + self.encoding()).digest()
        return digest, self.amounts


def parse_leaf(data: Any) -> LiabilityLeaf:
    """Read a leaf's JSON form ``{account_id, amounts (decimal strings), salt (hex)}``."""
    account_id = json_field(data, "account_id", str, "leaf")
    amounts = tuple(
        decimal(text, f"amount of account {account_id!r}")
        for text in json_field(data, "amounts", list, "leaf")
    )
    salt = hash_hex(json_field(data, "salt", str, "leaf"), "leaf salt")
    return LiabilityLeaf(account_id, amounts, salt)


def verify_liability_proof(
    root: Root, leaf: LiabilityLeaf, proof: Proof, *, root_digest: bytes | None = None
) -> None:
    """Raise unless ``leaf`` is in the liability tree of ``root``."""
    if root.tree is not Tree.LIABILITIES:
        raise TreeMismatchError("A liability leaf can only be checked against a liabilities root.")
    if len(leaf.amounts) != len(root.assets):
        raise TreeError(
            f"Account {leaf.account_id!r} has {len(leaf.amounts)} amounts but the root's assets {list(root.assets)} need {len(root.assets)}."
        )
    fold(root, leaf.record(), proof, root_digest=root_digest)


def verify_liability_package(
    package: Mapping[str, Any], *, root_digest: bytes | None = None
) -> LiabilityLeaf:
    """Check an account's private package ``{version, root, leaf, proof}``; return its leaf."""
    check_version(package, "package")
    known_fields(package, PACKAGE_FIELDS, "package")
    known_fields(package.get("root"), ROOT_FIELDS, "package's root")
    known_fields(package.get("leaf"), LEAF_FIELDS, "package's leaf")
    known_fields(package.get("proof"), PROOF_FIELDS, "package's proof")
    siblings = (
        package.get("proof", {}).get("siblings")
        if isinstance(package.get("proof"), Mapping)
        else None
    )
    for sibling in siblings if isinstance(siblings, list) else []:
        known_fields(sibling, SIBLING_FIELDS, "proof sibling")
    if "attestation" in package:
        label = json_field(package, "attestation", dict, "package")
        known_fields(label, LABEL_FIELDS, "package's attestation label")
        if json_field(label, "sequence", int, "package's attestation label") < 1:
            raise TreeError("The package's attestation label names sequence 0; they start at 1.")
        hash_hex(
            json_field(label, "digest", str, "package's attestation label"), "attestation digest"
        )
    root = parse_root(json_field(package, "root", dict, "package"))
    leaf = parse_leaf(json_field(package, "leaf", dict, "package"))
    proof = parse_proof(json_field(package, "proof", dict, "package"))
    verify_liability_proof(root, leaf, proof, root_digest=root_digest)
    return leaf


def liability_root(assets: Sequence[str], leaves: Iterable[LiabilityLeaf]) -> Root:
    """Rebuild a liability root from every leaf (salts included), as an auditor does."""
    codes = check_assets(assets)
    ordered = sorted(leaves, key=lambda leaf: leaf.salt)
    for earlier, later in itertools.pairwise(ordered):
        if earlier.salt == later.salt:
            raise TreeError(
                f"Two leaves share one salt (account {later.account_id!r}); each account appears once."
            )
    for leaf in ordered:
        if len(leaf.amounts) != len(codes):
            raise TreeError(
                f"Account {leaf.account_id!r} has {len(leaf.amounts)} amounts for {len(codes)} assets."
            )
    records = [leaf.record() for leaf in ordered]
    return root_from(Tree.LIABILITIES, codes, len(records), top(Tree.LIABILITIES, codes, records))


def verify_public_listing(
    root: Root, entries: Any, *, complete: bool = False
) -> tuple[LiabilityLeaf, ...]:
    """Check published leaves ``[{leaf, proof}]`` against ``root``; return the leaves.

    Each entry's proof must lead to the root. With ``complete`` the entries are every leaf of the
    tree, proofs may be left out, and the root is rebuilt from the leaves alone.
    """
    if not isinstance(entries, list):
        raise TreeError("The listing's 'leaves' field must be a JSON list.")
    leaves = []
    for entry in entries:
        leaf = parse_leaf(json_field(entry, "leaf", dict, "listing entry"))
        if "proof" in entry:
            proof = parse_proof(json_field(entry, "proof", dict, "listing entry"))
            verify_liability_proof(root, leaf, proof)
        elif not complete:
            raise TreeError(
                f"The entry of account {leaf.account_id!r} has no proof; only a complete listing may omit proofs."
            )
        leaves.append(leaf)
    if len({leaf.account_id for leaf in leaves}) != len(leaves):
        raise TreeError("The listing names one account twice; each account appears once.")
    if complete:
        _check_rebuild(root, leaves)
    return tuple(leaves)


def _check_rebuild(root: Root, leaves: Sequence[LiabilityLeaf]) -> None:
    """A complete listing rebuilds the root byte for byte, totals included."""
    if len(leaves) != root.leaf_count:
        raise TreeMismatchError(
            f"The listing has {len(leaves)} leaves but the root commits to {root.leaf_count}; a complete listing has every leaf."
        )
    rebuilt = liability_root(root.assets, leaves)
    if rebuilt.node_hash != root.node_hash:
        raise TreeMismatchError(
            f"Root hash mismatch: the listed leaves rebuild to {rebuilt.node_hash.hex()} but the root's node hash is {root.node_hash.hex()}."
        )
    for asset, stated, added in zip(root.assets, root.sums, rebuilt.sums, strict=True):
        if stated != added:
            raise TreeMismatchError(
                f"The totals do not add up: the root states {stated} of asset {asset} but the listed leaves add up to {added}."
            )
