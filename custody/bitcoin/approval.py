"""What the approvers agreed to, and the limits a signer enforces whatever was agreed.

An ``ApprovedSpend`` binds the destinations and amounts, the highest acceptable fee, and the
hash (txid) of the PSBT's unsigned transaction: any change to inputs, outputs, amounts or
sequence numbers after approval changes that hash, and signers refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from embit.script import Script, address_to_scriptpubkey

from custody.bitcoin_network import BitcoinNetwork
from custody.exceptions import InvalidPaymentError

DEFAULT_MAX_FEE_RATE_SAT_VB = 500
"""A fee rate above this is a mistake or an attack, not a busy mempool."""
DEFAULT_MAX_FEE_SATS = 1_000_000
"""0.01 BTC: the absolute fee no single vault spend may exceed without a policy change."""


@dataclass(frozen=True)
class Payment:
    """``amount_sats`` to ``address`` (a bech32 address of ``network``)."""

    address: str
    amount_sats: int
    network: BitcoinNetwork = BitcoinNetwork.REGTEST

    def __post_init__(self) -> None:
        prefix = self.network.bech32_prefix
        if not self.address.startswith(prefix):
            raise InvalidPaymentError(
                f"Destination address {self.address!r} is not a {self.network.value} bech32 "
                f"address (it must start with {prefix!r})."
            )
        try:
            address_to_scriptpubkey(self.address)
        except Exception:
            raise InvalidPaymentError(
                f"Destination address {self.address!r} does not decode (bad checksum or length)."
            ) from None
        if isinstance(self.amount_sats, bool) or not isinstance(self.amount_sats, int):
            raise InvalidPaymentError("A payment amount must be an integer number of satoshis.")
        if self.amount_sats <= 0:
            raise InvalidPaymentError(
                f"The payment to {self.address} must be a positive number of satoshis; "
                f"got {self.amount_sats}."
            )

    @property
    def script_pubkey(self) -> Script:
        return address_to_scriptpubkey(self.address)

    def as_dict(self) -> dict[str, str | int]:
        return {"address": self.address, "amount_sats": self.amount_sats}


@dataclass(frozen=True)
class ApprovedSpend:
    """The approvers' decision, bound to one unsigned transaction by its hash."""

    vault_name: str
    payments: tuple[Payment, ...]
    max_fee_sats: int
    unsigned_txid: str
    """Hex txid of the PSBT's unsigned transaction (covers inputs, outputs and amounts)."""

    def __post_init__(self) -> None:
        if not self.payments:
            raise InvalidPaymentError("An approved spend needs at least one payment.")
        if self.max_fee_sats <= 0:
            raise InvalidPaymentError(
                f"The approved maximum fee must be positive; got {self.max_fee_sats} sats."
            )


@dataclass(frozen=True)
class FeePolicy:
    """Caps a signer applies to every spend, approved or not."""

    max_fee_rate_sat_vb: int = DEFAULT_MAX_FEE_RATE_SAT_VB
    max_fee_sats: int = DEFAULT_MAX_FEE_SATS
