"""Benchmark: one cosigner signs a 2-of-3 P2WSH PSBT with 1, 50 and 200 inputs.

Our signer (PSBT decoding, the vault/approval/fee checks, embit signatures) against bitcoind's
own ``descriptorprocesspsbt`` signing the same PSBT with the same key in the same run. The key
is a throwaway regtest key made for this run; it goes to bitcoind only here.
"""

from __future__ import annotations

import logging
import secrets
import statistics
import time

from custody.authority.gate import BreakGlass
from custody.bitcoin import ApprovedSpend, Branch, Payment, VaultDescriptor, sign_psbt
from custody.bitcoin.approval import FeePolicy
from custody.bitcoin.psbt import parse_psbt, unsigned_txid
from custody.bitcoin.rpc import sats_to_btc
from custody.bitcoin_network import BitcoinNetwork
from custody.devnet import BitcoinNode, find_binaries
from custody.keys import BIP48_P2WSH_ACCOUNT_PATH, cosigner_keys, signing_keys
from custody.secret import SecretBytes

INPUT_COUNTS = (1, 50, 200)
COIN_SATS = 100_000
REPEATS = 3
FEE_RATE_SAT_VB = 2
BENCH_AUTHORITY = BreakGlass("benchmark of PSBT signing on a throwaway regtest vault")
"""The bench measures the signature work against bitcoind's; the officers' statement check (a few
signature verifications, independent of the input count) is left out on purpose."""


def main() -> None:
    # Each break-glass signature logs a warning; in a benchmark of throwaway vaults that is noise.
    logging.getLogger("custody.bitcoin.signer").setLevel(logging.ERROR)
    seeds = [secrets.token_bytes(32) for _ in range(3)]
    keys = [cosigner_keys(SecretBytes(seed)) for seed in seeds]
    vault = VaultDescriptor(2, tuple(k.key_origin for k in keys))
    with signing_keys(SecretBytes(seeds[0]), keys[0].fingerprint) as signer:
        account_xprv = signer.bitcoin_root.derive(BIP48_P2WSH_ACCOUNT_PATH).to_base58(
            version=BitcoinNetwork.REGTEST.params["xprv"]
        )
    private_descriptor = vault.text(Branch.RECEIVE).replace(keys[0].account_xpub, account_xprv)

    with BitcoinNode(find_binaries(install=True).bitcoind) as node:
        node.mine(101)
        rpc = node.rpc
        rpc.call("createwallet", "vault", True, True, "", False, True)
        wallet = rpc.wallet("vault")
        imported = wallet.call(
            "importdescriptors",
            [
                {
                    "desc": rpc.call("getdescriptorinfo", vault.text(b))["descriptor"],
                    "active": True,
                    "internal": b is Branch.CHANGE,
                    "range": [0, 400],
                    "timestamp": "now",
                }
                for b in Branch
            ],
        )
        assert all(r["success"] for r in imported), imported
        total = sum(INPUT_COUNTS)
        rpc.wallet("miner").call(
            "sendmany",
            "",
            {vault.address(Branch.RECEIVE, i): sats_to_btc(COIN_SATS) for i in range(total)},
        )
        node.mine(1)
        coins = wallet.call("listunspent", 1)
        assert len(coins) == total, len(coins)
        payee = rpc.wallet("miner").call("getnewaddress", "", "bech32")
        print(f"{'inputs':>6} {'ours ms':>9} {'per input':>10} {'bitcoind ms':>12} {'ratio':>6}")
        offset = 0
        for count in INPUT_COUNTS:
            chosen = coins[offset : offset + count]
            offset += count
            amount = count * COIN_SATS
            funded = wallet.call(
                "walletcreatefundedpsbt",
                [{"txid": c["txid"], "vout": c["vout"]} for c in chosen],
                [{payee: sats_to_btc(amount)}],
                0,
                {
                    "add_inputs": False,
                    "subtractFeeFromOutputs": [0],
                    "fee_rate": FEE_RATE_SAT_VB,
                    "replaceable": True,
                },
                True,
            )
            psbt_text = funded["psbt"]
            psbt = parse_psbt(psbt_text)
            approval = ApprovedSpend(
                "bench",
                (Payment(payee, psbt.outputs[0].value),),
                amount,
                unsigned_txid(psbt),
            )
            policy = FeePolicy(max_fee_sats=amount)
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(REPEATS):
                with signing_keys(SecretBytes(seeds[0]), keys[0].fingerprint) as signer:
                    start = time.perf_counter()
                    signed = sign_psbt(
                        psbt_text, vault, approval, signer, policy, authority=BENCH_AUTHORITY
                    )
                    ours.append(time.perf_counter() - start)
                start = time.perf_counter()
                processed = rpc.call(
                    "descriptorprocesspsbt",
                    psbt_text,
                    [{"desc": private_descriptor, "range": [0, total - 1]}],
                    "ALL",
                    True,
                    False,
                )
                theirs.append(time.perf_counter() - start)
            assert len(parse_psbt(signed).inputs[0].partial_sigs) == 1
            assert len(parse_psbt(processed["psbt"]).inputs[0].partial_sigs) == 1
            ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
            print(
                f"{count:>6} {ours_s * 1000:>9.1f} {ours_s * 1000 / count:>8.2f}ms "
                f"{theirs_s * 1000:>12.1f} {ours_s / theirs_s:>5.2f}x"
            )
    print(f"(median of {REPEATS}; ratio = ours / bitcoind descriptorprocesspsbt, same PSBT)")


if __name__ == "__main__":
    main()
