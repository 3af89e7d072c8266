"""BIP-174's own test vectors, run against our PSBT parser and the embit library we sign with."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from embit.bip32 import HDKey
from embit.ec import PrivateKey, Signature
from embit.finalizer import finalize_psbt
from embit.networks import NETWORKS
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput

from custody.bitcoin.psbt import parse_psbt
from custody.bitcoin.signer import add_break_glass_mark, break_glass_marks
from custody.exceptions import MalformedPSBTError

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "bip174_vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
WORKFLOW: dict[str, Any] = VECTORS["workflow"]
SATS_PER_BTC = 100_000_000
DER_LOW_R_MAX_BYTES = 70
"""A DER signature whose R fits 32 bytes (no sign padding) is at most this long."""

UNSIGNABLE_VALID = {
    "PSBT with global unsigned tx that has 0 inputs and 0 outputs",
    "PSBT with 0 inputs",
}
"""Valid BIP-174 encodings with no inputs: nothing for a cosigner to sign, so we refuse them."""
SIGNABLE_VALID = [case for case in VECTORS["valid"] if case["reason"] not in UNSIGNABLE_VALID]


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["reason"] for case in cases]


def _root() -> HDKey:
    return HDKey.from_string(WORKFLOW["master_key"]["extended_private_key"])


def _signatures(psbt: PSBT) -> dict[tuple[int, str], bytes]:
    """Every partial signature, by input position and hex public key."""
    return {
        (position, pub.sec().hex()): bytes(sig)
        for position, inp in enumerate(psbt.inputs)
        for pub, sig in inp.partial_sigs.items()
    }


def _verifies(psbt: PSBT, position: int, pub_hex: str, sig: bytes) -> bool:
    """``sig`` (DER plus the SIGHASH_ALL byte) signs input ``position``'s sighash under ``pub``."""
    pub = next(p for p in psbt.inputs[position].partial_sigs if p.sec().hex() == pub_hex)
    return sig[-1] == SIGHASH.ALL and bool(
        pub.verify(Signature.parse(sig[:-1]), psbt.sighash(position))
    )


def _combine(first: PSBT, second: PSBT) -> PSBT:
    """Merge ``second``'s records into ``first``, the way a BIP-174 combiner does."""
    first.unknown.update(second.unknown)
    first.xpubs.update(second.xpubs)
    for mine, theirs in zip(first.inputs, second.inputs, strict=True):
        mine.update(theirs)
    for mine_out, theirs_out in zip(first.outputs, second.outputs, strict=True):
        mine_out.update(theirs_out)
    return first


@pytest.mark.parametrize(
    "case",
    VECTORS["invalid"] + VECTORS["valid"] + VECTORS["fails_signer_checks"],
    ids=_ids(VECTORS["invalid"] + VECTORS["valid"] + VECTORS["fails_signer_checks"]),
)
def test_each_vectors_base64_and_hex_transcriptions_agree(case: dict[str, Any]) -> None:
    """Each vector's base64 and hex, both copied from the BIP, decode to the same bytes."""
    assert base64.b64decode(case["base64"], validate=True) == bytes.fromhex(case["hex"])


def test_vector_file_holds_every_case_of_the_bip() -> None:
    """The vector file names its source and holds BIP-174's 19 invalid and 10 valid PSBTs."""
    assert "BIP-174" in VECTORS["source"]
    assert "Test Vectors" in VECTORS["source"]
    assert (len(VECTORS["invalid"]), len(VECTORS["valid"])) == (19, 10)
    assert len(VECTORS["fails_signer_checks"]) == 4


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=_ids(VECTORS["invalid"]))
def test_invalid_vectors_are_refused_by_parse_psbt(case: dict[str, Any]) -> None:
    """Every PSBT that BIP-174 calls invalid is refused with ``MalformedPSBTError``."""
    with pytest.raises(MalformedPSBTError):
        parse_psbt(case["base64"])


def test_strictness_messages_name_the_unsigned_transactions_fault() -> None:
    """The two invalid vectors embit accepts are refused with messages naming the BIP-174 rule."""
    by_reason = {case["reason"]: case["base64"] for case in VECTORS["invalid"]}
    filled = by_reason["PSBT where one input has a filled scriptSig in the unsigned tx"]
    with pytest.raises(MalformedPSBTError, match=r"Input 0 .* carries a scriptSig"):
        parse_psbt(filled)
    witness_form = by_reason["PSBT with unsigned tx serialized with witness serialization format"]
    with pytest.raises(MalformedPSBTError, match=r"legacy \(non-witness\) serialisation"):
        parse_psbt(witness_form)


@pytest.mark.parametrize(
    "case",
    SIGNABLE_VALID + VECTORS["fails_signer_checks"],
    ids=_ids(SIGNABLE_VALID + VECTORS["fails_signer_checks"]),
)
def test_valid_vectors_parse_and_reserialise_byte_for_byte(case: dict[str, Any]) -> None:
    """Every valid PSBT with inputs parses and re-serialises to exactly the BIP's bytes."""
    psbt = parse_psbt(case["base64"])
    assert psbt.serialize() == bytes.fromhex(case["hex"])
    assert psbt.to_string() == case["base64"]


@pytest.mark.parametrize(
    "case",
    [case for case in VECTORS["valid"] if case["reason"] in UNSIGNABLE_VALID],
    ids=sorted(UNSIGNABLE_VALID, reverse=True),
)
def test_valid_vectors_without_inputs_are_refused_as_unsignable(case: dict[str, Any]) -> None:
    """The BIP's valid zero-input PSBTs give a cosigner nothing to sign, so parse_psbt refuses them."""
    with pytest.raises(MalformedPSBTError):
        parse_psbt(case["base64"])


def test_master_key_and_signer_keys_are_the_bips_derivations() -> None:
    """The BIP's tprv comes from its seed and each signer's WIF is the tprv at the stated path."""
    seed = PrivateKey.from_wif(WORKFLOW["master_key"]["seed"]).secret
    assert (
        HDKey.from_seed(seed, version=NETWORKS["test"]["xprv"]).to_string()
        == (WORKFLOW["master_key"]["extended_private_key"])
    )
    for signer in WORKFLOW["signers"]:
        for key in signer["keys"]:
            derived = _root().derive(key["derivation_path"]).key
            assert derived.sec() == PrivateKey.from_wif(key["wif"]).sec()


def test_creator_vector_is_embits_psbt_of_the_transaction() -> None:
    """A PSBT made by embit from the BIP's inputs and outputs is the creator vector."""
    creator = WORKFLOW["creator"]
    tx = Transaction(
        version=2,
        vin=[TransactionInput(bytes.fromhex(i["txid"]), i["index"]) for i in creator["inputs"]],
        vout=[
            TransactionOutput(
                int(Decimal(o["amount_btc"]) * SATS_PER_BTC),
                Script(bytes.fromhex(o["script_pubkey"])),
            )
            for o in creator["outputs"]
        ],
        locktime=0,
    )
    assert PSBT(tx).to_string() == creator["psbt"]
    assert parse_psbt(creator["psbt"]).tx.txid() == tx.txid()


def test_sighash_updater_vector_is_the_updater_vector_with_sighash_all() -> None:
    """Setting SIGHASH_ALL on every input of the updater vector gives the sighash-updater vector."""
    psbt = parse_psbt(WORKFLOW["updater"]["psbt"])
    for inp in psbt.inputs:
        inp.sighash_type = SIGHASH.ALL
    assert psbt.to_string() == WORKFLOW["sighash_updater"]["psbt"]


@pytest.mark.parametrize("signer", WORKFLOW["signers"], ids=["signer 1", "signer 2"])
def test_embit_sighashes_with_rfc6979_reproduce_the_bips_signatures(
    signer: dict[str, Any],
) -> None:
    """Signing embit's sighash of each input with plain RFC 6979 gives the BIP's exact signature."""
    unsigned = parse_psbt(WORKFLOW["sighash_updater"]["psbt"])
    expected = _signatures(parse_psbt(signer["psbt"]))
    assert len(expected) == len(signer["keys"])
    for key in signer["keys"]:
        private = PrivateKey.from_wif(key["wif"])
        for (position, pub_hex), signature in expected.items():
            if pub_hex != private.sec().hex():
                continue
            ours = private.sign(unsigned.sighash(position), grind=False).serialize()
            assert ours + bytes([SIGHASH.ALL]) == signature


@pytest.mark.parametrize("signer", WORKFLOW["signers"], ids=["signer 1", "signer 2"])
def test_embit_sign_with_reproduces_the_signed_vectors(signer: dict[str, Any]) -> None:
    """embit's ``sign_with`` yields the BIP's signed PSBT, up to its low-R nonce grinding.

    embit (like Bitcoin Core since 0.17) retries the nonce until R is low; the BIP's signer 2
    signature for input 0 has a high R, so there embit's signature differs but must verify.
    """
    psbt = parse_psbt(WORKFLOW["sighash_updater"]["psbt"])
    for key in signer["keys"]:
        assert psbt.sign_with(PrivateKey.from_wif(key["wif"])) == 1
    expected_psbt = parse_psbt(signer["psbt"])
    expected = _signatures(expected_psbt)
    ours = _signatures(psbt)
    assert ours.keys() == expected.keys()
    for where, signature in expected.items():
        if len(signature) - 1 <= DER_LOW_R_MAX_BYTES:
            assert ours[where] == signature
        else:
            assert len(ours[where]) - 1 <= DER_LOW_R_MAX_BYTES
            assert _verifies(psbt, *where, ours[where])
            assert _verifies(expected_psbt, *where, signature)
    for position, pub_hex in expected:
        inp = psbt.inputs[position]
        pub = next(p for p in inp.partial_sigs if p.sec().hex() == pub_hex)
        inp.partial_sigs[pub] = expected[(position, pub_hex)]
    assert psbt.to_string() == signer["psbt"]


def test_root_key_signs_every_input_like_our_cosigner_does() -> None:
    """Signing with the BIP's tprv, as ``sign_psbt`` signs with a cosigner root, adds valid
    signatures for exactly the keys the combined vector holds."""
    psbt = parse_psbt(WORKFLOW["sighash_updater"]["psbt"])
    combined = _signatures(parse_psbt(WORKFLOW["combiner"]["psbt"]))
    assert psbt.sign_with(_root()) == len(combined)
    ours = _signatures(psbt)
    assert ours.keys() == combined.keys()
    assert all(_verifies(psbt, *where, signature) for where, signature in ours.items())


def test_combining_the_signed_vectors_gives_the_combined_vector() -> None:
    """Merging the two signers' PSBTs reproduces the BIP's combined PSBT byte for byte."""
    first, second = (parse_psbt(signer["psbt"]) for signer in WORKFLOW["signers"])
    assert _combine(first, second).to_string() == WORKFLOW["combiner"]["psbt"]


def test_finalizing_the_segwit_multisig_input_matches_the_finalized_vector() -> None:
    """embit finalizes the P2SH-P2WSH 2-of-2 input to the BIP's final scriptSig and witness.

    Input 0 (legacy P2SH multisig) is not checked: embit's finalizer does not support it, and
    our vaults are P2WSH and finalized by bitcoind's ``finalizepsbt``.
    """
    tx = finalize_psbt(parse_psbt(WORKFLOW["combiner"]["psbt"]))
    finalized = parse_psbt(WORKFLOW["finalizer"]["psbt"]).inputs[1]
    network_tx = Transaction.from_string(WORKFLOW["extractor"]["transaction_hex"])
    assert tx is not None
    assert tx.vin[1].script_sig == finalized.final_scriptsig == network_tx.vin[1].script_sig
    assert tx.vin[1].witness == finalized.final_scriptwitness == network_tx.vin[1].witness


def test_extracting_the_finalized_vector_gives_the_bips_network_transaction() -> None:
    """Extraction from the BIP's finalized PSBT yields its network transaction hex exactly."""
    finalized = parse_psbt(WORKFLOW["finalizer"]["psbt"])
    tx = finalize_psbt(finalized)
    assert tx is not None
    assert tx.serialize().hex() == WORKFLOW["extractor"]["transaction_hex"]


def test_combining_unknown_records_keeps_them_all_in_key_order() -> None:
    """Combining the BIP's two PSBTs with unknown records gives its lexicographically ordered PSBT."""
    vectors = WORKFLOW["unknown_combiner"]
    first, second = (parse_psbt(text) for text in vectors["inputs"])
    assert _combine(first, second).to_string() == vectors["psbt"]


def test_a_break_glass_mark_is_a_proprietary_field_that_changes_no_sighash() -> None:
    """The signer's break-glass mark is a BIP-174 proprietary global field (type 0xFC): it
    round-trips through the PSBT encoding and leaves every input's sighash as it was, so the
    signatures it travels with stay valid."""
    psbt = parse_psbt(WORKFLOW["sighash_updater"]["psbt"])
    before = [psbt.sighash(i) for i in range(len(psbt.inputs))]
    assert break_glass_marks(psbt) == {}
    add_break_glass_mark(psbt, "d90c6a4f", "flood in the server room")
    (key,) = [k for k in psbt.unknown if k[0] == 0xFC]
    assert b"national-reserve" in key
    assert key.endswith(bytes.fromhex("d90c6a4f"))
    again = parse_psbt(psbt.to_string())
    assert break_glass_marks(again) == {"d90c6a4f": "flood in the server room"}
    assert [again.sighash(i) for i in range(len(again.inputs))] == before
