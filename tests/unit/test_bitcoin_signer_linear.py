"""The signer's linear parts, held to embit: the previous transactions' txids, the signed PSBT's
encoding, and the count of valid cosigner signatures; and the checks on previous transactions
that these faster paths must keep (a forged amount, a transaction that is not the input's)."""

from __future__ import annotations

import binascii
import random

import pytest
from embit.bip32 import HDKey
from embit.networks import NETWORKS
from embit.psbt import PSBT, DerivationPath
from embit.script import Script, Witness, p2wpkh
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.bitcoin.approval import ApprovedSpend, FeePolicy, Payment
from custody.bitcoin.descriptor import Branch, VaultDescriptor
from custody.bitcoin.multisig_signing import sign_multisig_inputs
from custody.bitcoin.psbt import parse_psbt, unsigned_txid
from custody.bitcoin.signer import check_psbt, encode_psbt, signed_fingerprints, transaction_id
from custody.exceptions import ForeignInputError, MalformedPSBTError
from custody.keys import cosigner_keys
from custody.secret import SecretBytes

SEEDS = tuple(bytes([n]) * 32 for n in (7, 8, 9))
"""Three fixed test seeds: the vault and every signature below are the same on every run."""
VAULT = VaultDescriptor(2, tuple(cosigner_keys(SecretBytes(s)).key_origin for s in SEEDS))
FINGERPRINTS = VAULT.fingerprints
COIN_SATS = 100_000
FEE_SATS = 5_000
PAYEE = Script(b"\x00\x14" + bytes(range(20)))
FUNDING_OUTPUTS = 300
"""Outputs of the one payout that funds every coin: a previous transaction far larger than an
input, so that re-serialising it per input would show."""


def _rng(seed: int) -> random.Random:
    """Fixed randomness for the generated PSBTs: the same test data on every run."""
    return random.Random(seed)  # noqa: S311 (reproducible test data, not keys)


def _root(seed: bytes) -> HDKey:
    return HDKey.from_seed(seed, version=NETWORKS["regtest"]["xprv"])


def _funding(where: list[tuple[Branch, int]], rng: random.Random) -> Transaction:
    """A segwit payout whose first outputs are the vault coins at ``where``."""
    outputs = [TransactionOutput(COIN_SATS, VAULT.script_pubkey(b, i)) for b, i in where]
    outputs += [
        TransactionOutput(rng.randrange(1, 10**8), Script(b"\x00\x14" + rng.randbytes(20)))
        for _ in range(FUNDING_OUTPUTS - len(where))
    ]
    spent = TransactionInput(rng.randbytes(32), 0, sequence=0xFFFFFFFD)
    spent.witness = Witness([rng.randbytes(71), rng.randbytes(33)])
    return Transaction(version=2, vin=[spent], vout=outputs, locktime=rng.randrange(500_000))


def _vault_spend(input_count: int, seed: int) -> tuple[PSBT, ApprovedSpend]:
    """A vault spend of ``input_count`` coins of one payout, each input carrying the payout as
    its previous transaction (as bitcoind's ``walletcreatefundedpsbt`` does), and its approval."""
    rng = _rng(seed)
    where = [(rng.choice(list(Branch)), rng.randrange(1000)) for _ in range(input_count)]
    funding = _funding(where, rng)
    pay = input_count * COIN_SATS // 2
    tx = Transaction(
        version=2,
        vin=[TransactionInput(funding.txid(), i, sequence=0xFFFFFFFD) for i in range(input_count)],
        vout=[
            TransactionOutput(pay, PAYEE),
            TransactionOutput(
                input_count * COIN_SATS - pay - FEE_SATS, VAULT.script_pubkey(Branch.CHANGE, 7)
            ),
        ],
    )
    psbt = PSBT(tx)
    for inp, (branch, index) in zip(psbt.inputs, where, strict=True):
        inp.non_witness_utxo = funding
        inp.witness_utxo = TransactionOutput(COIN_SATS, VAULT.script_pubkey(branch, index))
        inp.witness_script = VAULT.witness_script(branch, index)
        for key in VAULT.parsed(branch).derive(index).keys:
            inp.bip32_derivations[key.get_public_key()] = DerivationPath(
                key.origin.fingerprint, key.origin.derivation
            )
    for key in VAULT.parsed(Branch.CHANGE).derive(7).keys:
        psbt.outputs[1].bip32_derivations[key.get_public_key()] = DerivationPath(
            key.origin.fingerprint, key.origin.derivation
        )
    psbt = parse_psbt(str(psbt.to_string()))
    approval = ApprovedSpend(
        "unit", (Payment(str(PAYEE.address(NETWORKS["regtest"])), pay),), FEE_SATS,
        unsigned_txid(psbt),
    )  # fmt: skip
    return psbt, approval


_scripts = st.binary(max_size=300)
"""Up to 300 bytes: both one-byte and three-byte (0xFD) CompactSize lengths."""
_inputs = st.builds(
    TransactionInput,
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**32 - 1),
    _scripts.map(Script),
    st.integers(0, 2**32 - 1),
)
_outputs = st.builds(TransactionOutput, st.integers(0, 21 * 10**14), _scripts.map(Script))


@settings(max_examples=150, deadline=None)
@given(
    version=st.integers(0, 2**32 - 1),
    vin=st.lists(_inputs, min_size=1, max_size=4),
    vout=st.lists(_outputs, min_size=1, max_size=300),
    locktime=st.integers(0, 2**32 - 1),
    witnessed=st.booleans(),
)
def test_transaction_id_equals_embits_txid(
    version: int,
    vin: list[TransactionInput],
    vout: list[TransactionOutput],
    locktime: int,
    witnessed: bool,
) -> None:
    """Any transaction, with up to 300 outputs and scripts on both sides of the CompactSize
    boundary, witnessed or not, has embit's txid (witnesses never change it)."""
    if witnessed:
        vin[0].witness = Witness([b"\x01" * 72, b"\x02" * 33])
    tx = Transaction(version=version, vin=vin, vout=vout, locktime=locktime)
    assert transaction_id(tx) == tx.txid()


def test_the_encoding_is_embits_and_gives_the_previous_transactions_back() -> None:
    """The signed PSBT's text equals embit's ``to_string`` for inputs sharing one large previous
    transaction (parsed once, so one object), and each input holds that object again afterwards."""
    psbt, _ = _vault_spend(30, seed=1)
    sign_multisig_inputs(psbt, _root(SEEDS[0]))
    before = [inp.non_witness_utxo for inp in psbt.inputs]
    assert len({id(tx) for tx in before}) == 1
    assert encode_psbt(psbt) == psbt.to_string()
    assert all(inp.non_witness_utxo is tx for inp, tx in zip(psbt.inputs, before, strict=True))


def test_previous_transactions_with_one_txid_but_other_witnesses_keep_their_own_bytes() -> None:
    """Two copies of one previous transaction that differ only in their witness (so in bytes, not
    in txid) are each written as they are, as embit writes them."""
    psbt, _ = _vault_spend(3, seed=2)
    other = Transaction.parse(psbt.inputs[1].non_witness_utxo.serialize())
    psbt.inputs[1].non_witness_utxo = other
    other.vin[0].witness = Witness([b"\x03" * 70, b"\x02" * 33])
    assert transaction_id(other) == transaction_id(psbt.inputs[0].non_witness_utxo)
    assert other.serialize() != psbt.inputs[0].non_witness_utxo.serialize()
    assert encode_psbt(psbt) == psbt.to_string()


def test_a_vault_spend_with_its_previous_transactions_passes_the_checks() -> None:
    """The generated spend is a valid vault spend: the negative tests below fail for their one
    change, not for anything else."""
    psbt, approval = _vault_spend(5, seed=3)
    checked = check_psbt(psbt, VAULT, approval, FeePolicy(max_fee_sats=FEE_SATS))
    assert (checked.input_count, checked.fee_sats) == (5, FEE_SATS)


def test_a_forged_witness_utxo_amount_is_refused() -> None:
    """A witness UTXO that claims more than the previous transaction's output is refused."""
    psbt, approval = _vault_spend(5, seed=3)
    psbt.inputs[2].witness_utxo.value += 1
    with pytest.raises(ForeignInputError, match=r"Input 2 .* the amount was forged"):
        check_psbt(psbt, VAULT, approval, FeePolicy(max_fee_sats=FEE_SATS))


@pytest.mark.parametrize("change", ["output value", "locktime", "vout out of range"])
def test_a_previous_transaction_that_is_not_the_inputs_own_is_refused(change: str) -> None:
    """A previous transaction changed in any byte (so with another txid), or one without the
    spent output, is refused."""
    psbt, approval = _vault_spend(5, seed=3)
    previous = Transaction.parse(psbt.inputs[4].non_witness_utxo.serialize())
    psbt.inputs[4].non_witness_utxo = previous
    if change == "output value":
        previous.vout[-1].value += 1
    elif change == "locktime":
        previous.locktime += 1
    else:
        previous.vout = previous.vout[:4]
    with pytest.raises(ForeignInputError, match=r"Input 4 .* is not its own"):
        check_psbt(psbt, VAULT, approval, FeePolicy(max_fee_sats=FEE_SATS))


def test_signed_fingerprints_counts_each_cosigner_that_signed_every_input() -> None:
    """Two cosigners' signatures, one PSBT each, count both of them and not the third; embit's
    own ``sign_with`` signatures count the same."""
    unsigned, _ = _vault_spend(17, seed=4)
    text = encode_psbt(unsigned)
    signed = []
    for seed in SEEDS[:2]:
        psbt = parse_psbt(text)
        assert sign_multisig_inputs(psbt, _root(seed)) == 17
        signed.append(psbt)
    assert signed_fingerprints(unsigned, signed[0]) == {FINGERPRINTS[0]}
    assert signed_fingerprints(unsigned, signed[1]) == {FINGERPRINTS[1]}
    by_embit = parse_psbt(text)
    by_embit.sign_with(_root(SEEDS[2]))
    assert signed_fingerprints(unsigned, by_embit) == {FINGERPRINTS[2]}
    for inp, other in zip(signed[0].inputs, signed[1].inputs, strict=True):
        inp.partial_sigs.update(other.partial_sigs)
    assert signed_fingerprints(unsigned, signed[0]) == {FINGERPRINTS[0], FINGERPRINTS[1]}


def test_a_signature_missing_or_broken_on_one_input_counts_for_nothing() -> None:
    """A cosigner whose signature on one input is removed, altered or of another sighash type
    does not count."""
    unsigned, _ = _vault_spend(6, seed=5)
    signed = parse_psbt(encode_psbt(unsigned))
    sign_multisig_inputs(signed, _root(SEEDS[0]))
    assert signed_fingerprints(unsigned, signed) == {FINGERPRINTS[0]}
    ((pub, signature),) = signed.inputs[3].partial_sigs.items()
    for broken in (
        signature[:10] + bytes([signature[10] ^ 1]) + signature[11:],
        signature[:-1] + bytes([SIGHASH.NONE]),
        b"",
    ):
        signed.inputs[3].partial_sigs[pub] = broken
        assert signed_fingerprints(unsigned, signed) == frozenset()
    del signed.inputs[3].partial_sigs[pub]
    assert signed_fingerprints(unsigned, signed) == frozenset()


def test_signatures_on_another_transaction_count_for_nothing() -> None:
    """Signatures made on a transaction that differs only in its locktime do not verify against
    the unsigned one's digests."""
    unsigned, _ = _vault_spend(4, seed=6)
    other = parse_psbt(encode_psbt(unsigned))
    other.locktime = 1
    sign_multisig_inputs(other, _root(SEEDS[1]))
    assert signed_fingerprints(other, other) == {FINGERPRINTS[1]}
    assert signed_fingerprints(unsigned, other) == frozenset()


def test_a_p2wpkh_input_is_verified_with_its_p2pkh_script_code() -> None:
    """For a P2WPKH input the digest uses BIP-143's P2PKH script code, as embit's ``sighash``
    does: embit's signature on it counts."""
    root = _root(bytes([42]) * 32)
    path = [0x80000054, 0x80000001, 0x80000000, 0, 5]
    key = root.derive(path).key
    tx = Transaction(
        vin=[TransactionInput(bytes(range(32)), 1)], vout=[TransactionOutput(90_000, PAYEE)]
    )
    unsigned = PSBT(tx)
    unsigned.inputs[0].witness_utxo = TransactionOutput(100_000, p2wpkh(key.get_public_key()))
    unsigned.inputs[0].bip32_derivations[key.get_public_key()] = DerivationPath(
        root.my_fingerprint, path
    )
    signed = PSBT.from_string(unsigned.to_string())
    assert signed.sign_with(root) == 1
    assert signed_fingerprints(unsigned, signed) == {root.my_fingerprint.hex()}


def test_a_taproot_input_counts_no_fingerprint() -> None:
    """A P2TR input, never a vault coin, makes every fingerprint count for nothing."""
    unsigned, _ = _vault_spend(2, seed=7)
    signed = parse_psbt(encode_psbt(unsigned))
    sign_multisig_inputs(signed, _root(SEEDS[0]))
    assert signed_fingerprints(unsigned, signed) == {FINGERPRINTS[0]}
    unsigned.inputs[1].witness_utxo.script_pubkey = Script(b"\x51\x20" + bytes(32))
    assert signed_fingerprints(unsigned, signed) == frozenset()


def test_previous_transactions_are_parsed_once_per_distinct_bytes() -> None:
    """Inputs carrying the same previous transaction share one parsed object; an input whose
    previous transaction differs in any byte gets its own, so a forged copy is never hidden
    behind the genuine one."""
    psbt, _ = _vault_spend(4, seed=5)
    forged = Transaction.parse(psbt.inputs[2].non_witness_utxo.serialize())
    forged.locktime += 1
    psbt.inputs[2].non_witness_utxo = forged
    parsed = parse_psbt(str(psbt.to_string()))
    shared = parsed.inputs[0].non_witness_utxo
    assert parsed.inputs[1].non_witness_utxo is shared
    assert parsed.inputs[3].non_witness_utxo is shared
    assert parsed.inputs[2].non_witness_utxo is not shared
    assert parsed.inputs[2].non_witness_utxo.locktime == shared.locktime + 1


def test_a_previous_transaction_record_with_trailing_bytes_is_refused() -> None:
    """The record holding an input's previous transaction must hold exactly one transaction;
    bytes after it are refused rather than read past."""
    psbt, _ = _vault_spend(2, seed=6)
    raw = psbt.serialize()
    previous = psbt.inputs[0].non_witness_utxo.serialize()
    record = b"\x01\x00" + _compact(len(previous)) + previous
    assert raw.count(record) == 2
    padded = b"\x01\x00" + _compact(len(previous) + 1) + previous + b"\x00"
    tampered = raw.replace(record, padded, 1)
    with pytest.raises(MalformedPSBTError, match="does not decode"):
        parse_psbt(binascii.b2a_base64(tampered, newline=False).decode())


def _compact(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    return b"\xfe" + n.to_bytes(4, "little")
