"""The holdings tree: a plain Merkle tree over the reserve's vault UTXOs and Safe balances.

Holdings are public (anyone can see them on chain), so leaves carry no salt and the tree no sums;
an auditor totals the leaves per asset and checks each against the chain at the snapshot block.
Stdlib only, like ``reporting.merkle``: the verifier imports it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from reporting.exceptions import (
    DuplicateLeafError,
    LeafError,
    NegativeAmountError,
    ProofFormatError,
    ProofInvalidError,
)
from reporting.merkle.assets import canonical_assets
from reporting.merkle.encoding import TAGS, TreeKind, domain_prefix
from reporting.merkle.proof import InclusionProof, verify_path
from reporting.merkle.reference_tree import ReferenceTree
from reporting.merkle.root import TreeRoot

UTXO_KIND = 0x01
"""First byte of a UTXO leaf's body."""

SAFE_BALANCE_KIND = 0x02
"""First byte of a Safe balance leaf's body."""

MAX_SATS = (1 << 64) - 1
"""Largest UTXO amount the encoding holds, in satoshis (eight bytes)."""

MAX_EVM_AMOUNT_BASE_UNITS = (1 << 256) - 1
"""Largest Safe balance the encoding holds, in the asset's base units (an EVM uint256)."""

EVM_ADDRESS_BYTES = 20
"""Length of an EVM address, in bytes."""


def _address_bytes(address: str, what: str) -> bytes:
    """Decode a ``0x``-prefixed 20-byte hex address (any letter case)."""
    if not isinstance(address, str) or not address.startswith("0x") or len(address) != 42:
        raise LeafError(f"The {what} {address!r} is not a 0x-prefixed 20-byte hex address.")
    try:
        return bytes.fromhex(address[2:])
    except ValueError as error:
        raise LeafError(f"The {what} {address!r} is not hexadecimal.") from error


def _check_amount(amount: int, limit: int, what: str) -> None:
    """Refuse a non-integer, negative or oversized holding amount."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise LeafError(f"The {what} is {amount!r}, not an integer of base units.")
    if amount < 0:
        raise NegativeAmountError(f"The {what} is {amount}; holdings are zero or more base units.")
    if amount > limit:
        raise LeafError(f"The {what} is {amount}, above the encoding's limit of {limit}.")


@dataclass(frozen=True)
class UtxoHolding:
    """One vault UTXO: outpoint (txid in RPC display order, vout), amount and locking script."""

    asset: ClassVar[str] = "BTC"

    txid: str
    vout: int
    amount_sats: int
    script_pubkey: bytes

    def __post_init__(self) -> None:
        """Validate every field against its encoded width."""
        try:
            txid = bytes.fromhex(self.txid)
        except (TypeError, ValueError) as error:
            raise LeafError(f"The txid {self.txid!r} is not hexadecimal.") from error
        if len(txid) != 32:
            raise LeafError(f"The txid {self.txid!r} must be 32 bytes.")
        if (
            isinstance(self.vout, bool)
            or not isinstance(self.vout, int)
            or not 0 <= self.vout < 1 << 32
        ):
            raise LeafError(
                f"The vout {self.vout!r} of txid {self.txid} is not a 32-bit output index."
            )
        _check_amount(self.amount_sats, MAX_SATS, f"amount of UTXO {self.txid}:{self.vout}")
        if not isinstance(self.script_pubkey, bytes) or len(self.script_pubkey) >= 1 << 16:
            raise LeafError(
                f"The script of UTXO {self.txid}:{self.vout} must be bytes shorter than 65536."
            )

    @property
    def amount(self) -> int:
        """The amount in the asset's base units (satoshis)."""
        return self.amount_sats

    def to_bytes(self) -> bytes:
        """Encode as ``0x01 || txid || u32 vout || u64 sats || u16 script length || script``."""
        return (
            bytes((UTXO_KIND,))
            + bytes.fromhex(self.txid)
            + self.vout.to_bytes(4, "big")
            + self.amount_sats.to_bytes(8, "big")
            + len(self.script_pubkey).to_bytes(2, "big")
            + self.script_pubkey
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
        """Validate every field against its encoded width."""
        if (
            isinstance(self.chain_id, bool)
            or not isinstance(self.chain_id, int)
            or not 0 < self.chain_id < 1 << 64
        ):
            raise LeafError(f"The chain id {self.chain_id!r} is not a positive 64-bit integer.")
        _address_bytes(self.safe_address, "Safe address")
        canonical_assets([self.asset])
        if self.token_address is not None:
            _address_bytes(self.token_address, "token address")
        _check_amount(
            self.amount,
            MAX_EVM_AMOUNT_BASE_UNITS,
            f"balance of {self.asset} in Safe {self.safe_address}",
        )

    def to_bytes(self) -> bytes:
        """Encode as ``0x02 || u64 chain || safe || u8 len || asset || token flag[+token] || u256``."""
        token = (
            b"\x00"
            if self.token_address is None
            else b"\x01" + _address_bytes(self.token_address, "token")
        )
        return (
            bytes((SAFE_BALANCE_KIND,))
            + self.chain_id.to_bytes(8, "big")
            + _address_bytes(self.safe_address, "Safe address")
            + len(self.asset).to_bytes(1, "big")
            + self.asset.encode()
            + token
            + self.amount.to_bytes(32, "big")
        )


Holding = UtxoHolding | SafeBalanceHolding


def holding_from_bytes(data: bytes) -> Holding:
    """Decode a holding leaf body (:meth:`UtxoHolding.to_bytes` or the Safe one)."""
    try:
        if data[0] == UTXO_KIND:
            script_length = int.from_bytes(data[45:47], "big")
            if len(data) != 47 + script_length:
                raise ProofFormatError("The UTXO leaf's length does not match its script length.")
            return UtxoHolding(
                txid=data[1:33].hex(),
                vout=int.from_bytes(data[33:37], "big"),
                amount_sats=int.from_bytes(data[37:45], "big"),
                script_pubkey=data[47:],
            )
        if data[0] == SAFE_BALANCE_KIND:
            asset_end = 30 + data[29]
            flag = data[asset_end]
            token_end = asset_end + 1 + (EVM_ADDRESS_BYTES if flag == 1 else 0)
            if flag not in (0, 1) or len(data) != token_end + 32:
                raise ProofFormatError("The Safe balance leaf has a bad token flag or length.")
            return SafeBalanceHolding(
                chain_id=int.from_bytes(data[1:9], "big"),
                safe_address="0x" + data[9:29].hex(),
                asset=data[30:asset_end].decode("ascii"),
                token_address="0x" + data[asset_end + 1 : token_end].hex() if flag == 1 else None,
                amount=int.from_bytes(data[token_end:], "big"),
            )
    except (IndexError, UnicodeDecodeError) as error:
        raise ProofFormatError(
            "The holding leaf bytes are truncated or not ASCII where text is due."
        ) from error
    raise ProofFormatError("The holding leaf bytes start with an unknown kind byte.")


def holding_leaf_hash(holding: Holding) -> bytes:
    """Return ``SHA256(v || holdings leaf tag || body)``."""
    return hashlib.sha256(domain_prefix(TAGS[TreeKind.HOLDINGS].leaf) + holding.to_bytes()).digest()


@dataclass(frozen=True)
class HoldingsTree:
    """The holdings in canonical order (ascending leaf hash) and their tree."""

    holdings: tuple[Holding, ...]
    tree: ReferenceTree

    @classmethod
    def build(cls, holdings: Iterable[Holding]) -> HoldingsTree:
        """Order holdings by leaf hash, refuse duplicates, and hash the tree."""
        keyed = sorted(
            ((holding_leaf_hash(holding), holding) for holding in holdings),
            key=lambda pair: pair[0],
        )
        for (earlier, _), (later, holding) in itertools.pairwise(keyed):
            if earlier == later:
                raise DuplicateLeafError(
                    f"The holding {holding!r} is listed twice; each appears once."
                )
        tree = ReferenceTree.build(
            TreeKind.HOLDINGS, (), [(leaf_hash, ()) for leaf_hash, _ in keyed]
        )
        return cls(holdings=tuple(holding for _, holding in keyed), tree=tree)

    @property
    def root(self) -> TreeRoot:
        """The root to anchor."""
        return self.tree.root

    def totals(self) -> Mapping[str, int]:
        """Return the holdings' total per asset code, in base units."""
        return holdings_totals(self.holdings)

    def proof(self, holding: Holding) -> InclusionProof:
        """Return the inclusion proof of ``holding``."""
        try:
            index = self.holdings.index(holding)
        except ValueError as error:
            raise ProofInvalidError(f"The holding {holding!r} is not in this tree.") from error
        return self.tree.proof(index)


def verify_holding_proof(
    root: TreeRoot, holding: Holding, proof: InclusionProof, *, root_digest: bytes | None = None
) -> None:
    """Check ``holding`` is in the holdings tree of ``root`` (raises if it is not)."""
    if root.kind is not TreeKind.HOLDINGS:
        raise ProofInvalidError("A holding can only be checked against a holdings root.")
    verify_path(root, (holding_leaf_hash(holding), ()), proof, root_digest=root_digest)


def holdings_totals(holdings: Sequence[Holding]) -> Mapping[str, int]:
    """Return the total per asset code of any list of holdings, in base units."""
    totals: dict[str, int] = {}
    for holding in holdings:
        totals[holding.asset] = totals.get(holding.asset, 0) + holding.amount
    return dict(sorted(totals.items()))
