"""The snapshot producer: every vault coin and Safe balance at one confirmed block per chain.

Bitcoin: the snapshot height is the tip less ``confirmations - 1``. Each vault's watch-only wallet
lists its coins with that many confirmations; each coin's creating block must be at or below the
snapshot height and on the best chain, its script must be the vault's at the descriptor path the
wallet reports, and the snapshot block must still be the best chain's when the listing ends.
(A coin spent after the snapshot height but before the listing is left out: the snapshot never
overstates.) EVM chains: every Safe's native-coin and tracked-token balances read at the snapshot
block number, whose hash must not change while they are read; one snapshot per chain.

The chain reads are custody's (``custody.bitcoin.observe``, ``custody.ethereum.balances``);
this module decides what belongs in the snapshot. ``reporting`` (which the verifier imports)
never reads custody.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from custody.bitcoin import observe
from custody.bitcoin.reserve_proof import VaultCoin
from custody.bitcoin.rpc import BitcoinRPC
from custody.bitcoin.vault import Vault as BitcoinVault
from custody.bitcoin_network import BitcoinNetwork
from custody.ethereum.balances import ether_balance, token_balance
from custody.ethereum.chain import EthChain
from custody.ethereum.vault import Vault as SafeVault
from reporting.attestation import BitcoinSnapshot, BlockRef, EvmSnapshot, SnapshotUtxo
from reporting.holdings import SafeBalanceHolding
from treasury.attest.errors import SnapshotError

ETHER_ASSET = "ETH"


def _snapshot_height(tip: int, confirmations: int) -> int:
    if isinstance(confirmations, bool) or not isinstance(confirmations, int) or confirmations < 1:
        raise SnapshotError(
            f"The confirmations must be a whole number >= 1, not {confirmations!r}."
        )
    height = tip - confirmations + 1
    if height < 0:
        raise SnapshotError(
            f"The chain has {tip + 1} blocks; a snapshot {confirmations} confirmations deep "
            "does not exist yet."
        )
    return height


def _vault_coins(
    rpc: BitcoinRPC, vault: BitcoinVault, height: int, confirmations: int
) -> list[tuple[SnapshotUtxo, VaultCoin]]:
    """The vault's coins created at or below ``height`` on the best chain, checked as its own."""
    wallet = rpc.wallet(vault.wallet_name)
    found: list[tuple[SnapshotUtxo, VaultCoin]] = []
    for coin in observe.unspent_coins(wallet, confirmations):
        outpoint = f"{coin.txid}:{coin.vout}"
        created = observe.confirming_block(wallet, coin.txid)
        if created is None or created.height > height:
            continue  # mined above the snapshot while we listed: not part of it
        if observe.block_hash(rpc, created.height) != created.hash:
            raise SnapshotError(
                f"The block {created.hash} that created {outpoint} is not on the best chain "
                f"at height {created.height}; take the snapshot again once the chain settles."
            )
        if coin.path is None:
            raise SnapshotError(
                f"The coin {outpoint} in vault {vault.name!r} has no receive or change path in "
                "its descriptor; the wallet does not solve it as a vault coin."
            )
        branch, index = coin.path
        if vault.descriptor.script_pubkey(branch, index).data != coin.script_pubkey:
            raise SnapshotError(
                f"The coin {outpoint} pays a script that is not vault {vault.name!r}'s "
                f"{branch.name.lower()} address {index}."
            )
        utxo = SnapshotUtxo(
            txid=coin.txid,
            vout=coin.vout,
            amount_sats=coin.amount_sats,
            script_pubkey=coin.script_pubkey,
            created=BlockRef(created.height, created.hash),
        )
        found.append((utxo, VaultCoin(coin.txid, coin.vout, vault.name, branch, index)))
    return found


def bitcoin_snapshot(
    rpc: BitcoinRPC,
    vaults: Sequence[BitcoinVault],
    *,
    confirmations: int = 1,
    network: BitcoinNetwork = BitcoinNetwork.REGTEST,
) -> tuple[BitcoinSnapshot, tuple[VaultCoin, ...]]:
    """Every vault coin at the confirmed snapshot height, and where each sits in its vault.

    ``network`` is the network the bundle states (``reporting/SPEC-attestation.md``).
    """
    height = _snapshot_height(observe.tip_height(rpc), confirmations)
    block_hash = observe.block_hash(rpc, height)
    found = [pair for vault in vaults for pair in _vault_coins(rpc, vault, height, confirmations)]
    if block_hash is None or observe.block_hash(rpc, height) != block_hash:
        raise SnapshotError(
            f"The block at the snapshot height {height} changed while the coins were listed "
            "(a reorganisation); take the snapshot again."
        )
    utxos = tuple(utxo for utxo, _ in found)
    coins = tuple(coin for _, coin in found)
    return BitcoinSnapshot(network.value, BlockRef(height, block_hash), utxos), coins


def evm_snapshot(
    chain: EthChain,
    safes: Sequence[SafeVault],
    tokens: Mapping[str, str],
    *,
    confirmations: int = 1,
    native_asset: str = ETHER_ASSET,
) -> EvmSnapshot:
    """Every Safe's native coin (as ``native_asset``: ``ETH``, ``BNB``) and ``tokens`` (asset
    code -> contract) balances at the snapshot block."""
    number = _snapshot_height(chain.block_number(), confirmations)
    block_hash = chain.block_hash(number)
    balances: list[SafeBalanceHolding] = []
    for safe in safes:
        if safe.chain_id != chain.chain_id:
            raise SnapshotError(
                f"The Safe vault {safe.name!r} lives on chain {safe.chain_id}, not on the node's "
                f"chain {chain.chain_id}."
            )
        ether = ether_balance(chain, safe.address, number)
        balances.append(SafeBalanceHolding(chain.chain_id, safe.address, native_asset, None, ether))
        for asset, token in sorted(tokens.items()):
            amount = token_balance(chain, token, safe.address, number)
            balances.append(SafeBalanceHolding(chain.chain_id, safe.address, asset, token, amount))
    if block_hash is None or chain.block_hash(number) != block_hash:
        raise SnapshotError(
            f"Chain {chain.chain_id}'s block {number} changed while the balances were read; "
            "take the snapshot again."
        )
    return EvmSnapshot(chain.chain_id, BlockRef(number, block_hash), tuple(balances))
