"""How every console page is served: session, CSRF, language, amounts and security headers.

One place for what the core console (``console``) and the views (``console_views``) share, so
neither imports the other's routes: ``ConsolePages.render`` renders a template of
``console_templates/`` with the officer, the CSRF token, the page's language (``t``, ``lang``;
see ``console_i18n``) and the asset registry's ``units``, and sends it with headers that allow no
inline or foreign script, no framing and no caching.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.orm import Session, sessionmaker

from custody.clock import Clock, utc_now
from custody.exceptions import CustodyError
from reporting.site.i18n import LANGUAGES, Catalogue
from treasury.api.console_i18n import (
    LANGUAGE_COOKIE,
    Units,
    asset_units,
    choose_language,
    load_console_catalogues,
)
from treasury.api.errors import status_of
from treasury.console_sessions import ConsoleSession, resume_session
from treasury.exceptions import TreasuryError
from treasury.officers import Officer
from treasury.workflow_exceptions import AuthenticationError, WorkflowInputError

PREFIX = "/console"
SESSION_COOKIE = "console_session"
"""HttpOnly cookie holding the console session id (never the API token)."""
MAX_FORM_BYTES = 16 * 1024
"""Largest form body accepted (a reason of 2000 characters fits many times over)."""
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600
"""How long the language an officer picked is remembered."""
TEMPLATES_DIR = Path(__file__).resolve().parent / "console_templates"
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


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def console_environment() -> Environment:
    """The console's Jinja environment: autoescaped, strict about undefined names."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["role_name"] = lambda role, t: t(f"console.role.{role}")
    return env


class ConsolePages:
    """Sessions, forms and rendering for the console's routers (one instance per router)."""

    def __init__(self, sessions: sessionmaker[Session], *, clock: Clock = utc_now) -> None:
        self.sessions = sessions
        self.clock = clock
        self.env = console_environment()
        self.catalogues: dict[str, Catalogue] = load_console_catalogues()
        """Loaded once: a missing or duplicated message stops the console at startup."""

    # -- session and forms

    def officer_of(self, request: Request) -> tuple[Officer, str] | None:
        """The officer of the live session whose cookie came with the request, and the
        session's secret; ``None`` without a live session (its idle clock restarts here)."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        try:
            with self.sessions.begin() as session:
                live: ConsoleSession = resume_session(session, session_id, now=self.clock())
        except AuthenticationError:
            return None
        return live.officer, live.secret

    @staticmethod
    def to_login() -> RedirectResponse:
        response = RedirectResponse(f"{PREFIX}/login", status_code=status.HTTP_303_SEE_OTHER)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @staticmethod
    async def form(request: Request) -> dict[str, str]:
        """The posted ``application/x-www-form-urlencoded`` fields (last value of each)."""
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise WorkflowInputError(f"The form is larger than {MAX_FORM_BYTES} bytes.")
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise WorkflowInputError("The form is not UTF-8 text.") from None
        return {name: values[-1] for name, values in fields.items()}

    @staticmethod
    def csrf_ok(form: Mapping[str, str], secret: str) -> bool:
        """Whether the form carries this session's CSRF token (compared in constant time)."""
        return hmac.compare_digest(form.get("csrf", "").encode(), csrf_token(secret).encode())

    # -- language and rendering

    def language(self, request: Request) -> str:
        """The language this request's page is written in (see ``choose_language``)."""
        return choose_language(
            request.query_params.get("lang"),
            request.cookies.get(LANGUAGE_COOKIE),
            request.headers.get("accept-language"),
        )

    def catalogue(self, request: Request) -> Catalogue:
        return self.catalogues[self.language(request)]

    def units(self, catalogue: Catalogue) -> Units:
        """Amount formatting in ``catalogue``'s language with the registry as stored now."""
        try:
            with self.sessions() as session:
                registry = asset_units(session)
        except (TreasuryError, CustodyError):
            registry = {}
        return Units(catalogue, registry)

    def render(self, request: Request, name: str, *, officer: Officer | None, secret: str | None,
               code: int = status.HTTP_200_OK, **context: Any) -> HTMLResponse:  # fmt: skip
        """``console_templates/<name>.html`` in the request's language, with the security
        headers; a ``?lang=`` choice is remembered in a cookie."""
        lang = self.language(request)
        catalogue = self.catalogues[lang]
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
        switch = {
            code_: f"{request.url.path}?{urlencode([*kept, ('lang', code_)])}"
            for code_ in LANGUAGES
        }
        context.setdefault("csrf", "" if secret is None else csrf_token(secret))
        html = self.env.get_template(f"{name}.html").render(
            prefix=PREFIX, officer=officer, t=catalogue.text, lang=lang, languages=LANGUAGES,
            language_links=switch, units=self.units(catalogue), **context,
        )  # fmt: skip
        response = HTMLResponse(html, status_code=code, headers=SECURITY_HEADERS)
        if request.query_params.get("lang") in LANGUAGES:
            response.set_cookie(
                LANGUAGE_COOKIE, lang, max_age=LANGUAGE_COOKIE_SECONDS, path=PREFIX,
                httponly=True, samesite="strict", secure=request.url.scheme == "https",
            )  # fmt: skip
        return response

    def error(
        self, request: Request, officer: Officer, secret: str, failure: Exception
    ) -> HTMLResponse:
        """The "Refused" page for ``failure``, with the status the API would answer."""
        code = (
            status_of(failure)
            if isinstance(failure, (TreasuryError, CustodyError))
            else status.HTTP_500_INTERNAL_SERVER_ERROR
        )
        return self.render(request, "error", officer=officer, secret=secret, code=code,
                           error=str(failure))  # fmt: skip
