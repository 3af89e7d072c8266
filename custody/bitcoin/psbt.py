"""PSBTs (BIP-174): decoding with typed errors, the unsigned transaction's hash, size estimates,
and asking the vault's watch-only wallet to fund one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from embit.psbt import PSBT

from custody.bitcoin.approval import Payment
from custody.devnet.bitcoin import BitcoinRPC, sats_to_btc
from custody.exceptions import MalformedPSBTError

ECDSA_SIGNATURE_MAX_BYTES = 73
"""DER signature (at most 72 bytes) plus its sighash byte."""
WITNESS_SCALE_FACTOR = 4
SEGWIT_MARKER_FLAG_BYTES = 2


def parse_psbt(text: str) -> PSBT:
    """Decode a base64 PSBT; anything else raises ``MalformedPSBTError`` (no content echoed)."""
    try:
        psbt = PSBT.from_string(text.strip())
    except Exception as exc:  # embit raises assorted types (binascii, EmbitError, ValueError, ...)
        raise MalformedPSBTError(
            f"The PSBT does not decode ({type(exc).__name__}): expected base64 of a BIP-174 PSBT."
        ) from None
    if not psbt.inputs or not psbt.outputs:
        raise MalformedPSBTError("The PSBT has no inputs or no outputs; nothing can be signed.")
    return psbt


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
