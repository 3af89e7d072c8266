"""Bitcoin checks: the BIP-127 reserve proof (offline, and refused by a node if one is given),
and against the auditor's bitcoind the snapshot block, each UTXO, and the OP_RETURN anchor.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from reserve_verifier.bitcoin_node import find_spend
from reserve_verifier.bitcoin_tx import transactions
from reserve_verifier.context import Context
from reserve_verifier.exceptions import VerifierError
from reserve_verifier.fields import amount, hex_bytes
from reserve_verifier.psbt import check_reserve_psbt

OP_RETURN_PREFIX = bytes.fromhex("6a25") + b"NRAT" + b"\x01"
"""OP_RETURN, a 37-byte push, the anchor magic and payload version; the digest follows."""


def check_reserve_proof(ctx: Context) -> str:
    """The PSBT proves control of exactly the attested UTXOs, committed to this digest."""
    psbt_text = (ctx.bundle.proofs_of_control.get("bitcoin_reserve_proof") or {}).get("psbt")
    if not psbt_text:
        raise VerifierError("The Bitcoin reserve proof (BIP-127 PSBT) is missing.")
    network = ctx.body["snapshot"]["bitcoin"]["network"]
    final = check_reserve_psbt(
        base64.b64decode(psbt_text, validate=True),
        ctx.digest,
        [
            (
                utxo["txid"],
                utxo["vout"],
                amount(utxo["amount"], "UTXO amount"),
                hex_bytes(utxo["script_pubkey"], "UTXO script"),
            )
            for utxo in ctx.utxos()
        ],
        network,
    )
    if ctx.bitcoin is None:
        return "the PSBT spends exactly the attested UTXOs plus the digest's commitment input, and every attested input is signed"
    verdict = ctx.bitcoin.call("testmempoolaccept", [final.hex()])[0]
    if verdict.get("allowed") or verdict.get("reject-reason") != "missing-inputs":
        raise VerifierError(
            f"The reserve proof is not unbroadcastable as it must be: the node says {verdict.get('reject-reason')!r}."
        )
    return "the PSBT spends exactly the attested UTXOs plus the digest's commitment input, every attested input is signed, and the node refuses it (missing-inputs)"


def check_bitcoin_block(ctx: Context) -> str:
    """The snapshot block is the best chain's block at its height."""
    snapshot = ctx.body["snapshot"]["bitcoin"]
    best = ctx.bitcoin_node().call("getblockhash", snapshot["height"])
    if best != snapshot["block_hash"]:
        raise VerifierError(
            f"The snapshot block {snapshot['block_hash']} is not the best chain's block at height {snapshot['height']} ({best})."
        )
    return f"block {snapshot['height']} is {best} on the best chain"


def check_utxo(ctx: Context, utxo: Mapping[str, Any]) -> str:
    """The UTXO was created as attested at or below the snapshot and unspent at its height."""
    node = ctx.bitcoin_node()
    height = ctx.body["snapshot"]["bitcoin"]["height"]
    outpoint = f"{utxo['txid']}:{utxo['vout']}"
    header = node.call("getblockheader", utxo["created_block_hash"])
    if header["confirmations"] < 1 or header["height"] != utxo["created_height"]:
        raise VerifierError(
            f"The block said to create {outpoint} is not on the best chain at height {utxo['created_height']}."
        )
    if header["height"] > height:
        raise VerifierError(f"The UTXO {outpoint} was created after the snapshot.")
    raw = node.call("getrawtransaction", utxo["txid"], False, utxo["created_block_hash"])
    outputs = transactions().Transaction.parse_hex(raw, network=ctx.network()).outputs
    if utxo["vout"] >= len(outputs):
        raise VerifierError(f"The transaction {utxo['txid']} has no output {utxo['vout']}.")
    output = outputs[utxo["vout"]]
    if output.value != amount(utxo["amount"], "UTXO amount") or bytes(
        output.lock_script
    ) != hex_bytes(utxo["script_pubkey"], "UTXO script"):
        raise VerifierError(
            f"The output {outpoint} holds {output.value} sats to another script or amount than attested ({utxo['amount']})."
        )
    if node.call("gettxout", utxo["txid"], utxo["vout"], False) is not None:
        return f"created at height {header['height']}, unspent now"
    spend = find_spend(node, utxo["txid"], utxo["vout"], header["height"] + 1, height)
    if spend is not None:
        raise VerifierError(
            f"The UTXO {outpoint} was spent before the snapshot: by {spend[0]} at height {spend[1]} (snapshot height {height})."
        )
    return f"created at height {header['height']}, spent only after the snapshot"


def check_bitcoin_anchor(ctx: Context) -> str:
    """An OP_RETURN on the best chain carries this digest."""
    node = ctx.bitcoin_node()
    anchor = ctx.bundle.anchors.get("bitcoin")
    if not anchor:
        raise VerifierError("The Bitcoin anchor is missing: no OP_RETURN transaction is recorded.")
    header = node.call("getblockheader", anchor["block_hash"])
    if header["confirmations"] < 1 or header["height"] != anchor["height"]:
        raise VerifierError(
            f"The anchor's block {anchor['block_hash']} is not on the best chain at height {anchor['height']}."
        )
    raw = node.call("getrawtransaction", anchor["txid"], False, anchor["block_hash"])
    outputs = transactions().Transaction.parse_hex(raw, network=ctx.network()).outputs
    if anchor["vout"] >= len(outputs):
        raise VerifierError(f"The anchor transaction has no output {anchor['vout']}.")
    script = bytes(outputs[anchor["vout"]].lock_script)
    if not script.startswith(OP_RETURN_PREFIX) or len(script) != len(OP_RETURN_PREFIX) + 32:
        raise VerifierError(
            f"The anchor output {anchor['txid']}:{anchor['vout']} is not an attestation OP_RETURN."
        )
    carried = script[len(OP_RETURN_PREFIX) :]
    if carried != ctx.digest:
        raise VerifierError(
            f"The Bitcoin anchor points at another digest: it carries {carried.hex()}, not {ctx.digest.hex()}."
        )
    return f"OP_RETURN in {anchor['txid']} at height {anchor['height']} ({header['confirmations']} confirmations)"
