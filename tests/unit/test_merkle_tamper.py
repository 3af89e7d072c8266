"""Tampering with the liability sum tree is caught, each time with a specific reason.

The last tests build the under-reporting attack of Hu, Zhang and Guo (IACR eprint 2018/1139)
against our tree, and against a Maxwell-style tree whose nodes commit only to their total, to show
the attack passes there and is caught here: committing to both children's sums is what matters.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence

import pytest

from reporting.exceptions import (
    NegativeAmountError,
    ProofInvalidError,
    RootMismatchError,
    TotalsMismatchError,
    VerificationError,
)
from reporting.merkle.encoding import TreeKind, empty_hash, node_hash
from reporting.merkle.liability_leaf import LiabilityLeaf
from reporting.merkle.proof import InclusionProof, Sibling, verify_liability_proof
from reporting.merkle.public_listing import verify_public_listing
from reporting.merkle.root import TreeRoot
from reporting.sumtree import LiabilityTree

NONCE = bytes(range(32))
ASSETS = ("BTC", "ETH")
BALANCES = {
    f"holder-{number}": (1_000 * (number + 1), 10**19 * (number + 2)) for number in range(8)
}

Record = tuple[bytes, tuple[int, ...]]


def _tree(
    balances: Mapping[str, tuple[int, ...]] = BALANCES, assets: Sequence[str] = ASSETS
) -> LiabilityTree:
    """Build the liability tree of ``balances``."""
    return LiabilityTree.from_rows(assets, balances.items(), NONCE)


def _leaf_and_proof(tree: LiabilityTree, account_id: str) -> tuple[LiabilityLeaf, InclusionProof]:
    """Return an account's leaf and proof."""
    return tree.leaf(account_id), tree.proof(tree.index_of(account_id))


def _with_sibling(proof: InclusionProof, level: int, sibling: Sibling) -> InclusionProof:
    """Return ``proof`` with the sibling at ``level`` replaced."""
    siblings = list(proof.siblings)
    siblings[level] = sibling
    return dataclasses.replace(proof, siblings=tuple(siblings))


def test_changed_amount_is_rejected_as_root_hash_mismatch() -> None:
    """A leaf whose amount was raised or lowered no longer leads to the root's hash."""
    tree = _tree()
    leaf, proof = _leaf_and_proof(tree, "holder-3")
    lowered = dataclasses.replace(leaf, amounts=(leaf.amounts[0] - 1, leaf.amounts[1]))
    with pytest.raises(RootMismatchError, match="Root hash mismatch"):
        verify_liability_proof(tree.root, lowered, proof)


def test_removed_leaf_is_rejected_for_the_removed_account_and_for_a_complete_listing() -> None:
    """A custodian who drops an account re-roots the tree; the dropped account's proof then fails."""
    tree = _tree()
    leaf, proof = _leaf_and_proof(tree, "holder-5")
    shrunk = _tree(
        {account: amounts for account, amounts in BALANCES.items() if account != "holder-5"}
    )
    with pytest.raises(VerificationError, match=r"Root hash mismatch|outside the tree of 7 leaves"):
        verify_liability_proof(shrunk.root, leaf, proof)
    listing = tree.public_listing(BALANCES)
    listing["leaves"] = [
        entry for entry in listing["leaves"] if entry["leaf"]["account_id"] != "holder-5"
    ]
    with pytest.raises(RootMismatchError, match="has 7 leaves but the root commits to 8"):
        verify_public_listing(listing, complete=True)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_altered_proof_path_is_rejected(level: int) -> None:
    """A sibling hash changed at any level, or a moved leaf index, breaks the path to the root."""
    tree = _tree()
    leaf, proof = _leaf_and_proof(tree, "holder-1")
    original = proof.siblings[level]
    forged = Sibling(hashlib.sha256(original.node_hash).digest(), original.sums)
    with pytest.raises(RootMismatchError, match="Root hash mismatch"):
        verify_liability_proof(tree.root, leaf, _with_sibling(proof, level, forged))
    moved = dataclasses.replace(proof, leaf_index=proof.leaf_index ^ (1 << level))
    with pytest.raises(RootMismatchError, match="Root hash mismatch"):
        verify_liability_proof(tree.root, leaf, moved)


def test_truncated_proof_is_rejected_for_its_shape() -> None:
    """A proof missing its top sibling is refused before any hashing, naming the expected depth."""
    tree = _tree()
    leaf, proof = _leaf_and_proof(tree, "holder-0")
    short = dataclasses.replace(proof, siblings=proof.siblings[:-1])
    with pytest.raises(ProofInvalidError, match="has 2 siblings but a tree of 8 leaves needs 3"):
        verify_liability_proof(tree.root, leaf, short)


def test_altered_root_is_rejected() -> None:
    """A root with another node hash, or not matching the anchored digest, is refused."""
    tree = _tree()
    leaf, proof = _leaf_and_proof(tree, "holder-2")
    other_hash = dataclasses.replace(tree.root, node_hash=bytes(32))
    with pytest.raises(RootMismatchError, match="Root hash mismatch"):
        verify_liability_proof(other_hash, leaf, proof)
    with pytest.raises(RootMismatchError, match="Root digest mismatch"):
        verify_liability_proof(tree.root, leaf, proof, root_digest=other_hash.digest())
    stated = tree.root.to_dict() | {"leaf_count": 9}
    with pytest.raises(RootMismatchError, match="Root digest mismatch"):
        TreeRoot.from_dict(stated)


def test_negative_liability_is_rejected_when_building_and_when_verifying() -> None:
    """A negative amount is refused in the input, in a leaf, and as a sibling sum in a proof."""
    with pytest.raises(NegativeAmountError, match="asset BTC for account 'holder-9' is -1"):
        _tree(BALANCES | {"holder-9": (-1, 0)})
    tree = _tree()
    leaf, proof = _leaf_and_proof(tree, "holder-4")
    with pytest.raises(NegativeAmountError, match="is -5"):
        LiabilityLeaf.from_dict(leaf.to_dict() | {"amounts": ["-5", "0"]})
    proof_dict = proof.to_dict()
    proof_dict["siblings"][1]["sums"][0] = "-700"
    with pytest.raises(ProofInvalidError, match="sibling sum of asset BTC at level 1 is negative"):
        verify_liability_proof(tree.root, leaf, InclusionProof.from_dict(proof_dict))


def test_totals_that_do_not_add_up_are_rejected() -> None:
    """A root stating totals other than its children's sums is refused, by proofs and by a listing."""
    tree = _tree()
    leaf, proof = _leaf_and_proof(tree, "holder-6")
    inflated = dataclasses.replace(tree.root, sums=(tree.root.sums[0] + 1, tree.root.sums[1]))
    with pytest.raises(
        TotalsMismatchError, match="root states 36001 of asset BTC but its children add up to 36000"
    ):
        verify_liability_proof(inflated, leaf, proof)
    listing = tree.public_listing(BALANCES)
    root_dict = inflated.to_dict()
    listing["root"] = root_dict
    for entry in listing["leaves"]:
        del entry["proof"]
    with pytest.raises(TotalsMismatchError, match="listed leaves add up to 36000"):
        verify_public_listing(listing, complete=True)


def test_padding_node_cannot_stand_in_for_a_real_sibling_nor_be_replaced() -> None:
    """Where the tree has a real sibling the empty node fails, and where it pads nothing else fits."""
    tree = _tree({account: BALANCES[account] for account in list(BALANCES)[:5]})
    padding = Sibling(empty_hash(TreeKind.LIABILITIES), (0, 0))
    last = tree.root.leaf_count - 1
    last_proof = tree.proof(last)
    assert last_proof.siblings[0] == padding
    forged = Sibling(hashlib.sha256(b"anything").digest(), (0, 0))
    account = _account_at(tree, last)
    with pytest.raises(ProofInvalidError, match="must be the empty padding node"):
        verify_liability_proof(tree.root, tree.leaf(account), _with_sibling(last_proof, 0, forged))
    first = _account_at(tree, 0)
    with pytest.raises(RootMismatchError, match="Root hash mismatch"):
        verify_liability_proof(
            tree.root, tree.leaf(first), _with_sibling(tree.proof(0), 0, padding)
        )


def _account_at(tree: LiabilityTree, leaf_index: int) -> str:
    """Return the account id at ``leaf_index`` (from the builder's input-row map)."""
    return list(BALANCES)[tree.input_row(leaf_index)]


# --- The under-reporting attack of eprint 2018/1139 -------------------------------------------


def _maxwell_node(left: tuple[bytes, int], right: tuple[bytes, int]) -> tuple[bytes, int]:
    """Maxwell's original node: the hash commits to the total only, not to the children's sums."""
    total = left[1] + right[1]
    return hashlib.sha256(total.to_bytes(16, "big") + left[0] + right[0]).digest(), total


def _maxwell_fold(
    leaf: tuple[bytes, int], index: int, siblings: Sequence[tuple[bytes, int]]
) -> tuple[bytes, int]:
    """Fold a Maxwell proof from a leaf to the root it implies."""
    current = leaf
    for level, sibling in enumerate(siblings):
        current = (
            _maxwell_node(current, sibling)
            if (index >> level) % 2 == 0
            else _maxwell_node(sibling, current)
        )
    return current


def _maxwell_levels(leaves: Sequence[tuple[bytes, int]]) -> list[list[tuple[bytes, int]]]:
    """Build a Maxwell tree over a power-of-two number of leaves, returning every level."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        levels.append([_maxwell_node(level[i], level[i + 1]) for i in range(0, len(level), 2)])
    return levels


def _our_fold(
    assets: Sequence[str], leaf: Record, index: int, siblings: Sequence[Record]
) -> Record:
    """Fold one of our proofs to the (hash, sums) it implies, as a forger computing a root does."""
    current = leaf
    for level, sibling in enumerate(siblings):
        left, right = (current, sibling) if (index >> level) % 2 == 0 else (sibling, current)
        current = (
            node_hash(TreeKind.LIABILITIES, assets, left, right),
            tuple(a + b for a, b in zip(left[1], right[1], strict=True)),
        )
    return current


def test_shifting_a_nodes_child_sums_keeps_maxwells_hash_but_changes_ours() -> None:
    """Moving value between two children (same total) leaves a Maxwell node unchanged, not ours."""
    left, right, shift = (b"\x11" * 32, 700), (b"\x22" * 32, 300), 250
    shifted_left, shifted_right = (left[0], left[1] + shift), (right[0], right[1] - shift)
    assert _maxwell_node(left, right) == _maxwell_node(shifted_left, shifted_right)
    ours = node_hash(TreeKind.LIABILITIES, ("BTC",), (left[0], (left[1],)), (right[0], (right[1],)))
    shifted = node_hash(
        TreeKind.LIABILITIES,
        ("BTC",),
        (shifted_left[0], (shifted_left[1],)),
        (shifted_right[0], (shifted_right[1],)),
    )
    assert ours != shifted


@pytest.mark.parametrize("level", [0, 1, 2])
def test_under_reporting_attack_passes_maxwell_and_is_caught_by_our_tree(level: int) -> None:
    """Eprint 2018/1139: at a node with subtree sums x and y, the custodian states the node's total
    as max(x, y), showing users under x a sibling sum of max - x and users under y max - y.

    Under Maxwell's tree both users' checks pass against one root that under-reports the total by
    min(x, y); under ours, whichever root the custodian publishes, one of the two users' proofs fails.
    """
    balances = {f"holder-{number}": (100 * (number + 1),) for number in range(8)}
    tree = _tree(balances, assets=("BTC",))
    leaves = [(leaf_hash, amounts) for leaf_hash, amounts in _level_zero(tree, balances)]
    span = 1 << level
    node_start = 0
    user_a, user_b = node_start, node_start + span
    subtree_x = sum(leaves[i][1][0] for i in range(node_start, node_start + span))
    subtree_y = sum(leaves[i][1][0] for i in range(node_start + span, node_start + 2 * span))
    stated = max(subtree_x, subtree_y)
    honest_total = tree.root.sums[0]

    # Maxwell's tree over the very same leaves: the attack goes through.
    maxwell = _maxwell_levels([(leaf_hash, amounts[0]) for leaf_hash, amounts in leaves])
    views = {}
    for user, claimed_sibling in ((user_a, stated - subtree_x), (user_b, stated - subtree_y)):
        siblings = [maxwell[lvl][(user >> lvl) ^ 1] for lvl in range(3)]
        siblings[level] = (siblings[level][0], claimed_sibling)
        views[user] = _maxwell_fold((leaves[user][0], leaves[user][1][0]), user, siblings)
    assert views[user_a] == views[user_b]
    assert views[user_a][1] == honest_total - min(subtree_x, subtree_y)

    # Our tree: the same shifted sibling sums give two different roots; neither satisfies both users.
    forged_proofs = {}
    for user, claimed_sibling in ((user_a, stated - subtree_x), (user_b, stated - subtree_y)):
        proof = tree.proof(user)
        sibling = proof.siblings[level]
        forged_proofs[user] = _with_sibling(
            proof, level, Sibling(sibling.node_hash, (claimed_sibling,))
        )
    for publisher, victim in ((user_a, user_b), (user_b, user_a)):
        path = [(s.node_hash, s.sums) for s in forged_proofs[publisher].siblings]
        forged_top = _our_fold(("BTC",), leaves[publisher], publisher, path)
        forged_root = dataclasses.replace(tree.root, node_hash=forged_top[0], sums=forged_top[1])
        assert forged_root.sums[0] == honest_total - min(subtree_x, subtree_y)
        publisher_leaf = tree.leaf(_account_of(tree, balances, publisher))
        verify_liability_proof(forged_root, publisher_leaf, forged_proofs[publisher])
        victim_leaf = tree.leaf(_account_of(tree, balances, victim))
        with pytest.raises(RootMismatchError, match="Root hash mismatch"):
            verify_liability_proof(forged_root, victim_leaf, forged_proofs[victim])


def _level_zero(tree: LiabilityTree, balances: Mapping[str, tuple[int, ...]]) -> list[Record]:
    """Return the tree's leaf records in leaf order."""
    records = []
    for index in range(tree.root.leaf_count):
        leaf = tree.leaf(_account_of(tree, balances, index))
        records.append((leaf.leaf_hash(), leaf.amounts))
    return records


def _account_of(
    tree: LiabilityTree, balances: Mapping[str, tuple[int, ...]], leaf_index: int
) -> str:
    """Return the account id at ``leaf_index``."""
    return list(balances)[tree.input_row(leaf_index)]
