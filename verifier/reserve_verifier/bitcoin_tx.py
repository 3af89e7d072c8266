"""Bitcoin transactions decoded with ``bitcoinlib``, a library independent of the custody code's.

``bitcoinlib`` writes a data directory when it is imported, so it is imported lazily, with that
directory in a fresh temporary folder (an auditor's home is left untouched).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

BCL_NETWORKS = {"main": "bitcoin", "test": "testnet", "regtest": "regtest", "signet": "signet"}
"""bitcoinlib's name of each network name a bundle may state (bitcoind's ``chain`` names)."""


def transactions() -> Any:
    """The ``bitcoinlib.transactions`` module, imported with its data directory in a temp dir."""
    os.environ.setdefault("BCL_DATA_DIR", tempfile.mkdtemp(prefix="bcl-verify-"))
    import bitcoinlib.transactions

    return bitcoinlib.transactions


def bcl_network(network: str) -> str:
    """bitcoinlib's name of a bundle's network (regtest when it is not a known name)."""
    return BCL_NETWORKS.get(network, "regtest")


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256, through bitcoinlib (OpenSSL may lack RIPEMD-160)."""
    transactions()
    from bitcoinlib.encoding import hash160 as bcl_hash160

    return bytes(bcl_hash160(data))
