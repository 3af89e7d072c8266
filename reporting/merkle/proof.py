"""Inclusion proofs: the siblings from a leaf to the top, their encodings, and the path check.

Both trees prove inclusion the same way (SPEC-merkle.md, *Inclusion proofs*), so the format and
the fold that checks a leaf record against a root live once, here; the holdings tree and the
liability tree only supply the leaf record.

The fold works on records as bytes (``hash || sums``), the form they are hashed in, with a
record's sums kept as one integer of ``A`` 128-bit lanes; a lane overflow shows as a carry
across a lane boundary. ``verify_liability_proof_bytes`` checks a serialised proof straight from
its bytes, without building a ``Sibling`` per level, for auditors checking many proofs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
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
    encode_sums,
    level_size,
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

_PROOF_KINDS = {domain_prefix(tags.proof): kind for kind, tags in TAGS.items()}
"""Each tree's two-byte proof prefix, and the tree it names."""

_NODE_PREFIXES = {kind: domain_prefix(tags.node) for kind, tags in TAGS.items()}
"""Each tree's node-hash prefix ``v || node tag``, computed once rather than per level."""

_NODE_STATES = {kind: hashlib.sha256(prefix) for kind, prefix in _NODE_PREFIXES.items()}
"""Each tree's SHA-256 state having absorbed its node prefix: a level copies it (cheaper than
starting a hash) and feeds it the two child records, so no preimage is concatenated."""

_EMPTY_HASHES = {kind: empty_hash(kind) for kind in TreeKind}
"""Each tree's padding-node hash."""

_LANE_BITS = 8 * SUM_WIDTH_BYTES
"""Bits of one asset's sum inside a record's packed sums."""


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
        if len(data) < 11 or data[:2] not in _PROOF_KINDS:
            raise ProofFormatError("The proof bytes do not start with a v1 proof prefix.")
        kind = _PROOF_KINDS[data[:2]]
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
    _check_shape(root, proof.kind, proof.leaf_index, len(proof.siblings), root_digest)
    record = leaf_record[0] + encode_sums(leaf_record[1], root.assets)
    _fold(root, record, proof.leaf_index, _sibling_records(root.assets, proof.siblings))


def verify_liability_proof(
    root: TreeRoot, leaf: LiabilityLeaf, proof: InclusionProof, *, root_digest: bytes | None = None
) -> None:
    """Check an account's leaf is in the liability tree of ``root`` (raises if it is not)."""
    _check_liability_leaf(root, leaf)
    verify_path(root, (leaf.leaf_hash(), leaf.amounts), proof, root_digest=root_digest)


def verify_liability_proof_bytes(
    root: TreeRoot, leaf: LiabilityLeaf, proof_bytes: bytes, *, root_digest: bytes | None = None
) -> None:
    """Check an account's leaf against a serialised proof (:meth:`InclusionProof.to_bytes`).

    The same checks, in the same order and with the same errors, as parsing the proof and
    calling :func:`verify_liability_proof`, but each sibling record is hashed as the bytes it
    arrives in; sums read from 16 bytes are within ``[0, 2**128 - 1]`` by construction.
    """
    _check_liability_leaf(root, leaf)
    width = record_width(len(root.assets))
    if len(proof_bytes) < 11 or proof_bytes[:2] not in _PROOF_KINDS:
        raise ProofFormatError("The proof bytes do not start with a v1 proof prefix.")
    depth = proof_bytes[10]
    if len(proof_bytes) != 11 + depth * width:
        raise ProofFormatError(
            f"The proof bytes are {len(proof_bytes)} long; {depth} siblings of {width} bytes need {11 + depth * width}."
        )
    leaf_index = int.from_bytes(proof_bytes[2:10], "big")
    _check_shape(root, _PROOF_KINDS[proof_bytes[:2]], leaf_index, depth, root_digest)
    record = leaf.record()
    siblings = [
        proof_bytes[offset : offset + width] for offset in range(11, len(proof_bytes), width)
    ]
    _fold(root, record, leaf_index, siblings)


def _check_liability_leaf(root: TreeRoot, leaf: LiabilityLeaf) -> None:
    """Refuse a liability leaf checked against another tree, or with the wrong amount count."""
    if root.kind is not TreeKind.LIABILITIES:
        raise ProofInvalidError("A liability leaf can only be checked against a liabilities root.")
    if len(leaf.amounts) != len(root.assets):
        raise LeafError(
            f"Account {leaf.account_id!r} has {len(leaf.amounts)} amounts but the root's assets {list(root.assets)} need {len(root.assets)}."
        )


def _check_shape(
    root: TreeRoot,
    kind: TreeKind,
    leaf_index: int,
    sibling_count: int,
    root_digest: bytes | None,
) -> None:
    """Check the anchored digest (R-ROOT-1), the tree (R-TREE-1), index (R-TREE-6), depth (R-TREE-5)."""
    if root_digest is not None and root.digest() != root_digest:
        raise RootMismatchError(
            f"Root digest mismatch: the root's fields hash to {root.digest().hex()} but the anchored digest is {root_digest.hex()}."
        )
    if kind is not root.kind:
        raise ProofInvalidError(
            f"A {kind.value} proof cannot be checked against a {root.kind.value} root."
        )
    count = root.leaf_count
    if not 0 <= leaf_index < count:
        raise ProofInvalidError(
            f"The leaf index {leaf_index} is outside the tree of {count} leaves."
        )
    depth = tree_depth(count)
    if sibling_count != depth:
        raise ProofInvalidError(
            f"The proof has {sibling_count} siblings but a tree of {count} leaves needs {depth}."
        )


def _sibling_records(assets: tuple[str, ...], siblings: Iterable[Sibling]) -> Iterator[bytes]:
    """Yield each sibling's record, refusing a wrong sum count or a sum outside 128 bits (R-TREE-4).

    A generator, so each level's sums are checked when the fold reaches that level, and the
    first fault met going up the path is the one reported.
    """
    for level, sibling in enumerate(siblings):
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
        yield sibling.node_hash + b"".join(
            total.to_bytes(SUM_WIDTH_BYTES, "big") for total in sibling.sums
        )


def _fold(root: TreeRoot, record: bytes, leaf_index: int, siblings: Iterable[bytes]) -> None:
    """Hash ``record`` up the sibling records (R-TREE-2, -3, -4) and compare with the root.

    A record's sums are read as one integer whose 128-bit lanes are the assets' sums, so a
    level adds them in one addition; a lane that overflows carries into the next lane's lowest
    bit, which the carry mask catches, or (the first asset's lane) past the record's width,
    which ``to_bytes`` refuses.
    """
    kind = root.kind
    asset_count = len(root.assets)
    sums_width = SUM_WIDTH_BYTES * asset_count
    lane_edges = (
        _LANE_EDGES[asset_count] if asset_count < len(_LANE_EDGES) else _lane_edges(asset_count)
    )
    node_state = _NODE_STATES[kind].copy
    padding = _EMPTY_HASHES[kind] + bytes(sums_width)
    last = root.leaf_count - 1
    from_bytes = int.from_bytes
    sums = from_bytes(record[HASH_BYTES:], "big")
    position = leaf_index
    for level, sibling in enumerate(siblings):
        if position ^ 1 > last and sibling != padding:
            raise ProofInvalidError(
                f"The sibling at level {level} must be the empty padding node, because that level has only {level_size(root.leaf_count, level)} nodes."
            )
        sibling_sums = from_bytes(sibling[HASH_BYTES:], "big")
        total = sums + sibling_sums
        if lane_edges and (total ^ sums ^ sibling_sums) & lane_edges:
            _raise_overflow(root.assets, sums, sibling_sums, level)
        try:
            encoded = total.to_bytes(sums_width, "big")
        except OverflowError:
            _raise_overflow(root.assets, sums, sibling_sums, level)
            raise
        state = node_state()
        if position & 1:
            state.update(sibling)
            state.update(record)
        else:
            state.update(record)
            state.update(sibling)
        record = state.digest() + encoded
        sums = total
        position >>= 1
        last >>= 1
    if record[:HASH_BYTES] != root.node_hash:
        raise RootMismatchError(
            f"Root hash mismatch: leaf {leaf_index}'s proof leads to {record[:HASH_BYTES].hex()} but the root's node hash is {root.node_hash.hex()}."
        )
    packed = 0
    for stated in root.sums:
        packed = (packed << _LANE_BITS) | stated
    if (
        packed == sums
        and len(root.sums) == asset_count
        and all(0 <= stated <= MAX_AMOUNT_BASE_UNITS for stated in root.sums)
    ):
        return
    added = _lanes(sums, asset_count)
    for asset, stated, total in zip(root.assets, root.sums, added, strict=True):
        if stated != total:
            raise TotalsMismatchError(
                f"The totals do not add up: the root states {stated} of asset {asset} but its children add up to {total}."
            )


def _lane_edges(asset_count: int) -> int:
    """Return the mask of the lowest bit of every lane but the last (carry detection)."""
    return sum(1 << (_LANE_BITS * lane) for lane in range(1, asset_count))


_LANE_EDGES = tuple(_lane_edges(count) for count in range(16))
"""Carry masks of records of up to 15 assets, computed once."""


def _lanes(packed: int, asset_count: int) -> tuple[int, ...]:
    """Split packed sums into one integer per asset, first asset first."""
    mask = MAX_AMOUNT_BASE_UNITS
    return tuple(
        (packed >> (_LANE_BITS * (asset_count - 1 - lane))) & mask for lane in range(asset_count)
    )


def _raise_overflow(assets: tuple[str, ...], left: int, right: int, level: int) -> None:
    """Name the first asset whose sum overflows 128 bits at ``level + 1``."""
    for asset, one, other in zip(
        assets, _lanes(left, len(assets)), _lanes(right, len(assets)), strict=True
    ):
        if one + other > MAX_AMOUNT_BASE_UNITS:
            raise ProofInvalidError(
                f"The sum of asset {asset} at level {level + 1} exceeds 128 bits."
            )
