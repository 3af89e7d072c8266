"""Hypothesis properties of both Merkle trees: proofs verify, any changed byte fails, sums add up."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reporting.exceptions import MerkleError
from reporting.holdings import (
    HoldingsTree,
    SafeBalanceHolding,
    UtxoHolding,
    holding_from_bytes,
    verify_holding_proof,
)
from reporting.merkle.liability_leaf import LiabilityLeaf, derive_salt
from reporting.merkle.proof import InclusionProof, verify_liability_proof
from reporting.merkle.reference_tree import rebuild_liability_tree
from reporting.sumtree import LiabilityTree

ASSET_LISTS = (("BTC",), ("BTC", "ETH"), ("BTC", "ETH", "USDC"))
AMOUNT_LIMIT = 1 << 100

account_ids = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P")), min_size=1, max_size=12
).map(lambda text: unicodedata.normalize("NFC", text))


@st.composite
def liability_inputs(draw: st.DrawFn) -> tuple[tuple[str, ...], dict[str, tuple[int, ...]], bytes]:
    """Draw an asset list, 1 to 40 distinct accounts with amounts, and a nonce."""
    assets = draw(st.sampled_from(ASSET_LISTS))
    ids = draw(st.lists(account_ids, min_size=1, max_size=40, unique=True))
    amounts = st.tuples(*[st.integers(min_value=0, max_value=AMOUNT_LIMIT) for _ in assets])
    balances = {account_id: draw(amounts) for account_id in ids}
    return assets, balances, draw(st.binary(min_size=32, max_size=32))


def _build(
    assets: tuple[str, ...], balances: dict[str, tuple[int, ...]], nonce: bytes
) -> LiabilityTree:
    """Build the fast tree of the drawn input."""
    return LiabilityTree.from_rows(assets, balances.items(), nonce)


@given(liability_inputs())
def test_every_leafs_proof_verifies(
    drawn: tuple[tuple[str, ...], dict[str, tuple[int, ...]], bytes],
) -> None:
    """Each account's own leaf and proof verify against the root and its digest."""
    tree = _build(*drawn)
    for account_id, amounts in drawn[1].items():
        leaf = tree.leaf(account_id)
        assert leaf.amounts == amounts
        verify_liability_proof(
            tree.root, leaf, tree.proof(tree.index_of(account_id)), root_digest=tree.root.digest()
        )


@given(liability_inputs())
def test_root_sums_equal_the_leaves_sums_and_the_reference_build(
    drawn: tuple[tuple[str, ...], dict[str, tuple[int, ...]], bytes],
) -> None:
    """The root's per-asset sums are the leaves' sums, and the fast builder equals the reference."""
    assets, balances, nonce = drawn
    tree = _build(*drawn)
    assert list(tree.root.sums) == [
        sum(amounts[j] for amounts in balances.values()) for j in range(len(assets))
    ]
    leaves = [
        LiabilityLeaf(account_id, amounts, derive_salt(nonce, account_id))
        for account_id, amounts in balances.items()
    ]
    reference = rebuild_liability_tree(assets, leaves)
    assert reference.root == tree.root
    for index in range(tree.root.leaf_count):
        assert reference.proof(index) == tree.proof(index)


def _parse_and_verify(tree: LiabilityTree, account_id: str, proof_bytes: bytes) -> None:
    """Parse serialised proof bytes and verify the account's leaf with them."""
    proof = InclusionProof.from_bytes(proof_bytes, len(tree.root.assets))
    verify_liability_proof(tree.root, tree.leaf(account_id), proof)


@given(liability_inputs(), st.data())
def test_changing_any_byte_of_a_proof_makes_it_fail(
    drawn: tuple[tuple[str, ...], dict[str, tuple[int, ...]], bytes], data: st.DataObject
) -> None:
    """Flipping bits in any byte of a serialised proof makes parsing or verification fail."""
    tree = _build(*drawn)
    account_id = data.draw(st.sampled_from(sorted(drawn[1])))
    proof_bytes = bytearray(tree.proof(tree.index_of(account_id)).to_bytes())
    position = data.draw(st.integers(min_value=0, max_value=len(proof_bytes) - 1))
    proof_bytes[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(MerkleError):
        _parse_and_verify(tree, account_id, bytes(proof_bytes))


@given(liability_inputs(), st.data())
def test_changing_any_byte_of_a_leaf_makes_it_fail(
    drawn: tuple[tuple[str, ...], dict[str, tuple[int, ...]], bytes], data: st.DataObject
) -> None:
    """Flipping bits in any byte of a leaf (salt, id length, id, amounts) makes it fail."""
    tree = _build(*drawn)
    account_id = data.draw(st.sampled_from(sorted(drawn[1])))
    leaf_bytes = bytearray(tree.leaf(account_id).to_bytes())
    position = data.draw(st.integers(min_value=0, max_value=len(leaf_bytes) - 1))
    leaf_bytes[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    proof = tree.proof(tree.index_of(account_id))
    with pytest.raises(MerkleError):
        verify_liability_proof(
            tree.root, LiabilityLeaf.from_bytes(bytes(leaf_bytes), len(drawn[0])), proof
        )


utxos = st.builds(
    UtxoHolding,
    txid=st.binary(min_size=32, max_size=32).map(bytes.hex),
    vout=st.integers(min_value=0, max_value=(1 << 32) - 1),
    amount_sats=st.integers(min_value=0, max_value=21_000_000 * 100_000_000),
    script_pubkey=st.binary(max_size=40),
)
safe_balances = st.builds(
    SafeBalanceHolding,
    chain_id=st.integers(min_value=1, max_value=1 << 40),
    safe_address=st.binary(min_size=20, max_size=20).map(lambda raw: "0x" + raw.hex()),
    asset=st.sampled_from(["ETH", "USDC", "WBTC"]),
    token_address=st.none() | st.binary(min_size=20, max_size=20).map(lambda raw: "0x" + raw.hex()),
    amount=st.integers(min_value=0, max_value=(1 << 256) - 1),
)


@settings(max_examples=60)
@given(st.lists(utxos | safe_balances, min_size=1, max_size=20, unique=True), st.data())
def test_holdings_proofs_verify_and_any_changed_byte_fails(
    holdings: list[UtxoHolding | SafeBalanceHolding], data: st.DataObject
) -> None:
    """Every holding proves into the holdings root; a changed byte of its leaf or proof fails."""
    tree = HoldingsTree.build(holdings)
    for holding in holdings:
        verify_holding_proof(tree.root, holding, tree.proof(holding))
    holding = data.draw(st.sampled_from(holdings))
    assert holding_from_bytes(holding.to_bytes()) == holding
    proof_bytes = bytearray(tree.proof(holding).to_bytes())
    leaf_bytes = bytearray(holding.to_bytes())
    target = data.draw(st.sampled_from([proof_bytes, leaf_bytes]))
    target[data.draw(st.integers(min_value=0, max_value=len(target) - 1))] ^= data.draw(
        st.integers(min_value=1, max_value=255)
    )
    with pytest.raises(MerkleError):
        verify_holding_proof(
            tree.root,
            holding_from_bytes(bytes(leaf_bytes)),
            InclusionProof.from_bytes(bytes(proof_bytes), 0),
        )
