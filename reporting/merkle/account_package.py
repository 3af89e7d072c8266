"""An account's package: what one account holder receives to check its own liability.

The package bundles the root, the account's leaf (with its salt) and its proof in one JSON form,
so the holder needs nothing else; it is the unit the site serves and the verifier accepts.

The JSON form (the package of ``reporting/SPEC-merkle.md``, R-PKG-1)::

    {"version": 1,
     "attestation": {"sequence": 3, "digest": "<bundle digest, 64 lowercase hex>"},  (optional)
     "root": {...}, "leaf": {"account_id", "amounts", "salt"}, "proof": {...}}

``attestation`` names the bundle the package was issued for, so a reader (the site, a holder)
can pick that bundle; it is a label, not evidence: the check is always against the root the
chosen bundle states.

Packages are read strictly (SPEC-attestation R-GRAM-1 to R-GRAM-3): a field the spec does not
list, at any level, is refused rather than ignored, so nothing may be added here without
changing the spec and every reader (the auditor's ``reserve_verifier`` and the site's
``verify.js``) first; a note slipped beside the proof would otherwise be shown as part of it.
``verify_liability_package`` below is the producer's own check that the proof folds to its root;
the strict reading of the spelling is the readers' job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reporting.merkle.encoding import FORMAT_VERSION
from reporting.merkle.json_fields import check_version, json_field
from reporting.merkle.liability_leaf import LiabilityLeaf
from reporting.merkle.proof import InclusionProof, verify_liability_proof
from reporting.merkle.root import TreeRoot


def liability_package(
    root: TreeRoot,
    leaf: LiabilityLeaf,
    proof: InclusionProof,
    *,
    attestation: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """Return what one account receives: the root, its own leaf (with salt) and its proof.

    ``attestation`` is ``(sequence, bundle digest hex)`` of the bundle the tree was attested
    in; it is written as the package's ``attestation`` label.
    """
    package: dict[str, Any] = {"version": FORMAT_VERSION}
    if attestation is not None:
        sequence, digest = attestation
        package["attestation"] = {"sequence": sequence, "digest": digest}
    package.update(root=root.to_dict(), leaf=leaf.to_dict(), proof=proof.to_dict())
    return package


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
