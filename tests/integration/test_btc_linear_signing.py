"""The linear signing path on a real regtest bitcoind: a 40-input vault spend signed by two
cosigners through ``sign_psbt`` is finalized, accepted and mined, and each cosigner's signatures
are the ones bitcoind's ``descriptorprocesspsbt`` makes with the same key.

bitcoind and embit both draw RFC 6979 nonces and re-draw them (with a counter as extra data)
until R is low, but they test "low" differently: bitcoind requires R's first byte below 0x80,
embit a DER encoding of at most 70 bytes. When R is high and S happens to be a byte short, embit
keeps the signature and bitcoind draws again (about one signature in 256). The comparison
allows exactly that case and nothing else.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from embit.ec import PublicKey, Signature
from embit.psbt import PSBT

from custody.authority.gate import BreakGlass
from custody.bitcoin import ApprovedSpend, Branch, Payment, VaultDescriptor, sign_psbt
from custody.bitcoin.approval import FeePolicy
from custody.bitcoin.multisig_signing import sign_multisig_inputs
from custody.bitcoin.psbt import parse_psbt, unsigned_txid
from custody.bitcoin.rpc import btc_to_sats, sats_to_btc
from custody.bitcoin_network import BitcoinNetwork
from custody.devnet import BitcoinNode
from custody.keys import BIP48_P2WSH_ACCOUNT_PATH, cosigner_keys, signing_keys
from custody.secret import SecretBytes

log = logging.getLogger("tests.btc.linear_signing")

INPUT_COUNT = 40
COIN_SATS = 250_000
PAYMENT_SATS = 30 * COIN_SATS
FEE_RATE_SAT_VB = 3
MAX_FEE_SATS = 200_000
WALLET = "linear-signing"
DESCRIPTOR_RANGE = [0, INPUT_COUNT + 20]
MECHANICS_ONLY = BreakGlass("test of the signing step on a throwaway regtest vault")
"""The officers' statement check is covered elsewhere; this test is about the signatures."""
EMBIT_LOW_R_DER_MAX_BYTES = 70
"""embit re-draws a nonce while the DER signature is longer than this."""
DER_R_LENGTH_OFFSET = 3
"""DER ``30 len 02 rlen r...``: the byte that gives R's length."""
HIGH_R_DER_BYTES = 33
"""A high R (first byte >= 0x80) is written with a 0x00 sign byte: 33 bytes."""


@dataclass(frozen=True)
class Spend:
    """A funded 2-of-3 vault and an unsigned PSBT spending ``INPUT_COUNT`` of its coins."""

    seeds: tuple[bytes, ...]
    vault: VaultDescriptor
    psbt: str
    approval: ApprovedSpend

    def fingerprint(self, cosigner: int) -> str:
        return self.vault.fingerprints[cosigner]

    def signed_by(self, cosigner: int, psbt_text: str | None = None) -> str:
        """``psbt_text`` (by default the unsigned PSBT) signed by ``cosigner`` through the signer."""
        with signing_keys(SecretBytes(self.seeds[cosigner]), self.fingerprint(cosigner)) as keys:
            return sign_psbt(
                psbt_text or self.psbt,
                self.vault,
                self.approval,
                keys,
                FeePolicy(max_fee_sats=MAX_FEE_SATS),
                authority=MECHANICS_ONLY,
            )

    def private_descriptors(self, cosigner: int) -> list[dict[str, object]]:
        """The vault's descriptors with ``cosigner``'s account xprv, for bitcoind to sign with."""
        xpub = cosigner_keys(SecretBytes(self.seeds[cosigner])).account_xpub
        with signing_keys(SecretBytes(self.seeds[cosigner]), self.fingerprint(cosigner)) as keys:
            account = keys.bitcoin_root.derive(BIP48_P2WSH_ACCOUNT_PATH)
            xprv = account.to_base58(version=BitcoinNetwork.REGTEST.params["xprv"])
        return [
            {"desc": self.vault.text(branch).replace(xpub, xprv), "range": DESCRIPTOR_RANGE}
            for branch in Branch
        ]


@pytest.fixture(scope="module")
def spend(bitcoin_node: BitcoinNode, test_seed: int) -> Iterator[Spend]:
    """A fresh vault (seeds from the run's seed) with ``INPUT_COUNT`` coins, and a PSBT that
    spends them all: one payment and change back to the vault."""
    rng = random.Random(f"linear signing {test_seed}")  # noqa: S311 (replayable test keys)
    seeds = tuple(rng.randbytes(32) for _ in range(3))
    vault = VaultDescriptor(2, tuple(cosigner_keys(SecretBytes(s)).key_origin for s in seeds))
    rpc = bitcoin_node.rpc
    rpc.call("createwallet", WALLET, True, True, "", False, True)
    wallet = rpc.wallet(WALLET)
    imported = wallet.call(
        "importdescriptors",
        [
            {
                "desc": rpc.call("getdescriptorinfo", vault.text(branch))["descriptor"],
                "active": True,
                "internal": branch is Branch.CHANGE,
                "range": DESCRIPTOR_RANGE,
                "timestamp": "now",
            }
            for branch in Branch
        ],
    )
    assert all(result["success"] for result in imported), imported
    log.info("funding %d vault coins of %d sats", INPUT_COUNT, COIN_SATS)
    bitcoin_node.miner_address()
    rpc.wallet("miner").call(
        "sendmany",
        "",
        {vault.address(Branch.RECEIVE, i): sats_to_btc(COIN_SATS) for i in range(INPUT_COUNT)},
    )
    bitcoin_node.mine(1)
    coins = wallet.call("listunspent", 1)
    assert len(coins) == INPUT_COUNT
    payee = rpc.wallet("miner").call("getnewaddress", "", "bech32")
    funded = wallet.call(
        "walletcreatefundedpsbt",
        [{"txid": c["txid"], "vout": c["vout"]} for c in coins],
        [{payee: sats_to_btc(PAYMENT_SATS)}],
        0,
        {"add_inputs": False, "fee_rate": FEE_RATE_SAT_VB, "replaceable": True},
        True,
    )
    psbt = parse_psbt(funded["psbt"])
    assert len(psbt.inputs) == INPUT_COUNT
    approval = ApprovedSpend(
        WALLET, (Payment(payee, PAYMENT_SATS),), MAX_FEE_SATS, unsigned_txid(psbt)
    )
    yield Spend(seeds, vault, str(funded["psbt"]), approval)
    rpc.call("unloadwallet", WALLET)


def _signatures_of(psbt_text: str, fingerprint: str) -> list[bytes]:
    """Per input, the one partial signature by the key whose derivation names ``fingerprint``."""
    psbt = PSBT.from_string(psbt_text)
    found = []
    for inp in psbt.inputs:
        (sig,) = [
            bytes(sig)
            for pub, sig in inp.partial_sigs.items()
            if inp.bip32_derivations[pub].fingerprint.hex() == fingerprint
        ]
        found.append(sig)
    return found


def test_a_spend_signed_by_the_new_path_is_finalized_accepted_and_mined(
    bitcoin_node: BitcoinNode, spend: Spend
) -> None:
    """Two cosigners sign all 40 inputs through ``sign_psbt``; bitcoind combines and finalizes
    the PSBT, accepts the transaction into its mempool and mines it."""
    rpc = bitcoin_node.rpc
    log.info("two cosigners sign the %d-input spend", INPUT_COUNT)
    signed = [spend.signed_by(0), spend.signed_by(1)]
    for text in signed:
        assert all(len(inp.partial_sigs) == 1 for inp in PSBT.from_string(text).inputs)
    combined = rpc.call("combinepsbt", signed)
    final = rpc.call("finalizepsbt", combined, True)
    assert final["complete"] is True
    (verdict,) = rpc.call("testmempoolaccept", [final["hex"]])
    assert verdict["allowed"] is True, verdict
    txid = rpc.call("sendrawtransaction", final["hex"])
    assert txid == spend.approval.unsigned_txid
    bitcoin_node.mine(1)
    mined = rpc.wallet(WALLET).call("gettransaction", txid)
    assert mined["confirmations"] == 1
    assert btc_to_sats(mined["amount"]) == -PAYMENT_SATS


@pytest.mark.parametrize("cosigner", [0, 2])
def test_signatures_equal_bitcoinds_descriptorprocesspsbt_with_the_same_key(
    bitcoin_node: BitcoinNode, spend: Spend, cosigner: int
) -> None:
    """bitcoind, given the cosigner's account xprv, signs every input with the same bytes as our
    signer, except where embit's low-R test keeps a signature bitcoind's re-draws (see module)."""
    ours = _signatures_of(spend.signed_by(cosigner), spend.fingerprint(cosigner))
    processed = bitcoin_node.rpc.call(
        "descriptorprocesspsbt", spend.psbt, spend.private_descriptors(cosigner), "ALL", True, False
    )
    theirs = _signatures_of(processed["psbt"], spend.fingerprint(cosigner))
    assert len(ours) == len(theirs) == INPUT_COUNT
    unsigned = PSBT.from_string(spend.psbt)
    differing = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    log.info("signatures differing from bitcoind's: %s of %d", differing, INPUT_COUNT)
    for position in differing:
        der = ours[position][:-1]
        assert len(der) == EMBIT_LOW_R_DER_MAX_BYTES
        assert der[DER_R_LENGTH_OFFSET] == HIGH_R_DER_BYTES
        pub = next(
            p
            for p, d in unsigned.inputs[position].bip32_derivations.items()
            if d.fingerprint.hex() == spend.fingerprint(cosigner)
        )
        digest = unsigned.sighash(position)
        for signature in (ours[position], theirs[position]):
            assert PublicKey.parse(pub.sec()).verify(Signature.parse(signature[:-1]), digest)


def test_the_new_path_equals_embits_sign_with_on_bitcoinds_psbt(spend: Spend) -> None:
    """On the PSBT bitcoind funded, the signing step's output equals embit's ``sign_with``."""
    for cosigner in range(3):
        ours, theirs = parse_psbt(spend.psbt), parse_psbt(spend.psbt)
        with signing_keys(SecretBytes(spend.seeds[cosigner]), spend.fingerprint(cosigner)) as k:
            assert sign_multisig_inputs(ours, k.bitcoin_root) == INPUT_COUNT
            assert theirs.sign_with(k.bitcoin_root) == INPUT_COUNT
        assert ours.to_string() == theirs.to_string()
