"""A second, independent address derivation with ``bitcoinlib``, to catch a wrong address early.

Only what bitcoinlib 0.7.10 does soundly is used: BIP-32 public derivation from an xpub parsed
as testnet on every test network (its "regtest" network has mainnet base58 prefixes), the
multisig script, and the P2WSH bech32 encoding with the network's prefix (``bcrt`` on regtest).
bitcoinlib writes a data folder on import, so it is pointed at a private temporary folder unless
``BCL_DATA_DIR`` is already set.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

from custody.bitcoin_network import BitcoinNetwork

BCL_DATA_DIR_ENV = "BCL_DATA_DIR"


def _bitcoinlib() -> tuple[Any, Any, Any]:
    if BCL_DATA_DIR_ENV not in os.environ:
        os.environ[BCL_DATA_DIR_ENV] = tempfile.mkdtemp(prefix="bitcoinlib-")
    from bitcoinlib.keys import Address, HDKey
    from bitcoinlib.scripts import Script

    return Address, HDKey, Script


def sortedmulti_wsh_address(
    threshold: int,
    xpubs: Sequence[str],
    branch: int,
    index: int,
    network: BitcoinNetwork = BitcoinNetwork.REGTEST,
) -> str:
    """The P2WSH address of ``sortedmulti(threshold, xpub/branch/index...)`` per bitcoinlib."""
    address_cls, hdkey_cls, script_cls = _bitcoinlib()
    public_keys = sorted(
        hdkey_cls.from_wif(xpub, network=network.bitcoinlib_key_network)
        .child_public(branch)
        .child_public(index)
        .public_byte
        for xpub in xpubs
    )
    script = script_cls(script_types=["multisig"], keys=public_keys, sigs_required=threshold)
    address = address_cls(
        data=script.serialize(),
        script_type="p2wsh",
        encoding="bech32",
        network=network.bitcoinlib_name,
    )
    return str(address.address)
