"""Inclusion proofs: the siblings from a leaf to the top, their encodings, and the path check.

Both trees prove inclusion the same way (SPEC-merkle.md, *Inclusion proofs*), so the format and
the fold that checks a leaf record against a root live once, here; the holdings tree and the
liability tree only supply the leaf record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reporting.exceptions import (
    LeafError,
    ProofFormatError,
    ProofInvalidError,
    RootMismatchError,
    TotalsMismatchError,
)
from reporting.merkle.encoding import (
    FORMAT_VERSION,
    HASH_BYTES,
    MAX_AMOUNT_BASE_UNITS,
    MAX_LEAVES,
    SUM_WIDTH_BYTES,
    TAGS,
    TreeKind,
    domain_prefix,
    empty_hash,
    level_size,
    node_hash,
    record_width,
    tree_depth,
)
from reporting.merkle.json_fields import (
    check_version,
    json_field,
    parse_hex,
    parse_int,
    parse_kind,
)
from reporting.merkle.liability_leaf import LiabilityLeaf
from reporting.merkle.root import TreeRoot


@dataclass(frozen=True)
class Sibling:
    """One step of a proof: the sibling node's hash and its per-asset sums (none for holdings)."""

    node_hash: bytes
    sums: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        """Refuse a hash of the wrong length (sums are checked against the root when verifying)."""
        if not isinstance(self.node_hash, bytes) or len(self.node_hash) != HASH_BYTES:
            raise ProofFormatError(f"A sibling hash must be {HASH_BYTES} bytes.")


@dataclass(frozen=True)
class InclusionProof:
    """The siblings from a leaf up to the top, lowest level first, and the leaf's index."""

    kind: TreeKind
    leaf_index: int
    siblings: tuple[Sibling, ...]

    def to_bytes(self) -> bytes:
        """Serialise as ``v || proof tag || u64 index || u8 depth || (hash || sums)*``."""
        if not 0 <= self.leaf_index <= MAX_LEAVES:
            raise ProofFormatError(f"The leaf index {self.leaf_index} is out of range.")
        body = b"".join(
            sibling.node_hash
            + b"".join(total.to_bytes(SUM_WIDTH_BYTES, "big") for total in sibling.sums)
            for sibling in self.siblings
        )
        return (
            domain_prefix(TAGS[self.kind].proof)
            + self.leaf_index.to_bytes(8, "big")
            + len(self.siblings).to_bytes(1, "big")
            + body
        )

    @classmethod
    def from_bytes(cls, data: bytes, asset_count: int) -> InclusionProof:
        """Parse :meth:`to_bytes` output for a tree of ``asset_count`` assets (0 for holdings)."""
        kinds = {domain_prefix(tags.proof): kind for kind, tags in TAGS.items()}
        if len(data) < 11 or data[:2] not in kinds:
            raise ProofFormatError("The proof bytes do not start with a v1 proof prefix.")
        kind = kinds[data[:2]]
        if kind is TreeKind.HOLDINGS and asset_count:
            raise ProofFormatError("A holdings proof carries no sums; parse it with asset_count=0.")
        width = record_width(asset_count)
        depth = data[10]
        if len(data) != 11 + depth * width:
            raise ProofFormatError(
                f"The proof bytes are {len(data)} long; {depth} siblings of {width} bytes need {11 + depth * width}."
            )
        siblings = []
        for offset in range(11, len(data), width):
            record = data[offset : offset + width]
            sums = tuple(
                int.from_bytes(record[start : start + SUM_WIDTH_BYTES], "big")
                for start in range(HASH_BYTES, width, SUM_WIDTH_BYTES)
            )
            siblings.append(Sibling(node_hash=record[:HASH_BYTES], sums=sums))
        return cls(
            kind=kind, leaf_index=int.from_bytes(data[2:10], "big"), siblings=tuple(siblings)
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able form; sums are decimal strings."""
        return {
            "version": FORMAT_VERSION,
            "tree": self.kind.value,
            "leaf_index": self.leaf_index,
            "siblings": [
                {"hash": sibling.node_hash.hex(), "sums": [str(total) for total in sibling.sums]}
                for sibling in self.siblings
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InclusionProof:
        """Parse :meth:`to_dict` output (negative sums parse, and are refused by the check)."""
        check_version(data, "proof")
        siblings = tuple(
            Sibling(
                node_hash=parse_hex(json_field(item, "hash", str, "proof sibling"), "sibling hash"),
                sums=tuple(
                    parse_int(text, "sibling sum")
                    for text in json_field(item, "sums", list, "proof sibling")
                ),
            )
            for item in json_field(data, "siblings", list, "proof")
        )
        return cls(
            kind=parse_kind(json_field(data, "tree", str, "proof")),
            leaf_index=json_field(data, "leaf_index", int, "proof"),
            siblings=siblings,
        )


def verify_path(
    root: TreeRoot,
    leaf_record: tuple[bytes, tuple[int, ...]],
    proof: InclusionProof,
    *,
    root_digest: bytes | None = None,
) -> None:
    """Fold a leaf record up a proof and check it ends at the root's hash and sums.

    Raises a :class:`~reporting.exceptions.VerificationError` subclass naming the first check
    that failed; returns ``None`` when the leaf is in the tree the root describes.
    """
    if root_digest is not None and root.digest() != root_digest:
        raise RootMismatchError(
            f"Root digest mismatch: the root's fields hash to {root.digest().hex()} but the anchored digest is {root_digest.hex()}."
        )
    if proof.kind is not root.kind:
        raise ProofInvalidError(
            f"A {proof.kind.value} proof cannot be checked against a {root.kind.value} root."
        )
    count = root.leaf_count
    if not 0 <= proof.leaf_index < count:
        raise ProofInvalidError(
            f"The leaf index {proof.leaf_index} is outside the tree of {count} leaves."
        )
    depth = tree_depth(count)
    if len(proof.siblings) != depth:
        raise ProofInvalidError(
            f"The proof has {len(proof.siblings)} siblings but a tree of {count} leaves needs {depth}."
        )
    assets = root.assets
    padding = (empty_hash(root.kind), (0,) * len(assets))
    current = leaf_record
    position = proof.leaf_index
    for level, sibling in enumerate(proof.siblings):
        if len(sibling.sums) != len(assets):
            raise ProofInvalidError(
                f"The sibling at level {level} has {len(sibling.sums)} sums but the root has {len(assets)} assets."
            )
        for asset, total in zip(assets, sibling.sums, strict=True):
            if total < 0:
                raise ProofInvalidError(
                    f"The sibling sum of asset {asset} at level {level} is negative ({total})."
                )
            if total > MAX_AMOUNT_BASE_UNITS:
                raise ProofInvalidError(
                    f"The sibling sum of asset {asset} at level {level} exceeds 128 bits."
                )
        if (
            position ^ 1 >= level_size(count, level)
            and (sibling.node_hash, sibling.sums) != padding
        ):
            raise ProofInvalidError(
                f"The sibling at level {level} must be the empty padding node, because that level has only {level_size(count, level)} nodes."
            )
        pair = (current, (sibling.node_hash, sibling.sums))
        left, right = pair if position % 2 == 0 else pair[::-1]
        sums = tuple(a + b for a, b in zip(left[1], right[1], strict=True))
        for asset, total in zip(assets, sums, strict=True):
            if total > MAX_AMOUNT_BASE_UNITS:
                raise ProofInvalidError(
                    f"The sum of asset {asset} at level {level + 1} exceeds 128 bits."
                )
        current = (node_hash(root.kind, assets, left, right), sums)
        position >>= 1
    if current[0] != root.node_hash:
        raise RootMismatchError(
            f"Root hash mismatch: leaf {proof.leaf_index}'s proof leads to {current[0].hex()} but the root's node hash is {root.node_hash.hex()}."
        )
    for asset, stated, added in zip(assets, root.sums, current[1], strict=True):
        if stated != added:
            raise TotalsMismatchError(
                f"The totals do not add up: the root states {stated} of asset {asset} but its children add up to {added}."
            )


def verify_liability_proof(
    root: TreeRoot, leaf: LiabilityLeaf, proof: InclusionProof, *, root_digest: bytes | None = None
) -> None:
    """Check an account's leaf is in the liability tree of ``root`` (raises if it is not)."""
    if root.kind is not TreeKind.LIABILITIES:
        raise ProofInvalidError("A liability leaf can only be checked against a liabilities root.")
    if len(leaf.amounts) != len(root.assets):
        raise LeafError(
            f"Account {leaf.account_id!r} has {len(leaf.amounts)} amounts but the root's assets {list(root.assets)} need {len(root.assets)}."
        )
    verify_path(root, (leaf.leaf_hash(), leaf.amounts), proof, root_digest=root_digest)
