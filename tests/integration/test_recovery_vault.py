"""A miniscript vault with a timelocked recovery path on a real regtest bitcoind.

``wsh(or_d(multi(2,A,B,C),and_v(v:multi(2,R1,R2,R3),older(N))))`` with a small ``N``: bitcoind
accepts our descriptors and checksums, derives the same 100 addresses on both branches, watches
the vault as a watch-only wallet built from our export; the institutions' quorum spends at once;
the recovery quorum's spend is refused ``non-BIP68-final`` until the coin has ``N``
confirmations and confirms after. Our satisfier's witnesses are byte for byte those of
bitcoind's own miniscript finaliser (``finalizepsbt``) for the same signed PSBT.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from embit.psbt import PSBT

from custody.bitcoin.approval import Payment
from custody.bitcoin.descriptor import Branch
from custody.bitcoin.recovery import (
    RecoveryVaultPolicy,
    SpendPath,
    VaultCoin,
    blocks_until_recovery,
    build_psbt,
    coin_windows,
    descriptor_export,
    estimate_vsize,
    extract_transaction,
    finalize_psbt,
    sign_vault_psbt,
)
from custody.bitcoin.rpc import btc_to_sats, sats_to_btc
from custody.devnet import BitcoinNode
from custody.exceptions import BitcoinRPCError
from custody.keys import cosigner_keys, signing_keys
from custody.secret import SecretBytes

log = logging.getLogger("tests.btc.recovery_vault")

RECOVERY_DELAY_BLOCKS = 10
ADDRESS_COUNT = 100
COIN_SATS = 1_000_000
FEE_RATE_SAT_VB = 2
PRIMARY, RECOVERY = (0, 1, 2), (3, 4, 5)
"""Positions of the institutions' and the recovery bodies' seeds."""


@dataclass(frozen=True)
class LiveVault:
    """A recovery vault, its seeds, and the watch-only wallet bitcoind keeps for it."""

    seeds: tuple[bytes, ...]
    policy: RecoveryVaultPolicy
    wallet: str

    def sign(self, psbt: PSBT, holder: int) -> str:
        """A copy of ``psbt`` signed by seed ``holder`` through the recovery vault's signer."""
        copy = PSBT.from_string(psbt.to_string())
        fingerprint = cosigner_keys(SecretBytes(self.seeds[holder])).fingerprint
        with signing_keys(SecretBytes(self.seeds[holder]), fingerprint) as keys:
            assert sign_vault_psbt(copy, self.policy, keys) == len(copy.inputs)
        return str(copy.to_string())


@pytest.fixture(scope="module")
def vault(bitcoin_node: BitcoinNode, test_seed: int) -> Iterator[LiveVault]:
    """Six fresh seeds (replayable from the run's seed), the policy over them, and a watch-only
    wallet that imported the multipath descriptor of our export."""
    rng = random.Random(f"recovery vault {test_seed}")  # noqa: S311 (replayable test keys)
    seeds = tuple(rng.randbytes(32) for _ in range(6))
    origins = [cosigner_keys(SecretBytes(seed)).key_origin for seed in seeds]
    policy = RecoveryVaultPolicy(
        primary_threshold=2,
        primary_keys=tuple(origins[i] for i in PRIMARY),
        recovery_threshold=2,
        recovery_keys=tuple(origins[i] for i in RECOVERY),
        recovery_delay_blocks=RECOVERY_DELAY_BLOCKS,
    )
    wallet = f"recovery-{uuid.uuid4().hex[:8]}"
    rpc = bitcoin_node.rpc
    rpc.call("createwallet", wallet, True, True, "", False, True)
    multipath = descriptor_export(policy).splitlines()[0]
    imported = rpc.wallet(wallet).call(
        "importdescriptors",
        [{"desc": multipath, "active": True, "range": [0, ADDRESS_COUNT], "timestamp": "now"}],
    )
    assert all(result["success"] for result in imported), imported
    bitcoin_node.miner_address()
    yield LiveVault(seeds, policy, wallet)
    rpc.call("unloadwallet", wallet)


@pytest.fixture(scope="module")
def addresses(vault: LiveVault) -> dict[Branch, list[str]]:
    """Our derivation of addresses 0..99 on both branches, made once for the module."""
    return {
        branch: [vault.policy.address(branch, i) for i in range(ADDRESS_COUNT)] for branch in Branch
    }


def _fund(bitcoin_node: BitcoinNode, vault: LiveVault, branch: Branch, index: int) -> VaultCoin:
    """Pay ``COIN_SATS`` from the miner to the vault's address and confirm it in one block."""
    address = vault.policy.address(branch, index)
    txid = bitcoin_node.rpc.wallet("miner").call("sendtoaddress", address, sats_to_btc(COIN_SATS))
    bitcoin_node.mine(1)
    tx = bitcoin_node.rpc.wallet(vault.wallet).call("gettransaction", txid)
    (detail,) = [d for d in tx["details"] if d["address"] == address]
    return VaultCoin(txid, int(detail["vout"]), COIN_SATS, branch, index)


def _confirmations(bitcoin_node: BitcoinNode, vault: LiveVault, coin: VaultCoin) -> int:
    unspent = bitcoin_node.rpc.wallet(vault.wallet).call("listunspent", 0)
    (window,) = [
        w
        for w in coin_windows(unspent, RECOVERY_DELAY_BLOCKS)
        if (w.txid, w.vout) == (coin.txid, coin.vout)
    ]
    return window.confirmations


def _signed_and_final(
    bitcoin_node: BitcoinNode, vault: LiveVault, psbt: PSBT, holders: tuple[int, int]
) -> tuple[SpendPath, str]:
    """Each holder signs a copy, bitcoind combines them, our satisfier finalises; the result must
    equal bitcoind's own ``finalizepsbt`` of the same combined PSBT."""
    rpc = bitcoin_node.rpc
    combined = rpc.call("combinepsbt", [vault.sign(psbt, h) for h in holders])
    theirs = rpc.call("finalizepsbt", combined, True)
    assert theirs["complete"] is True
    ours = PSBT.from_string(combined)
    (path,) = set(finalize_psbt(ours, vault.policy))
    tx_hex = str(extract_transaction(ours).to_string())
    assert tx_hex == theirs["hex"]
    return path, tx_hex


def test_bitcoind_accepts_our_descriptors_and_their_checksums(
    bitcoin_node: BitcoinNode, vault: LiveVault
) -> None:
    """getdescriptorinfo gives each branch the checksum we computed, and expands our multipath
    descriptor into exactly our receive and change descriptors."""
    rpc = bitcoin_node.rpc
    for branch in Branch:
        info = rpc.call("getdescriptorinfo", vault.policy.text(branch))
        assert info["descriptor"] == vault.policy.text_with_checksum(branch)
        assert info["issolvable"] is True
        assert info["isrange"] is True
    multipath = vault.policy.multipath_text()
    info = rpc.call("getdescriptorinfo", multipath.split("#")[0])
    assert info["checksum"] == multipath.split("#")[1]
    assert info["multipath_expansion"] == [
        vault.policy.text_with_checksum(branch) for branch in Branch
    ]


def test_addresses_0_to_99_on_both_branches_equal_deriveaddresses(
    bitcoin_node: BitcoinNode, vault: LiveVault, addresses: dict[Branch, list[str]]
) -> None:
    """Our 100 receive and 100 change addresses are bitcoind's, from the single-branch
    descriptors and from the multipath one."""
    rpc = bitcoin_node.rpc
    ours = {
        branch: [vault.policy.address(branch, i) for i in range(ADDRESS_COUNT)] for branch in Branch
    }
    for branch in Branch:
        theirs = rpc.call(
            "deriveaddresses", vault.policy.text_with_checksum(branch), [0, ADDRESS_COUNT - 1]
        )
        assert theirs == ours[branch]
    both = rpc.call("deriveaddresses", vault.policy.multipath_text(), [0, ADDRESS_COUNT - 1])
    assert both == [ours[Branch.RECEIVE], ours[Branch.CHANGE]]
    assert len(set(ours[Branch.RECEIVE] + ours[Branch.CHANGE])) == 2 * ADDRESS_COUNT


def test_the_watch_only_wallet_from_the_export_sees_the_funded_balance(
    bitcoin_node: BitcoinNode, vault: LiveVault, addresses: dict[Branch, list[str]]
) -> None:
    """Three coins paid to receive and change addresses of our derivation show up in the
    watch-only wallet as exactly their sum, and the wallet's balance equals the UTXO set's total
    at our 200 derived addresses (``scantxoutset``)."""
    wallet = bitcoin_node.rpc.wallet(vault.wallet)
    before = btc_to_sats(wallet.call("getbalances")["mine"]["trusted"])
    for branch, index in ((Branch.RECEIVE, 3), (Branch.RECEIVE, 97), (Branch.CHANGE, 42)):
        _fund(bitcoin_node, vault, branch, index)
    after = wallet.call("getbalances")["mine"]
    assert btc_to_sats(after["trusted"]) - before == 3 * COIN_SATS
    assert btc_to_sats(after["untrusted_pending"]) == 0
    ours = [f"addr({address})" for branch in Branch for address in addresses[branch]]
    scan = bitcoin_node.rpc.call("scantxoutset", "start", ours)
    assert scan["success"] is True
    assert btc_to_sats(scan["total_amount"]) == btc_to_sats(after["trusted"])


def test_the_primary_quorum_spends_at_once(bitcoin_node: BitcoinNode, vault: LiveVault) -> None:
    """A coin one block old: institutions A and C sign, our satisfier takes the primary path,
    and the transaction is accepted and mined at once."""
    rpc = bitcoin_node.rpc
    coin = _fund(bitcoin_node, vault, Branch.RECEIVE, 10)
    assert _confirmations(bitcoin_node, vault, coin) == 1
    payee = rpc.wallet("miner").call("getnewaddress", "", "bech32")
    psbt = build_psbt(
        vault.policy,
        [coin],
        [Payment(payee, COIN_SATS // 2)],
        path=SpendPath.PRIMARY,
        fee_rate_sat_vb=FEE_RATE_SAT_VB,
        change_index=0,
    )
    path, tx_hex = _signed_and_final(bitcoin_node, vault, psbt, (PRIMARY[0], PRIMARY[2]))
    assert path is SpendPath.PRIMARY
    (verdict,) = rpc.call("testmempoolaccept", [tx_hex])
    assert verdict["allowed"] is True, verdict
    decoded = rpc.call("decoderawtransaction", tx_hex)
    estimate = estimate_vsize(
        vault.policy, SpendPath.PRIMARY, 1, [o.script_pubkey for o in psbt.tx.vout]
    )
    assert estimate - 2 <= decoded["vsize"] <= estimate
    txid = rpc.call("sendrawtransaction", tx_hex)
    bitcoin_node.mine(1)
    assert rpc.wallet(vault.wallet).call("gettransaction", txid)["confirmations"] == 1


def test_the_recovery_spend_is_refused_before_n_blocks_and_confirms_after(
    bitcoin_node: BitcoinNode, vault: LiveVault
) -> None:
    """Recovery bodies R1 and R3 sign a spend with nSequence N: bitcoind refuses it
    (non-BIP68-final) at 1 and at N-1 confirmations, accepts it at N (when
    ``blocks_until_recovery`` reaches 0) and mines it."""
    rpc = bitcoin_node.rpc
    coin = _fund(bitcoin_node, vault, Branch.CHANGE, 7)
    payee = rpc.wallet("miner").call("getnewaddress", "", "bech32")
    psbt = build_psbt(
        vault.policy,
        [coin],
        [Payment(payee, COIN_SATS - 20_000)],
        path=SpendPath.RECOVERY,
        fee_rate_sat_vb=FEE_RATE_SAT_VB,
        change_index=1,
    )
    assert psbt.tx.vin[0].sequence == RECOVERY_DELAY_BLOCKS
    path, tx_hex = _signed_and_final(bitcoin_node, vault, psbt, (RECOVERY[0], RECOVERY[2]))
    assert path is SpendPath.RECOVERY
    decoded = rpc.call("decoderawtransaction", tx_hex)
    assert decoded["version"] == 2
    estimate = estimate_vsize(
        vault.policy, SpendPath.RECOVERY, 1, [o.script_pubkey for o in psbt.tx.vout]
    )
    assert estimate - 2 <= decoded["vsize"] <= estimate

    for target in (1, RECOVERY_DELAY_BLOCKS - 1):
        missing = target - _confirmations(bitcoin_node, vault, coin)
        if missing:
            bitcoin_node.mine(missing)
        confirmations = _confirmations(bitcoin_node, vault, coin)
        assert confirmations == target
        assert blocks_until_recovery(confirmations, RECOVERY_DELAY_BLOCKS) > 0
        log.info("recovery spend at %d confirmations: expect refusal", confirmations)
        (verdict,) = rpc.call("testmempoolaccept", [tx_hex])
        assert verdict["allowed"] is False
        assert verdict["reject-reason"] == "non-BIP68-final"
        with pytest.raises(BitcoinRPCError, match="non-BIP68-final"):
            rpc.call("sendrawtransaction", tx_hex)

    bitcoin_node.mine(1)
    confirmations = _confirmations(bitcoin_node, vault, coin)
    assert confirmations == RECOVERY_DELAY_BLOCKS
    assert blocks_until_recovery(confirmations, RECOVERY_DELAY_BLOCKS) == 0
    log.info("recovery spend at %d confirmations: expect acceptance", confirmations)
    txid = rpc.call("sendrawtransaction", tx_hex)
    bitcoin_node.mine(1)
    mined = rpc.wallet(vault.wallet).call("gettransaction", txid)
    assert mined["confirmations"] == 1


def test_a_psbt_funded_by_the_watch_only_wallet_is_signed_and_finalised_by_us(
    bitcoin_node: BitcoinNode, vault: LiveVault
) -> None:
    """bitcoind's wallet builds the PSBT from the imported descriptor (its own coin selection,
    change and derivations); institutions B and C sign it with our signer, our satisfier
    finalises it through the primary path, and it is mined."""
    rpc = bitcoin_node.rpc
    wallet = rpc.wallet(vault.wallet)
    _fund(bitcoin_node, vault, Branch.RECEIVE, 20)
    payee = rpc.wallet("miner").call("getnewaddress", "", "bech32")
    funded = wallet.call(
        "walletcreatefundedpsbt",
        [],
        [{payee: sats_to_btc(COIN_SATS // 4)}],
        0,
        {"fee_rate": FEE_RATE_SAT_VB, "replaceable": True},
        True,
    )
    psbt = PSBT.from_string(funded["psbt"])
    path, tx_hex = _signed_and_final(bitcoin_node, vault, psbt, (PRIMARY[1], PRIMARY[2]))
    assert path is SpendPath.PRIMARY
    txid = rpc.call("sendrawtransaction", tx_hex)
    bitcoin_node.mine(1)
    assert wallet.call("gettransaction", txid)["confirmations"] == 1
