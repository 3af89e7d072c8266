"""The snapshot producer: every vault coin and Safe balance at one confirmed block per chain.

Bitcoin: the snapshot height is the tip less ``confirmations - 1``. Each vault's watch-only wallet
lists its coins with that many confirmations; each coin's creating block must be at or below the
snapshot height and on the best chain, its script must be the vault's at the descriptor path the
wallet reports, and the snapshot block must still be the best chain's when the listing ends.
(A coin spent after the snapshot height but before the listing is left out: the snapshot never
overstates.) Ethereum: every Safe's ether and tracked-token balances read at the snapshot block
number, whose hash must not change while they are read.

This module reads custody; ``reporting`` (which the verifier imports) never does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from eth_abi.abi import decode

from custody.bitcoin.descriptor import Branch
from custody.bitcoin.reserve_proof import VaultCoin
from custody.bitcoin.rpc import BitcoinRPC, btc_to_sats
from custody.bitcoin.vault import Vault as BitcoinVault
from custody.ethereum.chain import EthChain
from custody.ethereum.erc20 import balance_of_calldata
from custody.ethereum.vault import Vault as SafeVault
from reporting.attestation import BitcoinSnapshot, BlockRef, EvmSnapshot, SnapshotUtxo
from reporting.holdings import SafeBalanceHolding
from treasury.attest.errors import SnapshotError

BITCOIN_NETWORK = "regtest"
"""The network name the bundle states (``reporting/SPEC-attestation.md``)."""
ETHER_ASSET = "ETH"
MAX_CONFIRMATIONS = 9_999_999
"""``listunspent``'s upper bound on confirmations: no upper bound in practice."""

_PATH_AFTER_ACCOUNT = re.compile(r"\[[0-9a-f]{8}(?:/\d+['h]){4}/(\d+)/(\d+)\]")
"""``[fingerprint/48h/1h/0h/2h/BRANCH/INDEX]`` in the ``desc`` bitcoind reports for a coin."""


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


def _coin_path(vault: BitcoinVault, desc: str, outpoint: str) -> tuple[Branch, int]:
    found = _PATH_AFTER_ACCOUNT.search(desc)
    if found is None or int(found.group(1)) not in (0, 1):
        raise SnapshotError(
            f"The coin {outpoint} in vault {vault.name!r} has no receive or change path in its "
            "descriptor; the wallet does not solve it as a vault coin."
        )
    return Branch(int(found.group(1))), int(found.group(2))


def bitcoin_snapshot(
    rpc: BitcoinRPC, vaults: Sequence[BitcoinVault], *, confirmations: int = 1
) -> tuple[BitcoinSnapshot, tuple[VaultCoin, ...]]:
    """Every vault coin at the confirmed snapshot height, and where each sits in its vault."""
    tip = int(rpc.call("getblockcount"))
    height = _snapshot_height(tip, confirmations)
    block_hash = str(rpc.call("getblockhash", height))
    utxos: list[SnapshotUtxo] = []
    coins: list[VaultCoin] = []
    for vault in vaults:
        wallet = rpc.wallet(vault.wallet_name)
        for entry in wallet.call("listunspent", confirmations, MAX_CONFIRMATIONS):
            txid, vout = str(entry["txid"]), int(entry["vout"])
            outpoint = f"{txid}:{vout}"
            found = wallet.call("gettransaction", txid, True)
            created = int(found.get("blockheight", -1))
            if created < 0 or created > height:
                continue  # mined above the snapshot while we listed: not part of it
            created_hash = str(found["blockhash"])
            if rpc.call("getblockhash", created) != created_hash:
                raise SnapshotError(
                    f"The block {created_hash} that created {outpoint} is not on the best chain "
                    f"at height {created}; take the snapshot again once the chain settles."
                )
            branch, index = _coin_path(vault, str(entry.get("desc", "")), outpoint)
            script = bytes.fromhex(entry["scriptPubKey"])
            if vault.descriptor.script_pubkey(branch, index).data != script:
                raise SnapshotError(
                    f"The coin {outpoint} pays a script that is not vault {vault.name!r}'s "
                    f"{branch.name.lower()} address {index}."
                )
            utxos.append(
                SnapshotUtxo(
                    txid=txid,
                    vout=vout,
                    amount_sats=btc_to_sats(entry["amount"]),
                    script_pubkey=script,
                    created=BlockRef(created, created_hash),
                )
            )
            coins.append(VaultCoin(txid, vout, vault.name, branch, index))
    if rpc.call("getblockhash", height) != block_hash:
        raise SnapshotError(
            f"The block at the snapshot height {height} changed while the coins were listed "
            "(a reorganisation); take the snapshot again."
        )
    return BitcoinSnapshot(BITCOIN_NETWORK, BlockRef(height, block_hash), tuple(utxos)), tuple(
        coins
    )


def _token_balance(chain: EthChain, token: str, holder: str, block: str) -> int:
    call = {"to": token, "data": "0x" + balance_of_calldata(holder).hex()}
    (amount,) = decode(["uint256"], bytes.fromhex(chain.rpc.call("eth_call", call, block)[2:]))
    return int(amount)


def evm_snapshot(
    chain: EthChain,
    safes: Sequence[SafeVault],
    tokens: Mapping[str, str],
    *,
    confirmations: int = 1,
) -> EvmSnapshot:
    """Every Safe's ether and ``tokens`` (asset code -> contract) balances at the snapshot block."""
    number = _snapshot_height(chain.rpc.block_number(), confirmations)
    tag = hex(number)
    block_hash = str(chain.rpc.call("eth_getBlockByNumber", tag, False)["hash"])
    balances: list[SafeBalanceHolding] = []
    for safe in safes:
        if safe.chain_id != chain.chain_id:
            raise SnapshotError(
                f"The Safe vault {safe.name!r} lives on chain {safe.chain_id}, not on the node's "
                f"chain {chain.chain_id}."
            )
        ether = int(chain.rpc.call("eth_getBalance", safe.address, tag), 16)
        balances.append(SafeBalanceHolding(chain.chain_id, safe.address, ETHER_ASSET, None, ether))
        for asset, token in sorted(tokens.items()):
            amount = _token_balance(chain, token, safe.address, tag)
            balances.append(SafeBalanceHolding(chain.chain_id, safe.address, asset, token, amount))
    if chain.rpc.call("eth_getBlockByNumber", tag, False)["hash"] != block_hash:
        raise SnapshotError(
            f"Chain {chain.chain_id}'s block {number} changed while the balances were read; "
            "take the snapshot again."
        )
    return EvmSnapshot(chain.chain_id, BlockRef(number, block_hash), tuple(balances))
