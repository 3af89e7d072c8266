"""The linear signing step: the same partial signatures as embit's ``PSBT.sign_with``, byte for
byte, on BIP-174's vectors and on generated vault PSBTs of up to 200 inputs; and refusals of
every input that is not a P2WSH multisig SIGHASH_ALL vault input."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from embit.bip32 import HDKey
from embit.ec import PrivateKey
from embit.networks import NETWORKS
from embit.psbt import PSBT, DerivationPath
from embit.script import Script
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput

from custody.bitcoin.descriptor import Branch, VaultDescriptor
from custody.bitcoin.multisig_signing import multisig_keys, sign_multisig_inputs
from custody.bitcoin.psbt import parse_psbt
from custody.bitcoin.sighash import Bip143Sighasher
from custody.exceptions import ForeignInputError, SpendApprovalMismatchError
from custody.keys import cosigner_keys
from custody.secret import SecretBytes

BIP174: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "bip174_vectors.json").read_text()
)["workflow"]
SEEDS = tuple(bytes([n]) * 32 for n in (7, 8, 9))
"""Three fixed test seeds: the vault and every signature below are the same on every run."""
COIN_SATS = 100_000


def _rng(seed: int) -> random.Random:
    """Fixed randomness for the generated PSBTs: the same test data on every run."""
    return random.Random(seed)  # noqa: S311 (reproducible test data, not keys)


def _root(seed: bytes) -> HDKey:
    return HDKey.from_seed(seed, version=NETWORKS["regtest"]["xprv"])


VAULT = VaultDescriptor(2, tuple(cosigner_keys(SecretBytes(s)).key_origin for s in SEEDS))


def _vault_psbt(input_count: int, rng: random.Random) -> str:
    """A vault spend of ``input_count`` coins (receive and change addresses mixed), as base64."""
    where = [(rng.choice(list(Branch)), rng.randrange(1000)) for _ in range(input_count)]
    tx = Transaction(
        version=2,
        vin=[
            TransactionInput(rng.randbytes(32), rng.randrange(8), sequence=0xFFFFFFFD)
            for _ in where
        ],
        vout=[
            TransactionOutput(
                input_count * COIN_SATS // 2, Script(b"\x00\x14" + rng.randbytes(20))
            ),
            TransactionOutput(input_count * COIN_SATS // 3, VAULT.script_pubkey(Branch.CHANGE, 7)),
        ],
        locktime=rng.randrange(500_000),
    )
    psbt = PSBT(tx)
    for inp, (branch, index) in zip(psbt.inputs, where, strict=True):
        inp.witness_utxo = TransactionOutput(
            COIN_SATS + rng.randrange(10_000), VAULT.script_pubkey(branch, index)
        )
        inp.witness_script = VAULT.witness_script(branch, index)
        for key in VAULT.parsed(branch).derive(index).keys:
            inp.bip32_derivations[key.get_public_key()] = DerivationPath(
                key.origin.fingerprint, key.origin.derivation
            )
    return str(psbt.to_string())


def _signatures(psbt: PSBT) -> dict[tuple[int, str], bytes]:
    return {
        (position, pub.sec().hex()): bytes(sig)
        for position, inp in enumerate(psbt.inputs)
        for pub, sig in inp.partial_sigs.items()
    }


@pytest.mark.parametrize("input_count", [1, 2, 17, 200])
@pytest.mark.parametrize("cosigner", [0, 1, 2])
def test_vault_psbt_signatures_equal_embits_sign_with_byte_for_byte(
    input_count: int, cosigner: int
) -> None:
    """For generated vault spends of 1 to 200 inputs, each cosigner's signed PSBT from the new
    path is exactly embit's ``sign_with`` output (RFC 6979 makes both deterministic)."""
    text = _vault_psbt(input_count, _rng(input_count * 10 + cosigner))
    ours, theirs = parse_psbt(text), parse_psbt(text)
    root = _root(SEEDS[cosigner])
    assert sign_multisig_inputs(ours, root) == input_count
    assert theirs.sign_with(root) == input_count
    assert _signatures(ours) == _signatures(theirs)
    assert len(_signatures(ours)) == input_count
    assert ours.to_string() == theirs.to_string()


def test_two_cosigners_sign_into_one_psbt_as_embit_does() -> None:
    """Two cosigners signing one after the other give embit's PSBT with both signatures."""
    text = _vault_psbt(25, _rng(2))
    ours, theirs = parse_psbt(text), parse_psbt(text)
    for seed in SEEDS[:2]:
        sign_multisig_inputs(ours, _root(seed))
        theirs.sign_with(_root(seed))
    assert ours.to_string() == theirs.to_string()
    assert all(len(inp.partial_sigs) == 2 for inp in ours.inputs)


def test_a_key_outside_the_vault_signs_nothing() -> None:
    """A root whose fingerprint no derivation names adds no signature, as with ``sign_with``."""
    psbt = parse_psbt(_vault_psbt(3, _rng(3)))
    assert sign_multisig_inputs(psbt, _root(bytes(32))) == 0
    assert _signatures(psbt) == {}


@pytest.mark.parametrize("signer", BIP174["signers"], ids=["signer 1", "signer 2"])
def test_bip174_segwit_input_signatures_equal_sign_with(signer: dict[str, Any]) -> None:
    """On BIP-174's signer vectors, the P2SH-P2WSH input's signature by each key, made from the
    cached BIP-143 digest with embit's signing, equals what ``sign_with`` adds byte for byte."""
    unsigned = parse_psbt(BIP174["sighash_updater"]["psbt"])
    segwit_input = unsigned.inputs[1]
    assert segwit_input.witness_script is not None
    sighasher = Bip143Sighasher.from_transaction(unsigned.tx)
    digest = sighasher.digest(
        1, bytes(segwit_input.witness_script.data), int(segwit_input.witness_utxo.value)
    )
    assert digest == unsigned.sighash(1)
    compared = 0
    for key in signer["keys"]:
        private = PrivateKey.from_wif(key["wif"])
        signed = parse_psbt(BIP174["sighash_updater"]["psbt"])
        assert signed.sign_with(private) == 1
        theirs = _signatures(signed)
        if (1, private.sec().hex()) not in theirs:
            continue
        ours = bytes(private.sign(digest).serialize()) + bytes([SIGHASH.ALL])
        assert ours == theirs[(1, private.sec().hex())]
        compared += 1
    assert compared == 1


def test_bip174_psbt_is_refused_whole_because_of_its_legacy_input() -> None:
    """BIP-174's PSBT mixes a legacy P2SH input with a P2SH-P2WSH one: neither is a native P2WSH
    vault input, so the new path refuses it and adds no signature (it does not fall back)."""
    psbt = parse_psbt(BIP174["sighash_updater"]["psbt"])
    root = HDKey.from_string(BIP174["master_key"]["extended_private_key"])
    with pytest.raises(ForeignInputError, match=r"Input 0 .* only P2WSH multisig"):
        sign_multisig_inputs(psbt, root)
    assert _signatures(psbt) == {}


def _without_witness_script(psbt: PSBT) -> None:
    psbt.inputs[-1].witness_script = None


def _wrapped_in_p2sh(psbt: PSBT) -> None:
    psbt.inputs[-1].redeem_script = Script(b"\x00\x20" + bytes(32))


def _single_sighash(psbt: PSBT) -> None:
    psbt.inputs[-1].sighash_type = SIGHASH.SINGLE


def _other_coin(psbt: PSBT) -> None:
    psbt.inputs[-1].witness_utxo.script_pubkey = VAULT.script_pubkey(Branch.RECEIVE, 999_999)


def _not_multisig(psbt: PSBT) -> None:
    """The last input becomes a P2WSH coin of a single-key ``<key> OP_CHECKSIG`` script."""
    inp = psbt.inputs[-1]
    first_key = (multisig_keys(inp.witness_script.data) or ())[0]
    script = Script(b"\x21" + first_key + b"\xac")
    inp.witness_script = script
    inp.witness_utxo.script_pubkey = Script(b"\x00\x20" + hashlib.sha256(script.data).digest())


def _wrong_claimed_key(psbt: PSBT) -> None:
    """Cosigner 0's derivation is filed under another cosigner's public key, and vice versa."""
    derivations = psbt.inputs[-1].bip32_derivations
    mine = next(p for p, d in derivations.items() if d.fingerprint.hex() == VAULT.fingerprints[0])
    other = next(p for p in derivations if p != mine)
    derivations[other], derivations[mine] = derivations[mine], derivations[other]


@pytest.mark.parametrize(
    ("tamper", "error", "message"),
    [
        (_without_witness_script, ForeignInputError, "lacks its witness UTXO or witness script"),
        (_wrapped_in_p2sh, ForeignInputError, "wrapped in P2SH"),
        (_single_sighash, SpendApprovalMismatchError, "only SIGHASH_ALL is signed"),
        (_other_coin, ForeignInputError, "does not pay to the P2WSH of its witness script"),
        (_not_multisig, ForeignInputError, "not a bare OP_CHECKMULTISIG"),
        (_wrong_claimed_key, ForeignInputError, "does not give one of its witness script's keys"),
    ],
    ids=["no witness script", "P2SH-P2WSH", "SIGHASH_SINGLE", "other coin", "single key", "key"],
)
def test_anything_but_a_p2wsh_multisig_all_input_is_refused_before_signing(
    tamper: Callable[[PSBT], None], error: type[Exception], message: str
) -> None:
    """A PSBT whose last input is tampered with is refused with a message naming that input,
    and not one of its other inputs gets a signature."""
    psbt = parse_psbt(_vault_psbt(5, _rng(5)))
    tamper(psbt)
    with pytest.raises(error, match=f"Input 4 .*{message}"):
        sign_multisig_inputs(psbt, _root(SEEDS[0]))
    assert _signatures(psbt) == {}


@pytest.mark.parametrize(
    "script_hex",
    [
        "",
        "ae",
        "5151ae",
        "52" + "21" + "02" + "00" * 32 + "51ae",
        "51" + "21" + "04" + "00" * 32 + "51ae",
        "51" + "20" + "02" + "00" * 31 + "51ae",
        "51" + "21" + "02" + "00" * 32 + "51ac",
    ],
    ids=["empty", "bare", "no keys", "threshold > keys", "bad prefix", "short push", "CHECKSIG"],
)
def test_multisig_keys_refuses_anything_but_a_bare_multisig(script_hex: str) -> None:
    """Only ``M <33-byte keys> N OP_CHECKMULTISIG`` with 1 <= M <= N yields keys."""
    assert multisig_keys(bytes.fromhex(script_hex)) is None


def test_multisig_keys_reads_the_vaults_witness_script() -> None:
    """The vault's 2-of-3 witness script yields exactly its three cosigner keys."""
    script = bytes(VAULT.witness_script(Branch.RECEIVE, 4).data)
    assert frozenset(multisig_keys(script) or ()) == VAULT.derived_public_keys(Branch.RECEIVE, 4)


def test_derived_keys_never_show_their_secret_in_a_repr() -> None:
    """The signing step's derived keys print their public key only: no WIF, no secret hex."""
    from custody.bitcoin.multisig_signing import _DerivedKeys

    root = _root(SEEDS[0])
    derived = _DerivedKeys(root).at([0x80000030, 0x80000001, 0x80000000, 0x80000002, 0, 3])
    expected = root.derive("m/48h/1h/0h/2h/0/3").key
    assert derived.sec == expected.sec()
    shown = repr(derived)
    assert shown == f"_ChildKey(sec={derived.sec!r})"
    assert expected.wif(NETWORKS["regtest"]) not in shown
    assert repr(expected.secret) not in shown
