"""Node endpoints as values: a bitcoind with its RPC credentials, and the EVM chains' URLs.

Custody reads no environment. Which nodes to use is the treasury's setting
(``treasury.settings``): a configured URL, else the running ``treasury devnet up``, which
``devnet_endpoints`` reads from the stack's state file. The result reaches custody as these
values, and the clients are built from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from custody.bitcoin.rpc import BitcoinRPC
from custody.devnet.stack import read_state


@dataclass(frozen=True)
class BitcoinEndpoint:
    """A bitcoind's RPC URL (without credentials) and its credentials; repr hides the password."""

    url: str
    user: str
    password: str = field(repr=False)

    @classmethod
    def from_url(cls, url: str) -> BitcoinEndpoint:
        """Split ``http://user:password@host:port`` into the bare URL and the credentials."""
        parts = urlsplit(url)
        host_port = parts.netloc.rpartition("@")[2]
        bare = urlunsplit((parts.scheme, host_port, parts.path, "", ""))
        return cls(bare.rstrip("/"), parts.username or "", parts.password or "")

    def rpc(self) -> BitcoinRPC:
        """A client of the node (no wallet)."""
        return BitcoinRPC(self.url, self.user, self.password)


@dataclass(frozen=True)
class NodeEndpoints:
    """The nodes the treasury talks to; ``None`` for a chain with no node configured."""

    bitcoin: BitcoinEndpoint | None = None
    reserve_rpc_url: str | None = None
    """JSON-RPC URL of the reserve's EVM chain (the Safes')."""
    services_rpc_url: str | None = None
    """JSON-RPC URL of the government's services chain (the anchor registry)."""


def devnet_endpoints() -> NodeEndpoints:
    """The running ``treasury devnet up``'s nodes, or no node at all when none runs."""
    state = read_state()
    if state is None:
        return NodeEndpoints()
    return NodeEndpoints(
        BitcoinEndpoint(state.bitcoin_rpc_url, state.bitcoin_rpc_user, state.bitcoin_rpc_password),
        state.reserve_rpc_url,
        state.services_rpc_url,
    )


__all__ = ["BitcoinEndpoint", "NodeEndpoints", "devnet_endpoints"]
