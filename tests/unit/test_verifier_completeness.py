"""Two forgeries an outside auditor found accepted offline, each built with the real keys (the
body re-signed, the reserve proof re-made) so that only the rule under test can catch it:

- a complete public listing whose tree has two leaves swapped (every proof is valid for the
  forged tree; only rebuilding the root from the listing in canonical order shows it);
- a UTXO listed twice with another amount (the reserve proof spends it once; comparing sets of
  outpoints let the holdings count it twice).
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from bundle_support import failed
from reserve_verifier import verify_bundle
from reserve_verifier.exceptions import VerifierError
from reserve_verifier.liability_tree import parse_leaf
from reserve_verifier.psbt import check_reserve_psbt
from reserve_verifier.tree import Record, Tree, parent, top
from test_attestation_tamper import LIABILITIES, inputs, reserve_psbt, signed

from reporting.attestation import build_attestation
from reporting.bundle import Bundle

ALL_ACCOUNTS = tuple(sorted(LIABILITIES))


def _complete() -> Bundle:
    """A real signed bundle that publishes every account (a complete listing)."""
    return signed(build_attestation(inputs(public_accounts=ALL_ACCOUNTS)))


def _proof(records: list[Record], index: int, assets: list[str]) -> dict[str, Any]:
    """The inclusion proof of ``records[index]`` in the tree over ``records`` in that order."""
    siblings: list[dict[str, Any]] = []
    level, position = list(records), index
    empty = top(Tree.LIABILITIES, assets, [])
    while len(level) > 1:
        if len(level) % 2:
            level.append(empty)
        sibling = level[position ^ 1]
        siblings.append({"hash": sibling[0].hex(), "sums": [str(value) for value in sibling[1]]})
        level = [
            parent(Tree.LIABILITIES, assets, level[i], level[i + 1])
            for i in range(0, len(level), 2)
        ]
        position //= 2
    return {"version": 1, "tree": "liabilities", "leaf_index": index, "siblings": siblings}


def _swap_two_leaves(body: dict[str, Any]) -> None:
    """Re-build the liability tree with its first two leaves swapped, proofs and root included."""
    section = body["liabilities"]
    assets = list(section["root"]["assets"])
    entries = sorted(section["public_listing"], key=lambda entry: entry["proof"]["leaf_index"])
    entries[0], entries[1] = entries[1], entries[0]
    records = [parse_leaf(entry["leaf"]).record() for entry in entries]
    node_hash, sums = top(Tree.LIABILITIES, assets, records)
    template = section["public_listing"][0]["proof"]
    for index, entry in enumerate(entries):
        proof = _proof(records, index, assets)
        assert set(proof) == set(template), "the proof shape must stay the producer's"
        entry["proof"] = proof
    root = section["root"]
    root["node_hash"] = node_hash.hex()
    root["sums"] = [str(value) for value in sums]
    root.pop("digest", None)
    section["public_listing"] = entries


def _resigned(edit: Any, honest: Bundle, **proof: Any) -> Bundle:
    body = copy.deepcopy(dict(honest.body))
    edit(body)
    return signed(Bundle(body), **proof)


def test_a_complete_listing_is_rebuilt_so_swapped_leaves_are_refused() -> None:
    """The honest complete listing verifies by rebuilding; the swapped tree's proofs all verify
    on their own, but the rebuild in canonical (salt) order refuses it."""
    honest = _complete()
    report = verify_bundle(honest.to_bytes())
    assert not report.failed(), report.render()
    line = next(check for check in report.checks if check.name == "published liabilities")
    assert "rebuilt" in line.reason

    forged = _resigned(_swap_two_leaves, honest)
    found = failed(verify_bundle(forged.to_bytes()))
    assert set(found) == {"published liabilities"}, found
    assert "root hash mismatch" in found["published liabilities"].lower()


def test_a_partial_listing_is_checked_proof_by_proof() -> None:
    """With some accounts unpublished there is nothing to rebuild; the report says how many."""
    report = verify_bundle(signed(build_attestation(inputs())).to_bytes())
    line = next(check for check in report.checks if check.name == "published liabilities")
    assert line.reason.startswith(f"2 of {len(LIABILITIES)} accounts are published")


def test_an_outpoint_listed_twice_with_another_amount_is_refused() -> None:
    """The duplicate inflates holdings by 5 BTC; the reserve proof spends the outpoint once and
    was re-made for the forged digest, so only counting each outpoint once catches it."""
    honest = signed(build_attestation(inputs()))

    def duplicate(body: dict[str, Any]) -> None:
        utxos = body["snapshot"]["bitcoin"]["utxos"]
        extra = dict(utxos[0], amount=str(int(utxos[0]["amount"]) + 5 * 10**8))
        utxos.insert(1, extra)
        totals = body["holdings"]["totals"]
        totals["BTC"] = str(int(totals["BTC"]) + 5 * 10**8)

    def once_each(bundle: Bundle) -> str:
        seen: dict[tuple[str, int], dict[str, Any]] = {}
        for utxo in bundle.body["snapshot"]["bitcoin"]["utxos"]:
            seen[utxo["txid"], utxo["vout"]] = utxo
        return reserve_psbt(bundle, list(seen.values()))

    forged = _resigned(duplicate, honest, psbt=once_each)
    # As a file, and as a bundle object: the grammar refuses the repeated outpoint first.
    for given in (forged.to_bytes(), forged):
        reason = failed(verify_bundle(given))["bundle format"]
        assert "utxo" in reason.lower()
    # The reserve proof's own check does not rely on the grammar: it counts each outpoint once.
    utxos = [
        (u["txid"], u["vout"], int(u["amount"]), bytes.fromhex(u["script_pubkey"]))
        for u in forged.body["snapshot"]["bitcoin"]["utxos"]
    ]
    psbt = base64.b64decode(forged.proofs_of_control["bitcoin_reserve_proof"]["psbt"])
    with pytest.raises(VerifierError, match="counted twice"):
        check_reserve_psbt(psbt, forged.digest, utxos, "regtest")
