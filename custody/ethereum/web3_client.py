"""A web3.py client of an EVM node, for the code that talks to contracts through web3.

The reserve's Safes go through ``custody.ethereum.chain`` (typed reads, simulated writes); the
services chain's attestation registry is driven with web3.py (``reporting.anchor``). Callers
above custody get that client here instead of importing web3 themselves, so every chain client
is made in custody.
"""

from __future__ import annotations

from web3 import Web3


def web3_client(url: str) -> Web3:
    """A web3.py client of the EVM node answering JSON-RPC over HTTP at ``url``."""
    return Web3(Web3.HTTPProvider(url))
