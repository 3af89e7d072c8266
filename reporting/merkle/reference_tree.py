"""The reference tree: a whole tree kept as Python lists, built straight from the spec.

It is the small, readable builder: the holdings tree uses it, auditors rebuild a liability tree
from a complete listing with it, and the tests cross-check the fast ``reporting.sumtree`` against
it. Leaves are ordered as SPEC-merkle.md's *Canonical order* says, before they reach it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reporting.exceptions import DuplicateLeafError, LeafError, ProofInvalidError
from reporting.merkle.assets import canonical_assets
from reporting.merkle.encoding import TreeKind, empty_hash, encode_sums, node_hash
from reporting.merkle.liability_leaf import LiabilityLeaf
from reporting.merkle.proof import InclusionProof, Sibling
from reporting.merkle.root import TreeRoot


@dataclass(frozen=True)
class ReferenceTree:
    """A tree kept as Python lists: for small trees, for auditors' rebuilds, and as a cross-check.

    ``levels[0]`` holds the leaf records in canonical order; every level with an odd number of
    nodes above one is padded with the empty node before its parent level is hashed.
    """

    kind: TreeKind
    assets: tuple[str, ...]
    leaf_count: int
    levels: tuple[tuple[tuple[bytes, tuple[int, ...]], ...], ...]

    @classmethod
    def build(
        cls, kind: TreeKind, assets: Sequence[str], records: Sequence[tuple[bytes, tuple[int, ...]]]
    ) -> ReferenceTree:
        """Hash the levels above ``records`` (already in canonical order)."""
        assets = canonical_assets(assets)
        padding = (empty_hash(kind), (0,) * len(assets))
        level = list(records)
        levels = []
        while len(level) > 1:
            if len(level) % 2:
                level.append(padding)
            levels.append(tuple(level))
            parents = []
            for left, right in zip(level[0::2], level[1::2], strict=True):
                sums = tuple(a + b for a, b in zip(left[1], right[1], strict=True))
                encode_sums(sums, assets)
                parents.append((node_hash(kind, assets, left, right), sums))
            level = parents
        levels.append(tuple(level))
        return cls(kind=kind, assets=assets, leaf_count=len(records), levels=tuple(levels))

    @property
    def root(self) -> TreeRoot:
        """The root of this tree (an empty tree's top is the padding node with zero sums)."""
        top = (
            self.levels[-1][0]
            if self.levels[-1]
            else (empty_hash(self.kind), (0,) * len(self.assets))
        )
        return TreeRoot(self.kind, self.assets, self.leaf_count, top[0], top[1])

    def proof(self, leaf_index: int) -> InclusionProof:
        """Return the inclusion proof of the leaf at ``leaf_index``."""
        if not 0 <= leaf_index < self.leaf_count:
            raise ProofInvalidError(
                f"The leaf index {leaf_index} is outside the tree of {self.leaf_count} leaves."
            )
        siblings = tuple(
            Sibling(*self.levels[level][(leaf_index >> level) ^ 1])
            for level in range(len(self.levels) - 1)
        )
        return InclusionProof(self.kind, leaf_index, siblings)


def rebuild_liability_tree(assets: Sequence[str], leaves: Iterable[LiabilityLeaf]) -> ReferenceTree:
    """Rebuild a liability tree from all its leaves (salts included), as an auditor does."""
    assets = canonical_assets(assets)
    ordered = sorted(leaves, key=lambda leaf: leaf.salt)
    for earlier, later in itertools.pairwise(ordered):
        if earlier.salt == later.salt:
            raise DuplicateLeafError(
                f"Two leaves share one salt (account {later.account_id!r}); each account appears once."
            )
    for leaf in ordered:
        if len(leaf.amounts) != len(assets):
            raise LeafError(
                f"Account {leaf.account_id!r} has {len(leaf.amounts)} amounts for {len(assets)} assets."
            )
    records = [(leaf.leaf_hash(), leaf.amounts) for leaf in ordered]
    return ReferenceTree.build(TreeKind.LIABILITIES, assets, records)
