"""From a cosigner seed to the public keys a transcript records and the keys a signer uses.

One seed serves both chains: Bitcoin vaults use the BIP-48 P2WSH multisig account
(``m/48'/1'/0'/2'`` on the test networks, ``m/48'/0'/0'/2'`` on mainnet), Safe vaults use the
BIP-44 Ethereum key (``m/44'/60'/0'/0/0``). The Bitcoin network is a parameter (default regtest,
the devnet's). The master fingerprint recorded at the ceremony is the check that a recombined
seed is the right one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from embit.bip32 import HDKey
from eth_keys.datatypes import PrivateKey as EthPrivateKey

from custody.bitcoin_network import BitcoinNetwork
from custody.exceptions import FingerprintMismatchError
from custody.secret import SecretBytes

BIP48_P2WSH_ACCOUNT_PATH = "m/48h/1h/0h/2h"
"""BIP-48 multisig account, script type 2 (native segwit P2WSH), coin type 1 (test networks)."""
ETH_OWNER_PATH = "m/44h/60h/0h/0/0"
"""BIP-44 first Ethereum account: the institution's Safe owner key."""
SEED_LENGTH_BYTES = 32


@dataclass(frozen=True)
class CosignerKeys:
    """A cosigner's public identity derived from its seed: safe to store, print and publish."""

    fingerprint: str
    """Master key fingerprint, 8 lowercase hex characters (BIP-32)."""
    account_path: str
    account_xpub: str
    """The BIP-48 account's extended public key (``tpub...``)."""
    eth_address: str
    """EIP-55 checksummed address of the Safe owner key."""

    @property
    def key_origin(self) -> str:
        """``[fingerprint/48h/1h/0h/2h]tpub...`` as written inside descriptors."""
        return f"[{self.fingerprint}{self.account_path[1:]}]{self.account_xpub}"


def bip48_account_path(network: BitcoinNetwork) -> str:
    """The BIP-48 P2WSH multisig account path on ``network`` (its coin type)."""
    return f"m/48h/{network.coin_type}h/0h/2h"


def _root(seed: SecretBytes, network: BitcoinNetwork) -> HDKey:
    return HDKey.from_seed(seed.reveal(), version=network.params["xprv"])


def _eth_key(root: HDKey) -> EthPrivateKey:
    return EthPrivateKey(root.derive(ETH_OWNER_PATH).key.secret)


def cosigner_keys(
    seed: SecretBytes, network: BitcoinNetwork = BitcoinNetwork.REGTEST
) -> CosignerKeys:
    """Derive the public keys a ceremony transcript records for ``seed`` on ``network``."""
    root = _root(seed, network)
    account_path = bip48_account_path(network)
    account = root.derive(account_path).to_public()
    return CosignerKeys(
        fingerprint=root.my_fingerprint.hex(),
        account_path=account_path,
        account_xpub=account.to_base58(version=network.params["xpub"]),
        eth_address=_eth_key(root).public_key.to_checksum_address(),
    )


@dataclass(frozen=True)
class SigningKeys:
    """The private keys one signing call may use; never stored, never printed."""

    bitcoin_root: HDKey
    eth_key: EthPrivateKey

    def __repr__(self) -> str:
        return "SigningKeys(<redacted>)"

    __str__ = __repr__


@contextmanager
def signing_keys(
    seed: SecretBytes,
    expected_fingerprint: str,
    network: BitcoinNetwork = BitcoinNetwork.REGTEST,
) -> Iterator[SigningKeys]:
    """Yield the seed's signing keys if it is the transcript's seed, then wipe the seed.

    A wrong SLIP-39 passphrase silently yields another seed; comparing the master fingerprint with
    the one recorded at the ceremony is what refuses it.
    """
    try:
        root = _root(seed, network)
        actual = root.my_fingerprint.hex()
        if actual != expected_fingerprint.lower():
            raise FingerprintMismatchError(
                f"The recombined seed has master fingerprint {actual}, but the transcript records "
                f"{expected_fingerprint.lower()}: a wrong passphrase, or shares of another seed."
            )
        keys = SigningKeys(bitcoin_root=root, eth_key=_eth_key(root))
        try:
            yield keys
        finally:
            del keys, root
    finally:
        seed.wipe()
