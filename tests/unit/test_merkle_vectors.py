"""The published Merkle test vectors: reproducible from their seeded script, and all verifying."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from eth_utils.address import to_checksum_address

from reporting.holdings import (
    HoldingsTree,
    holding_from_bytes,
    holding_leaf_hash,
    verify_holding_proof,
)
from reporting.merkle.encoding import TreeKind, empty_hash
from reporting.merkle.liability_leaf import LiabilityLeaf, derive_salt
from reporting.merkle.proof import InclusionProof, verify_liability_proof
from reporting.merkle.reference_tree import rebuild_liability_tree
from reporting.merkle.root import TreeRoot
from reporting.vectors.generate_merkle_vectors import VECTORS_PATH, build_vectors, render


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    """The committed vectors file, parsed."""
    parsed: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return parsed


def test_committed_vectors_match_the_seeded_generator_byte_for_byte() -> None:
    """Re-running the seeded generator reproduces the committed merkle_v1.json exactly."""
    assert render(build_vectors()).encode("utf-8") == VECTORS_PATH.read_bytes()


def test_empty_node_hashes_are_the_hash_of_their_two_byte_prefix(vectors: dict[str, Any]) -> None:
    """The padding node of each tree is SHA-256 of version 0x01 and the tree's empty tag."""
    assert vectors["empty_hash"]["holdings"] == hashlib.sha256(b"\x01\x03").hexdigest()
    assert vectors["empty_hash"]["liabilities"] == hashlib.sha256(b"\x01\x13").hexdigest()
    assert empty_hash(TreeKind.LIABILITIES).hex() == vectors["empty_hash"]["liabilities"]


def test_committed_liability_vectors_verify_independently(vectors: dict[str, Any]) -> None:
    """Every salt, leaf, proof and root of the liability vectors checks out with the verifier."""
    assert len(vectors["liabilities"]) == 5
    for case in vectors["liabilities"]:
        root = TreeRoot.from_dict(case["root"])
        assert (
            hashlib.sha256(bytes.fromhex(case["root_encoding"])).hexdigest()
            == case["root"]["digest"]
        )
        nonce = bytes.fromhex(case["nonce"])
        leaves = []
        for account in case["accounts"]:
            salt = bytes.fromhex(account["salt"])
            message = b"\x01\x16" + account["account_id"].encode("utf-8")
            assert salt == hmac.new(nonce, message, hashlib.sha256).digest()
            assert derive_salt(nonce, account["account_id"]) == salt
            leaf = LiabilityLeaf.from_bytes(
                bytes.fromhex(account["leaf_bytes"]), len(case["assets"])
            )
            assert leaf.account_id == account["account_id"]
            assert [str(amount) for amount in leaf.amounts] == account["amounts"]
            assert leaf.salt == salt
            assert hashlib.sha256(b"\x01\x11" + leaf.to_bytes()).hexdigest() == account["leaf_hash"]
            proof = InclusionProof.from_bytes(
                bytes.fromhex(account["proof_bytes"]), len(case["assets"])
            )
            assert proof == InclusionProof.from_dict(account["proof"])
            assert proof.leaf_index == account["leaf_index"]
            verify_liability_proof(
                root, leaf, proof, root_digest=bytes.fromhex(case["root"]["digest"])
            )
            leaves.append(leaf)
        rebuilt = rebuild_liability_tree(case["assets"], leaves).root
        assert rebuilt == root
        assert list(rebuilt.sums) == [
            sum(int(account["amounts"][position]) for account in case["accounts"])
            for position in range(len(case["assets"]))
        ]


def test_committed_holdings_vectors_verify_independently(vectors: dict[str, Any]) -> None:
    """Every holdings leaf decodes to its fields, hashes as published and proves into the root."""
    case = vectors["holdings"][0]
    root = TreeRoot.from_dict(case["root"])
    holdings = [holding_from_bytes(bytes.fromhex(item["leaf_bytes"])) for item in case["holdings"]]
    for item, holding in zip(case["holdings"], holdings, strict=True):
        assert holding_leaf_hash(holding).hex() == item["leaf_hash"]
        proof = InclusionProof.from_bytes(bytes.fromhex(item["proof_bytes"]), 0)
        assert proof.leaf_index == item["leaf_index"]
        verify_holding_proof(
            root, holding, proof, root_digest=bytes.fromhex(case["root"]["digest"])
        )
    rebuilt = HoldingsTree.build(holdings)
    assert rebuilt.root == root
    assert {asset: str(total) for asset, total in rebuilt.totals().items()} == case["totals"]


def test_holdings_vector_addresses_are_eip55(vectors: dict[str, Any]) -> None:
    """Every Safe and token address in the vectors is spelt in EIP-55 form, the only spelling a
    bundle may carry (SPEC-attestation R-GRAM-4), while the leaf bytes hold the raw 20 bytes."""
    addresses = [
        item["fields"][name]
        for item in vectors["holdings"][0]["holdings"]
        for name in ("safe_address", "token_address")
        if item["fields"].get(name)
    ]
    assert addresses
    for address in addresses:
        assert address == to_checksum_address(address) != address.lower()
