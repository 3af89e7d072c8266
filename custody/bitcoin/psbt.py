"""PSBTs (BIP-174): decoding with typed errors, the unsigned transaction's hash, size estimates,
and asking the vault's watch-only wallet to fund one.
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from io import BytesIO

from embit.psbt import PSBT, InputScope, read_string
from embit.transaction import Transaction

from custody.bitcoin.approval import Payment
from custody.bitcoin.rpc import BitcoinRPC, sats_to_btc
from custody.exceptions import MalformedPSBTError

ECDSA_SIGNATURE_MAX_BYTES = 73
"""DER signature (at most 72 bytes) plus its sighash byte."""
WITNESS_SCALE_FACTOR = 4
SEGWIT_MARKER_FLAG_BYTES = 2
PSBT_GLOBAL_UNSIGNED_TX_KEY = b"\x00"
"""Key of the global unsigned transaction record (type 0x00, no key data)."""
PSBT_INPUT_NON_WITNESS_UTXO_KEY = b"\x00"
"""Key of an input's previous transaction record (type 0x00, no key data)."""


_PREVIOUS_TRANSACTIONS: ContextVar[dict[bytes, Transaction] | None] = ContextVar(
    "previous_transactions", default=None
)
"""Previous transactions already parsed in the PSBT being decoded, by their exact bytes."""


class _SharedPreviousInput(InputScope):  # type: ignore[misc]  # embit is untyped
    """An input scope that parses each distinct previous transaction once per PSBT.

    bitcoind puts the whole previous transaction in every input it funds; when the coins come
    from one batched payout, a 200-input PSBT carries the same transaction 200 times, and
    parsing it was most of the signer's time. Inputs spending the same transaction share one
    parsed object: nothing in custody mutates a previous transaction (the signer reads it, and
    ``encode_psbt`` swaps the attribute, not the object). The bytes are read as one record, so a
    record with trailing bytes is refused, where embit would read past it.
    """

    def read_value(self, stream: BytesIO, k: bytes) -> None:
        cache = _PREVIOUS_TRANSACTIONS.get()
        if cache is None or k != PSBT_INPUT_NON_WITNESS_UTXO_KEY or self.compress:
            super().read_value(stream, k)
            return
        if getattr(self, "non_witness_utxo", None) is not None:
            raise MalformedPSBTError("An input of the PSBT has two previous transactions.")
        raw = read_string(stream)
        previous = cache.get(raw)
        if previous is None:
            previous = cache[raw] = Transaction.parse(raw)
        self.non_witness_utxo = previous


class _SharingPSBT(PSBT):  # type: ignore[misc]  # embit is untyped
    """embit's PSBT with inputs that share their parsed previous transactions."""

    PSBTIN_CLS = _SharedPreviousInput


@contextmanager
def _sharing_previous_transactions() -> Iterator[None]:
    token = _PREVIOUS_TRANSACTIONS.set({})
    try:
        yield
    finally:
        _PREVIOUS_TRANSACTIONS.reset(token)


def parse_psbt(text: str) -> PSBT:
    """Decode a base64 PSBT; anything else raises ``MalformedPSBTError`` (no content echoed)."""
    try:
        raw = _psbt_bytes(text.strip())
        with _sharing_previous_transactions():
            psbt = _SharingPSBT.parse(raw)
    except Exception as exc:  # embit raises assorted types (binascii, EmbitError, ValueError, ...)
        raise MalformedPSBTError(
            f"The PSBT does not decode ({type(exc).__name__}): expected base64 of a BIP-174 PSBT."
        ) from None
    _check_unsigned_tx_encoding(raw)
    if not psbt.inputs or not psbt.outputs:
        raise MalformedPSBTError("The PSBT has no inputs or no outputs; nothing can be signed.")
    return psbt


def _psbt_bytes(text: str) -> bytes:
    """``text`` decoded as ``PSBT.from_string`` does: hex if it starts with the magic, else base64."""
    if text.startswith(PSBT.MAGIC.hex()):
        return bytes.fromhex(text)
    return binascii.a2b_base64(text)


def _check_unsigned_tx_encoding(raw: bytes) -> None:
    """BIP-174 strictness that embit 0.8 lacks: refuse the two invalid test vectors it accepts.

    BIP-174 says the global unsigned transaction's "scriptSigs and witnesses for each input
    must be empty" and it "must be in the old serialization format (without witnesses)".
    embit parses such a transaction and silently re-encodes it, so the check reads the
    record as sent. ``raw`` has already been parsed by embit, so its global map is well formed.
    """
    stream = BytesIO(raw[len(PSBT.MAGIC) :])
    while key := read_string(stream):
        value = read_string(stream)
        if key != PSBT_GLOBAL_UNSIGNED_TX_KEY:
            continue
        tx = Transaction.parse(value)
        for position, vin in enumerate(tx.vin):
            if vin.script_sig.data or vin.witness.items:
                raise MalformedPSBTError(
                    f"Input {position} of the PSBT's unsigned transaction carries a scriptSig or "
                    "witness; BIP-174 requires both to be empty."
                )
        if tx.serialize() != value:
            raise MalformedPSBTError(
                "The PSBT's unsigned transaction is not in the legacy (non-witness) "
                "serialisation that BIP-174 requires."
            )
        return


def unsigned_txid(psbt: PSBT) -> str:
    """Hex txid of the PSBT's unsigned transaction: what an approval binds."""
    return str(psbt.tx.txid().hex())


def multisig_witness_bytes(threshold: int, witness_script_bytes: int) -> int:
    """Upper bound of one P2WSH ``CHECKMULTISIG`` input's witness, in bytes.

    Stack: item count, the empty dummy, ``threshold`` signatures, the witness script.
    """
    items = 1 + 1 + threshold * (1 + ECDSA_SIGNATURE_MAX_BYTES)
    return items + _compact_size(witness_script_bytes) + witness_script_bytes


def estimate_vsize(psbt: PSBT, threshold: int) -> int:
    """Virtual size of the transaction once ``threshold`` cosigners have signed every input."""
    base = len(psbt.tx.serialize())
    witness = SEGWIT_MARKER_FLAG_BYTES
    for inp in psbt.inputs:
        script_len = len(inp.witness_script.data) if inp.witness_script is not None else 0
        witness += multisig_witness_bytes(threshold, script_len)
    return math.ceil((base * WITNESS_SCALE_FACTOR + witness) / WITNESS_SCALE_FACTOR)


def _compact_size(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5


def fund_psbt(
    wallet: BitcoinRPC, payments: Sequence[Payment], fee_rate_sat_vb: Decimal
) -> tuple[str, int]:
    """An unsigned, replaceable PSBT from the vault's watch-only wallet, and its fee in sats.

    bitcoind chooses the coins and sends change to the wallet's active internal (``/1/*``)
    descriptor; the signers check all of it again before signing.
    """
    outputs = [{payment.address: sats_to_btc(payment.amount_sats)} for payment in payments]
    funded = wallet.call(
        "walletcreatefundedpsbt",
        [],
        outputs,
        0,
        {"fee_rate": fee_rate_sat_vb, "replaceable": True, "includeWatching": True},
        True,
    )
    psbt = parse_psbt(funded["psbt"])
    return str(funded["psbt"]), int(psbt.fee())
