"""Building the Merkle trees: input checks, salting, ordering, listings, holdings and secrecy."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

import numpy as np
import pytest

from reporting.exceptions import (
    AmountOverflowError,
    AssetListError,
    DuplicateLeafError,
    LeafError,
    NegativeAmountError,
    NonceError,
    ProofFormatError,
    UnknownLeafError,
)
from reporting.holdings import HoldingsTree, SafeBalanceHolding, UtxoHolding, verify_holding_proof
from reporting.merkle.account_package import verify_liability_package
from reporting.merkle.encoding import MAX_AMOUNT_BASE_UNITS, TreeKind, empty_hash
from reporting.merkle.liability_leaf import derive_salt, new_snapshot_nonce
from reporting.merkle.proof import InclusionProof, verify_liability_proof
from reporting.merkle.public_listing import verify_public_listing
from reporting.merkle.root import TreeRoot
from reporting.sumtree import LiabilityTree

NONCE = bytes(range(100, 132))
ASSETS = ("BTC", "ETH")
BALANCES = {
    "budget/defence": (5_000_000_000, 0),
    "budget/health": (1_200_000_000, 3 * 10**21),
    "holder-0001": (1, 1),
    "holder-0002": (0, 2**70),
    "Ministère": (42, 0),
}


def _tree(balances: Mapping[str, tuple[int, ...]] = BALANCES) -> LiabilityTree:
    """Build the liability tree of ``balances`` over BTC and ETH."""
    return LiabilityTree.from_rows(ASSETS, balances.items(), NONCE)


def test_salt_is_the_hmac_of_the_nonce_over_the_tagged_account_id() -> None:
    """An account's salt is HMAC-SHA256(nonce, 0x01 0x16 || UTF-8 id), as the spec states."""
    expected = hmac.new(NONCE, b"\x01\x16" + "Ministère".encode(), hashlib.sha256).digest()
    assert derive_salt(NONCE, "Ministère") == expected
    assert _tree().leaf("Ministère").salt == expected


def test_leaves_are_ordered_by_salt() -> None:
    """Leaf i of the tree is the account with the i-th smallest salt."""
    tree = _tree()
    by_salt = sorted(BALANCES, key=lambda account_id: derive_salt(NONCE, account_id))
    assert [tree.index_of(account_id) for account_id in by_salt] == list(range(len(BALANCES)))


def test_same_balances_under_another_nonce_give_an_unrelated_root() -> None:
    """A fresh nonce changes every salt, so a root cannot be matched against guessed balances."""
    other = LiabilityTree.from_rows(ASSETS, BALANCES.items(), bytes(32))
    assert other.root.node_hash != _tree().root.node_hash
    assert other.root.sums == _tree().root.sums


def test_nonce_is_drawn_from_the_injected_source_and_must_be_long_enough() -> None:
    """The nonce comes from the injected random source; a short nonce is refused without echoing it."""
    assert new_snapshot_nonce(lambda size: b"\x07" * size) == b"\x07" * 32
    secret = b"short-secret"
    with pytest.raises(NonceError) as raised:
        LiabilityTree.from_rows(ASSETS, BALANCES.items(), secret)
    assert secret.decode() not in str(raised.value)
    assert secret.hex() not in str(raised.value)


def test_repr_shows_neither_the_nonce_nor_any_salt() -> None:
    """A tree's or a leaf's repr carries its digest and id, never the nonce or the salt."""
    tree = _tree()
    leaf = tree.leaf("holder-0001")
    shown = repr(tree) + repr(leaf)
    assert NONCE.hex() not in shown
    assert leaf.salt.hex() not in shown
    assert repr(NONCE)[2:20] not in shown
    assert tree.root.digest().hex() in repr(tree)


@pytest.mark.parametrize(
    ("balances", "error", "message"),
    [
        (BALANCES | {"x": (-3, 0)}, NegativeAmountError, "asset BTC for account 'x' is -3"),
        (BALANCES | {"x": (0, -(2**80))}, NegativeAmountError, "asset ETH for account 'x'"),
        (
            BALANCES | {"x": (0, MAX_AMOUNT_BASE_UNITS + 1)},
            AmountOverflowError,
            "account 'x' is above the 128-bit",
        ),
        (
            {"a": (MAX_AMOUNT_BASE_UNITS, 0), "b": (1, 0)},
            AmountOverflowError,
            f"total of asset BTC is {2**128},",
        ),
        (BALANCES | {"x": (1.5, 0)}, LeafError, "integers of base units, not 1.5"),
        (BALANCES | {"x": (True, 0)}, LeafError, "integers of base units, not True"),
        (BALANCES | {"Cafe\u0301": (1, 0)}, LeafError, "not in Unicode NFC form"),
        (BALANCES | {"": (1, 0)}, LeafError, "not a non-empty string"),
    ],
)
def test_bad_liabilities_are_refused_naming_the_field(
    balances: Mapping[str, tuple[int, ...]], error: type[Exception], message: str
) -> None:
    """Negative, oversized, non-integer amounts and non-canonical ids are refused by name."""
    with pytest.raises(error, match=message):
        _tree(balances)


def test_numpy_columns_are_checked_like_python_lists() -> None:
    """A numpy column gives the same root as a list, and a negative or float column is refused."""
    ids = list(BALANCES)
    btc = [amounts[0] for amounts in BALANCES.values()]
    eth = [amounts[1] for amounts in BALANCES.values()]
    as_array = LiabilityTree.build(ASSETS, ids, [np.array(btc, dtype=np.int64), eth], NONCE)
    assert as_array.root == _tree().root
    with pytest.raises(NegativeAmountError, match="account 'holder-0001' is -1"):
        LiabilityTree.build(ASSETS, ids, [np.array([5, 5, -1, 0, 0]), eth], NONCE)
    with pytest.raises(LeafError, match="not float64"):
        LiabilityTree.build(ASSETS, ids, [np.array(btc, dtype=np.float64), eth], NONCE)


def test_duplicate_account_is_refused() -> None:
    """One account listed twice is refused rather than counted twice or once."""
    with pytest.raises(DuplicateLeafError, match="'holder-0001' is listed twice"):
        LiabilityTree.from_rows(ASSETS, [*BALANCES.items(), ("holder-0001", (1, 1))], NONCE)


@pytest.mark.parametrize(
    ("assets", "message"),
    [
        (("ETH", "BTC"), "list it as \\['BTC', 'ETH'\\]"),
        (("BTC", "BTC"), "without repeats"),
        (("B TC",), "printable"),
    ],
)
def test_asset_list_must_be_canonical(assets: tuple[str, ...], message: str) -> None:
    """The asset list committed in the root must be sorted, unique, printable ASCII codes."""
    with pytest.raises(AssetListError, match=message):
        LiabilityTree.build(assets, ["a"], [[1]] * len(assets), NONCE)


def test_empty_and_single_leaf_trees_have_defined_roots() -> None:
    """No accounts give the padding node with zero sums; one account's leaf is the root itself."""
    empty = LiabilityTree.build(ASSETS, [], [[], []], NONCE)
    assert empty.root.node_hash == empty_hash(TreeKind.LIABILITIES)
    assert empty.root.sums == (0, 0)
    single = LiabilityTree.from_rows(ASSETS, [("only", (3, 4))], NONCE)
    leaf = single.leaf("only")
    assert single.root.node_hash == leaf.leaf_hash()
    assert single.proof(0).siblings == ()
    verify_liability_proof(single.root, leaf, single.proof(0))


def test_unknown_account_is_reported() -> None:
    """Asking for an account not in the tree raises UnknownLeafError naming it."""
    with pytest.raises(UnknownLeafError, match="no leaf for account 'stranger'"):
        _tree().leaf("stranger")


def test_proofs_round_trip_through_bytes_and_json() -> None:
    """A proof survives bytes and dict serialisation, and its size is the stated fixed size."""
    tree = _tree()
    for index in range(tree.root.leaf_count):
        proof = tree.proof(index)
        assert len(proof.to_bytes()) == tree.proof_size_bytes == 11 + 3 * (32 + 2 * 16)
        assert InclusionProof.from_bytes(proof.to_bytes(), 2) == proof
        assert InclusionProof.from_dict(proof.to_dict()) == proof
    rows_and_bytes = list(tree.iter_proof_bytes(batch_leaves=2))
    assert [proof for _, proof in rows_and_bytes] == [tree.proof(i).to_bytes() for i in range(5)]
    assert sorted(row for row, _ in rows_and_bytes) == list(range(5))


def test_malformed_proofs_and_roots_are_refused_as_format_errors() -> None:
    """Wrong prefixes, lengths, versions and non-decimal sums are ProofFormatErrors."""
    proof = _tree().proof(0)
    with pytest.raises(ProofFormatError, match="prefix"):
        InclusionProof.from_bytes(b"\x02" + proof.to_bytes()[1:], 2)
    with pytest.raises(ProofFormatError, match="need"):
        InclusionProof.from_bytes(proof.to_bytes()[:-1], 2)
    with pytest.raises(ProofFormatError, match="version 2"):
        InclusionProof.from_dict(proof.to_dict() | {"version": 2})
    bad_sum = proof.to_dict()
    bad_sum["siblings"][0]["sums"][0] = "1e3"
    with pytest.raises(ProofFormatError, match="decimal string"):
        InclusionProof.from_dict(bad_sum)
    with pytest.raises(ProofFormatError, match="no 'node_hash' field"):
        TreeRoot.from_dict(
            {"version": 1, "tree": "liabilities", "assets": [], "leaf_count": 0, "sums": []}
        )


def test_account_package_verifies_on_its_own() -> None:
    """The package one account receives (root, own leaf with salt, proof) verifies by itself."""
    tree = _tree()
    package = tree.package("budget/health")
    leaf = verify_liability_package(package, root_digest=tree.root.digest())
    assert leaf.amounts == BALANCES["budget/health"]


def test_public_listing_of_budget_lines_checks_against_the_root() -> None:
    """Public budget lines are published with salts and proofs; a full listing rebuilds the root."""
    tree = _tree()
    partial = tree.public_listing(["budget/defence", "budget/health"])
    root, leaves = verify_public_listing(partial, root_digest=tree.root.digest())
    assert root == tree.root
    assert {leaf.account_id for leaf in leaves} == {"budget/defence", "budget/health"}
    assert "holder-0001" not in str(partial)
    whole = tree.public_listing(BALANCES)
    for entry in whole["leaves"]:
        del entry["proof"]
    assert verify_public_listing(whole, complete=True)[0] == tree.root
    with pytest.raises(ProofFormatError, match="only a complete listing may omit proofs"):
        verify_public_listing(whole)


def _holdings() -> list[UtxoHolding | SafeBalanceHolding]:
    """A small reserve: two UTXOs and two Safe balances."""
    safe = "0x" + "ab" * 20
    return [
        UtxoHolding("11" * 32, 0, 150_000_000, bytes.fromhex("0020" + "33" * 32)),
        UtxoHolding("22" * 32, 1, 50_000_000, bytes.fromhex("0020" + "44" * 32)),
        SafeBalanceHolding(31337, safe, "ETH", None, 7 * 10**18),
        SafeBalanceHolding(31337, safe, "USDC", "0x" + "cd" * 20, 1_000_000),
    ]


def test_holdings_tree_totals_and_proofs() -> None:
    """Holdings are totalled per asset and each proves into the holdings root."""
    tree = HoldingsTree.build(_holdings())
    assert tree.totals() == {"BTC": 200_000_000, "ETH": 7 * 10**18, "USDC": 1_000_000}
    assert tree.root.leaf_count == 4
    for holding in _holdings():
        verify_holding_proof(
            tree.root, holding, tree.proof(holding), root_digest=tree.root.digest()
        )
    assert HoldingsTree.build(reversed(_holdings())).root == tree.root


def test_bad_holdings_are_refused() -> None:
    """A duplicate holding, a negative balance or a malformed address is refused by name."""
    with pytest.raises(DuplicateLeafError, match="listed twice"):
        HoldingsTree.build([*_holdings(), _holdings()[0]])
    with pytest.raises(NegativeAmountError, match="balance of ETH in Safe"):
        SafeBalanceHolding(1, "0x" + "ab" * 20, "ETH", None, -1)
    with pytest.raises(LeafError, match="Safe address"):
        SafeBalanceHolding(1, "0xabc", "ETH", None, 1)
