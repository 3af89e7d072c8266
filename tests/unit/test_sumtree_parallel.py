"""The sum tree hashed by forked workers is the one-process tree, byte for byte, and leaks nothing."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reporting import forked_workers
from reporting.exceptions import LeafError, ProofInvalidError, RootMismatchError
from reporting.merkle.liability_leaf import LiabilityLeaf, derive_salt
from reporting.merkle.proof import (
    InclusionProof,
    verify_liability_proof,
    verify_liability_proof_bytes,
)
from reporting.merkle.reference_tree import rebuild_liability_tree
from reporting.sumtree import Column, LiabilityTree

ASSET_LISTS = (("BTC",), ("BTC", "ETH"), ("BTC", "ETH", "USDC"))
NONCE = bytes(range(40, 72))

account_ids = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P")), min_size=1, max_size=12
).map(lambda text: unicodedata.normalize("NFC", text))


def _proofs(tree: LiabilityTree, batch_leaves: int) -> list[tuple[int, bytes]]:
    """Every (input row, proof bytes) pair, read through the batch API."""
    return [
        (row, proofs[offset].tobytes())
        for rows, proofs in tree.iter_proof_batches(batch_leaves)
        for offset, row in enumerate(rows.tolist())
    ]


def _assert_same_tree(one: LiabilityTree, other: LiabilityTree) -> None:
    """Two trees agree on root, leaf level, salt keys, input rows and every proof."""
    assert one.root == other.root
    assert one.leaf_records() == other.leaf_records()
    assert one.salt_keys() == other.salt_keys()
    count = one.root.leaf_count
    assert [one.input_row(i) for i in range(count)] == [other.input_row(i) for i in range(count)]
    assert list(one.iter_proof_bytes()) == list(other.iter_proof_bytes())


@settings(max_examples=40, deadline=None)
@given(
    assets=st.sampled_from(ASSET_LISTS),
    ids=st.lists(account_ids, min_size=0, max_size=70, unique=True),
    data=st.data(),
    workers=st.integers(min_value=2, max_value=3),
)
def test_forked_build_equals_one_process_and_reference(
    assets: tuple[str, ...], ids: list[str], data: st.DataObject, workers: int
) -> None:
    """Forced workers give the one-process tree and the reference tree, proof by proof."""
    columns = [
        data.draw(st.lists(st.integers(0, 1 << 120), min_size=len(ids), max_size=len(ids)))
        for _ in assets
    ]
    single = LiabilityTree.build(assets, ids, columns, NONCE, workers=1)
    forked = LiabilityTree.build(assets, ids, columns, NONCE, workers=workers)
    _assert_same_tree(single, forked)
    leaves = [
        LiabilityLeaf(
            account_id=account_id,
            amounts=tuple(column[row] for column in columns),
            salt=derive_salt(NONCE, account_id),
        )
        for row, account_id in enumerate(ids)
    ]
    reference = rebuild_liability_tree(assets, leaves)
    assert reference.root == forked.root
    for leaf_index, (row, proof_bytes) in enumerate(_proofs(forked, batch_leaves=4)):
        assert proof_bytes == reference.proof(leaf_index).to_bytes()
        verify_liability_proof_bytes(forked.root, leaves[row], proof_bytes)


@pytest.mark.parametrize("count", [2, 3, 255, 256, 257, 1000, 4097])
def test_a_forced_parallel_build_of_odd_shapes_splits_subtrees_identically(count: int) -> None:
    """Sizes around powers of two, with padding on many levels, hash alike in 1, 2 or 3 processes."""
    ids = [f"acct:{number}" + "é" * (number % 3) for number in range(count)]
    columns: list[Column] = [
        np.arange(count, dtype=np.uint64) * 7,
        [(number << 90) + 1 for number in range(count)],
    ]
    single = LiabilityTree.build(("BTC", "ETH"), ids, columns, NONCE, workers=1)
    for workers in (2, 3):
        _assert_same_tree(
            single, LiabilityTree.build(("BTC", "ETH"), ids, columns, NONCE, workers=workers)
        )
    rebuilt = LiabilityTree.from_leaf_records(
        ("BTC", "ETH"), single.leaf_records(), single.salt_keys(), NONCE, workers=2
    )
    assert rebuilt.root == single.root
    for batch in (2, 8, 1024):
        assert _proofs(single, batch) == list(single.iter_proof_bytes())


def test_the_default_build_forks_for_a_large_tree_and_equals_one_process() -> None:
    """Above the threshold the default build uses the workers, with the one-process result."""
    count = 70_000
    ids = [f"holder-{number:08d}" for number in range(count)]
    columns: list[Column] = [
        np.arange(count, dtype=np.int64),
        [number << 66 for number in range(count)],
    ]
    default = LiabilityTree.build(("BTC", "ETH"), ids, columns, NONCE)
    single = LiabilityTree.build(("BTC", "ETH"), ids, columns, NONCE, workers=1)
    assert default.root == single.root
    assert default.leaf_records() == single.leaf_records()


def _children() -> set[int]:
    """The live child processes of this process (from Linux's /proc)."""
    return {
        int(pid)
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    }


LINUX_PROC = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="child processes are listed from Linux's /proc"
)


@LINUX_PROC
def test_a_bad_account_id_is_refused_in_input_order_and_no_worker_is_left() -> None:
    """The first bad id is named, as in one process, and no worker process remains."""
    before = _children()
    ids = [f"a{number}" for number in range(300)]
    ids[200] = "e\u0301"  # not NFC
    ids[250] = ""
    with pytest.raises(LeafError, match="NFC"):
        LiabilityTree.build(("BTC",), ids, [[1] * 300], NONCE, workers=2)
    assert _children() <= before


@LINUX_PROC
def test_a_failed_worker_task_is_redone_by_the_parent() -> None:
    """A worker that dies leaves its task to the parent, which completes it (or raises its error)."""
    before = _children()
    parent = os.getpid()
    shared = forked_workers.shared_array((4,), shared=True)

    def first() -> None:
        shared[0] = 1

    def dies_in_a_worker() -> None:
        if os.getpid() != parent:
            os._exit(9)
        shared[1] = 2

    def raises() -> None:
        raise RuntimeError("the task's own error")

    forked_workers.run_tasks([first, dies_in_a_worker])
    assert shared.tolist() == [1, 2, 0, 0]
    with pytest.raises(RuntimeError, match="own error"):
        forked_workers.run_tasks([first, raises])
    assert _children() <= before


def test_bytes_verification_refuses_what_the_object_verification_refuses() -> None:
    """A tampered sibling, a moved index and a wrong root fail alike in both verifiers."""
    ids = [f"a{number}" for number in range(9)]
    tree = LiabilityTree.build(("BTC", "ETH"), ids, [[5] * 9, [1 << 100] * 9], NONCE)
    leaf = tree.leaf("a3")
    proof = tree.proof(tree.index_of("a3")).to_bytes()
    verify_liability_proof_bytes(tree.root, leaf, proof)
    tampered = bytearray(proof)
    tampered[11 + 64 + 40] ^= 1
    moved = bytearray(proof)
    moved[9] ^= 1
    for bad, error in ((bytes(tampered), RootMismatchError), (bytes(moved), RootMismatchError)):
        with pytest.raises(error):
            verify_liability_proof_bytes(tree.root, leaf, bad)
        with pytest.raises(error):
            verify_liability_proof(tree.root, leaf, InclusionProof.from_bytes(bad, 2))
    overflowing = bytearray(proof)
    overflowing[11 + 32 : 11 + 48] = b"\xff" * 16
    with pytest.raises(ProofInvalidError, match="asset BTC at level 1 exceeds 128 bits"):
        verify_liability_proof_bytes(tree.root, leaf, bytes(overflowing))
    with pytest.raises(ProofInvalidError, match="asset BTC at level 1 exceeds 128 bits"):
        verify_liability_proof(tree.root, leaf, InclusionProof.from_bytes(bytes(overflowing), 2))
