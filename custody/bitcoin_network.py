"""Which Bitcoin network the vaults live on: a value passed down, never a module constant.

The network decides the extended-key version bytes (``tpub``/``xpub``), the BIP-44/48 coin type
in the account path, and the bech32 prefix of addresses. Each library names networks its own
way; this enum maps ours (the names ``reporting/SPEC-attestation.md`` states in a bundle) to
embit's parameter sets and bitcoinlib's network names. The default, ``REGTEST``, is applied at
the edges (the settings object, the devnet); the modules below take the network as a parameter.

It sits beside ``custody.keys`` rather than inside ``custody.bitcoin`` because the key derivation
needs it and ``custody.bitcoin``'s package imports the signers, which import ``custody.keys``.
"""

from __future__ import annotations

import enum
from typing import Any

from embit.networks import NETWORKS


class BitcoinNetwork(enum.Enum):
    """A Bitcoin network, by the name an attestation bundle states for it."""

    MAIN = "main"
    TEST = "test"
    SIGNET = "signet"
    REGTEST = "regtest"

    @property
    def params(self) -> dict[str, Any]:
        """embit's parameter set (version bytes, bech32 prefix) for this network."""
        params: dict[str, Any] = NETWORKS[self.value]
        return params

    @property
    def coin_type(self) -> int:
        """The BIP-44/BIP-48 coin type: 0 on mainnet, 1 on every test network."""
        return 0 if self is BitcoinNetwork.MAIN else 1

    @property
    def bech32_prefix(self) -> str:
        """The start of every native segwit address on this network (``bcrt1`` on regtest)."""
        return f"{self.params['bech32']}1"

    @property
    def bitcoinlib_name(self) -> str:
        """bitcoinlib's name of this network, for addresses (its bech32 prefix)."""
        return _BITCOINLIB_NAMES[self]

    @property
    def bitcoinlib_key_network(self) -> str:
        """bitcoinlib's network to parse this network's xpubs with.

        bitcoinlib's "regtest" and "signet" carry mainnet base58 prefixes, so every test network's
        ``tpub`` is read as testnet (the key itself does not depend on it).
        """
        return "bitcoin" if self is BitcoinNetwork.MAIN else "testnet"


_BITCOINLIB_NAMES = {
    BitcoinNetwork.MAIN: "bitcoin",
    BitcoinNetwork.TEST: "testnet",
    BitcoinNetwork.SIGNET: "signet",
    BitcoinNetwork.REGTEST: "regtest",
}
