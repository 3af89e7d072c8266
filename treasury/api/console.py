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
script. An officer with a key file instead signs in the browser too (``keyfile.js`` from
``console_views``): only the statement, the signature and the file's public key are posted.

The pages are in Kyrgyz, Russian and English (``console_i18n``), amounts in coin units with base
units on hover (``units``), the transaction decoded from what the signers sign (``console_tx``),
and each decision offered only to whom it belongs (``console_review``).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from custody.authority import ApprovalStatement, SignedStatement, StatementKind
from custody.clock import Clock, utc_now
from custody.exceptions import CustodyError
from treasury.api.console_keyfile import active_key_files, keyfile_signed
from treasury.api.console_pages import (
    PREFIX,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    TEMPLATES_DIR,
    ConsolePages,
    csrf_token,
)
from treasury.api.console_review import (
    Choices,
    checked_decision,
    choices,
    current_quorum,
    institution_names,
    people,
    quorum,
)
from treasury.api.console_tx import decoded_transaction
from treasury.api.console_views import console_views_router, duration
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
    end_session,
    start_session,
)
from treasury.exceptions import TreasuryError
from treasury.officers import Officer
from treasury.policy.rules import PolicyRefusedError
from treasury.proposals import ProposalView, Workflow
from treasury.text import LINE_BREAKS, unstorable_characters, unstorable_message
from treasury.translations import TranslationKind, translations_by_key
from treasury.workflow_exceptions import AuthenticationError

__all__ = [
    "LOGIN_CSRF_COOKIE",
    "PREFIX",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "console_router",
    "csrf_token",
]

LOGIN_CSRF_COOKIE = "console_login_csrf"
PASSKEY_NONCE_COOKIE = "console_passkey_nonce"
"""HttpOnly cookie holding the nonce of the passkey registration the page offered."""
CSRF_BYTES = 32
STATIC_FILES = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
"""The only files served under ``/console/static/`` by this router (``keyfile.js``: the views')."""
DONE_VERBS = ("approved", "rejected", "vetoed")
"""What ``?done=`` may say after an action (anything else is ignored)."""
LIST_FILTERS = ("all", "awaiting")
"""The proposals list's tabs: every proposal, or those awaiting the officer's decision."""
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
    """A statement the officer signs on the proposal page (passkey or key file)."""

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
    passkey: bool
    """The officer has an active passkey for this console."""
    keyfile: bool
    """The officer has an active key-file (secp256k1) key in the roster."""


@dataclass(frozen=True)
class SigningChoice:
    """What the page offers for one kind of statement: a signature, or why not."""

    signing: Signing | None = None
    blocked: str | None = None
    """Why the officer cannot sign here now (no key yet, pending, no transaction)."""


UNSIGNED = SigningChoice()
"""No roster genesis yet: approvals are taken without a statement (staging)."""


def _relying_party(request: Request) -> tuple[str, str]:
    """The RP id (the host) and the exact origin this console is served from."""
    host = request.url.hostname or ""
    return host, f"{request.url.scheme}://{request.url.netloc}"


def console_router(
    workflow: Workflow,
    sessions: sessionmaker[Session],
    *,
    clock: Clock = utc_now,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> APIRouter:
    """The console's routes under ``/console`` (the views' first); mount with ``include_router``."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    pages = ConsolePages(sessions, clock=clock)

    def page(request: Request, name: str, officer: Officer | None, secret: str | None,
             code: int = status.HTTP_200_OK, **context: Any) -> HTMLResponse:  # fmt: skip
        return pages.render(request, name, officer=officer, secret=secret, code=code, **context)

    def login_page(request: Request, error: str | None, code: int) -> HTMLResponse:
        nonce = random_bytes(CSRF_BYTES).hex()
        response = page(
            request, "login", None, None, code, error=error, csrf=nonce,
            session_hours=SESSION_MAX_AGE // timedelta(hours=1),
            idle_minutes=SESSION_IDLE_TIMEOUT // timedelta(minutes=1),
        )  # fmt: skip
        response.set_cookie(
            LOGIN_CSRF_COOKIE, nonce, path=PREFIX, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    def first_page(officer: Officer) -> str:
        """Where a login lands: the keys page while a signing officer has no passkey under a
        founded roster (it says whether their key file can sign instead), else the proposals."""
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
        form = await pages.form(request)
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "") or "\x00"
        if not secrets.compare_digest(form.get("csrf", "").encode(), expected.encode()):
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
        found = pages.officer_of(request)
        if found is not None:
            if not pages.csrf_ok(await pages.form(request), found[1]):
                return Response(status_code=status.HTTP_403_FORBIDDEN, headers=SECURITY_HEADERS)
            with sessions.begin() as session:
                end_session(session, request.cookies.get(SESSION_COOKIE, ""), now=clock())
        return pages.to_login()

    def reviewed(actor: Officer, views: list[ProposalView], lang: str) -> dict[str, Any]:
        """What the list shows beside each proposal: its proposer, quorum progress, the
        officer's choices and the latest policy decision."""
        now = clock()
        with sessions() as session:
            institutions, required = current_quorum(session)
            named = people(session, {v.proposer_id for v in views}, lang)
            names = institution_names(session, lang)
        progress = {v.id: quorum(v, institutions, required) for v in views}
        decided = {}
        for view in views:
            found = workflow.decisions(actor, view.id)
            if found:
                decided[view.id] = found[-1]
        return {
            "people": named,
            "institution_names": names,
            "progress": progress,
            "choices": {v.id: choices(actor, v, progress[v.id], now) for v in views},
            "decisions": decided,
        }

    def purposes_in(lang: str, views: list[ProposalView]) -> dict[int, str]:
        """Each proposal's purpose in the page's language: the proposer's translation where one
        was entered (``treasury translations set purpose``), else the purpose as proposed."""
        with sessions() as session:
            entered = translations_by_key(session, TranslationKind.PURPOSE)
        return {v.id: entered.get(str(v.id), {}).get(lang, v.purpose) for v in views}

    @router.get("/proposals")
    def proposals(request: Request, show: str = "all") -> Response:
        found = pages.officer_of(request)
        if found is None:
            return pages.to_login()
        actor, secret = found
        show = show if show in LIST_FILTERS else "all"
        try:
            views = workflow.list_proposals(actor)
            context = reviewed(actor, views, pages.language(request))
        except (TreasuryError, CustodyError) as error:
            return pages.error(request, actor, secret, error)
        mine: dict[int, Choices] = context["choices"]
        awaiting = [v for v in views if mine[v.id].awaiting]
        return page(
            request, "proposals", actor, secret, proposals=awaiting if show == "awaiting" else views,
            show=show, awaiting_count=len(awaiting),
            purposes=purposes_in(pages.language(request), views), **context,
        )  # fmt: skip

    def signing_choice(request: Request, actor: Officer, view: ProposalView,
                       kind: StatementKind) -> SigningChoice:  # fmt: skip
        """The statement the officer signs (passkey or key file) to approve or veto ``view``
        now, or why they cannot; ``UNSIGNED`` while no roster genesis is stored."""
        rp_id, _origin = _relying_party(request)
        with sessions() as session:
            state = roster_state(session)
        if state is None:
            return UNSIGNED
        keys = [key for key in active_passkeys(state, actor) if key.rp_id == rp_id]
        key_files = active_key_files(state, actor)
        if not keys and not key_files:
            return SigningChoice(blocked="blocked.no_key")
        if view.tx_hash is None:
            return SigningChoice(blocked="blocked.no_tx")
        try:
            statement = workflow.statement(actor, view.id, kind)
        except TreasuryError as failure:
            return SigningChoice(blocked=str(failure))
        digest = statement.digest()
        return SigningChoice(
            Signing(
                statement=statement,
                summary=human_summary(statement),
                amount=coin_units(statement.asset, statement.amount, statement.chain),
                max_fee=None
                if statement.max_fee is None
                else coin_units(statement.asset, statement.max_fee, statement.chain),
                canonical=statement.encode().decode("utf-8"),
                digest=digest.hex(),
                challenge=_b64url(digest),
                credentials=",".join(_b64url(key.credential_id or b"") for key in keys),
                rp_id=rp_id,
                passkey=bool(keys),
                keyfile=bool(key_files),
            )
        )

    def detail(request: Request, actor: Officer, secret: str, proposal_id: int, *,
               error: str | None = None, refusals: tuple[str, ...] = (),
               done: str | None = None, code: int = status.HTTP_200_OK) -> HTMLResponse:  # fmt: skip
        now = clock()
        try:
            view = workflow.status(actor, proposal_id)
            decisions = workflow.decisions(actor, proposal_id)
            with sessions() as session:
                institutions, required = current_quorum(session)
                progress = quorum(view, institutions, required)
                lang = pages.language(request)
                named = people(
                    session, {view.proposer_id, *(a.officer_id for a in view.approvals)}, lang
                )
                names = institution_names(session, lang)
                decoded = decoded_transaction(session, view.id)
                checked = checked_decision(session, view.id)
            allowed = choices(actor, view, progress, now)
            approving = vetoing = UNSIGNED
            if allowed.approve:
                approving = signing_choice(request, actor, view, StatementKind.APPROVE)
            if allowed.veto:
                vetoing = signing_choice(request, actor, view, StatementKind.VETO)
        except (TreasuryError, CustodyError) as failure:
            return pages.error(request, actor, secret, failure)
        catalogue = pages.catalogue(request)
        return page(
            request, "proposal", actor, secret, code, proposal=view, decisions=decisions,
            error=error, refusals=refusals, done=done, approving=approving, vetoing=vetoing,
            allowed=allowed, progress=progress, people=named, institution_names=names,
            tx=decoded, checked=checked, now=now,
            purposes=purposes_in(pages.language(request), [view]),
            span=lambda value: duration(catalogue, value),
            address=f"{PREFIX}/proposals/{view.id}",
        )  # fmt: skip

    @router.get("/proposals/{proposal_id}")
    def proposal(request: Request, proposal_id: RecordId, done: str | None = None) -> Response:
        found = pages.officer_of(request)
        if found is None:
            return pages.to_login()
        return detail(request, *found, proposal_id, done=done if done in DONE_VERBS else None)

    async def act(request: Request, proposal_id: int, verb: str,
                  action: Callable[[Officer, Mapping[str, str]], object]) -> Response:  # fmt: skip
        """Run ``action``; success redirects to the proposal page (``?done=``); a refusal is
        answered with its status and the proposal page, whose script puts the proposal's own
        address in the address bar (a reload reads the page, it does not post again)."""
        found = pages.officer_of(request)
        if found is None:
            return pages.to_login()
        actor, secret = found
        try:
            form = await pages.form(request)
        except TreasuryError as error:
            return detail(request, actor, secret, proposal_id, error=str(error),
                          code=status_of(error))  # fmt: skip
        if not pages.csrf_ok(form, secret):
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
        """The statement the page showed with the officer's signature over its digest (a key
        file's, or a passkey's assertion), paired with the officer's roster key; ``None`` when
        the form carries no signature (no roster yet). Verified by the workflow, not here."""
        text, assertion = form.get("statement", ""), form.get("assertion", "")
        key_signature = form.get("key_signature", "")
        if not text and not assertion and not key_signature:
            return None
        with sessions() as session:
            state = roster_state(session)
        if state is None:
            raise PasskeyInputError(
                "A signature was sent, but no roster genesis is stored to verify it."
            )
        if key_signature:
            return keyfile_signed(state, actor, text, key_signature, form.get("key_public", ""))
        return passkey_signed(
            state, actor, statement_from_text(text), assertion_from_json(assertion)
        )

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
                state = roster_state(session)
        except (TreasuryError, CustodyError) as failure:
            return pages.error(request, actor, secret, failure)
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
            request, "passkey", actor, secret, code, registrations=mine, options=options,
            founded=state is not None, key_files=len(active_key_files(state, actor)),
            error=error, done=done, origin=origin,
        )  # fmt: skip
        response.set_cookie(
            PASSKEY_NONCE_COOKIE, nonce.hex(), path=PREFIX, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    @router.get("/passkey")
    def passkey(request: Request, done: str | None = None) -> Response:
        found = pages.officer_of(request)
        if found is None:
            return pages.to_login()
        return passkey_page(request, *found, done=done if done == "registered" else None)

    @router.post("/passkey")
    async def passkey_register(request: Request) -> Response:
        found = pages.officer_of(request)
        if found is None:
            return pages.to_login()
        actor, secret = found
        try:
            form = await pages.form(request)
            if not pages.csrf_ok(form, secret):
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

    console = APIRouter(include_in_schema=False)
    console.include_router(console_views_router(sessions, clock=clock))
    console.include_router(router)
    return console
