"""The Merkle engine both trees share, written from ``SPEC-merkle.md`` alone (stdlib only).

This is a second implementation of the spec, on purpose: the treasury builds its trees with its
own code, and the verifier rebuilds and checks them with this one, so a hashing bug in either is
caught by the other (N-version checking). Both are tested against the spec's vectors.

A record is a node's hash and its per-asset sums (none in the holdings tree). A node hashes
``0x01 || node tag || left record || right record``; an odd level is padded with the empty node
``H(0x01 || empty tag)``; the root encoding commits to the asset list, the leaf count, the top
hash and the top sums.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from reserve_verifier.exceptions import TreeError, TreeMismatchError

VERSION = 1
"""The format version byte that starts every preimage; other versions are refused."""

HASH_BYTES = 32
"""Length of a node hash, a leaf hash and a salt, in bytes."""

SUM_BYTES = 16
"""Width of one per-asset sum in a record (unsigned big-endian), in bytes."""

MAX_SUM = (1 << (8 * SUM_BYTES)) - 1
"""Largest amount or sum a record holds, in base units."""

MAX_LEAVES = (1 << 64) - 1
"""Largest leaf count (and leaf index) the eight-byte fields hold."""

MAX_ASSETS = 255
"""Most assets a root lists (the count is one byte)."""

MAX_ASSET_CODE_BYTES = 64
"""Longest asset code, in ASCII bytes."""


class Tree(Enum):
    """The two trees; the value is the JSON ``tree`` name, the tag base separates their hashes."""

    HOLDINGS = "holdings"
    LIABILITIES = "liabilities"

    def prefix(self, role: str) -> bytes:
        """``0x01 || tag``: tags are 0x01..0x05 (holdings) and 0x11..0x16 (liabilities)."""
        base = 0x00 if self is Tree.HOLDINGS else 0x10
        offset = ("leaf", "node", "empty", "root", "proof", "salt").index(role) + 1
        return bytes((VERSION, base + offset))


Record = tuple[bytes, tuple[int, ...]]
"""A node: its 32-byte hash and one sum per asset of the tree."""


# --- JSON reading -----------------------------------------------------------------------------


def json_field(data: Any, name: str, kind: type, what: str) -> Any:
    """``data[name]`` if it is there with the JSON type ``kind`` (never a boolean)."""
    if not isinstance(data, Mapping) or name not in data:
        raise TreeError(f"The {what} has no {name!r} field.")
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TreeError(f"The {what}'s {name!r} field must be a JSON {kind.__name__}.")
    return value


def check_version(data: Any, what: str) -> None:
    """Refuse a JSON form of a format version this verifier does not read."""
    version = json_field(data, "version", int, what)
    if version != VERSION:
        raise TreeError(
            f"The {what} has format version {version}; this code reads version {VERSION}."
        )


_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)")
_LOWER_HEX = re.compile(r"[0-9a-f]*")


def decimal(text: Any, what: str) -> int:
    """A decimal string in its one canonical spelling (no leading zeros, padding or plus sign);
    a leading minus parses, so the checks can name a negative value rather than a bad spelling."""
    if not isinstance(text, str) or _DECIMAL.fullmatch(text) is None or text == "-0":
        raise TreeError(
            f"The {what} is {text!r}, not a canonical decimal string of base units (digits only, no leading zeros)."
        )
    return int(text)


def hash_hex(text: str, what: str) -> bytes:
    """Exactly 32 bytes of lowercase hex (one spelling per value, as in the bundle)."""
    if not isinstance(text, str) or _LOWER_HEX.fullmatch(text) is None:
        raise TreeError(f"The {what} is {text!r}, not lowercase hex.")
    raw = bytes.fromhex(text)
    if len(raw) != HASH_BYTES:
        raise TreeError(f"The {what} must be {HASH_BYTES} bytes, not {len(raw)}.")
    return raw


def known_fields(data: Any, allowed: frozenset[str], what: str) -> None:
    """Refuse a field the format does not define: an unsigned note beside signed values (an
    "issued_to" in a package, say) would be shown to a reader as if it were part of the proof."""
    unknown = sorted(set(data) - allowed) if isinstance(data, Mapping) else []
    if unknown:
        raise TreeError(
            f"The {what} holds the unknown field {unknown[0]!r}; it allows only {', '.join(sorted(allowed))}."
        )


def tree_named(text: str) -> Tree:
    """The tree a JSON ``tree`` field names."""
    for tree in Tree:
        if tree.value == text:
            return tree
    raise TreeError(f"The tree kind {text!r} is neither 'holdings' nor 'liabilities'.")


def check_assets(codes: Sequence[Any]) -> tuple[str, ...]:
    """An asset list: 1-64 printable ASCII bytes a code, strictly ascending by bytes."""
    if len(codes) > MAX_ASSETS:
        raise TreeError(f"The asset list has {len(codes)} codes; at most {MAX_ASSETS} fit.")
    for code in codes:
        if not isinstance(code, str) or not code:
            raise TreeError(f"The asset code {code!r} is not a non-empty string.")
        raw = code.encode("utf-8")
        if len(raw) > MAX_ASSET_CODE_BYTES or any(byte < 0x21 or byte > 0x7E for byte in raw):
            raise TreeError(
                f"The asset code {code!r} must be 1 to {MAX_ASSET_CODE_BYTES} printable ASCII characters without spaces."
            )
    ordered = sorted(set(codes), key=str.encode)
    if list(codes) != ordered:
        raise TreeError(
            f"The asset list {list(codes)} must be in ascending byte order without repeats; "
            f"list it as {ordered}."
        )
    return tuple(codes)


def sums_bytes(sums: Sequence[int], assets: Sequence[str]) -> bytes:
    """Sums as ``u128`` fields, refusing a negative or oversized one by asset."""
    for asset, total in zip(assets, sums, strict=True):
        if total < 0:
            raise TreeError(
                f"The amount of asset {asset} is {total}; amounts are zero or more base units."
            )
        if total > MAX_SUM:
            raise TreeError(
                f"The amount of asset {asset} is {total}, above the 128-bit limit of the v1 encoding."
            )
    return b"".join(total.to_bytes(SUM_BYTES, "big") for total in sums)


# --- hashing ----------------------------------------------------------------------------------


def empty_record(tree: Tree, asset_count: int) -> Record:
    """The padding node: ``H(0x01 || empty tag)`` with zero sums."""
    return hashlib.sha256(tree.prefix("empty")).digest(), (0,) * asset_count


def parent(tree: Tree, assets: Sequence[str], left: Record, right: Record) -> Record:
    """The node above two records; its hash covers both children's hashes and sums."""
    preimage = (
        tree.prefix("node")
        + left[0]
        + sums_bytes(left[1], assets)
        + right[0]
        + sums_bytes(right[1], assets)
    )
    sums = tuple(a + b for a, b in zip(left[1], right[1], strict=True))
    return hashlib.sha256(preimage).digest(), sums


def top(tree: Tree, assets: Sequence[str], records: Sequence[Record]) -> Record:
    """The top record over leaf records in canonical order (the empty node for no leaves)."""
    level = list(records)
    if not level:
        return empty_record(tree, len(assets))
    while len(level) > 1:
        if len(level) % 2:
            level.append(empty_record(tree, len(assets)))
        level = [parent(tree, assets, level[i], level[i + 1]) for i in range(0, len(level), 2)]
    sums_bytes(level[0][1], assets)
    return level[0]


# --- roots and proofs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Root:
    """A tree's root: what the bundle states and the verifier rebuilds or folds proofs up to."""

    tree: Tree
    assets: tuple[str, ...]
    leaf_count: int
    node_hash: bytes
    sums: tuple[int, ...]

    def encoding(self) -> bytes:
        """``0x01 || root tag || u8 A || (u8 len || code)* || u64 count || hash || sums``."""
        codes = b"".join(bytes((len(code),)) + code.encode("ascii") for code in self.assets)
        return (
            self.tree.prefix("root")
            + bytes((len(self.assets),))
            + codes
            + self.leaf_count.to_bytes(8, "big")
            + self.node_hash
            + sums_bytes(self.sums, self.assets)
        )

    def digest(self) -> bytes:
        """SHA-256 of the root encoding."""
        return hashlib.sha256(self.encoding()).digest()


def root_from(tree: Tree, assets: Sequence[str], leaf_count: int, node: Record) -> Root:
    """A checked root (asset list, count and sums within the format's bounds)."""
    codes = check_assets(assets)
    if tree is Tree.HOLDINGS and codes:
        raise TreeError("A holdings root carries no asset list; its leaves name their assets.")
    if not 0 <= leaf_count <= MAX_LEAVES:
        raise TreeError(f"The root's leaf count {leaf_count} is out of range.")
    if len(node[1]) != len(codes):
        raise TreeError(
            f"The root has {len(node[1])} sums for {len(codes)} assets; it needs one per asset."
        )
    sums_bytes(node[1], codes)
    return Root(tree, codes, leaf_count, node[0], node[1])


def parse_root(data: Any) -> Root:
    """Read a root's JSON form; a stated digest must be the recomputed one."""
    check_version(data, "root")
    tree = tree_named(json_field(data, "tree", str, "root"))
    assets = json_field(data, "assets", list, "root")
    count = json_field(data, "leaf_count", int, "root")
    node_hash = hash_hex(json_field(data, "node_hash", str, "root"), "root node hash")
    sums = tuple(decimal(text, "root sum") for text in json_field(data, "sums", list, "root"))
    root = root_from(tree, assets, count, (node_hash, sums))
    if "digest" in data and data["digest"] != root.digest().hex():
        raise TreeMismatchError(
            f"Root digest mismatch: the root's fields hash to {root.digest().hex()} but it states {data['digest']}."
        )
    return root


@dataclass(frozen=True)
class Proof:
    """An inclusion proof: the leaf's index and its siblings' records, lowest level first."""

    tree: Tree
    leaf_index: int
    siblings: tuple[Record, ...]


def parse_proof(data: Any) -> Proof:
    """Read a proof's JSON form (negative sums parse; folding refuses them)."""
    check_version(data, "proof")
    siblings = tuple(
        (
            hash_hex(json_field(item, "hash", str, "proof sibling"), "sibling hash"),
            tuple(
                decimal(text, "sibling sum")
                for text in json_field(item, "sums", list, "proof sibling")
            ),
        )
        for item in json_field(data, "siblings", list, "proof")
    )
    tree = tree_named(json_field(data, "tree", str, "proof"))
    return Proof(tree, json_field(data, "leaf_index", int, "proof"), siblings)


def parse_proof_bytes(data: bytes, asset_count: int) -> Proof:
    """Read a proof's bytes: ``0x01 || proof tag || u64 index || u8 depth || sibling records``."""
    trees = {tree.prefix("proof"): tree for tree in Tree}
    if len(data) < 11 or data[:2] not in trees:
        raise TreeError("The proof bytes do not start with a v1 proof prefix.")
    width = HASH_BYTES + SUM_BYTES * asset_count
    depth = data[10]
    if len(data) != 11 + depth * width:
        raise TreeError(
            f"The proof bytes are {len(data)} long; {depth} siblings of {width} bytes need {11 + depth * width}."
        )
    siblings = tuple(
        (
            data[start : start + HASH_BYTES],
            tuple(
                int.from_bytes(data[offset : offset + SUM_BYTES], "big")
                for offset in range(start + HASH_BYTES, start + width, SUM_BYTES)
            ),
        )
        for start in range(11, len(data), width)
    )
    return Proof(trees[data[:2]], int.from_bytes(data[2:10], "big"), siblings)


def fold(root: Root, leaf: Record, proof: Proof, *, root_digest: bytes | None = None) -> None:
    """Fold ``leaf`` up ``proof``; raise unless it ends at the root's hash and sums."""
    if root_digest is not None and root.digest() != root_digest:
        raise TreeMismatchError(
            f"Root digest mismatch: the root's fields hash to {root.digest().hex()} but the anchored digest is {root_digest.hex()}."
        )
    if proof.tree is not root.tree:
        raise TreeMismatchError(
            f"A {proof.tree.value} proof cannot be checked against a {root.tree.value} root."
        )
    count, index = root.leaf_count, proof.leaf_index
    if not 0 <= index < count:
        raise TreeMismatchError(f"The leaf index {index} is outside the tree of {count} leaves.")
    depth = (count - 1).bit_length()
    if len(proof.siblings) != depth:
        raise TreeMismatchError(
            f"The proof has {len(proof.siblings)} siblings but a tree of {count} leaves needs {depth}."
        )
    current = leaf
    for level, sibling in enumerate(proof.siblings):
        _check_sibling(root, level, sibling)
        position = index >> level
        real_nodes = ((count - 1) >> level) + 1
        if position ^ 1 >= real_nodes and sibling != empty_record(root.tree, len(root.assets)):
            raise TreeMismatchError(
                f"The sibling at level {level} must be the empty padding node, because that level has only {real_nodes} nodes."
            )
        left, right = (current, sibling) if position % 2 == 0 else (sibling, current)
        for asset, a, b in zip(root.assets, left[1], right[1], strict=True):
            if a + b > MAX_SUM:
                raise TreeMismatchError(
                    f"The sum of asset {asset} at level {level + 1} exceeds 128 bits."
                )
        current = parent(root.tree, root.assets, left, right)
    if current[0] != root.node_hash:
        raise TreeMismatchError(
            f"Root hash mismatch: leaf {index}'s proof leads to {current[0].hex()} but the root's node hash is {root.node_hash.hex()}."
        )
    for asset, stated, added in zip(root.assets, root.sums, current[1], strict=True):
        if stated != added:
            raise TreeMismatchError(
                f"The totals do not add up: the root states {stated} of asset {asset} but its children add up to {added}."
            )


def _check_sibling(root: Root, level: int, sibling: Record) -> None:
    """A sibling has one sum per asset, each within ``[0, 2**128 - 1]``."""
    if len(sibling[1]) != len(root.assets):
        raise TreeMismatchError(
            f"The sibling at level {level} has {len(sibling[1])} sums but the root has {len(root.assets)} assets."
        )
    for asset, total in zip(root.assets, sibling[1], strict=True):
        if total < 0:
            raise TreeMismatchError(
                f"The sibling sum of asset {asset} at level {level} is negative ({total})."
            )
        if total > MAX_SUM:
            raise TreeMismatchError(
                f"The sibling sum of asset {asset} at level {level} exceeds 128 bits."
            )
