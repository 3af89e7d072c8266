"""EVM checks against the auditor's nodes: the snapshot block, each Safe balance, each registered
token's decimals and symbol, every vault Safe's balance of every registered asset (listed or
not), each Safe's EIP-1271 signature of the digest, and the registry publication on the services
chain.

Checking only the balances a bundle lists lets it hide one (leave it out) or relabel one (state a
token's amount as ether, read from the token); reading every vault Safe's balance of every asset
the registry puts on the chain, native coin included, leaves neither room.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reserve_verifier.context import Context
from reserve_verifier.evm import (
    EIP1271_MAGIC,
    PUBLISHED_EVENT_SIGNATURE,
    eip1271_call,
    evm_balance,
    registry_runtime_code,
    token_metadata,
)
from reserve_verifier.exceptions import VerifierError
from reserve_verifier.fields import amount, hex_bytes


def check_evm_block(w3: Any, snapshot: Mapping[str, Any]) -> str:
    """The snapshot's block number has the attested hash on the node's chain."""
    block = w3.eth.get_block(snapshot["block_number"])
    found = "0x" + bytes(block["hash"]).hex()
    if found != snapshot["block_hash"].lower():
        raise VerifierError(
            f"Chain {snapshot['chain_id']}'s block {snapshot['block_number']} is {found}, not the attested {snapshot['block_hash']}."
        )
    return f"block {snapshot['block_number']} is {found}"


def check_balance(w3: Any, snapshot: Mapping[str, Any], balance: Mapping[str, Any]) -> str:
    """The Safe held the attested amount at the snapshot block."""
    attested = amount(balance["amount"], f"balance of {balance['asset']}")
    found = evm_balance(
        w3, balance["safe_address"], balance["token_address"], snapshot["block_number"]
    )
    if found != attested:
        raise VerifierError(
            f"The Safe {balance['safe_address']} held {found} {balance['asset']} base units at block {snapshot['block_number']}, not the attested {attested}."
        )
    return f"{found} base units at block {snapshot['block_number']}"


def check_token_metadata(
    w3: Any, snapshot: Mapping[str, Any], code: str, entry: Mapping[str, Any]
) -> str:
    """The registered token's ``decimals()`` and ``symbol()`` at the snapshot block are the
    registry's."""
    decimals, symbol = token_metadata(w3, entry["contract"], snapshot["block_number"])
    if decimals != entry["decimals"] or symbol != entry["symbol"]:
        raise VerifierError(
            f"The contract {entry['contract']} of {code} answers decimals {decimals} and symbol {symbol!r} at block {snapshot['block_number']}, not the registry's {entry['decimals']} and {entry['symbol']!r}."
        )
    return f"{entry['contract']}: decimals {decimals}, symbol {symbol!r}"


def check_vault_holdings(
    w3: Any,
    snapshot: Mapping[str, Any],
    safe: str,
    registry: Mapping[str, Mapping[str, Any]],
) -> str:
    """The vault Safe holds, at the snapshot block, exactly the attested amount (0 if unlisted)
    of every asset the registry puts on this chain, and no native coin that none attests."""
    chain = f"evm:{snapshot['chain_id']}"
    block = snapshot["block_number"]
    attested: dict[str, int] = {}
    for balance in snapshot["balances"]:
        if str(balance["safe_address"]).lower() == safe.lower():
            value = amount(balance["amount"], f"balance of {balance['asset']}")
            attested[balance["asset"]] = attested.get(balance["asset"], 0) + value
    mismatches: list[str] = []
    native_registered = False
    for code, entry in sorted(registry.items()):
        if entry["chain"] != chain:
            continue
        native_registered |= entry["kind"] == "native"
        token = None if entry["kind"] == "native" else entry["contract"]
        found = evm_balance(w3, safe, token, block)
        if found != attested.get(code, 0):
            mismatches.append(
                f"{found} {code} base units on chain, {attested.get(code, 0)} attested"
            )
    if not native_registered:
        ether = evm_balance(w3, safe, None, block)
        if ether:
            mismatches.append(f"{ether} wei of the native coin, which no registered asset attests")
    if mismatches:
        raise VerifierError(
            f"The vault Safe {safe} at block {block} holds other than attested: {'; '.join(mismatches)} (a hidden or relabelled balance)."
        )
    assets = [code for code, entry in registry.items() if entry["chain"] == chain]
    return f"every registered asset of {chain} ({', '.join(sorted(assets)) or 'none'}) as attested at block {block}"


def check_eip1271(ctx: Context, slot: Mapping[str, Any], w3: Any) -> str:
    """The Safe accepts its owners' signature of the digest at the snapshot block."""
    produced = {
        (item["chain_id"], item["safe_address"].lower()): item["signature"]
        for item in ctx.bundle.proofs_of_control.get("eip1271", [])
    }
    signature = produced.get((slot["chain_id"], slot["safe_address"].lower()))
    if not signature:
        raise VerifierError(
            f"The Safe {slot['safe_address']} has no EIP-1271 signature of the digest."
        )
    answer = eip1271_call(
        w3,
        slot["safe_address"],
        ctx.digest,
        hex_bytes(signature, "EIP-1271 signature"),
        slot["block_number"],
    )
    if answer != EIP1271_MAGIC:
        raise VerifierError(
            f"The Safe {slot['safe_address']} does not accept the signature of the digest at block {slot['block_number']} (isValidSignature returned 0x{answer.hex()})."
        )
    return f"isValidSignature returns 0x1626ba7e at block {slot['block_number']}"


def check_services_anchor(ctx: Context, w3: Any) -> str:
    """The registry (running the known code) logged this digest, by its publisher, in sequence."""
    anchor = ctx.bundle.anchors.get("services")
    if not anchor:
        raise VerifierError(
            "The services-chain anchor is missing: no registry publication is recorded."
        )
    registry = ctx.body["registry"]
    if w3.eth.chain_id != registry["chain_id"]:
        raise VerifierError(
            f"The services RPC serves chain {w3.eth.chain_id}, not the registry's chain {registry['chain_id']}."
        )
    if anchor["registry"].lower() != registry["address"].lower():
        raise VerifierError("The anchor names another registry than the bundle's body.")
    known = registry_runtime_code()
    code = bytes(w3.eth.get_code(w3.to_checksum_address(registry["address"])))
    if code != known:
        raise VerifierError(
            f"The code at {registry['address']} is not the attestation registry's compiled code."
        )
    receipt = w3.eth.get_transaction_receipt(anchor["tx_hash"])
    if receipt["status"] != 1 or "0x" + bytes(receipt["blockHash"]).hex() != anchor["block_hash"]:
        raise VerifierError("The publication transaction failed or is in another block.")
    logs = [entry for entry in receipt["logs"] if entry["logIndex"] == anchor["log_index"]]
    if not logs or logs[0]["address"].lower() != registry["address"].lower():
        raise VerifierError(f"The registry logged nothing at log index {anchor['log_index']}.")
    topics = [bytes(topic) for topic in logs[0]["topics"]]
    if len(topics) != 4 or topics[0] != bytes(w3.keccak(PUBLISHED_EVENT_SIGNATURE)):
        raise VerifierError("The log at the anchor's index is not a Published event.")
    if topics[1] != ctx.digest:
        raise VerifierError(
            f"The registry anchor points at another digest: it published {topics[1].hex()}, not {ctx.digest.hex()}."
        )
    publisher = "0x" + topics[3][12:].hex()
    if publisher != registry["publisher"].lower():
        raise VerifierError(
            f"The digest was published by {publisher}, not the treasury's publisher {registry['publisher']}."
        )
    sequence = int.from_bytes(topics[2], "big")
    previous = bytes(logs[0]["data"])[:32].hex()
    if sequence != ctx.body["sequence"] or previous != ctx.body["previous_digest"]:
        raise VerifierError(
            f"Attestation chain gap: the registry recorded this digest as number {sequence} after {previous}, but the bundle claims number {ctx.body['sequence']} after {ctx.body['previous_digest']}."
        )
    return f"Published by {publisher} as number {sequence} in block {receipt['blockNumber']}"
