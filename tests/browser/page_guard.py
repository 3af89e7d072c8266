"""A browser page that records every request leaving the allowed origins, and every failure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, Route


@dataclass
class Traffic:
    """What a page tried: requests to foreign origins (blocked), failures, script errors."""

    foreign: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.foreign == [], f"requests left the machine: {self.foreign}"
        assert self.failed == [], f"requests failed: {self.failed}"
        assert self.errors == [], f"page errors: {self.errors}"


@contextmanager
def guarded_page(
    browser: Browser, origin: str | None = None, *, javascript: bool = True
) -> Iterator[tuple[Page, Traffic]]:
    """A fresh page that may load only ``file://`` URLs and ``origin``; everything else is
    aborted and recorded, as are failed loads, HTTP errors and script errors."""
    traffic = Traffic()

    def allowed(url: str) -> bool:
        return url.startswith("file://") or (origin is not None and url.startswith(origin + "/"))

    def route(handled: Route) -> None:
        if allowed(handled.request.url):
            handled.continue_()
        else:
            traffic.foreign.append(handled.request.url)
            handled.abort()

    def on_request(request: Request) -> None:
        if not allowed(request.url) and request.url not in traffic.foreign:
            traffic.foreign.append(request.url)

    def on_response(response: Response) -> None:
        if response.status >= 400:
            traffic.failed.append(f"{response.status} {response.url}")

    def on_failed(request: Request) -> None:
        # ERR_ABORTED is a load the page itself cancelled by navigating on (e.g. the icon of a
        # page left at once); a missing file is ERR_FILE_NOT_FOUND or an HTTP status above.
        if request.failure != "net::ERR_ABORTED":
            traffic.failed.append(f"{request.failure} {request.url}")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            traffic.errors.append(message.text)

    context = browser.new_context(
        java_script_enabled=javascript, viewport={"width": 1280, "height": 900}
    )
    context.route("**/*", route)
    page = context.new_page()
    page.on("request", on_request)
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda error: traffic.errors.append(str(error)))
    try:
        yield page, traffic
    finally:
        context.close()
