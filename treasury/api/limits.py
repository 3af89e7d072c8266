"""Every request is bounded before anything parses it: body size and JSON nesting depth.

A hostile client must not be able to take the API down. Two things did: a body of a few hundred
kilobytes of nested brackets overflowed the C stack inside ``json.loads`` (``py_ecc`` raises the
interpreter's recursion limit to 100,000 when it is imported, so the parser's own guard never
fires), and an unbounded body would be read whole into memory. This ASGI middleware runs before
routing, authentication and parsing:

* a declared ``Content-Length`` above ``MAX_BODY_BYTES`` is answered 413 without reading a byte;
* an undeclared (chunked) body is counted as it arrives and refused 413 once it passes the limit;
* a JSON or form body nested deeper than ``MAX_JSON_DEPTH`` is answered 422, found by a linear scan
  that never recurses;
* otherwise the buffered body is handed to the application unchanged.

Nothing is written for a refused request: the application never sees it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 1_048_576
"""1 MiB: the largest request the API accepts (a policy document is a few kilobytes)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a request body may have (ours nest three levels)."""
SAFE_RECURSION_LIMIT = 1000
"""CPython's default recursion limit, restored in the API process (see ``restore_recursion_limit``)."""

_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")
_QUOTE = ord('"')
_BACKSLASH = ord("\\")


def json_depth(body: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in ``body``, ignoring brackets inside strings.

    Linear and iterative, so it is safe on any input; it does not validate the JSON (the
    framework's parser does that next, on a body now known to be shallow).
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif byte in _CLOSERS:
            depth -= 1
    return deepest


def restore_recursion_limit() -> None:
    """Put the interpreter's recursion limit back to CPython's default.

    ``py_ecc`` (imported through ``web3``/``eth_account``) raises it to 100,000, far beyond what
    the C stack of a server thread can hold: a deep structure then crashes the process instead
    of raising ``RecursionError``. The API does no deep recursion of its own.
    """
    import sys

    sys.setrecursionlimit(SAFE_RECURSION_LIMIT)


class RequestLimits:
    """ASGI middleware: refuse oversized or over-nested bodies before the application runs."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_json_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(send, 413, self._too_large())
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_body_bytes:
                await _refuse(send, 413, self._too_large())
                return
        if body and json_depth(bytes(body)) > self.max_json_depth:
            await _refuse(
                send,
                422,
                f"The request body nests deeper than {self.max_json_depth} levels; "
                "no request to this API needs that.",
            )
            return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _too_large(self) -> str:
        return f"The request body is larger than {self.max_body_bytes} bytes; nothing was read or written."


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the buffered body over once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "RequestLimits",
    "json_depth",
    "restore_recursion_limit",
]
