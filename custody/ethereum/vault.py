"""A Safe vault as the database knows it: its roster of institutions' owner keys, and proposals.

These are the values the Safe vault operations (``custody.ethereum.safe_vaults``) return and the
vault store (``custody.ethereum.vault_store``) maps its rows to: who may sign for which
institution (address and seed fingerprint), the threshold and nonce we last saw, and a proposed
SafeTx with the owner signatures collected on it so far. Nothing secret is held here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from custody.ethereum.records import SafeTxState
from custody.ethereum.safe_signature import OwnerSignature
from custody.ethereum.safe_tx import SafeTx, checksum_address
from custody.exceptions import NotAnOwnerError, VaultNotFoundError, VaultSetupError
from custody.keys import CosignerKeys


@dataclass(frozen=True)
class VaultOwner:
    """One roster entry: the institution, its Safe owner address and its seed's fingerprint."""

    institution: str
    address: str
    fingerprint: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", checksum_address(self.address, "owner address"))
        fingerprint = self.fingerprint.lower()
        if len(fingerprint) != 8 or any(c not in "0123456789abcdef" for c in fingerprint):
            raise VaultSetupError(
                f"The fingerprint of {self.institution!r} must be 8 hex characters, not "
                f"{self.fingerprint!r}."
            )
        object.__setattr__(self, "fingerprint", fingerprint)
        if not self.institution.strip():
            raise VaultSetupError("An owner's institution name must not be empty.")


def owners_from_cosigners(cosigners: Sequence[tuple[str, CosignerKeys]]) -> tuple[VaultOwner, ...]:
    """Roster entries from the ceremony's (institution, cosigner keys) pairs."""
    return tuple(VaultOwner(name, keys.eth_address, keys.fingerprint) for name, keys in cosigners)


@dataclass(frozen=True)
class Vault:
    """A Safe as the database knows it."""

    name: str
    chain_id: int
    address: str
    threshold: int
    nonce: int
    owners: tuple[VaultOwner, ...]

    def owner(self, institution: str) -> VaultOwner:
        for owner in self.owners:
            if owner.institution == institution:
                return owner
        raise VaultNotFoundError(
            f"Institution {institution!r} is not on the roster of vault {self.name!r} "
            f"(institutions: {', '.join(o.institution for o in self.owners)})."
        )

    def owner_at(self, address: str) -> VaultOwner:
        for owner in self.owners:
            if owner.address == address:
                return owner
        raise NotAnOwnerError(
            f"The address {address} is not an owner of vault {self.name!r} ({self.address})."
        )


@dataclass(frozen=True)
class Proposal:
    """A stored SafeTx, its state and the owner signatures collected so far."""

    vault_name: str
    safe_tx: SafeTx
    state: SafeTxState
    signatures: tuple[tuple[str, OwnerSignature], ...]
    """(institution, signature) pairs."""
    executed_tx_hash: str | None
