"""Test support: the asset registry and vault set an attestation's inputs must carry.

Tests that build ``AttestationInputs`` by hand (without ``treasury attest``) state the registry
the way the treasury gathers it: Bitcoin and ether as native coins, each token with the decimals
and symbol its contract answers; and a vault set of the snapshot's own scripts and Safes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from custody.ethereum.chain import EthChain
from custody.ethereum.dev_token import deploy_dev_token
from reporting.attestation import (
    AssetInfo,
    AssetKind,
    BitcoinSnapshot,
    EvmSnapshot,
    VaultSet,
    bitcoin_chain,
    evm_chain,
)
from reporting.bundle import Bundle


def asset_registry(
    chain_id: int,
    tokens: Mapping[str, tuple[str, int, str]] | None = None,
    *,
    network: str = "regtest",
) -> dict[str, AssetInfo]:
    """BTC on ``network``, ETH on ``chain_id``, and each token: code -> (contract, decimals, symbol)."""
    registry = {
        "BTC": AssetInfo(bitcoin_chain(network), AssetKind.NATIVE, None, 8, "BTC"),
        "ETH": AssetInfo(evm_chain(chain_id), AssetKind.NATIVE, None, 18, "ETH"),
    }
    for code, (contract, decimals, symbol) in (tokens or {}).items():
        registry[code] = AssetInfo(evm_chain(chain_id), AssetKind.ERC20, contract, decimals, symbol)
    return registry


def snapshot_vaults(
    bitcoin: BitcoinSnapshot, evm: Iterable[EvmSnapshot], extra_scripts: Iterable[bytes] = ()
) -> VaultSet:
    """The vault set of a snapshot: every script its UTXOs pay, every Safe it lists."""
    scripts = {utxo.script_pubkey for utxo in bitcoin.utxos} | set(extra_scripts)
    safes = {
        (snapshot.chain_id, balance.safe_address)
        for snapshot in evm
        for balance in snapshot.balances
    }
    unique = {(chain, safe.lower()): (chain, safe) for chain, safe in safes}
    return VaultSet(tuple(sorted(scripts)), tuple(sorted(unique.values())))


METADATA_TOKEN_SYMBOL = "USDX"
METADATA_TOKEN_DECIMALS = 6


def deploy_metadata_token(chain: EthChain, deployer: str, supply: int) -> str:
    """Deploy a devnet token answering ``symbol()`` USDX and ``decimals()`` 6; its EIP-55 address."""
    return deploy_dev_token(
        chain,
        deployer,
        supply,
        name="Test Dollar",
        symbol=METADATA_TOKEN_SYMBOL,
        decimals=METADATA_TOKEN_DECIMALS,
    )


OFFLINE_EIP1271_SIGNATURE = "00" * 65
"""A Safe signature placeholder for offline tests: offline only its presence is checked (the Safe
itself checks it online, ``isValidSignature``)."""


def with_offline_safe_signatures(bundle: Bundle) -> Bundle:
    """``bundle`` with a placeholder EIP-1271 signature for each Safe slot its body lists."""
    slots = bundle.body["proofs_of_control"]["eip1271"]
    if not slots:
        return bundle
    return bundle.with_proof(
        "eip1271",
        [
            {
                "chain_id": slot["chain_id"],
                "safe_address": slot["safe_address"],
                "signature": OFFLINE_EIP1271_SIGNATURE,
            }
            for slot in slots
        ],
    )
