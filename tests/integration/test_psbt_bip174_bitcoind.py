"""BIP-174's combiner, finalizer and extractor vectors through bitcoind, the path production uses
(custody combines and finalizes spends with ``combinepsbt``/``finalizepsbt``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from custody.devnet import BitcoinNode

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "bip174_vectors.json"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())["workflow"]
    return data


def test_bitcoind_combines_the_signers_outputs_into_the_combiner_vector(
    bitcoin_node: BitcoinNode, workflow: dict[str, Any]
) -> None:
    """combinepsbt of the two signers' PSBTs equals BIP-174's combined PSBT."""
    signed = [signer["psbt"] for signer in workflow["signers"]]
    assert bitcoin_node.rpc.call("combinepsbt", signed) == workflow["combiner"]["psbt"]


def test_bitcoind_finalizes_the_combined_psbt_into_the_finalizer_vector(
    bitcoin_node: BitcoinNode, workflow: dict[str, Any]
) -> None:
    """finalizepsbt without extraction equals BIP-174's finalized PSBT."""
    done = bitcoin_node.rpc.call("finalizepsbt", workflow["combiner"]["psbt"], False)
    assert done["complete"] is True
    assert done["psbt"] == workflow["finalizer"]["psbt"]


def test_bitcoind_extracts_the_network_transaction_of_the_extractor_vector(
    bitcoin_node: BitcoinNode, workflow: dict[str, Any]
) -> None:
    """Extracting from the finalized PSBT gives BIP-174's transaction hex byte for byte."""
    done = bitcoin_node.rpc.call("finalizepsbt", workflow["finalizer"]["psbt"], True)
    assert done["hex"] == workflow["extractor"]["transaction_hex"]
