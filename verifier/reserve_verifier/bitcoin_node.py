"""Plain JSON-RPC to a bitcoind the auditor runs: ``urllib`` only, credentials kept out of sight."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from typing import Any

from reserve_verifier.exceptions import NodeError, VerifierError
from reserve_verifier.inputs import RPC_TIMEOUT_S


class BitcoinNodeClient:
    """JSON-RPC to ``http://user:password@host:port``; amounts parse as ``Decimal``."""

    def __init__(self, url: str) -> None:
        """Split credentials out of ``url``; they never appear in repr or errors."""
        parts = urllib.parse.urlsplit(url)
        if parts.username:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self._auth: str | None = base64.b64encode(f"{user}:{password}".encode()).decode()
        else:
            self._auth = None
        port = f":{parts.port}" if parts.port else ""
        self.url = f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
        if parts.scheme not in ("http", "https"):
            raise VerifierError(f"The Bitcoin RPC URL {self.url!r} is not http(s).")

    def __repr__(self) -> str:
        """Name the endpoint without credentials."""
        return f"BitcoinNodeClient(url={self.url!r})"

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method``; raise :class:`NodeError` on any error."""
        body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)})
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s)
            self.url, data=body.encode(), headers={"content-type": "application/json"}
        )
        if self._auth:
            request.add_header("Authorization", f"Basic {self._auth}")
        try:
            with urllib.request.urlopen(request, timeout=RPC_TIMEOUT_S) as response:  # noqa: S310
                payload = json.loads(response.read(), parse_float=Decimal)
        except urllib.error.HTTPError as error:
            payload = json.loads(error.read() or b"{}", parse_float=Decimal)
        except (urllib.error.URLError, OSError) as error:
            raise NodeError(f"bitcoind at {self.url} is unreachable ({error}).") from None
        if payload.get("error"):
            raise NodeError(f"bitcoind {method} failed: {payload['error'].get('message')}.")
        return payload.get("result")


def find_spend(
    node: BitcoinNodeClient, txid: str, vout: int, first: int, last: int
) -> tuple[str, int] | None:
    """Scan blocks ``first..last`` for a transaction spending ``txid:vout`` (no index needed)."""
    for height in range(first, last + 1):
        block = node.call("getblock", node.call("getblockhash", height), 2)
        for transaction in block["tx"]:
            for spent in transaction["vin"]:
                if spent.get("txid") == txid and spent.get("vout") == vout:
                    return transaction["txid"], height
    return None
