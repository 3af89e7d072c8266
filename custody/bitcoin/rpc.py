"""A JSON-RPC client for bitcoind, and the exact BTC <-> satoshi conversions at its edge.

RPC JSON is parsed with ``Decimal`` so that BTC amounts never pass through ``float``; callers turn
them into integer satoshis with ``btc_to_sats`` at once. The client talks to any bitcoind (a
devnet's, an operator's or an auditor's); starting and stopping nodes is ``custody.devnet``'s job.
"""

from __future__ import annotations

import functools
import json
import ssl
from decimal import Decimal
from typing import Any

import httpx

from custody.exceptions import BitcoinRPCError

SATS_PER_BTC = 100_000_000
RPC_TIMEOUT_S = 60.0
"""Upper bound for one RPC call (``generatetoaddress`` of a few hundred blocks stays far below)."""


def btc_to_sats(amount: Decimal | int | str) -> int:
    """Exact BTC -> satoshi conversion; refuses sub-satoshi precision instead of rounding."""
    sats = Decimal(amount) * SATS_PER_BTC
    if sats != sats.to_integral_value():
        raise ValueError(f"Amount {amount} BTC is not a whole number of satoshis.")
    return int(sats)


def sats_to_btc(sats: int) -> Decimal:
    """Exact satoshi -> BTC as a Decimal, for RPC arguments."""
    return Decimal(sats) / SATS_PER_BTC


def _decimal_as_text(value: Any) -> Any:
    """bitcoind accepts amounts as JSON strings, which keeps Decimals exact on the wire."""
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"Cannot encode {type(value).__name__} as JSON.")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One default TLS context for every client: building one costs ~40 ms, and a wallet client
    is made per wallet call (``BitcoinRPC.wallet``), which the reconciler does for every vault."""
    return ssl.create_default_context()


class BitcoinRPC:
    """A JSON-RPC client for one bitcoind (optionally bound to one wallet)."""

    def __init__(self, url: str, user: str, password: str, *, wallet: str | None = None) -> None:
        self.url = url
        self.wallet_name = wallet
        self._auth = (user, password)
        self._endpoint = f"{url}/wallet/{wallet}" if wallet is not None else url
        self._client = httpx.Client(auth=self._auth, timeout=RPC_TIMEOUT_S, verify=_tls_context())
        self._ids = 0

    def __repr__(self) -> str:
        return f"BitcoinRPC(url={self.url!r}, wallet={self.wallet_name!r})"

    def wallet(self, name: str) -> BitcoinRPC:
        """A client whose calls go to wallet ``name``."""
        return BitcoinRPC(self.url, *self._auth, wallet=name)

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method``; raise ``BitcoinRPCError`` with bitcoind's code and message on error."""
        self._ids += 1
        body = json.dumps(
            {"jsonrpc": "1.0", "id": self._ids, "method": method, "params": list(params)},
            default=_decimal_as_text,
        )
        try:
            response = self._client.post(
                self._endpoint, content=body, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise BitcoinRPCError(
                method, None, f"bitcoind at {self.url} is unreachable: {exc}"
            ) from None
        try:
            payload = json.loads(response.text, parse_float=Decimal)
        except json.JSONDecodeError:
            raise BitcoinRPCError(
                method,
                response.status_code,
                f"bitcoind answered HTTP {response.status_code}: {response.text[:200]}",
            ) from None
        error = payload.get("error")
        if error:
            raise BitcoinRPCError(method, error.get("code"), error.get("message", ""))
        return payload["result"]

    def close(self) -> None:
        self._client.close()
