"""The holdings tree rebuilt by the verifier from the bundle's snapshot (``SPEC-merkle.md``).

Leaves, each hashed as ``H(0x01 || 0x01 || body)`` and ordered by that hash::

    UTXO         0x01 || txid (32, RPC display order) || u32 vout || u64 sats
                      || u16 len(script) || script
    Safe balance 0x02 || u64 chain id || Safe (20) || u8 len(code) || code
                      || (0x00 | 0x01 || token (20)) || u256 amount

The verifier's own encoding, independent of the treasury's builder; the two are cross-tested.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from reserve_verifier.exceptions import TreeError
from reserve_verifier.tree import Root, Tree, check_assets, root_from, top

MAX_SATS = (1 << 64) - 1
"""Largest UTXO amount a leaf holds, in satoshis."""

MAX_EVM_AMOUNT_BASE_UNITS = (1 << 256) - 1
"""Largest Safe balance a leaf holds, in the asset's base units."""


def _check_amount(value: int, limit: int, what: str) -> None:
    """A holding amount is an integer in ``[0, limit]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TreeError(f"The {what} is {value!r}, not an integer of base units.")
    if value < 0:
        raise TreeError(f"The {what} is {value}; holdings are zero or more base units.")
    if value > limit:
        raise TreeError(f"The {what} is {value}, above the encoding's limit of {limit}.")


def _address(text: str, what: str) -> bytes:
    """A ``0x``-prefixed 20-byte hex address, in any letter case."""
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 42:
        raise TreeError(f"The {what} {text!r} is not a 0x-prefixed 20-byte hex address.")
    try:
        return bytes.fromhex(text[2:])
    except ValueError as error:
        raise TreeError(f"The {what} {text!r} is not hexadecimal.") from error


@dataclass(frozen=True)
class UtxoHolding:
    """One vault UTXO as the snapshot lists it."""

    asset: ClassVar[str] = "BTC"

    txid: str
    vout: int
    amount_sats: int
    script_pubkey: bytes

    def __post_init__(self) -> None:
        """Refuse a field its encoded width cannot hold."""
        try:
            txid = bytes.fromhex(self.txid)
        except (TypeError, ValueError) as error:
            raise TreeError(f"The txid {self.txid!r} is not hexadecimal.") from error
        if len(txid) != 32:
            raise TreeError(f"The txid {self.txid!r} must be 32 bytes.")
        vout = self.vout
        if isinstance(vout, bool) or not isinstance(vout, int) or not 0 <= vout <= 0xFFFFFFFF:
            raise TreeError(f"The vout {vout!r} of txid {self.txid} is not a 32-bit output index.")
        _check_amount(self.amount_sats, MAX_SATS, f"amount of UTXO {self.txid}:{vout}")
        if not isinstance(self.script_pubkey, bytes) or len(self.script_pubkey) > 0xFFFF:
            raise TreeError(
                f"The script of UTXO {self.txid}:{vout} must be bytes shorter than 65536."
            )

    @property
    def amount(self) -> int:
        """The amount in satoshis."""
        return self.amount_sats

    def leaf_body(self) -> bytes:
        """The UTXO leaf's bytes."""
        script = self.script_pubkey
        return (
            b"\x01"
            + bytes.fromhex(self.txid)
            + self.vout.to_bytes(4, "big")
            + self.amount_sats.to_bytes(8, "big")
            + len(script).to_bytes(2, "big")
            + script
        )


@dataclass(frozen=True)
class SafeBalanceHolding:
    """One Safe's balance of one asset on one EVM chain (``token_address`` None for the coin)."""

    chain_id: int
    safe_address: str
    asset: str
    token_address: str | None
    amount: int

    def __post_init__(self) -> None:
        """Refuse a field its encoded width cannot hold."""
        chain = self.chain_id
        if isinstance(chain, bool) or not isinstance(chain, int) or not 0 < chain <= MAX_SATS:
            raise TreeError(f"The chain id {chain!r} is not a positive 64-bit integer.")
        _address(self.safe_address, "Safe address")
        check_assets([self.asset])
        if self.token_address is not None:
            _address(self.token_address, "token address")
        _check_amount(
            self.amount,
            MAX_EVM_AMOUNT_BASE_UNITS,
            f"balance of {self.asset} in Safe {self.safe_address}",
        )

    def leaf_body(self) -> bytes:
        """The Safe balance leaf's bytes."""
        code = self.asset.encode("ascii")
        token = (
            b"\x00"
            if self.token_address is None
            else b"\x01" + _address(self.token_address, "token address")
        )
        return (
            b"\x02"
            + self.chain_id.to_bytes(8, "big")
            + _address(self.safe_address, "Safe address")
            + bytes((len(code),))
            + code
            + token
            + self.amount.to_bytes(32, "big")
        )


Holding = UtxoHolding | SafeBalanceHolding


def leaf_hash(holding: Holding) -> bytes:
    """``H(0x01 || 0x01 || leaf body)``."""
    return hashlib.sha256(Tree.HOLDINGS.prefix("leaf") + holding.leaf_body()).digest()


def holdings_root(holdings: Iterable[Holding]) -> Root:
    """Rebuild the holdings root: leaves by ascending hash, each holding once."""
    hashed = sorted(((leaf_hash(holding), holding) for holding in holdings), key=lambda p: p[0])
    for (earlier, _), (later, holding) in itertools.pairwise(hashed):
        if earlier == later:
            raise TreeError(f"The holding {holding!r} is listed twice; each appears once.")
    records = [(digest, ()) for digest, _ in hashed]
    return root_from(Tree.HOLDINGS, (), len(records), top(Tree.HOLDINGS, (), records))


def holdings_totals(holdings: Iterable[Holding]) -> Mapping[str, int]:
    """The holdings' total per asset code, in base units (a UTXO's asset is BTC)."""
    totals: dict[str, int] = {}
    for holding in holdings:
        totals[holding.asset] = totals.get(holding.asset, 0) + holding.amount
    return totals
