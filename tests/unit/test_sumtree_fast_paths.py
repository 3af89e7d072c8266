"""The sum tree's fast paths (cache-sized proof blocks, the bytes verifier's totals shortcut)
give exactly what the plain paths give, and refuse exactly what they refuse."""

from __future__ import annotations

import dataclasses
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reporting import sumtree
from reporting.exceptions import ProofInvalidError, RootMismatchError, TotalsMismatchError
from reporting.merkle.encoding import MAX_AMOUNT_BASE_UNITS, encode_sums
from reporting.merkle.liability_leaf import LiabilityLeaf
from reporting.merkle.proof import (
    InclusionProof,
    verify_liability_proof,
    verify_liability_proof_bytes,
)
from reporting.merkle.reference_tree import rebuild_liability_tree
from reporting.merkle.root import TreeRoot
from reporting.sumtree import LiabilityTree

NONCE = bytes(range(100, 132))
ASSETS = ("BTC", "ETH")


def _tree(count: int) -> tuple[LiabilityTree, list[str]]:
    """A two-asset tree of ``count`` accounts whose ETH amounts exceed 64 bits."""
    ids = [f"acct-{number}" for number in range(count)]
    columns = [
        [number * 7 for number in range(count)],
        [(number + 1) << 70 for number in range(count)],
    ]
    return LiabilityTree.build(ASSETS, ids, columns, NONCE, workers=1), ids


@pytest.mark.parametrize("count", [1, 2, 3, 5, 17, 33, 100, 257])
@pytest.mark.parametrize("block_proofs", [2, 4, 8, 64])
@pytest.mark.parametrize("batch_leaves", [None, 2, 3, 16, 1024])
def test_proof_blocks_give_every_leaf_its_own_proof_once(
    monkeypatch: pytest.MonkeyPatch, count: int, block_proofs: int, batch_leaves: int | None
) -> None:
    """Batches written in blocks smaller than the batch hold each leaf's proof, in leaf order."""
    tree, _ = _tree(count)
    monkeypatch.setattr(sumtree, "PROOF_BLOCK_BYTES", block_proofs * tree.proof_size_bytes)
    seen: list[tuple[int, bytes]] = [
        (row, proofs[offset].tobytes())
        for rows, proofs in tree.iter_proof_batches(batch_leaves)
        for offset, row in enumerate(rows.tolist())
    ]
    assert [row for row, _ in seen] == [tree.input_row(index) for index in range(count)]
    assert [proof for _, proof in seen] == [tree.proof(index).to_bytes() for index in range(count)]


def test_the_default_batches_cover_a_large_tree_with_the_one_leaf_proofs() -> None:
    """With the default cache-sized batches, every proof of a 5,000-leaf tree is the single one."""
    tree, ids = _tree(5_000)
    rebuilt = rebuild_liability_tree(ASSETS, [tree.leaf(account_id) for account_id in ids])
    assert rebuilt.root == tree.root  # the reference implementation agrees
    index = 0
    batches = 0
    for rows, proofs in tree.iter_proof_batches():  # one buffer, overwritten batch by batch
        batches += 1
        for offset in range(len(rows)):
            assert proofs[offset].tobytes() == tree.proof(index).to_bytes()
            index += 1
    assert batches > 1
    assert index == 5_000


def _both_refuse(root: TreeRoot, leaf: LiabilityLeaf, proof: bytes) -> list[Exception]:
    """Run both liability verifiers and return the errors they raised (each must raise)."""
    errors: list[Exception] = []
    with pytest.raises((TotalsMismatchError, RootMismatchError, ProofInvalidError)) as caught:
        verify_liability_proof_bytes(root, leaf, proof)
    errors.append(caught.value)
    with pytest.raises((TotalsMismatchError, RootMismatchError, ProofInvalidError)) as caught:
        verify_liability_proof(root, leaf, InclusionProof.from_bytes(proof, 2))
    errors.append(caught.value)
    return errors


def test_a_root_whose_totals_moved_between_assets_is_refused_alike() -> None:
    """Totals shifted between lanes (same packed integer if lanes were unchecked) are refused."""
    tree, ids = _tree(9)
    leaf = tree.leaf(ids[4])
    proof = tree.proof(tree.index_of(ids[4])).to_bytes()
    verify_liability_proof_bytes(tree.root, leaf, proof)
    btc, eth = tree.root.sums
    shifted = dataclasses.replace(tree.root, sums=(btc + 1, eth - 1))
    errors = _both_refuse(shifted, leaf, proof)
    assert [type(error) for error in errors] == [TotalsMismatchError, TotalsMismatchError]
    assert str(errors[0]) == str(errors[1])
    assert "asset BTC" in str(errors[0])


def test_a_forged_root_whose_lanes_borrow_across_the_boundary_is_refused() -> None:
    """A root forged past its own checks with sums (BTC + 1, ETH - 2**128) packs to the true
    totals; the bytes verifier must still refuse it, naming BTC like the object verifier."""
    tree, ids = _tree(9)
    leaf = tree.leaf(ids[0])
    proof = tree.proof(tree.index_of(ids[0])).to_bytes()
    btc, eth = tree.root.sums
    forged = dataclasses.replace(tree.root)
    object.__setattr__(forged, "sums", (btc + 1, eth - (MAX_AMOUNT_BASE_UNITS + 1)))
    errors = _both_refuse(forged, leaf, proof)
    assert [type(error) for error in errors] == [TotalsMismatchError, TotalsMismatchError]
    assert str(errors[0]) == str(errors[1])
    assert "asset BTC" in str(errors[0])


def test_a_changed_sibling_sum_in_any_level_is_refused_alike() -> None:
    """One unit more in any sibling's sums at any level no longer reaches the root hash."""
    tree, ids = _tree(33)
    leaf = tree.leaf(ids[20])
    proof = tree.proof(tree.index_of(ids[20])).to_bytes()
    width = 32 + 16 * len(ASSETS)
    for level in range(tree.depth):
        for lane_end in (32 + 16, 32 + 32):
            tampered = bytearray(proof)
            tampered[11 + level * width + lane_end - 1] ^= 1
            errors = _both_refuse(tree.root, leaf, bytes(tampered))
            assert [type(error) for error in errors] == [type(errors[1])] * 2
            assert str(errors[0]) == str(errors[1])


@given(
    account_id=st.text(min_size=1, max_size=40).map(
        lambda text: unicodedata.normalize("NFC", text)
    ),
    amounts=st.lists(st.integers(0, MAX_AMOUNT_BASE_UNITS), min_size=1, max_size=4),
    salt=st.binary(min_size=32, max_size=32),
)
def test_a_leaf_record_is_its_hash_then_its_encoded_amounts(
    account_id: str, amounts: list[int], salt: bytes
) -> None:
    """``LiabilityLeaf.record`` (one encoding, for the bytes verifier) is the leaf hash followed by
    the amounts as the tree encodes sums, for any id, amounts and asset count."""
    leaf = LiabilityLeaf(account_id, tuple(amounts), salt)
    assets = tuple(f"A{number}" for number in range(len(amounts)))
    assert leaf.record() == leaf.leaf_hash() + encode_sums(leaf.amounts, assets)
