"""Generate ``merkle_v1.json``, the test vectors of SPEC-merkle.md, from a fixed seed.

Run ``.venv/bin/python -m reporting.vectors.generate_merkle_vectors`` to rewrite the file; a test
recomputes the vectors and requires the committed file to match byte for byte.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from reporting.holdings import (
    Holding,
    HoldingsTree,
    SafeBalanceHolding,
    UtxoHolding,
    holding_leaf_hash,
)
from reporting.merkle.encoding import FORMAT_VERSION, TreeKind, empty_hash
from reporting.merkle.liability_leaf import derive_salt
from reporting.sumtree import LiabilityTree

SEED = 20_181_139
"""Seed of every random choice below (nonces, amounts, txids, addresses)."""

VECTORS_PATH = Path(__file__).with_name("merkle_v1.json")
"""Where the committed vectors live."""

SATS_PER_BTC = 100_000_000
WEI_PER_ETH = 10**18

LIABILITY_CASES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("empty tree", ("BTC",), ()),
    ("one account", ("BTC",), ("budget/defence",)),
    ("three accounts: padding at the leaves", ("BTC", "ETH"), ("alice", "bob", "carol")),
    (
        "five accounts: unicode ids, wei above 64 bits, padding at two levels",
        ("BTC", "ETH", "USDC"),
        (
            "Ministère des Finances",
            "Økonomistyrelsen",
            "budget/health",
            "holder-0001",
            "holder-0002",
        ),
    ),
    (
        "eight accounts: a full tree",
        ("BTC", "ETH"),
        tuple(f"holder-{number:04d}" for number in range(8)),
    ),
)
"""Name, asset list and account ids of each liability case."""


def _amount(rng: random.Random, asset: str) -> int:
    """Draw an amount in base units, sometimes zero, with ETH often above 2**64 wei."""
    if rng.random() < 0.15:
        return 0
    if asset == "BTC":
        return rng.randrange(1, 50 * SATS_PER_BTC)
    if asset == "ETH":
        return rng.randrange(1, 5_000 * WEI_PER_ETH)
    return rng.randrange(1, 10**12)


def _liability_case(
    rng: random.Random, name: str, assets: tuple[str, ...], account_ids: tuple[str, ...]
) -> dict[str, Any]:
    """Build one liability case and record every intermediate byte string."""
    nonce = rng.randbytes(32)
    amounts = {account_id: [_amount(rng, asset) for asset in assets] for account_id in account_ids}
    columns = [
        [amounts[account_id][position] for account_id in account_ids]
        for position in range(len(assets))
    ]
    tree = LiabilityTree.build(assets, account_ids, columns, nonce)
    accounts = []
    for account_id in account_ids:
        leaf = tree.leaf(account_id)
        index = tree.index_of(account_id)
        proof = tree.proof(index)
        accounts.append(
            {
                "account_id": account_id,
                "amounts": [str(amount) for amount in amounts[account_id]],
                "salt": derive_salt(nonce, account_id).hex(),
                "leaf_bytes": leaf.to_bytes().hex(),
                "leaf_hash": leaf.leaf_hash().hex(),
                "leaf_index": index,
                "proof_bytes": proof.to_bytes().hex(),
                "proof": proof.to_dict(),
            }
        )
    return {
        "name": name,
        "assets": list(assets),
        "nonce": nonce.hex(),
        "accounts": accounts,
        "root": tree.root.to_dict(),
        "root_encoding": tree.root.encode().hex(),
    }


def _holdings(rng: random.Random) -> list[Holding]:
    """Draw a small reserve: three vault UTXOs and four Safe balances on two chains.

    Addresses are written in EIP-55 form, the only spelling a bundle may carry (SPEC-attestation
    R-GRAM-4); a leaf encodes the address's 20 bytes, so its case does not change any hash.
    """
    safe = str(to_checksum_address("0x" + rng.randbytes(20).hex()))
    token = str(to_checksum_address("0x" + rng.randbytes(20).hex()))
    holdings: list[Holding] = [
        UtxoHolding(
            txid=rng.randbytes(32).hex(),
            vout=rng.randrange(4),
            amount_sats=rng.randrange(1, 50 * SATS_PER_BTC),
            script_pubkey=b"\x00\x20" + rng.randbytes(32),
        )
        for _ in range(3)
    ]
    holdings += [
        SafeBalanceHolding(31337, safe, "ETH", None, rng.randrange(1, 10_000 * WEI_PER_ETH)),
        SafeBalanceHolding(31337, safe, "USDC", token, rng.randrange(1, 10**13)),
        SafeBalanceHolding(31338, safe, "ETH", None, 0),
        SafeBalanceHolding(31338, safe, "USDC", token, rng.randrange(1, 10**13)),
    ]
    return holdings


def _holding_dict(holding: Holding) -> dict[str, Any]:
    """Describe a holding's fields in JSON (amounts as decimal strings)."""
    if isinstance(holding, UtxoHolding):
        return {
            "kind": "utxo",
            "txid": holding.txid,
            "vout": holding.vout,
            "amount_sats": str(holding.amount_sats),
            "script_pubkey": holding.script_pubkey.hex(),
        }
    return {
        "kind": "safe_balance",
        "chain_id": holding.chain_id,
        "safe_address": holding.safe_address,
        "asset": holding.asset,
        "token_address": holding.token_address,
        "amount": str(holding.amount),
    }


def _holdings_case(rng: random.Random) -> dict[str, Any]:
    """Build the holdings case and record leaf bodies, hashes, root and proofs."""
    holdings = _holdings(rng)
    tree = HoldingsTree.build(holdings)
    return {
        "name": "three UTXOs and four Safe balances on two chains",
        "holdings": [
            {
                "fields": _holding_dict(holding),
                "leaf_bytes": holding.to_bytes().hex(),
                "leaf_hash": holding_leaf_hash(holding).hex(),
                "leaf_index": tree.holdings.index(holding),
                "proof_bytes": tree.proof(holding).to_bytes().hex(),
            }
            for holding in holdings
        ],
        "totals": {asset: str(total) for asset, total in tree.totals().items()},
        "root": tree.root.to_dict(),
        "root_encoding": tree.root.encode().hex(),
    }


def build_vectors(seed: int = SEED) -> dict[str, Any]:
    """Return every vector, drawn from ``seed`` in a fixed order."""
    rng = random.Random(seed)  # noqa: S311  (vectors must replay from a seed; they hold no secret)
    return {
        "version": FORMAT_VERSION,
        "seed": seed,
        "spec": "reporting/SPEC-merkle.md",
        "empty_hash": {kind.value: empty_hash(kind).hex() for kind in TreeKind},
        "liabilities": [_liability_case(rng, *case) for case in LIABILITY_CASES],
        "holdings": [_holdings_case(rng)],
    }


def render(vectors: dict[str, Any]) -> str:
    """Serialise vectors canonically: sorted keys, two-space indent, a final newline."""
    return json.dumps(vectors, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    """Rewrite the committed vectors file."""
    VECTORS_PATH.write_text(render(build_vectors()), encoding="utf-8")
    print(f"wrote {VECTORS_PATH}")


if __name__ == "__main__":
    main()
