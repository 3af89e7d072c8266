"""The verifier's own tree code (N-version checking): it agrees with every published vector, and
with the producer's code on random trees; the registry artifact it ships is the committed one."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reserve_verifier.exceptions import TreeError, TreeMismatchError
from reserve_verifier.holdings_tree import (
    Holding,
    SafeBalanceHolding,
    UtxoHolding,
    holdings_root,
    holdings_totals,
    leaf_hash,
)
from reserve_verifier.liability_tree import (
    LiabilityLeaf,
    derive_salt,
    liability_root,
    parse_leaf,
    verify_liability_package,
    verify_liability_proof,
    verify_public_listing,
)
from reserve_verifier.tree import (
    Tree,
    empty_record,
    fold,
    parse_proof,
    parse_proof_bytes,
    parse_root,
)

from reporting import holdings as producer_holdings
from reporting.sumtree import LiabilityTree

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "reporting" / "vectors" / "merkle_v1.json"
ASSET_LISTS = (("BTC",), ("BTC", "ETH"), ("BTC", "ETH", "USDC"))
AMOUNT_LIMIT = 1 << 100


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    """The committed vectors file, parsed."""
    parsed: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return parsed


def test_empty_nodes_match_the_vectors(vectors: dict[str, Any]) -> None:
    """The verifier's padding nodes are the vectors' empty hashes."""
    for tree in Tree:
        assert empty_record(tree, 0)[0].hex() == vectors["empty_hash"][tree.value]


def test_every_liability_vector_checks_with_the_verifiers_code(vectors: dict[str, Any]) -> None:
    """Salts, leaf bytes, leaf hashes, proofs (JSON and bytes), packages, the root and a complete
    listing of each liability vector all agree with the verifier's own code."""
    assert len(vectors["liabilities"]) == 5
    for case in vectors["liabilities"]:
        root = parse_root(case["root"])
        assert root.encoding().hex() == case["root_encoding"]
        assert root.digest().hex() == case["root"]["digest"]
        nonce = bytes.fromhex(case["nonce"])
        leaves = []
        for account in case["accounts"]:
            leaf = parse_leaf(account)
            assert derive_salt(nonce, account["account_id"]) == leaf.salt
            assert leaf.encoding().hex() == account["leaf_bytes"]
            assert leaf.record()[0].hex() == account["leaf_hash"]
            proof = parse_proof(account["proof"])
            assert proof == parse_proof_bytes(
                bytes.fromhex(account["proof_bytes"]), len(case["assets"])
            )
            assert proof.leaf_index == account["leaf_index"]
            verify_liability_proof(root, leaf, proof, root_digest=root.digest())
            package = {
                "version": 1,
                "root": case["root"],
                "leaf": {name: account[name] for name in ("account_id", "amounts", "salt")},
                "proof": account["proof"],
            }
            assert verify_liability_package(package, root_digest=root.digest()) == leaf
            leaves.append(leaf)
        assert liability_root(case["assets"], leaves) == root
        listing = [{"leaf": account} for account in case["accounts"]]
        assert verify_public_listing(root, listing, complete=True) == tuple(leaves)


def test_every_holdings_vector_checks_with_the_verifiers_code(vectors: dict[str, Any]) -> None:
    """Each holdings leaf encodes and hashes as published, proves into the root, and the leaves
    rebuild the root and its totals."""
    case = vectors["holdings"][0]
    root = parse_root(case["root"])
    assert root.encoding().hex() == case["root_encoding"]
    holdings = []
    for item in case["holdings"]:
        holding = _holding(item["fields"])
        assert holding.leaf_body().hex() == item["leaf_bytes"]
        assert leaf_hash(holding).hex() == item["leaf_hash"]
        proof = parse_proof_bytes(bytes.fromhex(item["proof_bytes"]), 0)
        assert proof.leaf_index == item["leaf_index"]
        fold(root, (leaf_hash(holding), ()), proof, root_digest=root.digest())
        holdings.append(holding)
    assert holdings_root(holdings) == root
    assert {asset: str(total) for asset, total in holdings_totals(holdings).items()} == case[
        "totals"
    ]


def _holding(fields: dict[str, Any]) -> Holding:
    """A verifier holding from a vector's ``fields``."""
    if fields["kind"] == "utxo":
        return UtxoHolding(
            fields["txid"],
            fields["vout"],
            int(fields["amount_sats"]),
            bytes.fromhex(fields["script_pubkey"]),
        )
    return SafeBalanceHolding(
        fields["chain_id"],
        fields["safe_address"],
        fields["asset"],
        fields["token_address"],
        int(fields["amount"]),
    )


account_ids = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P")), min_size=1, max_size=12
).map(lambda text: unicodedata.normalize("NFC", text))


@st.composite
def liability_inputs(draw: st.DrawFn) -> tuple[tuple[str, ...], dict[str, tuple[int, ...]], bytes]:
    """An asset list, 1 to 30 distinct accounts with amounts, and a snapshot nonce."""
    assets = draw(st.sampled_from(ASSET_LISTS))
    ids = draw(st.lists(account_ids, min_size=1, max_size=30, unique=True))
    amounts = st.tuples(*[st.integers(min_value=0, max_value=AMOUNT_LIMIT) for _ in assets])
    return (
        assets,
        {account_id: draw(amounts) for account_id in ids},
        draw(st.binary(min_size=32, max_size=32)),
    )


@settings(max_examples=60, deadline=None)
@given(liability_inputs())
def test_verifier_agrees_with_the_producer_on_random_liability_trees(
    drawn: tuple[tuple[str, ...], dict[str, tuple[int, ...]], bytes],
) -> None:
    """The producer's root is the verifier's rebuild from the same rows; every producer package
    and the producer's complete public listing verify with the verifier's code."""
    assets, rows, nonce = drawn
    produced = LiabilityTree.from_rows(assets, rows.items(), nonce)
    root = parse_root(produced.root.to_dict())
    leaves = [
        LiabilityLeaf(account_id, amounts, derive_salt(nonce, account_id))
        for account_id, amounts in rows.items()
    ]
    assert liability_root(assets, leaves) == root
    for account_id, amounts in rows.items():
        leaf = verify_liability_package(produced.package(account_id), root_digest=root.digest())
        assert (leaf.account_id, leaf.amounts) == (account_id, amounts)
    listing = produced.public_listing(rows)
    assert len(verify_public_listing(root, listing["leaves"], complete=True)) == len(rows)


@settings(max_examples=40, deadline=None)
@given(liability_inputs(), st.data())
def test_verifier_refuses_any_changed_byte_of_a_producer_proof(
    drawn: tuple[tuple[str, ...], dict[str, tuple[int, ...]], bytes], data: st.DataObject
) -> None:
    """Changing one byte of a sibling hash, or one amount, of a producer's package fails."""
    assets, rows, nonce = drawn
    produced = LiabilityTree.from_rows(assets, rows.items(), nonce)
    account_id = data.draw(st.sampled_from(sorted(rows)))
    package = produced.package(account_id)
    if package["proof"]["siblings"]:
        altered = json.loads(json.dumps(package))
        sibling = altered["proof"]["siblings"][
            data.draw(st.integers(0, len(package["proof"]["siblings"]) - 1))
        ]
        position = data.draw(st.integers(0, 31))
        raw = bytearray.fromhex(sibling["hash"])
        raw[position] ^= 1 << data.draw(st.integers(0, 7))
        sibling["hash"] = raw.hex()
        with pytest.raises(TreeError):
            verify_liability_package(altered, root_digest=produced.root.digest())
    inflated = json.loads(json.dumps(package))
    inflated["leaf"]["amounts"][0] = str(int(inflated["leaf"]["amounts"][0]) + 1)
    with pytest.raises(TreeMismatchError):
        verify_liability_package(inflated, root_digest=produced.root.digest())


addresses = st.binary(min_size=20, max_size=20).map(lambda raw: "0x" + raw.hex())
utxos = st.builds(
    lambda txid, vout, sats, script: (txid.hex(), vout, sats, script),
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.binary(max_size=60),
)
balances = st.tuples(
    st.integers(1, 2**64 - 1),
    addresses,
    st.sampled_from(("ETH", "USDC", "EURC")),
    st.none() | addresses,
    st.integers(0, 2**256 - 1),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(utxos, max_size=12), st.lists(balances, max_size=12))
def test_verifier_agrees_with_the_producer_on_random_holdings_trees(
    drawn_utxos: list[tuple[str, int, int, bytes]],
    drawn_balances: list[tuple[int, str, str, str | None, int]],
) -> None:
    """The producer's holdings root and totals are the verifier's rebuild of the same holdings."""
    produced = producer_holdings.HoldingsTree.build(
        [producer_holdings.UtxoHolding(*utxo) for utxo in dict.fromkeys(drawn_utxos)]
        + [producer_holdings.SafeBalanceHolding(*item) for item in dict.fromkeys(drawn_balances)]
    )
    mine = [UtxoHolding(*utxo) for utxo in dict.fromkeys(drawn_utxos)] + [
        SafeBalanceHolding(*item) for item in dict.fromkeys(drawn_balances)
    ]
    assert holdings_root(mine) == parse_root(produced.root.to_dict())
    assert dict(holdings_totals(mine)) == dict(produced.totals())


def test_padding_sibling_must_be_the_empty_node(vectors: dict[str, Any]) -> None:
    """A proof whose padding sibling is replaced by another node is refused by name."""
    case = vectors["liabilities"][2]
    account = next(a for a in case["accounts"] if a["leaf_index"] == 2)
    proof = parse_proof(account["proof"])
    forged = type(proof)(
        proof.tree, proof.leaf_index, ((b"\x01" * 32, (0, 0)), *proof.siblings[1:])
    )
    with pytest.raises(TreeMismatchError, match="empty padding node"):
        fold(parse_root(case["root"]), parse_leaf(account).record(), forged)


def test_the_registry_artifact_the_verifier_ships_is_the_committed_one() -> None:
    """The package data copy of the registry's compiled code is byte for byte the committed artifact."""
    shipped = REPO / "verifier" / "reserve_verifier" / "AttestationRegistry.json"
    committed = REPO / "reporting" / "contracts" / "AttestationRegistry.json"
    assert shipped.read_bytes() == committed.read_bytes()
