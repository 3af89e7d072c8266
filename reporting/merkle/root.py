"""A tree's root: what an attestation anchors, in bytes, as a digest and in JSON.

The root binds the tree kind, the asset list, the leaf count, the top hash and the top sums
(SPEC-merkle.md, *Roots*). Every proof, package and listing is checked against one; it has a
module of its own because producer, attestation and verifier all pass it around.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reporting.exceptions import AssetListError, ProofFormatError, RootMismatchError
from reporting.merkle.assets import canonical_assets
from reporting.merkle.encoding import (
    FORMAT_VERSION,
    HASH_BYTES,
    MAX_LEAVES,
    TAGS,
    TreeKind,
    domain_prefix,
    encode_sums,
)
from reporting.merkle.json_fields import (
    check_version,
    json_field,
    parse_hex,
    parse_int,
    parse_kind,
)


@dataclass(frozen=True)
class TreeRoot:
    """What gets anchored: the tree kind, its assets, leaf count, top node hash and top sums."""

    kind: TreeKind
    assets: tuple[str, ...]
    leaf_count: int
    node_hash: bytes
    sums: tuple[int, ...]

    def __post_init__(self) -> None:
        """Refuse a root that could not be encoded (bad lengths, sign or asset list)."""
        canonical_assets(self.assets)
        if self.kind is TreeKind.HOLDINGS and self.assets:
            raise AssetListError(
                "A holdings root carries no asset list; its leaves name their assets."
            )
        if not 0 <= self.leaf_count <= MAX_LEAVES:
            raise ProofFormatError(f"The root's leaf count {self.leaf_count} is out of range.")
        if len(self.node_hash) != HASH_BYTES:
            raise ProofFormatError(f"The root's node hash must be {HASH_BYTES} bytes.")
        if len(self.sums) != len(self.assets):
            raise ProofFormatError(
                f"The root has {len(self.sums)} sums for {len(self.assets)} assets; it needs one per asset."
            )
        encode_sums(self.sums, self.assets)

    def encode(self) -> bytes:
        """Encode as ``v || root tag || u8 n || (u8 len || code)* || u64 count || hash || sums``."""
        codes = b"".join(len(code).to_bytes(1, "big") + code.encode() for code in self.assets)
        return (
            domain_prefix(TAGS[self.kind].root)
            + len(self.assets).to_bytes(1, "big")
            + codes
            + self.leaf_count.to_bytes(8, "big")
            + self.node_hash
            + encode_sums(self.sums, self.assets)
        )

    def digest(self) -> bytes:
        """Return ``SHA256(encode())``: the 32 bytes an attestation anchors."""
        return hashlib.sha256(self.encode()).digest()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able form; sums are decimal strings."""
        return {
            "version": FORMAT_VERSION,
            "tree": self.kind.value,
            "assets": list(self.assets),
            "leaf_count": self.leaf_count,
            "node_hash": self.node_hash.hex(),
            "sums": [str(total) for total in self.sums],
            "digest": self.digest().hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TreeRoot:
        """Parse :meth:`to_dict` output; a stated digest must match the recomputed one."""
        check_version(data, "root")
        root = cls(
            kind=parse_kind(json_field(data, "tree", str, "root")),
            assets=tuple(json_field(data, "assets", list, "root")),
            leaf_count=json_field(data, "leaf_count", int, "root"),
            node_hash=parse_hex(json_field(data, "node_hash", str, "root"), "root node hash"),
            sums=tuple(
                parse_int(text, "root sum") for text in json_field(data, "sums", list, "root")
            ),
        )
        if "digest" in data and data["digest"] != root.digest().hex():
            raise RootMismatchError(
                f"Root digest mismatch: the root's fields hash to {root.digest().hex()} but it states {data['digest']}."
            )
        return root
