"""``POST /holders/proof``: an account holder fetches their proof package with their code.

Officers authenticate with a bearer token; account holders are not officers and have no token.
A holder has what the treasury sent them with the attestation notice: their account id and a
short code for that attestation (``XXXXX-XXXXX``, 50 bits, derived from the tree's kept nonce:
``treasury.attest.account_proofs``). The request body carries both (never the URL, so they stay
out of access logs)::

    POST /holders/proof
    {"attestation": 3, "account_id": "citizen:0001", "code": "8DZYF-34V8X"}

and the answer is the package ``treasury proofs issue`` writes, which the holder (or the site's
check page) verifies against the root the published bundle states: the server is not trusted.

Answers: 200 the package; 401 no code, or one that cannot be a code; 403 the account id and
code do not match (the same answer whether the account exists or not); 404 no such attestation,
or its tree was not kept; 413 a body over ``MAX_HOLDER_BODY_BYTES``; 422 a body that is not
``{attestation, account_id, code}``; 503 the kept tree does not rebuild to the published root.
Nothing is written for any request, and neither the id nor the code is logged.

The route is read by the static site from any origin (even a page opened from disk), so it
answers ``Access-Control-Allow-Origin: *``; it uses no cookie or ambient credential, so another
site gains nothing by calling it. The site sends the body as ``text/plain`` (a CORS "simple"
request, no preflight); ``application/json`` is accepted too, and its preflight is answered.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from reporting.merkle.liability_leaf import MAX_ACCOUNT_ID_BYTES
from treasury.attest.account_proofs import (
    HOLDER_CODE_MAX_INPUT_CHARS,
    AccountNotInTreeError,
    AttestationNotFoundError,
    HolderCodeError,
    KeptTree,
    KeptTreeMismatchError,
    TreeNotKeptError,
    check_holder_code,
    kept_nonce,
    kept_tree,
    normalise_code,
    open_package,
)

log = logging.getLogger(__name__)

MAX_HOLDER_BODY_BYTES = 4096
"""Largest request body read: an id of 1,024 UTF-8 bytes, escaped, fits with room to spare."""
MAX_SEQUENCE = 2**31 - 1
"""Largest attestation number asked about (the column is a 32-bit integer)."""
KEPT_TREES_CACHED = 2
"""Rebuilt trees kept in memory: a rebuild hashes the whole tree, the latest is asked most."""
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "600",
}
"""Any page may ask: the answer needs the holder's code, never a cookie."""
ANSWER_HEADERS = {**CORS_HEADERS, "Cache-Control": "no-store"}
"""A package holds the holder's salt: no cache keeps it."""
BODY_FIELDS = frozenset({"attestation", "account_id", "code"})


def _answer(code: int, content: dict[str, Any]) -> JSONResponse:
    return JSONResponse(status_code=code, content=content, headers=ANSWER_HEADERS)


def _refusal(code: int, detail: str) -> JSONResponse:
    return _answer(code, {"detail": detail})


class _KeptTrees:
    """The last few rebuilt trees (an attestation's kept tree never changes once recorded)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._trees: OrderedDict[int, KeptTree] = OrderedDict()
        self._lock = threading.Lock()

    def check_code(self, sequence: int, account_id: str, code: str) -> None:
        """Check the holder's code against the kept nonce alone, before any tree is rebuilt (a
        cached tree's own nonce, else one small read): wrong codes for many attestations would
        otherwise each force a whole-tree rebuild."""
        with self._lock:
            cached = self._trees.get(sequence)
        if cached is not None:
            nonce = cached.nonce
        else:
            with self._sessions() as session:
                nonce = kept_nonce(session, sequence)
        check_holder_code(nonce, sequence, account_id, code)

    def get(self, sequence: int) -> KeptTree:
        with self._lock:
            if sequence in self._trees:
                self._trees.move_to_end(sequence)
                return self._trees[sequence]
        with self._sessions() as session:
            tree = kept_tree(session, sequence)
        with self._lock:
            self._trees[sequence] = tree
            while len(self._trees) > KEPT_TREES_CACHED:
                self._trees.popitem(last=False)
        return tree


def _parse(raw: bytes) -> tuple[int, str, str] | JSONResponse:
    """The body's attestation, account id and code, or the refusal naming what is wrong."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return _refusal(422, "The body must be JSON: {attestation, account_id, code}.")
    if not isinstance(data, dict) or set(data) - BODY_FIELDS:
        return _refusal(
            422, "The body must be a JSON object with only attestation, account_id and code."
        )
    sequence = data.get("attestation")
    if type(sequence) is not int or not 1 <= sequence <= MAX_SEQUENCE:
        return _refusal(422, "attestation must be the attestation's number, a positive integer.")
    account_id = data.get("account_id")
    if (
        not isinstance(account_id, str)
        or not account_id
        or len(account_id.encode("utf-8", "surrogatepass")) > MAX_ACCOUNT_ID_BYTES
    ):
        return _refusal(
            422, f"account_id must be a non-empty text of at most {MAX_ACCOUNT_ID_BYTES} bytes."
        )
    code = data.get("code")
    if not isinstance(code, str) or not code.strip():
        return _refusal(
            401, "Your code is required: the treasury sent it with the attestation notice."
        )
    if len(code) > HOLDER_CODE_MAX_INPUT_CHARS or normalise_code(code) is None:
        return _refusal(401, "A code has ten letters and digits, written XXXXX-XXXXX.")
    return sequence, account_id, code


def holder_proofs_router(sessions: sessionmaker[Session]) -> APIRouter:
    """The ``/holders`` routes over the treasury database ``sessions`` (read only)."""
    router = APIRouter(prefix="/holders", tags=["holders"])
    trees = _KeptTrees(sessions)

    @router.options("/proof", include_in_schema=False)
    def preflight() -> Response:
        """Answer a browser's CORS preflight (only sent for an ``application/json`` body)."""
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers=CORS_HEADERS)

    @router.post(
        "/proof",
        responses={
            200: {"description": "The holder's proof package (JSON)."},
            401: {"description": "No code, or not a code."},
            403: {"description": "The account id and code do not match."},
            404: {"description": "No such attestation, or its tree was not kept."},
            422: {"description": "The body is not {attestation, account_id, code}."},
        },
    )
    async def holder_proof(request: Request) -> JSONResponse:
        """The proof package of ``account_id`` in attestation ``attestation``, for its holder.

        Body ``{"attestation": N, "account_id": "...", "code": "XXXXX-XXXXX"}`` (JSON, sent as
        ``application/json`` or ``text/plain``). Verify the answer against the bundle's root.
        """
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_HOLDER_BODY_BYTES:
            return _refusal(413, f"The body is larger than {MAX_HOLDER_BODY_BYTES} bytes.")
        raw = await request.body()
        if len(raw) > MAX_HOLDER_BODY_BYTES:
            return _refusal(413, f"The body is larger than {MAX_HOLDER_BODY_BYTES} bytes.")
        parsed = _parse(raw)
        if isinstance(parsed, JSONResponse):
            return parsed
        sequence, account_id, code = parsed
        try:
            await run_in_threadpool(trees.check_code, sequence, account_id, code)
            tree = await run_in_threadpool(trees.get, sequence)
            package = await run_in_threadpool(open_package, tree, account_id, code)
        except (AttestationNotFoundError, TreeNotKeptError) as exc:
            return _refusal(404, str(exc))
        except HolderCodeError as exc:
            return _refusal(403, str(exc))
        except AccountNotInTreeError:
            # Only a holder of the nonce can make a valid code, so this is the treasury's slip.
            return _refusal(404, f"Attestation {sequence} has no proof package for this account.")
        except KeptTreeMismatchError:
            log.warning(
                "holder proof refused: the kept tree fails its check", extra={"sequence": sequence}
            )
            return _refusal(
                503,
                f"Attestation {sequence}'s proofs cannot be issued now; the treasury is told.",
            )
        return _answer(200, package)

    return router


__all__ = ["MAX_HOLDER_BODY_BYTES", "holder_proofs_router"]
