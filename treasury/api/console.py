"""The officers' web console: server-rendered pages over the same workflow and rules as the API.

Officers log in with their API token. The console keeps it in an **HttpOnly, SameSite=Strict
cookie** scoped to ``/console`` (``Secure`` when served over HTTPS), not in ``sessionStorage``:
script on the page can never read it, so an injected script cannot carry it away, and the
browser never sends it with a request started by another site. Every form post also carries a
CSRF token (an HMAC of the officer's token, so it needs no server state and dies with the
token), compared in constant time; the login form uses a double-submit cookie.

Authorisation is the API's: the token is checked by ``treasury.officers.authenticate`` with the
app's sessions and clock, exactly as the API's bearer dependency does, and every action goes
through the same ``Workflow`` methods, whose role and policy checks refuse what the API refuses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from custody.clock import Clock, utc_now
from treasury.api.errors import status_of
from treasury.api.input_refusals import record_input_refusal
from treasury.api.schemas import RecordId
from treasury.exceptions import TreasuryError
from treasury.officers import Officer, Role, authenticate
from treasury.policy import ReconciliationCheckpointRow, RecordedDecision
from treasury.policy.rules import PolicyRefusedError
from treasury.proposals import ProposalView, Workflow
from treasury.reconcile import list_alarms
from treasury.text import LINE_BREAKS, unstorable_characters, unstorable_message
from treasury.workflow_exceptions import (
    AuthenticationError,
    WorkflowInputError,
)

PREFIX = "/console"
TOKEN_COOKIE = "console_token"  # noqa: S105 - the cookie's name, not a secret
LOGIN_CSRF_COOKIE = "console_login_csrf"
CSRF_BYTES = 32
MAX_FORM_BYTES = 16 * 1024
"""Largest form body accepted (a reason of 2000 characters fits many times over)."""
CHECKPOINTS_SHOWN = 50
"""Newest reconciliation checkpoints listed on the alarms page."""
TEMPLATES_DIR = Path(__file__).resolve().parent / "console_templates"
STATIC_FILES = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
"""The only files served under ``/console/static/``."""
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Sent with every console page: no inline or foreign script, no framing, nothing cached."""


def csrf_token(api_token: str) -> str:
    """The CSRF token of a logged-in officer: HMAC-SHA256 keyed by their API token."""
    return hmac.new(
        api_token.encode(), b"national-reserve console csrf v1", hashlib.sha256
    ).hexdigest()


async def _form(request: Request) -> dict[str, str]:
    """The posted ``application/x-www-form-urlencoded`` fields (last value of each)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise WorkflowInputError(f"The form is larger than {MAX_FORM_BYTES} bytes.")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise WorkflowInputError("The form is not UTF-8 text.") from None
    return {name: values[-1] for name, values in fields.items()}


MULTI_LINE_FIELDS = frozenset({"reason"})
"""Form fields of free text, where tabs and line breaks are allowed (see ``schemas``)."""


def _unstorable(form: Mapping[str, str]) -> dict[str, list[str]]:
    """Each posted field whose text no database can store, with the code points found."""
    found = {
        name: unstorable_characters(
            value, LINE_BREAKS if name in MULTI_LINE_FIELDS else frozenset()
        )
        for name, value in form.items()
    }
    return {name: points for name, points in found.items() if points}


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda moment: (
        "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")
    )
    return env


def console_router(
    workflow: Workflow,
    sessions: sessionmaker[Session],
    *,
    clock: Clock = utc_now,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> APIRouter:
    """The console's routes under ``/console``; mount with ``app.include_router``."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    env = _environment()

    def page(name: str, code: int = status.HTTP_200_OK, **context: Any) -> HTMLResponse:
        html = env.get_template(f"{name}.html").render(prefix=PREFIX, **context)
        return HTMLResponse(html, status_code=code, headers=SECURITY_HEADERS)

    def officer_of(request: Request) -> tuple[Officer, str] | None:
        """The officer whose token cookie came with the request, and the token (None if none)."""
        token = request.cookies.get(TOKEN_COOKIE)
        if not token:
            return None
        try:
            with sessions() as session:
                return authenticate(session, token, now=clock()), token
        except AuthenticationError:
            return None

    def to_login() -> RedirectResponse:
        response = RedirectResponse(f"{PREFIX}/login", status_code=status.HTTP_303_SEE_OTHER)
        response.delete_cookie(TOKEN_COOKIE, path=PREFIX)
        return response

    def csrf_ok(form: Mapping[str, str], expected: str) -> bool:
        return hmac.compare_digest(form.get("csrf", "").encode(), expected.encode())

    def login_page(request: Request, error: str | None, code: int) -> HTMLResponse:
        nonce = random_bytes(CSRF_BYTES).hex()
        response = page("login", code, error=error, csrf=nonce, officer=None)
        response.set_cookie(
            LOGIN_CSRF_COOKIE, nonce, path=PREFIX, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    @router.get("")
    def home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/proposals", status_code=status.HTTP_303_SEE_OTHER)

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            return Response(status_code=status.HTTP_404_NOT_FOUND)
        return FileResponse(
            TEMPLATES_DIR / name, media_type=STATIC_FILES[name], headers=SECURITY_HEADERS
        )

    @router.get("/login")
    def login_form(request: Request) -> HTMLResponse:
        return login_page(request, None, status.HTTP_200_OK)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        if not csrf_ok(form, request.cookies.get(LOGIN_CSRF_COOKIE, "") or "\x00"):
            return login_page(request, "The form expired; log in again.", status.HTTP_403_FORBIDDEN)
        token = form.get("token", "").strip()
        if unstorable_characters(token):
            # No token has one, and PostgreSQL cannot even look a NUL up: refused before a query.
            return login_page(
                request,
                "The token must be text without control characters.",
                status.HTTP_422_UNPROCESSABLE_CONTENT,
            )
        try:
            with sessions() as session:
                authenticate(session, token, now=clock())
        except AuthenticationError as error:
            return login_page(request, str(error), status.HTTP_401_UNAUTHORIZED)
        response = RedirectResponse(f"{PREFIX}/proposals", status_code=status.HTTP_303_SEE_OTHER)
        response.set_cookie(
            TOKEN_COOKIE, token, path=PREFIX, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip
        response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        found = officer_of(request)
        if found is not None and not csrf_ok(await _form(request), csrf_token(found[1])):
            return Response(status_code=status.HTTP_403_FORBIDDEN, headers=SECURITY_HEADERS)
        return to_login()

    def latest_decisions(actor: Officer, views: list[ProposalView]) -> dict[int, RecordedDecision]:
        latest = {}
        for view in views:
            decisions = workflow.decisions(actor, view.id)
            if decisions:
                latest[view.id] = decisions[-1]
        return latest

    @router.get("/proposals")
    def proposals(request: Request) -> Response:
        found = officer_of(request)
        if found is None:
            return to_login()
        actor, token = found
        try:
            views = workflow.list_proposals(actor)
            decided = latest_decisions(actor, views)
        except TreasuryError as error:
            return page(
                "error", status_of(error), officer=actor, csrf=csrf_token(token), error=str(error)
            )
        return page(
            "proposals", officer=actor, csrf=csrf_token(token), proposals=views, decisions=decided
        )

    def detail(actor: Officer, token: str, proposal_id: int, *, error: str | None = None,
               refusals: tuple[str, ...] = (), done: str | None = None,
               code: int = status.HTTP_200_OK) -> HTMLResponse:  # fmt: skip
        try:
            view = workflow.status(actor, proposal_id)
            decisions = workflow.decisions(actor, proposal_id)
        except TreasuryError as failure:
            return page(
                "error",
                status_of(failure),
                officer=actor,
                csrf=csrf_token(token),
                error=str(failure),
            )
        return page(
            "proposal", code, officer=actor, csrf=csrf_token(token), proposal=view,
            decisions=decisions, error=error, refusals=refusals, done=done,
        )  # fmt: skip

    @router.get("/proposals/{proposal_id}")
    def proposal(request: Request, proposal_id: RecordId, done: str | None = None) -> Response:
        found = officer_of(request)
        if found is None:
            return to_login()
        return detail(*found, proposal_id, done=done if done in ("approved", "rejected") else None)

    async def act(request: Request, proposal_id: int, verb: str,
                  action: Callable[[Officer, Mapping[str, str]], object]) -> Response:  # fmt: skip
        found = officer_of(request)
        if found is None:
            return to_login()
        actor, token = found
        try:
            form = await _form(request)
        except TreasuryError as error:
            return detail(actor, token, proposal_id, error=str(error), code=status_of(error))
        if not csrf_ok(form, csrf_token(token)):
            return detail(actor, token, proposal_id, error="The form expired or did not come from this console; try again.",
                          code=status.HTTP_403_FORBIDDEN)  # fmt: skip
        unstorable = _unstorable(form)
        if unstorable:
            # Refused before the workflow, like the API's 422; the refusal itself is audited.
            route = getattr(request.scope.get("route"), "path", request.url.path)
            record_input_refusal(
                sessions, actor, method="POST", route=route, fields=list(unstorable),
                found=[p for points in unstorable.values() for p in points],
                proposal_id=proposal_id, clock=clock,
            )  # fmt: skip
            problems = "; ".join(
                f"the {name} must be {unstorable_message(points)}"
                for name, points in unstorable.items()
            )
            return detail(actor, token, proposal_id, error=f"Invalid form: {problems}.",
                          code=status.HTTP_422_UNPROCESSABLE_CONTENT)  # fmt: skip
        try:
            action(actor, form)
        except PolicyRefusedError as refused:
            reasons = tuple(reason.message for reason in refused.decision.reasons)
            return detail(actor, token, proposal_id, error=str(refused), refusals=reasons,
                          code=status.HTTP_409_CONFLICT)  # fmt: skip
        except TreasuryError as error:
            return detail(actor, token, proposal_id, error=str(error), code=status_of(error))
        return RedirectResponse(
            f"{PREFIX}/proposals/{proposal_id}?done={verb}", status_code=status.HTTP_303_SEE_OTHER
        )

    @router.post("/proposals/{proposal_id}/approve")
    async def approve(request: Request, proposal_id: RecordId) -> Response:
        return await act(
            request, proposal_id, "approved",
            lambda actor, form: workflow.approve(actor, proposal_id, form.get("tx_hash", "")),
        )  # fmt: skip

    @router.post("/proposals/{proposal_id}/reject")
    async def reject(request: Request, proposal_id: RecordId) -> Response:
        return await act(
            request, proposal_id, "rejected",
            lambda actor, form: workflow.reject(actor, proposal_id, form.get("reason", "")),
        )  # fmt: skip

    @router.get("/alarms")
    def alarms(request: Request) -> Response:
        found = officer_of(request)
        if found is None:
            return to_login()
        actor, token = found
        try:
            actor.require(*Role)
        except TreasuryError as error:
            return page(
                "error", status_of(error), officer=actor, csrf=csrf_token(token), error=str(error)
            )
        with sessions() as session:
            has_alarms = inspect(session.connection()).has_table("reconcile_alarms")
            raised = list_alarms(session) if has_alarms else []
            checkpoints = session.scalars(
                select(ReconciliationCheckpointRow)
                .order_by(
                    ReconciliationCheckpointRow.checked_at.desc(),
                    ReconciliationCheckpointRow.id.desc(),
                )
                .limit(CHECKPOINTS_SHOWN)
            ).all()
        return page(
            "alarms", officer=actor, csrf=csrf_token(token), alarms=raised,
            alarms_available=has_alarms, checkpoints=checkpoints,
        )  # fmt: skip

    return router
