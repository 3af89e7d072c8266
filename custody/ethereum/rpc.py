"""A minimal JSON-RPC client for an EVM node (the reserve's chains and the services chain)."""

from __future__ import annotations

from typing import Any

import httpx

from custody.exceptions import EvmRPCError

RPC_TIMEOUT_S = 30.0
"""Upper bound for one RPC call to an EVM node."""


class EvmRPC:
    """A JSON-RPC client for one EVM node."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = httpx.Client(timeout=RPC_TIMEOUT_S)
        self._ids = 0

    def __repr__(self) -> str:
        return f"EvmRPC(url={self.url!r})"

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method``; raise ``EvmRPCError`` with the node's code and message on error."""
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        try:
            payload = self._client.post(self.url, json=body).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise EvmRPCError(method, None, f"node at {self.url} is unreachable: {exc}") from None
        error = payload.get("error")
        if error:
            raise EvmRPCError(method, error.get("code"), error.get("message", ""))
        return payload["result"]

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def close(self) -> None:
        self._client.close()
