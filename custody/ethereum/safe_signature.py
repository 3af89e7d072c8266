"""Owner signatures in the Safe's format: r|s|v, v 27/28, concatenated in ascending owner order.

Only EOA ECDSA signatures over the SafeTx hash itself are made here (no ``eth_sign`` prefix, no
contract signatures): the Safe recovers the owner with ``ecrecover`` and requires the recovered
owners to be strictly increasing, which is how it rejects duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_keys.datatypes import PrivateKey, Signature
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError

from custody.ethereum.safe_tx import checksum_address
from custody.exceptions import NotAnOwnerError

SIGNATURE_LENGTH_BYTES = 65
"""r (32) | s (32) | v (1)."""
ECDSA_V_OFFSET = 27
"""The Safe reads v 27/28 as a plain ECDSA signature of the hash (v > 30 would mean eth_sign)."""


@dataclass(frozen=True)
class OwnerSignature:
    """One owner's signature of one SafeTx hash; public data, safe to store and print."""

    owner: str
    r: int
    s: int
    v: int

    def encode(self) -> bytes:
        """The 65 bytes the Safe expects for this owner."""
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big") + bytes([self.v])

    @classmethod
    def decode(cls, safe_tx_hash: bytes, raw: bytes) -> OwnerSignature:
        """Parse 65 bytes and recover the owner that signed ``safe_tx_hash``."""
        if len(raw) != SIGNATURE_LENGTH_BYTES or raw[64] not in (27, 28):
            raise NotAnOwnerError(
                f"A Safe owner signature is {SIGNATURE_LENGTH_BYTES} bytes ending in v 27 or 28; "
                f"got {len(raw)} bytes."
            )
        r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
        try:
            key = Signature(vrs=(v - ECDSA_V_OFFSET, r, s)).recover_public_key_from_msg_hash(
                safe_tx_hash
            )
        except (BadSignature, ValidationError):
            raise NotAnOwnerError("The signature does not recover to any key.") from None
        return cls(owner=key.to_checksum_address(), r=r, s=s, v=v)


def sign_safe_tx_hash(key: PrivateKey, safe_tx_hash: bytes) -> OwnerSignature:
    """Sign the SafeTx hash directly (v moved from 0/1 to 27/28)."""
    signature = key.sign_msg_hash(safe_tx_hash)
    return OwnerSignature(
        owner=key.public_key.to_checksum_address(),
        r=signature.r,
        s=signature.s,
        v=signature.v + ECDSA_V_OFFSET,
    )


def pack_signatures(signatures: Iterable[OwnerSignature]) -> bytes:
    """Concatenate signatures in ascending owner-address order, as ``checkNSignatures`` needs."""
    ordered = sorted(signatures, key=lambda sig: int(sig.owner, 16))
    owners = [checksum_address(sig.owner, "owner") for sig in ordered]
    if len(set(owners)) != len(owners):
        raise NotAnOwnerError("Each owner may sign a SafeTx once; a signature was given twice.")
    return b"".join(sig.encode() for sig in ordered)
