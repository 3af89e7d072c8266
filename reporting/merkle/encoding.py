"""The v1 byte encoding both trees share: version byte, domain tags, records and node hashes.

Kept apart so that every other module of the package (leaves, roots, proofs, the reference tree)
and the fast builder ``reporting.sumtree`` encode from one definition of SPEC-merkle.md's
*Domain separation*, *Records* and *Tree shape* sections. Stdlib only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from reporting.exceptions import AmountOverflowError, NegativeAmountError

FORMAT_VERSION = 1
"""The version byte that starts every hashed preimage and every serialised proof."""

HASH_BYTES = 32
"""Length of a SHA-256 digest, a salt and a node hash, in bytes."""

SUM_WIDTH_BYTES = 16
"""Width of one per-asset amount or sum, in bytes (unsigned big-endian, 128 bits)."""

MAX_AMOUNT_BASE_UNITS = (1 << (8 * SUM_WIDTH_BYTES)) - 1
"""Largest amount or sum a v1 leaf or node can hold, in base units (2**128 - 1)."""

MAX_LEAVES = (1 << 64) - 1
"""Most leaves a tree may have (the count and the leaf index are encoded on eight bytes)."""

SALT_TAG = 0x16
"""Domain tag of the salt HMAC's message, so a salt is never another preimage's hash."""


class TreeKind(Enum):
    """Which of the two trees a root or a proof belongs to."""

    HOLDINGS = "holdings"
    LIABILITIES = "liabilities"


@dataclass(frozen=True)
class DomainTags:
    """The tag bytes that separate a tree's leaf, node, padding, root and proof encodings."""

    leaf: int
    node: int
    empty: int
    root: int
    proof: int


TAGS: Mapping[TreeKind, DomainTags] = {
    TreeKind.HOLDINGS: DomainTags(leaf=0x01, node=0x02, empty=0x03, root=0x04, proof=0x05),
    TreeKind.LIABILITIES: DomainTags(leaf=0x11, node=0x12, empty=0x13, root=0x14, proof=0x15),
}
"""Tag bytes per tree; every value differs, so no encoding of one kind parses as another."""


def domain_prefix(tag: int) -> bytes:
    """Return the two bytes ``version || tag`` that start a preimage or a serialised proof."""
    return bytes((FORMAT_VERSION, tag))


def empty_hash(kind: TreeKind) -> bytes:
    """Return the hash of the padding node that pairs an unpaired last node of a level."""
    return hashlib.sha256(domain_prefix(TAGS[kind].empty)).digest()


def record_width(asset_count: int) -> int:
    """Return the bytes of one node record: its hash and one 128-bit sum per asset."""
    return HASH_BYTES + SUM_WIDTH_BYTES * asset_count


def encode_sums(sums: Sequence[int], assets: Sequence[str]) -> bytes:
    """Encode per-asset amounts as 16-byte big-endian fields, refusing negatives and overflow."""
    for asset, amount in zip(assets, sums, strict=True):
        if amount < 0:
            raise NegativeAmountError(
                f"The amount of asset {asset} is {amount}; amounts are zero or more base units."
            )
        if amount > MAX_AMOUNT_BASE_UNITS:
            raise AmountOverflowError(
                f"The amount of asset {asset} is {amount}, above the 128-bit limit of the v1 encoding."
            )
    return b"".join(amount.to_bytes(SUM_WIDTH_BYTES, "big") for amount in sums)


def node_hash(
    kind: TreeKind,
    assets: Sequence[str],
    left: tuple[bytes, Sequence[int]],
    right: tuple[bytes, Sequence[int]],
) -> bytes:
    """Hash a node from both children's records: ``H(v || node tag || left || right)``."""
    return hashlib.sha256(
        domain_prefix(TAGS[kind].node)
        + left[0]
        + encode_sums(left[1], assets)
        + right[0]
        + encode_sums(right[1], assets)
    ).digest()


def tree_depth(leaf_count: int) -> int:
    """Return the number of levels above the leaves (the siblings in every proof)."""
    return 0 if leaf_count <= 1 else (leaf_count - 1).bit_length()


def level_size(leaf_count: int, level: int) -> int:
    """Return the number of real (unpadded) nodes at ``level`` of a tree of ``leaf_count``."""
    return ((leaf_count - 1) >> level) + 1
