"""Every error the custody package raises.

Callers catch ``CustodyError`` to handle all of them; the tree::

    CustodyError
    ├── ProvisioningError        a node binary could not be found or fetched
    └── DevnetError              a devnet process misbehaved
        ├── NodeStartError       it died or never answered while starting
        └── RPCError             a node answered a call with an error (subclasses per chain)
            ├── BitcoinRPCError
            └── EvmRPCError

Messages are full sentences that name what failed and what to do; they never carry key material.
"""

from __future__ import annotations


class CustodyError(Exception):
    """Root of every error raised by the custody package."""


class ProvisioningError(CustodyError):
    """A node binary is missing, broken, or could not be fetched."""


class DevnetError(CustodyError):
    """A devnet node process failed."""


class NodeStartError(DevnetError):
    """A node died during start-up or its RPC never answered within the deadline."""


class RPCError(DevnetError):
    """A node answered an RPC call with an error or could not be reached."""

    def __init__(self, method: str, code: int | None, message: str) -> None:
        super().__init__(f"RPC {method} failed ({code}): {message}")
        self.method = method
        self.code = code
        self.message = message


class BitcoinRPCError(RPCError):
    """bitcoind answered with a JSON-RPC error."""


class EvmRPCError(RPCError):
    """An EVM node answered with a JSON-RPC error."""
