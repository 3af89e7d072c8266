"""The public listing: leaves published in the open (public budget lines), checked against a root.

Publishing every leaf makes a liability tree public, and then anyone can rebuild its root from
the leaves alone (SPEC-merkle.md, *Liability leaves*); this check is what makes such a listing
evidence rather than a claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reporting.exceptions import (
    DuplicateLeafError,
    ProofFormatError,
    RootMismatchError,
    TotalsMismatchError,
)
from reporting.merkle.json_fields import check_version, json_field
from reporting.merkle.liability_leaf import LiabilityLeaf
from reporting.merkle.proof import InclusionProof, verify_liability_proof
from reporting.merkle.reference_tree import rebuild_liability_tree
from reporting.merkle.root import TreeRoot


def verify_public_listing(
    listing: Mapping[str, Any], *, root_digest: bytes | None = None, complete: bool = False
) -> tuple[TreeRoot, tuple[LiabilityLeaf, ...]]:
    """Check a published listing of leaves (public budget lines) against its root.

    Every entry with a proof is checked against the root. With ``complete=True`` the listing must
    hold every leaf of the tree; the root is then rebuilt from the leaves alone and must match
    byte for byte, which also proves the root's totals are the sum of the listed amounts.
    """
    check_version(listing, "listing")
    root = TreeRoot.from_dict(json_field(listing, "root", dict, "listing"))
    if root_digest is not None and root.digest() != root_digest:
        raise RootMismatchError(
            f"Root digest mismatch: the listing's root hashes to {root.digest().hex()} but the anchored digest is {root_digest.hex()}."
        )
    leaves = []
    for entry in json_field(listing, "leaves", list, "listing"):
        leaf = LiabilityLeaf.from_dict(json_field(entry, "leaf", dict, "listing entry"))
        if "proof" in entry:
            verify_liability_proof(
                root,
                leaf,
                InclusionProof.from_dict(json_field(entry, "proof", dict, "listing entry")),
            )
        elif not complete:
            raise ProofFormatError(
                f"The entry of account {leaf.account_id!r} has no proof; only a complete listing may omit proofs."
            )
        leaves.append(leaf)
    if len({leaf.account_id for leaf in leaves}) != len(leaves):
        raise DuplicateLeafError("The listing names one account twice; each account appears once.")
    if complete:
        if len(leaves) != root.leaf_count:
            raise RootMismatchError(
                f"The listing has {len(leaves)} leaves but the root commits to {root.leaf_count}; a complete listing has every leaf."
            )
        rebuilt = rebuild_liability_tree(root.assets, leaves).root
        if rebuilt.node_hash != root.node_hash:
            raise RootMismatchError(
                f"Root hash mismatch: the listed leaves rebuild to {rebuilt.node_hash.hex()} but the root's node hash is {root.node_hash.hex()}."
            )
        for asset, stated, added in zip(root.assets, root.sums, rebuilt.sums, strict=True):
            if stated != added:
                raise TotalsMismatchError(
                    f"The totals do not add up: the root states {stated} of asset {asset} but the listed leaves add up to {added}."
                )
    return root, tuple(leaves)
