"""Which nodes the CLI talks to: explicit settings first, else the running `treasury devnet up`.

``TREASURY_BITCOIN_RPC_URL`` (``http://user:password@host:port``), ``TREASURY_RESERVE_RPC_URL``
and ``TREASURY_SERVICES_RPC_URL`` point at any node; without them the devnet stack's state file is
used, and without that the error says what to start or set.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from custody.bitcoin.rpc import BitcoinRPC
from custody.devnet.stack import read_state
from custody.ethereum.rpc import EvmRPC
from custody.exceptions import DevnetError

BITCOIN_RPC_URL_ENV = "TREASURY_BITCOIN_RPC_URL"
RESERVE_RPC_URL_ENV = "TREASURY_RESERVE_RPC_URL"
SERVICES_RPC_URL_ENV = "TREASURY_SERVICES_RPC_URL"


def _no_node(env: str) -> DevnetError:
    return DevnetError(
        f"No node configured: set {env}, or start the local devnets with `treasury devnet up` "
        "in another shell."
    )


def bitcoin_rpc() -> BitcoinRPC:
    """A client for the configured bitcoind (credentials from the URL or the devnet state)."""
    configured = os.environ.get(BITCOIN_RPC_URL_ENV)
    if configured:
        parts = urlsplit(configured)
        bare = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port}", parts.path, "", ""))
        return BitcoinRPC(bare.rstrip("/"), parts.username or "", parts.password or "")
    state = read_state()
    if state is None:
        raise _no_node(BITCOIN_RPC_URL_ENV)
    return BitcoinRPC(state.bitcoin_rpc_url, state.bitcoin_rpc_user, state.bitcoin_rpc_password)


def reserve_rpc_url() -> str:
    """JSON-RPC URL of the reserve's EVM chain."""
    state = read_state()
    url = os.environ.get(RESERVE_RPC_URL_ENV) or (state.reserve_rpc_url if state else None)
    if url is None:
        raise _no_node(RESERVE_RPC_URL_ENV)
    return url


def services_rpc_url() -> str:
    """JSON-RPC URL of the government's services chain."""
    state = read_state()
    url = os.environ.get(SERVICES_RPC_URL_ENV) or (state.services_rpc_url if state else None)
    if url is None:
        raise _no_node(SERVICES_RPC_URL_ENV)
    return url


def reserve_rpc() -> EvmRPC:
    return EvmRPC(reserve_rpc_url())
