"""The officers' web console: server-rendered pages over the same workflow and rules as the API.

Officers log in with their API token, which opens a **server-side session**
(``treasury.console_sessions``); the token itself is never stored in the browser. The cookie
holds only the random session id, **HttpOnly, SameSite=Strict**, scoped to ``/console``
(``Secure`` when served over HTTPS): script on the page can never read it, and the browser never
sends it with a request started by another site. The session expires (absolute and idle
timeouts), ends on the server at logout (a replayed cookie is refused), and stops the moment its
officer or the API token it was opened with is revoked. Every form post also carries a CSRF token
(an HMAC keyed by the session id, so it needs no server state, dies with the session, and cannot
be computed from the database, which keeps only the id's hash), compared in constant time; the
login form uses a double-submit cookie.

Authorisation is the API's: every request re-reads the session's officer as stored now, and every
action goes through the same ``Workflow`` methods, whose role and policy checks refuse what the
API refuses.

Once the roster chain is founded, the token alone approves nothing: an officer signs with a
**passkey**. ``/console/passkey`` registers one (the server verifies the attestation and keeps
only the public key, pending until the officer's admin signs it into the roster); the proposal
page shows the approval (or veto) statement in coin units and has the passkey sign its digest
(``navigator.credentials.get`` with the digest as challenge), and the workflow verifies that
assertion exactly as it verifies a key file's signature. The page script (``console.js``) does
the WebAuthn calls; the data it needs is in ``data-`` attributes, so the CSP allows no inline
script.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from custody.authority import ApprovalStatement, SignedStatement, StatementKind
from custody.clock import Clock, utc_now
from custody.exceptions import CustodyError
from treasury.api.errors import status_of
from treasury.api.input_refusals import record_input_refusal
from treasury.api.schemas import RecordId
from treasury.authority.passkeys import (
    PASSKEY_ROLES,
    PasskeyInputError,
    PasskeyRegistration,
    active_passkeys,
    assertion_from_json,
    passkey_signed,
    register_passkey,
    registration_challenge,
    registration_options,
    registrations,
    statement_from_text,
    verify_registration,
)
from treasury.authority.statements import coin_units, human_summary
from treasury.authority.store import roster_state
from treasury.console_sessions import (
    SESSION_IDLE_TIMEOUT,
    SESSION_MAX_AGE,
    ConsoleSession,
    end_session,
    resume_session,
    start_session,
)
from treasury.exceptions import TreasuryError
from treasury.officers import Officer, Role
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
SESSION_COOKIE = "console_session"
"""HttpOnly cookie holding the console session id (never the API token)."""
LOGIN_CSRF_COOKIE = "console_login_csrf"
PASSKEY_NONCE_COOKIE = "console_passkey_nonce"
"""HttpOnly cookie holding the nonce of the passkey registration the page offered."""
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


def csrf_token(session_secret: str) -> str:
    """The CSRF token of a console session: HMAC-SHA256 keyed by its session id (the cookie)."""
    return hmac.new(
        session_secret.encode(), b"national-reserve console csrf v1", hashlib.sha256
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


DONE_VERBS = ("approved", "rejected", "vetoed")
"""What ``?done=`` may say after an action (anything else is ignored)."""
VETOABLE_STATES = ("draft", "proposed", "approved")
"""Proposal states in which oversight may still veto (the workflow checks the window)."""
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


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Signing:
    """A statement the officer's passkey signs on the proposal page, and what ``get()`` needs."""

    statement: ApprovalStatement
    summary: str
    """``human_summary``: the statement as the CLI prints it."""
    amount: str
    max_fee: str | None
    canonical: str
    """The exact text posted back: the statement's canonical encoding."""
    digest: str
    challenge: str
    """The digest in base64url: the WebAuthn challenge."""
    credentials: str
    """The officer's active passkeys' credential ids, base64url, comma-separated."""
    rp_id: str


@dataclass(frozen=True)
class SigningChoice:
    """What the page offers for one kind of statement: a passkey signature, or why not."""

    signing: Signing | None = None
    blocked: str | None = None
    """Why the officer cannot sign here now (no passkey yet, pending, no transaction)."""


UNSIGNED = SigningChoice()
"""No roster genesis yet: approvals are taken without a statement (staging)."""


def _relying_party(request: Request) -> tuple[str, str]:
    """The RP id (the host) and the exact origin this console is served from."""
    host = request.url.hostname or ""
    return host, f"{request.url.scheme}://{request.url.netloc}"


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
        """The officer of the live session whose cookie came with the request, and the
        session's secret; ``None`` without a live session (its idle clock restarts here)."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        try:
            with sessions.begin() as session:
                live: ConsoleSession = resume_session(session, session_id, now=clock())
        except AuthenticationError:
            return None
        return live.officer, live.secret

    def to_login() -> RedirectResponse:
        response = RedirectResponse(f"{PREFIX}/login", status_code=status.HTTP_303_SEE_OTHER)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    def csrf_ok(form: Mapping[str, str], expected: str) -> bool:
        return hmac.compare_digest(form.get("csrf", "").encode(), expected.encode())

    def login_page(request: Request, error: str | None, code: int) -> HTMLResponse:
        nonce = random_bytes(CSRF_BYTES).hex()
        response = page(
            "login", code, error=error, csrf=nonce, officer=None,
            session_hours=SESSION_MAX_AGE // timedelta(hours=1),
            idle_minutes=SESSION_IDLE_TIMEOUT // timedelta(minutes=1),
        )  # fmt: skip
        response.set_cookie(
            LOGIN_CSRF_COOKIE, nonce, path=PREFIX, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    def first_page(officer: Officer) -> str:
        """Where a login lands: the passkey page while a signing officer has none under a
        founded roster (they cannot approve without one), else the proposals."""
        try:
            with sessions() as session:
                if (
                    officer.roles.intersection(PASSKEY_ROLES)
                    and roster_state(session) is not None
                    and not registrations(session, officer.id)
                ):
                    return f"{PREFIX}/passkey"
        except (TreasuryError, CustodyError):
            pass  # the proposals page shows whatever is wrong
        return f"{PREFIX}/proposals"

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
            with sessions.begin() as session:
                now = clock()
                opened = start_session(session, token, now=now, random_bytes=random_bytes)
                # A new login replaces the browser's previous session (no fixation, no orphan).
                end_session(session, request.cookies.get(SESSION_COOKIE, ""), now=now)
        except AuthenticationError as error:
            return login_page(request, str(error), status.HTTP_401_UNAUTHORIZED)
        response = RedirectResponse(
            first_page(opened.officer), status_code=status.HTTP_303_SEE_OTHER
        )
        response.set_cookie(
            SESSION_COOKIE, opened.secret, path=PREFIX, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip
        response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        """End the session on the server (its cookie is refused from now on) and forget it."""
        found = officer_of(request)
        if found is not None:
            if not csrf_ok(await _form(request), csrf_token(found[1])):
                return Response(status_code=status.HTTP_403_FORBIDDEN, headers=SECURITY_HEADERS)
            with sessions.begin() as session:
                end_session(session, request.cookies.get(SESSION_COOKIE, ""), now=clock())
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
        actor, secret = found
        try:
            views = workflow.list_proposals(actor)
            decided = latest_decisions(actor, views)
        except TreasuryError as error:
            return page(
                "error", status_of(error), officer=actor, csrf=csrf_token(secret), error=str(error)
            )
        return page(
            "proposals", officer=actor, csrf=csrf_token(secret), proposals=views, decisions=decided
        )

    def signing_choice(request: Request, actor: Officer, view: ProposalView,
                       kind: StatementKind) -> SigningChoice:  # fmt: skip
        """The statement the officer's passkey signs to approve or veto ``view`` now, or why
        they cannot; ``UNSIGNED`` while no roster genesis is stored."""
        rp_id, _origin = _relying_party(request)
        with sessions() as session:
            state = roster_state(session)
        if state is None:
            return UNSIGNED
        keys = [key for key in active_passkeys(state, actor) if key.rp_id == rp_id]
        if not keys:
            return SigningChoice(
                blocked="Your signature is required and you have no active passkey for this "
                "console yet: register one, and have your institution's admin sign it in."
            )
        if view.tx_hash is None:
            return SigningChoice(
                blocked="No transaction is prepared yet; there is nothing to sign."
            )
        try:
            statement = workflow.statement(actor, view.id, kind)
        except TreasuryError as failure:
            return SigningChoice(blocked=str(failure))
        digest = statement.digest()
        return SigningChoice(
            Signing(
                statement=statement,
                summary=human_summary(statement),
                amount=coin_units(statement.asset, statement.amount),
                max_fee=None
                if statement.max_fee is None
                else coin_units(statement.asset, statement.max_fee),
                canonical=statement.encode().decode("utf-8"),
                digest=digest.hex(),
                challenge=_b64url(digest),
                credentials=",".join(_b64url(key.credential_id or b"") for key in keys),
                rp_id=rp_id,
            )
        )

    def detail(request: Request, actor: Officer, secret: str, proposal_id: int, *,
               error: str | None = None, refusals: tuple[str, ...] = (),
               done: str | None = None, code: int = status.HTTP_200_OK) -> HTMLResponse:  # fmt: skip
        try:
            view = workflow.status(actor, proposal_id)
            decisions = workflow.decisions(actor, proposal_id)
            approving = vetoing = UNSIGNED
            if Role.APPROVER in actor.roles and view.state.value == "proposed":
                approving = signing_choice(request, actor, view, StatementKind.APPROVE)
            if Role.OVERSIGHT in actor.roles and view.state.value in VETOABLE_STATES:
                vetoing = signing_choice(request, actor, view, StatementKind.VETO)
        except (TreasuryError, CustodyError) as failure:
            return page(
                "error",
                status_of(failure),
                officer=actor,
                csrf=csrf_token(secret),
                error=str(failure),
            )
        return page(
            "proposal", code, officer=actor, csrf=csrf_token(secret), proposal=view,
            decisions=decisions, error=error, refusals=refusals, done=done,
            approving=approving, vetoing=vetoing,
            can_veto=Role.OVERSIGHT in actor.roles,
        )  # fmt: skip

    @router.get("/proposals/{proposal_id}")
    def proposal(request: Request, proposal_id: RecordId, done: str | None = None) -> Response:
        found = officer_of(request)
        if found is None:
            return to_login()
        return detail(request, *found, proposal_id, done=done if done in DONE_VERBS else None)

    async def act(request: Request, proposal_id: int, verb: str,
                  action: Callable[[Officer, Mapping[str, str]], object]) -> Response:  # fmt: skip
        found = officer_of(request)
        if found is None:
            return to_login()
        actor, secret = found
        try:
            form = await _form(request)
        except TreasuryError as error:
            return detail(request, actor, secret, proposal_id, error=str(error),
                          code=status_of(error))  # fmt: skip
        if not csrf_ok(form, csrf_token(secret)):
            return detail(request, actor, secret, proposal_id, error="The form expired or did not come from this console; try again.",
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
            return detail(request, actor, secret, proposal_id, error=f"Invalid form: {problems}.",
                          code=status.HTTP_422_UNPROCESSABLE_CONTENT)  # fmt: skip
        try:
            action(actor, form)
        except PolicyRefusedError as refused:
            reasons = tuple(reason.message for reason in refused.decision.reasons)
            return detail(request, actor, secret, proposal_id, error=str(refused), refusals=reasons,
                          code=status.HTTP_409_CONFLICT)  # fmt: skip
        except (TreasuryError, CustodyError) as error:
            return detail(request, actor, secret, proposal_id, error=str(error),
                          code=status_of(error))  # fmt: skip
        return RedirectResponse(
            f"{PREFIX}/proposals/{proposal_id}?done={verb}", status_code=status.HTTP_303_SEE_OTHER
        )

    def signed_from_form(actor: Officer, form: Mapping[str, str]) -> SignedStatement | None:
        """The statement the page showed and the passkey's assertion over its digest, paired
        with the officer's roster key of that passkey; ``None`` when the form carries neither
        (no roster yet). Verified by the workflow, not here."""
        text, assertion = form.get("statement", ""), form.get("assertion", "")
        if not text and not assertion:
            return None
        statement = statement_from_text(text)
        signature = assertion_from_json(assertion)
        with sessions() as session:
            state = roster_state(session)
        if state is None:
            raise PasskeyInputError(
                "A passkey signature was sent, but no roster genesis is stored to verify it."
            )
        return passkey_signed(state, actor, statement, signature)

    @router.post("/proposals/{proposal_id}/approve")
    async def approve(request: Request, proposal_id: RecordId) -> Response:
        return await act(
            request, proposal_id, "approved",
            lambda actor, form: workflow.approve(
                actor, proposal_id, form.get("tx_hash", ""), signed_from_form(actor, form)
            ),
        )  # fmt: skip

    @router.post("/proposals/{proposal_id}/veto")
    async def veto(request: Request, proposal_id: RecordId) -> Response:
        return await act(
            request, proposal_id, "vetoed",
            lambda actor, form: workflow.veto(
                actor, proposal_id, form.get("reason", ""), signed_from_form(actor, form)
            ),
        )  # fmt: skip

    @router.post("/proposals/{proposal_id}/reject")
    async def reject(request: Request, proposal_id: RecordId) -> Response:
        return await act(
            request, proposal_id, "rejected",
            lambda actor, form: workflow.reject(actor, proposal_id, form.get("reason", "")),
        )  # fmt: skip

    def passkey_page(request: Request, actor: Officer, secret: str, *,
                     error: str | None = None, done: str | None = None,
                     code: int = status.HTTP_200_OK) -> HTMLResponse:  # fmt: skip
        """The officer's passkeys and their state; a fresh registration offer if they sign."""
        try:
            with sessions() as session:
                mine: list[PasskeyRegistration] = registrations(session, actor.id)
                founded = roster_state(session) is not None
        except (TreasuryError, CustodyError) as failure:
            return page(
                "error", status_of(failure), officer=actor, csrf=csrf_token(secret),
                error=str(failure),
            )  # fmt: skip
        rp_id, origin = _relying_party(request)
        nonce = random_bytes(CSRF_BYTES)
        options = None
        if actor.roles.intersection(PASSKEY_ROLES):
            options = registration_options(
                actor,
                rp_id=rp_id,
                challenge=registration_challenge(secret, nonce),
                registered=[r.key for r in mine],
            )
        response = page(
            "passkey", code, officer=actor, csrf=csrf_token(secret), registrations=mine,
            options=options, founded=founded, error=error, done=done, origin=origin,
        )  # fmt: skip
        response.set_cookie(
            PASSKEY_NONCE_COOKIE, nonce.hex(), path=PREFIX, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    @router.get("/passkey")
    def passkey(request: Request, done: str | None = None) -> Response:
        found = officer_of(request)
        if found is None:
            return to_login()
        return passkey_page(request, *found, done=done if done == "registered" else None)

    @router.post("/passkey")
    async def passkey_register(request: Request) -> Response:
        found = officer_of(request)
        if found is None:
            return to_login()
        actor, secret = found
        try:
            form = await _form(request)
            if not csrf_ok(form, csrf_token(secret)):
                return passkey_page(
                    request, actor, secret, code=status.HTTP_403_FORBIDDEN,
                    error="The form expired or did not come from this console; try again.",
                )  # fmt: skip
            actor.require(*PASSKEY_ROLES)
            try:
                nonce = bytes.fromhex(request.cookies.get(PASSKEY_NONCE_COOKIE, ""))
            except ValueError:
                nonce = b""
            if len(nonce) != CSRF_BYTES:
                raise PasskeyInputError(
                    "The registration offer expired; reload the page and register again."
                )
            rp_id, origin = _relying_party(request)
            key = verify_registration(
                form.get("credential", ""),
                challenge=registration_challenge(secret, nonce),
                rp_id=rp_id,
                origin=origin,
            )
            with sessions.begin() as session:
                register_passkey(session, actor, key, clock=clock)
        except (TreasuryError, CustodyError) as failure:
            return passkey_page(request, actor, secret, error=str(failure), code=status_of(failure))
        response = RedirectResponse(
            f"{PREFIX}/passkey?done=registered", status_code=status.HTTP_303_SEE_OTHER
        )
        response.delete_cookie(PASSKEY_NONCE_COOKIE, path=PREFIX)
        return response

    @router.get("/alarms")
    def alarms(request: Request) -> Response:
        found = officer_of(request)
        if found is None:
            return to_login()
        actor, secret = found
        try:
            actor.require(*Role)
        except TreasuryError as error:
            return page(
                "error", status_of(error), officer=actor, csrf=csrf_token(secret), error=str(error)
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
            "alarms", officer=actor, csrf=csrf_token(secret), alarms=raised,
            alarms_available=has_alarms, checkpoints=checkpoints,
        )  # fmt: skip

    return router
