"""Benchmark: one cosigner signs a 2-of-3 P2WSH PSBT with 1, 50, 200 and 500 inputs.

Three things are timed on the same PSBTs, funded by a regtest bitcoind started for this run:

* the signing step alone, new path: ``sign_multisig_inputs`` (BIP-143 hashes once per
  transaction, BIP-32 parents derived once), the step ``sign_psbt`` now uses;
* the signing step alone, embit's ``PSBT.sign_with`` (the step before issue 18), for comparison;
* the whole signer call, ``sign_psbt``: decoding, the vault/approval/fee checks, the new signing
  step and the encoding -- PSBT text in, signed PSBT text out.

Every coin comes from one ``sendmany`` of 751 outputs, and bitcoind's ``walletcreatefundedpsbt``
puts each input's whole previous transaction in the PSBT (``non_witness_utxo``): at 200 inputs
the PSBT is about 7 MB of base64, so decoding it, checking each previous transaction's txid and
encoding the result weigh more than the signatures, for the signer and for bitcoind alike.

The peer, measured in the same run at 200 inputs, is bitcoind's ``descriptorprocesspsbt``
signing the same PSBT with the same key (the cosigner's account xprv in the vault descriptor),
also PSBT text in and out. The key is a throwaway regtest key made for this run.

Definitions of the two target lines printed at the end (per-input cost = median time / inputs):

* ``flat``: the new signing step's per-input cost at 500 inputs must be at most 1.25x its
  marginal per-input cost over 1..50 inputs, ``(t(50) - t(1)) / 49``; the marginal cost leaves
  out the once-per-call work (the hardened account derivation) that t(1) is mostly made of,
  so the comparison is the strict one.
* ``vs bitcoind``: the whole signer call at 200 inputs divided by ``descriptorprocesspsbt`` at
  200 inputs; met when at most 1x.
"""

from __future__ import annotations

import gc
import logging
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from custody.authority.gate import BreakGlass
from custody.bitcoin import ApprovedSpend, Branch, Payment, VaultDescriptor, sign_psbt
from custody.bitcoin.approval import FeePolicy
from custody.bitcoin.multisig_signing import sign_multisig_inputs
from custody.bitcoin.psbt import parse_psbt, unsigned_txid
from custody.bitcoin.rpc import BitcoinRPC, sats_to_btc
from custody.bitcoin_network import BitcoinNetwork
from custody.devnet import BitcoinNode, find_binaries
from custody.keys import BIP48_P2WSH_ACCOUNT_PATH, cosigner_keys, signing_keys
from custody.secret import SecretBytes

INPUT_COUNTS = (1, 50, 200, 500)
PEER_INPUT_COUNT = 200
"""The input count at which bitcoind's ``descriptorprocesspsbt`` is measured as the peer."""
COIN_SATS = 100_000
FEE_RATE_SAT_VB = 2
MIN_REPEATS = 3
TIMED_INPUTS_PER_SIZE = 200
"""Small PSBTs are timed more often (up to ``MAX_REPEATS``) so that about this many inputs are
signed per size: their medians would otherwise be single noisy sub-millisecond samples."""
MAX_REPEATS = 21
FLAT_TOLERANCE = 1.25
"""The per-input cost at 500 inputs may exceed the marginal cost over 1..50 by this factor."""
PEER_TOLERANCE = 1.0
BENCH_AUTHORITY = BreakGlass("benchmark of PSBT signing on a throwaway regtest vault")
"""The bench measures the signature work against bitcoind's; the officers' statement check (a few
signature verifications, independent of the input count) is left out on purpose."""


def _repeats(count: int) -> int:
    return max(MIN_REPEATS, min(MAX_REPEATS, TIMED_INPUTS_PER_SIZE // count))


def _median_seconds(
    run: Callable[[], object], prepare: Callable[[], object], repeats: int
) -> float:
    """Median wall time of ``run`` over ``repeats`` runs, each after an untimed ``prepare``."""
    samples = []
    for _ in range(repeats):
        prepare()
        gc.collect()
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


@dataclass(frozen=True)
class Row:
    """Median seconds for one PSBT size."""

    inputs: int
    new_step: float
    embit_step: float
    signer_call: float


@dataclass(frozen=True)
class Setup:
    """The throwaway vault, its first cosigner's seed and the payee of every benchmark spend."""

    seed: bytes
    fingerprint: str
    vault: VaultDescriptor
    payee: str


def _measure(setup: Setup, psbt_text: str, amount: int) -> Row:
    """Time the new signing step, embit's, and the whole signer call on ``psbt_text``."""
    unsigned = parse_psbt(psbt_text)
    count = len(unsigned.inputs)
    approval = ApprovedSpend(
        "bench", (Payment(setup.payee, unsigned.outputs[0].value),), amount, unsigned_txid(unsigned)
    )
    policy = FeePolicy(max_fee_sats=amount)
    repeats = _repeats(count)
    fresh = [unsigned]

    def renew() -> None:
        fresh[0] = parse_psbt(psbt_text)

    with signing_keys(SecretBytes(setup.seed), setup.fingerprint) as signer:
        root = signer.bitcoin_root
        new_step = _median_seconds(lambda: sign_multisig_inputs(fresh[0], root), renew, repeats)
        new_signed = fresh[0].to_string()
        embit_step = _median_seconds(lambda: fresh[0].sign_with(root), renew, repeats)
        assert fresh[0].to_string() == new_signed, "the two signing paths signed differently"
        outcome: list[str] = []

        def call() -> None:
            outcome[:] = [
                sign_psbt(
                    psbt_text, setup.vault, approval, signer, policy, authority=BENCH_AUTHORITY
                )
            ]

        signer_call = _median_seconds(call, lambda: None, repeats)
    assert all(len(inp.partial_sigs) == 1 for inp in parse_psbt(outcome[0]).inputs)
    return Row(count, new_step, embit_step, signer_call)


def _measure_peer(rpc: BitcoinRPC, psbt_text: str, descriptor: str, top_index: int) -> float:
    """Time bitcoind's ``descriptorprocesspsbt`` signing ``psbt_text`` with ``descriptor``."""
    processed: dict[str, str] = {}

    def peer() -> None:
        processed.update(
            rpc.call(
                "descriptorprocesspsbt",
                psbt_text,
                [{"desc": descriptor, "range": [0, top_index]}],
                "ALL",
                True,
                False,
            )
        )

    seconds = _median_seconds(peer, lambda: None, _repeats(len(parse_psbt(psbt_text).inputs)))
    assert all(len(inp.partial_sigs) == 1 for inp in parse_psbt(processed["psbt"]).inputs)
    return seconds


def _fund(node: BitcoinNode, vault: VaultDescriptor, total: int) -> list[dict[str, object]]:
    """A watch-only wallet ``vault`` over the vault's descriptors, holding ``total`` coins."""
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
                "range": [0, total + 10],
                "timestamp": "now",
            }
            for b in Branch
        ],
    )
    assert all(r["success"] for r in imported), imported
    rpc.wallet("miner").call(
        "sendmany",
        "",
        {vault.address(Branch.RECEIVE, i): sats_to_btc(COIN_SATS) for i in range(total)},
    )
    node.mine(1)
    coins: list[dict[str, object]] = wallet.call("listunspent", 1)
    assert len(coins) == total, len(coins)
    return coins


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
    total = sum(INPUT_COUNTS)

    rows: dict[int, Row] = {}
    peer_s = 0.0
    with BitcoinNode(find_binaries(install=True).bitcoind) as node:
        node.mine(101)
        coins = _fund(node, vault, total)
        payee = node.rpc.wallet("miner").call("getnewaddress", "", "bech32")
        setup = Setup(seeds[0], keys[0].fingerprint, vault, payee)
        print(
            f"{'inputs':>6} {'new step':>10} {'embit step':>11} {'speedup':>8} "
            f"{'signer call':>12}   (ms per input, median)"
        )
        offset = 0
        for count in INPUT_COUNTS:
            chosen = coins[offset : offset + count]
            offset += count
            amount = count * COIN_SATS
            funded = node.rpc.wallet("vault").call(
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
            row = rows[count] = _measure(setup, funded["psbt"], amount)
            if count == PEER_INPUT_COUNT:
                peer_s = _measure_peer(node.rpc, funded["psbt"], private_descriptor, total - 1)
            print(
                f"{count:>6} {row.new_step * 1000 / count:>10.3f} "
                f"{row.embit_step * 1000 / count:>11.3f} "
                f"{row.embit_step / row.new_step:>7.1f}x "
                f"{row.signer_call * 1000 / count:>12.3f}"
            )
    _report(rows, peer_s)


def _report(rows: dict[int, Row], peer_s: float) -> None:
    print(
        f"(median of {MIN_REPEATS}..{MAX_REPEATS} runs; 'new step' = sign_multisig_inputs, "
        "'embit step' = PSBT.sign_with, 'signer call' = sign_psbt: decode, checks, new step, "
        "encode)"
    )
    peer_ms = peer_s * 1000
    at_peer = rows[PEER_INPUT_COUNT]
    call_ms, step_ms = at_peer.signer_call * 1000, at_peer.new_step * 1000
    print(
        f"bitcoind descriptorprocesspsbt at {PEER_INPUT_COUNT} inputs: {peer_ms:.1f} ms "
        f"({peer_ms / PEER_INPUT_COUNT:.3f} ms per input); signer call {call_ms:.1f} ms = "
        f"{call_ms / peer_ms:.2f}x; signing step alone {step_ms:.1f} ms = {step_ms / peer_ms:.2f}x"
    )
    marginal_ms = (rows[50].new_step - rows[1].new_step) * 1000 / 49
    at_500_ms = rows[500].new_step * 1000 / 500
    flat_target_ms = FLAT_TOLERANCE * marginal_ms
    embit_growth = (rows[500].embit_step / 500) / (rows[50].embit_step / 50)
    print(
        "new step: marginal per-input cost over 1..50 = (t(50) - t(1)) / 49 = "
        f"{marginal_ms:.3f} ms; per-input cost at 500 = t(500) / 500 = {at_500_ms:.3f} ms "
        f"({at_500_ms / marginal_ms:.2f}x); embit step per input at 500 vs 50: {embit_growth:.2f}x"
    )
    flat = "met" if at_500_ms <= flat_target_ms else "missed"
    ratio = call_ms / peer_ms
    versus = "met" if ratio <= PEER_TOLERANCE else "missed"
    print(
        f"target psbt per-input flat 1..500: {flat} ({at_500_ms:.3f} ms vs {flat_target_ms:.3f} ms)"
    )
    print(f"target psbt vs bitcoind at {PEER_INPUT_COUNT}: {versus} ({ratio:.2f}x vs <= 1x)")


if __name__ == "__main__":
    main()
