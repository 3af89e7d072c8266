"""A liability tree rebuilt from its kept leaf level gives the original's root and proofs."""

from __future__ import annotations

import pytest

from reporting.exceptions import LeafError
from reporting.merkle import verify_liability_package
from reporting.sumtree import LiabilityTree

NONCE = bytes(range(7, 39))
ASSETS = ("BTC", "ETH")


@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 64, 101])
def test_a_rebuilt_tree_issues_the_same_packages(count: int) -> None:
    """Every shape (empty, one leaf, odd levels) rebuilds to the same root and packages."""
    rows = [(f"acct:{i}", (i * 13, 2**70 + i)) for i in range(count)]
    tree = LiabilityTree.from_rows(ASSETS, rows, NONCE)
    rebuilt = LiabilityTree.from_leaf_records(
        ASSETS, tree.leaf_records(), tree.salt_keys(), tree.snapshot_nonce()
    )
    assert rebuilt.root == tree.root
    for account, _amounts in rows:
        package = rebuilt.package(account, attestation=(4, "ab" * 32))
        assert package["attestation"] == {"sequence": 4, "digest": "ab" * 32}
        assert {k: v for k, v in package.items() if k != "attestation"} == tree.package(account)
        verify_liability_package(package, root_digest=tree.root.digest())


def test_a_changed_byte_changes_the_root_and_bad_lengths_are_refused() -> None:
    """One flipped amount bit gives another root; a truncated level or key list is refused."""
    tree = LiabilityTree.from_rows(ASSETS, [(f"a{i}", (i, i)) for i in range(9)], NONCE)
    leaves = bytearray(tree.leaf_records())
    leaves[-1] ^= 1
    damaged = LiabilityTree.from_leaf_records(ASSETS, bytes(leaves), tree.salt_keys(), NONCE)
    assert damaged.root.digest() != tree.root.digest()
    with pytest.raises(LeafError):
        LiabilityTree.from_leaf_records(ASSETS, tree.leaf_records()[:-1], tree.salt_keys(), NONCE)
    with pytest.raises(LeafError):
        LiabilityTree.from_leaf_records(ASSETS, tree.leaf_records(), tree.salt_keys()[8:], NONCE)


def test_the_rebuilt_tree_shows_no_secret() -> None:
    """Its repr names the root only."""
    tree = LiabilityTree.from_rows(ASSETS, [("a", (1, 2))], NONCE)
    rebuilt = LiabilityTree.from_leaf_records(ASSETS, tree.leaf_records(), tree.salt_keys(), NONCE)
    assert NONCE.hex() not in repr(rebuilt)
    assert tree.leaf("a").salt.hex() not in repr(rebuilt)
