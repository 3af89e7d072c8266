"""A JSON-RPC client for bitcoind, and the exact BTC <-> satoshi conversions at its edge.

RPC JSON is parsed with ``Decimal`` so that BTC amounts never pass through ``float``; callers turn
them into integer satoshis with ``btc_to_sats`` at once. The client talks to any bitcoind (a
devnet's, an operator's or an auditor's); starting and stopping nodes is ``custody.devnet``'s job.

``batch`` sends many calls in one HTTP request (a JSON-RPC batch): on loopback one call's round
trip (~1.5 ms) costs as much as bitcoind's work for a small answer, so reading a thousand
transactions or block hashes one call at a time is mostly waiting. Each call of a batch still
succeeds or fails on its own; its reply says which.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from custody.exceptions import BitcoinRPCError

SATS_PER_BTC = 100_000_000
RPC_TIMEOUT_S = 60.0
"""Upper bound for one RPC call (``generatetoaddress`` of a few hundred blocks stays far below)."""
BATCH_MAX_CALLS = 500
"""Calls per HTTP request of a batch: bitcoind runs a batch's calls one after another in one
worker, so a longer batch only makes one answer (held in memory on both sides) bigger."""


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


@dataclass(frozen=True)
class RPCCall:
    """One call of a batch: a method and its positional parameters."""

    method: str
    params: tuple[Any, ...] = ()


@dataclass(frozen=True)
class RPCReply:
    """The answer to one call of a batch: its result, or the error bitcoind gave for it."""

    result: Any = None
    error: BitcoinRPCError | None = None

    def value(self) -> Any:
        """The result; raises the call's ``BitcoinRPCError`` if it failed."""
        if self.error is not None:
            raise self.error
        return self.result


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
        payload = self._post(method, self._request(self._ids, RPCCall(method, params)))
        return _reply(method, payload).value()

    def batch(self, calls: Sequence[RPCCall]) -> tuple[RPCReply, ...]:
        """Make every call in as few HTTP requests as ``BATCH_MAX_CALLS`` allows; replies in order.

        A call bitcoind refused is a reply with its ``error``; a node that could not be reached or
        answered with no JSON batch raises ``BitcoinRPCError`` for the whole batch.
        """
        replies: list[RPCReply] = []
        for start in range(0, len(calls), BATCH_MAX_CALLS):
            chunk = calls[start : start + BATCH_MAX_CALLS]
            first = self._ids + 1
            self._ids += len(chunk)
            methods = ", ".join(sorted({c.method for c in chunk}))
            payload = self._post(
                f"batch of {methods}",
                [self._request(first + n, call) for n, call in enumerate(chunk)],
            )
            if not isinstance(payload, list):
                raise BitcoinRPCError(
                    f"batch of {methods}", None, f"bitcoind answered a batch with {payload!r:.200}"
                )
            by_id = {item.get("id"): item for item in payload if isinstance(item, dict)}
            for n, call in enumerate(chunk):
                item = by_id.get(first + n)
                if item is None:
                    raise BitcoinRPCError(
                        call.method, None, "bitcoind's batch answer has no reply to this call."
                    )
                replies.append(_reply(call.method, item))
        return tuple(replies)

    @staticmethod
    def _request(request_id: int, call: RPCCall) -> dict[str, Any]:
        return {
            "jsonrpc": "1.0",
            "id": request_id,
            "method": call.method,
            "params": list(call.params),
        }

    def _post(self, what: str, request: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """Send one JSON-RPC request (or batch) and parse the answer, amounts as ``Decimal``."""
        body = json.dumps(request, default=_decimal_as_text)
        try:
            response = self._client.post(
                self._endpoint, content=body, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise BitcoinRPCError(
                what, None, f"bitcoind at {self.url} is unreachable: {exc}"
            ) from None
        try:
            return json.loads(response.text, parse_float=Decimal)
        except json.JSONDecodeError:
            raise BitcoinRPCError(
                what,
                response.status_code,
                f"bitcoind answered HTTP {response.status_code}: {response.text[:200]}",
            ) from None

    def close(self) -> None:
        self._client.close()


def _reply(method: str, payload: Any) -> RPCReply:
    """One JSON-RPC answer object as a reply (its error as ``BitcoinRPCError``)."""
    if not isinstance(payload, dict):
        raise BitcoinRPCError(method, None, f"bitcoind answered with {payload!r:.200}")
    error = payload.get("error")
    if error:
        return RPCReply(error=BitcoinRPCError(method, error.get("code"), error.get("message", "")))
    return RPCReply(result=payload.get("result"))
