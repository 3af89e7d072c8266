"""The asset registry and the vault set an attestation commits to, gathered from the configuration.

The registry says what each asset code is (its chain, its token contract, decimals and symbol);
token decimals and symbols are read from the contract at the snapshot block, never typed in, so
the body states what the chain says. The vault set lists every Bitcoin vault script and every
Safe, so an auditor can refuse a coin or Safe that is not a vault and read every vault's balance
of every registered asset, listed in the snapshot or not.

Each EVM chain adds its native coin under its configured code (``ETH``, ``BNB``) and its tokens;
a code on two chains is refused.

Bitcoin vaults are ranged descriptors with no fixed list of scripts; the set holds, per vault,
the receive and change scripts at every index below ``max(next receive index, highest index of
a snapshot coin + 1)``: every address the treasury has handed out, on both branches, and every
address that holds a coin. It grows only as addresses are issued.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address

from custody.bitcoin.descriptor import Branch
from custody.bitcoin.reserve_proof import VaultCoin
from custody.bitcoin.vault import Vault as BitcoinVault
from custody.ethereum.chain import EthChain
from custody.ethereum.vault import Vault as SafeVault
from custody.exceptions import EvmRPCError
from reporting.attestation import (
    BITCOIN_ASSET,
    AssetInfo,
    AssetKind,
    VaultSet,
    bitcoin_chain,
    evm_chain,
)
from treasury.attest.errors import SnapshotError
from treasury.attest.snapshot import ETHER_ASSET

BITCOIN_DECIMALS = 8
"""Satoshis per bitcoin, as a power of ten (fixed by the protocol)."""

ETHER_DECIMALS = 18
"""Wei per ether, as a power of ten (fixed by the protocol)."""

DECIMALS_SELECTOR = function_signature_to_4byte_selector("decimals()")
SYMBOL_SELECTOR = function_signature_to_4byte_selector("symbol()")


def _token_call(chain: EthChain, token: str, selector: bytes, block: int, what: str) -> bytes:
    """The answer of a no-argument view call on ``token`` at ``block``."""
    call = {"to": to_checksum_address(token), "data": "0x" + selector.hex()}
    try:
        answer = chain.rpc.call("eth_call", call, hex(block))
    except EvmRPCError:
        raise SnapshotError(
            f"The token {token} reverted {what} at block {block}: it does not implement the "
            "ERC-20 metadata the asset registry states (decimals and symbol are read from the chain)."
        ) from None
    data = bytes.fromhex(str(answer).removeprefix("0x"))
    if not data:
        raise SnapshotError(
            f"The token {token} answered nothing to {what} at block {block}; is it an ERC-20 contract?"
        )
    return data


def token_info(chain: EthChain, token: str, block: int) -> AssetInfo:
    """An ERC-20's registry entry, its ``decimals()`` and ``symbol()`` read at ``block``."""
    try:
        (decimals,) = decode(
            ["uint8"], _token_call(chain, token, DECIMALS_SELECTOR, block, "decimals()")
        )
        (symbol,) = decode(
            ["string"], _token_call(chain, token, SYMBOL_SELECTOR, block, "symbol()")
        )
    except DecodingError:
        raise SnapshotError(
            f"The token {token} does not answer decimals() and symbol() as an ERC-20 does."
        ) from None
    return AssetInfo(
        chain=evm_chain(chain.chain_id),
        kind=AssetKind.ERC20,
        contract=str(to_checksum_address(token)),
        decimals=int(decimals),
        symbol=str(symbol),
    )


def asset_registry(
    network: str, chain: EthChain, tokens: Mapping[str, str], block: int
) -> dict[str, AssetInfo]:
    """Bitcoin, the Safe chain's ether and each token (asset code -> contract) at ``block``."""
    registry = bitcoin_registry(network)
    add_chain_assets(registry, chain, ETHER_ASSET, tokens, block)
    return registry


def bitcoin_registry(network: str) -> dict[str, AssetInfo]:
    """The registry's first entry: bitcoin on ``network`` (each EVM chain adds its own)."""
    return {
        BITCOIN_ASSET: AssetInfo(
            bitcoin_chain(network), AssetKind.NATIVE, None, BITCOIN_DECIMALS, BITCOIN_ASSET
        )
    }


def add_chain_assets(
    registry: dict[str, AssetInfo],
    chain: EthChain,
    native_asset: str,
    tokens: Mapping[str, str],
    block: int,
) -> None:
    """Add one EVM chain's native coin (as ``native_asset``) and tokens to ``registry``.

    An asset code names one asset on one chain: a code already registered (another chain's
    native coin, or the same token code on two chains) is refused, since the holdings of two
    different assets would be summed under it.
    """
    entries = {
        native_asset: AssetInfo(
            evm_chain(chain.chain_id), AssetKind.NATIVE, None, ETHER_DECIMALS, native_asset
        )
    }
    for code, token in sorted(tokens.items()):
        if code in entries:
            raise SnapshotError(f"The token {token} is named {code!r}, a native coin's code.")
        entries[code] = token_info(chain, token, block)
    for code, info in entries.items():
        if code in registry:
            raise SnapshotError(
                f"The asset code {code!r} of chain {chain.chain_id} is already registered on "
                f"{registry[code].chain}; one code cannot name assets on two chains."
            )
        registry[code] = info


def vault_set(
    vaults: Sequence[BitcoinVault], coins: Sequence[VaultCoin], safes: Sequence[SafeVault]
) -> VaultSet:
    """Every vault script issued or holding a coin, on both branches, and every Safe."""
    scripts: set[bytes] = set()
    for vault in vaults:
        held = [coin.index + 1 for coin in coins if coin.vault_name == vault.name]
        count = max([vault.next_receive_index, *held])
        for branch in (Branch.RECEIVE, Branch.CHANGE):
            scripts.update(vault.descriptor.script_pubkey(branch, i).data for i in range(count))
    return VaultSet(
        bitcoin_scripts=tuple(sorted(scripts)),
        safes=tuple(sorted((safe.chain_id, safe.address) for safe in safes)),
    )
