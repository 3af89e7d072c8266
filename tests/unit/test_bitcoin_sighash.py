"""BIP-143 digests with the transaction-wide hashes computed once: the BIP's own examples, and
embit's per-input ``sighash_segwit`` as a second implementation on random transactions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from embit.script import Script
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.bitcoin.sighash import STANDARD_SIGHASH_TYPES, Bip143Sighasher
from custody.exceptions import CustodyError, SighashError

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "bip143_vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
CASES: list[dict[str, Any]] = VECTORS["cases"]
MAX_SATS = 21_000_000 * 100_000_000


def test_vector_file_holds_every_segwit_example_of_the_bip() -> None:
    """The vector file names BIP-143 and holds its 14 digests, the native P2WSH ones among them."""
    assert "BIP-143" in VECTORS["source"]
    assert len(CASES) == 14
    assert sum(case["example"].startswith("Native P2WSH") for case in CASES) == 4
    assert {case["sighash_type"] for case in CASES} == STANDARD_SIGHASH_TYPES


@pytest.mark.parametrize("case", CASES, ids=[case["example"] for case in CASES])
def test_digest_equals_the_bips_sighash(case: dict[str, Any]) -> None:
    """Each BIP-143 example's sigHash is the digest of its transaction, input, scriptCode,
    amount and sighash type."""
    sighasher = Bip143Sighasher.from_transaction(Transaction.from_string(case["unsigned_tx"]))
    digest = sighasher.digest(
        case["input_index"],
        bytes.fromhex(case["script_code"]),
        case["amount_sats"],
        case["sighash_type"],
    )
    assert digest.hex() == case["sighash"]


@pytest.mark.parametrize(
    "case",
    [case for case in CASES if "hash_outputs" in case],
    ids=[case["example"] for case in CASES if "hash_outputs" in case],
)
def test_transaction_wide_hashes_equal_the_bips(case: dict[str, Any]) -> None:
    """hashPrevouts, hashSequence and hashOutputs, computed once, are the BIP's values."""
    sighasher = Bip143Sighasher.from_transaction(Transaction.from_string(case["unsigned_tx"]))
    assert sighasher.hash_prevouts.hex() == case["hash_prevouts"]
    assert sighasher.hash_sequence.hex() == case["hash_sequence"]
    assert sighasher.hash_outputs.hex() == case["hash_outputs"]


def test_a_digest_does_not_change_when_the_transaction_object_does() -> None:
    """The sighasher keeps its own bytes: editing the embit transaction afterwards changes none
    of its digests (they stay the BIP's)."""
    case = CASES[0]
    tx = Transaction.from_string(case["unsigned_tx"])
    sighasher = Bip143Sighasher.from_transaction(tx)
    tx.vout[0].value += 1
    tx.vin[0].sequence = 0
    digest = sighasher.digest(
        case["input_index"], bytes.fromhex(case["script_code"]), case["amount_sats"]
    )
    assert digest.hex() == case["sighash"]


@pytest.mark.parametrize("sighash_type", [0, 4, 0x40, 0x84, 0x101, -1])
def test_a_non_standard_sighash_type_is_refused(sighash_type: int) -> None:
    """Types other than ALL, NONE, SINGLE (with or without ANYONECANPAY) raise ``SighashError``,
    a ``CustodyError`` that names the type."""
    sighasher = Bip143Sighasher.from_transaction(Transaction.from_string(CASES[0]["unsigned_tx"]))
    with pytest.raises(SighashError, match="is not one of ALL, NONE or SINGLE") as caught:
        sighasher.digest(0, b"\x51", 1, sighash_type)
    assert isinstance(caught.value, CustodyError)


@pytest.mark.parametrize("index", [-1, 2, 99])
def test_an_input_the_transaction_lacks_is_refused(index: int) -> None:
    """Asking for input ``index`` of a two-input transaction fails with the input count named."""
    sighasher = Bip143Sighasher.from_transaction(Transaction.from_string(CASES[0]["unsigned_tx"]))
    with pytest.raises(SighashError, match=f"Input {index} does not exist.*has 2 inputs"):
        sighasher.digest(index, b"\x51", 1)


_inputs = st.builds(
    TransactionInput,
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**32 - 1),
    sequence=st.integers(0, 2**32 - 1),
)
_outputs = st.builds(
    TransactionOutput,
    st.integers(0, MAX_SATS),
    st.binary(max_size=60).map(Script),
)
_transactions = st.builds(
    Transaction,
    version=st.integers(0, 2**32 - 1),
    vin=st.lists(_inputs, min_size=1, max_size=6),
    vout=st.lists(_outputs, min_size=1, max_size=5),
    locktime=st.integers(0, 2**32 - 1),
)


@settings(max_examples=300, deadline=None)
@given(
    tx=_transactions,
    data=st.data(),
    script_code=st.binary(max_size=300),
    amount=st.integers(0, MAX_SATS),
    sighash_type=st.sampled_from(sorted(STANDARD_SIGHASH_TYPES)),
)
def test_every_cached_digest_equals_embits_per_input_sighash(
    tx: Transaction,
    data: st.DataObject,
    script_code: bytes,
    amount: int,
    sighash_type: int,
) -> None:
    """For random small transactions, every input's digest from the once-computed hashes equals
    embit's ``sighash_segwit``, which rebuilds the hashes for that input alone."""
    sighasher = Bip143Sighasher.from_transaction(tx)
    index = data.draw(st.integers(0, len(tx.vin) - 1), label="input index")
    expected = Transaction.parse(tx.serialize()).sighash_segwit(
        index, Script(script_code), amount, sighash=sighash_type
    )
    assert sighasher.digest(index, script_code, amount, sighash_type) == expected


@settings(max_examples=50, deadline=None)
@given(tx=_transactions)
def test_all_inputs_of_one_sighasher_match_fresh_embit_digests(tx: Transaction) -> None:
    """One sighasher serves every input of its transaction with SIGHASH_ALL (as the signer uses
    it), each digest equal to embit's from a fresh transaction."""
    sighasher = Bip143Sighasher.from_transaction(tx)
    script = b"\x51\x21" + bytes(33) + b"\x51\xae"
    for index in range(len(tx.vin)):
        fresh = Transaction.parse(tx.serialize())
        expected = fresh.sighash_segwit(index, Script(script), 1000 + index, sighash=SIGHASH.ALL)
        assert sighasher.digest(index, script, 1000 + index) == expected
