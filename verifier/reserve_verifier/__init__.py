"""An auditor's verifier of national-reserve attestation bundles, sharing no code with their producer.

It reads the bundle format and rebuilds both Merkle trees with its own code, written from the
specifications (``SPEC-attestation.md``, ``SPEC-merkle.md``); decodes Bitcoin transactions with
``bitcoinlib`` and reads EVM chains with ``web3``. Install it alone and run ``reserve-verify``::

    report = verify_bundle(Path("attestation.json").read_bytes(), nodes=Nodes(bitcoin=...))
    print(report.render())
    verified = report.passed()
"""

from __future__ import annotations

from reserve_verifier.bundle import Bundle, BundleLike, body_digest, canonical_json
from reserve_verifier.exceptions import (
    BundleFormatError,
    NodeError,
    TreeError,
    TreeMismatchError,
    UsageError,
    VerifierError,
)
from reserve_verifier.inputs import LeafQuery, Nodes
from reserve_verifier.psbt import check_reserve_psbt
from reserve_verifier.report import Check, CheckStatus, Report, Scope
from reserve_verifier.trust import (
    RegistryPin,
    TrustAnchors,
    TrustFileError,
    parse_trust,
    trust_document,
)
from reserve_verifier.verifier import verify_bundle

__all__ = [
    "Bundle",
    "BundleFormatError",
    "BundleLike",
    "Check",
    "CheckStatus",
    "LeafQuery",
    "NodeError",
    "Nodes",
    "RegistryPin",
    "Report",
    "Scope",
    "TreeError",
    "TreeMismatchError",
    "TrustAnchors",
    "TrustFileError",
    "UsageError",
    "VerifierError",
    "body_digest",
    "canonical_json",
    "check_reserve_psbt",
    "parse_trust",
    "trust_document",
    "verify_bundle",
]
