"""A vault's output descriptors: ``wsh(sortedmulti(M, ...))`` over the cosigners' BIP-48 xpubs.

Receive addresses come from ``/0/*``, change from ``/1/*``. Addresses are derived here with
embit for the descriptor's network (default regtest); the vault module cross-checks them against
bitcoind and a second library before use.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import cached_property

from embit.descriptor import Descriptor
from embit.descriptor.checksum import add_checksum
from embit.psbt import DerivationPath
from embit.script import Script

from custody.bitcoin_network import BitcoinNetwork
from custody.exceptions import VaultConfigError

MAX_COSIGNERS = 15
"""P2WSH multisig is standard up to 15 keys (``sortedmulti`` itself allows 20)."""
MAX_ADDRESS_INDEX = 2**31 - 1
"""Non-hardened BIP-32 child indices end here."""

_KEY_ORIGIN = re.compile(r"^\[[0-9a-f]{8}(/[0-9]+h)+\][tx]pub[1-9A-HJ-NP-Za-km-z]{100,112}$")


class Branch(enum.IntEnum):
    """The BIP-32 child under each cosigner's account key: receive or change."""

    RECEIVE = 0
    CHANGE = 1


@dataclass(frozen=True)
class VaultDescriptor:
    """M-of-N over cosigner key origins (``[fp/48h/1h/0h/2h]tpub...``), in cosigner order."""

    threshold: int
    key_origins: tuple[str, ...]
    network: BitcoinNetwork = BitcoinNetwork.REGTEST
    """The network whose addresses ``address`` writes."""

    def __post_init__(self) -> None:
        count = len(self.key_origins)
        if not 1 <= count <= MAX_COSIGNERS:
            raise VaultConfigError(
                f"A vault needs between 1 and {MAX_COSIGNERS} cosigners; got {count}."
            )
        if not 1 <= self.threshold <= count:
            raise VaultConfigError(
                f"The vault threshold must be between 1 and the {count} cosigners; "
                f"got {self.threshold}."
            )
        xpubs = [origin.split("]", 1)[-1] for origin in self.key_origins]
        if len(set(xpubs)) != count:
            raise VaultConfigError(
                "Two cosigners share one xpub; every cosigner needs its own key."
            )
        for origin in self.key_origins:
            if not _KEY_ORIGIN.match(origin):
                raise VaultConfigError(
                    f"Cosigner key {origin[:24]}... is not of the form [fingerprint/path]tpub...."
                )

    def text(self, branch: Branch) -> str:
        """The descriptor without checksum, e.g. ``wsh(sortedmulti(2,[..]tpub../0/*,...))``."""
        keys = ",".join(f"{origin}/{int(branch)}/*" for origin in self.key_origins)
        return f"wsh(sortedmulti({self.threshold},{keys}))"

    def text_with_checksum(self, branch: Branch) -> str:
        """The descriptor with its BIP-380 checksum, computed by our own code."""
        return str(add_checksum(self.text(branch)))

    @cached_property
    def _parsed(self) -> dict[Branch, Descriptor]:
        return {branch: Descriptor.from_string(self.text(branch)) for branch in Branch}

    def parsed(self, branch: Branch) -> Descriptor:
        """embit's parsed descriptor for ``branch``."""
        return self._parsed[branch]

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(origin[1:9] for origin in self.key_origins)

    def address(self, branch: Branch, index: int) -> str:
        """The bech32 address (``bcrt1q...`` on regtest) at ``branch``/``index``."""
        return str(self.script_pubkey(branch, index).address(self.network.params))

    def script_pubkey(self, branch: Branch, index: int) -> Script:
        if not 0 <= index <= MAX_ADDRESS_INDEX:
            raise VaultConfigError(
                f"Address index {index} is outside 0..{MAX_ADDRESS_INDEX} (non-hardened BIP-32)."
            )
        return self.parsed(branch).derive(index).script_pubkey()

    def witness_script(self, branch: Branch, index: int) -> Script:
        return self.parsed(branch).derive(index).witness_script()

    def locate(self, derivation: DerivationPath) -> tuple[Branch, int] | None:
        """Which branch and index a PSBT key derivation points to, if it is one of our keys."""
        for branch in Branch:
            found = self.parsed(branch).check_derivation(derivation)
            if found is not None:
                index, _ = found
                return branch, int(index)
        return None

    def derived_public_keys(self, branch: Branch, index: int) -> frozenset[bytes]:
        """The cosigners' compressed public keys at ``branch``/``index``."""
        derived = self.parsed(branch).derive(index)
        return frozenset(key.get_public_key().sec() for key in derived.keys)
