"""An account's package: what one account holder receives to check its own liability.

The package bundles the root, the account's leaf (with its salt) and its proof in one JSON form,
so the holder needs nothing else; it is the unit the site serves and the verifier accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reporting.merkle.encoding import FORMAT_VERSION
from reporting.merkle.json_fields import check_version, json_field
from reporting.merkle.liability_leaf import LiabilityLeaf
from reporting.merkle.proof import InclusionProof, verify_liability_proof
from reporting.merkle.root import TreeRoot


def liability_package(root: TreeRoot, leaf: LiabilityLeaf, proof: InclusionProof) -> dict[str, Any]:
    """Return what one account receives: the root, its own leaf (with salt) and its proof."""
    return {
        "version": FORMAT_VERSION,
        "root": root.to_dict(),
        "leaf": leaf.to_dict(),
        "proof": proof.to_dict(),
    }


def verify_liability_package(
    package: Mapping[str, Any], *, root_digest: bytes | None = None
) -> LiabilityLeaf:
    """Check one account's package against its root (and the anchored digest, if given)."""
    check_version(package, "package")
    root = TreeRoot.from_dict(json_field(package, "root", dict, "package"))
    leaf = LiabilityLeaf.from_dict(json_field(package, "leaf", dict, "package"))
    proof = InclusionProof.from_dict(json_field(package, "proof", dict, "package"))
    verify_liability_proof(root, leaf, proof, root_digest=root_digest)
    return leaf
