"""Merkle trees for proof of reserves: byte formats, roots, inclusion proofs and their checks.

Two trees share one engine. The holdings tree is a plain Merkle tree (records are bare 32-byte
hashes); the liability tree is a Merkle *sum* tree whose records are ``hash || sums`` with one
128-bit sum per asset, and whose node hash commits to both children's records, so to both
children's per-asset sums (the fix of Hu et al., IACR eprint 2018/1139, to Maxwell's tree).

This package needs only ``hashlib`` and ``hmac``: the auditors' verifier can import it and
nothing that builds. The byte formats are specified in ``reporting/SPEC-merkle.md``, and each
module holds one of its concepts: ``encoding`` (version, domain tags, records, node hashes, tree
shape), ``assets`` (the canonical asset list), ``liability_leaf`` (account ids, salts, leaves),
``root``, ``proof`` (inclusion proofs and the path check), ``reference_tree`` (the list-based
builder), ``account_package`` and ``public_listing`` (what is handed out and published), and
``json_fields`` (the strict JSON readers they share). This module is their public API.
``reporting.sumtree`` is the fast builder of large liability trees, and ``reporting.holdings``
holds the holdings leaves.
"""

from reporting.merkle.account_package import liability_package, verify_liability_package
from reporting.merkle.assets import MAX_ASSET_CODE_BYTES, MAX_ASSETS, canonical_assets
from reporting.merkle.encoding import (
    FORMAT_VERSION,
    HASH_BYTES,
    MAX_AMOUNT_BASE_UNITS,
    MAX_LEAVES,
    SALT_TAG,
    SUM_WIDTH_BYTES,
    TAGS,
    DomainTags,
    TreeKind,
    domain_prefix,
    empty_hash,
    encode_sums,
    level_size,
    node_hash,
    record_width,
    tree_depth,
)
from reporting.merkle.liability_leaf import (
    MAX_ACCOUNT_ID_BYTES,
    NONCE_BYTES,
    LiabilityLeaf,
    account_id_bytes,
    check_nonce,
    derive_salt,
    new_snapshot_nonce,
)
from reporting.merkle.proof import (
    InclusionProof,
    Sibling,
    verify_liability_proof,
    verify_path,
)
from reporting.merkle.public_listing import verify_public_listing
from reporting.merkle.reference_tree import ReferenceTree, rebuild_liability_tree
from reporting.merkle.root import TreeRoot

__all__ = [
    "FORMAT_VERSION",
    "HASH_BYTES",
    "MAX_ACCOUNT_ID_BYTES",
    "MAX_AMOUNT_BASE_UNITS",
    "MAX_ASSETS",
    "MAX_ASSET_CODE_BYTES",
    "MAX_LEAVES",
    "NONCE_BYTES",
    "SALT_TAG",
    "SUM_WIDTH_BYTES",
    "TAGS",
    "DomainTags",
    "InclusionProof",
    "LiabilityLeaf",
    "ReferenceTree",
    "Sibling",
    "TreeKind",
    "TreeRoot",
    "account_id_bytes",
    "canonical_assets",
    "check_nonce",
    "derive_salt",
    "domain_prefix",
    "empty_hash",
    "encode_sums",
    "level_size",
    "liability_package",
    "new_snapshot_nonce",
    "node_hash",
    "rebuild_liability_tree",
    "record_width",
    "tree_depth",
    "verify_liability_package",
    "verify_liability_proof",
    "verify_path",
    "verify_public_listing",
]
