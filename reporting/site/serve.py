"""``treasury serve``: a small static file server for a published site, on the loopback only.

The site needs no server (it opens from the file system); this exists so it can be browsed over
HTTP locally, exactly as a static web host would serve it. It serves files, nothing else.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reporting.site.errors import SiteError
from reporting.site.publish import MARKER_FILE

log = logging.getLogger(__name__)

LOOPBACK_HOST = "127.0.0.1"
"""The only interface served: the published site is public, but this server is for browsing it."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
}
"""Types of the files a site holds, with the charset browsers must not guess."""


class _SiteHandler(SimpleHTTPRequestHandler):
    def guess_type(self, path: str | os.PathLike[str]) -> str:
        return CONTENT_TYPES.get(Path(path).suffix.lower()) or super().guess_type(path)

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def site_server(folder: Path, port: int = 0) -> ThreadingHTTPServer:
    """A server of the published ``folder`` on 127.0.0.1:``port`` (0 picks a free port)."""
    if not (folder / MARKER_FILE).is_file():
        raise SiteError(
            f"The folder {folder} is not a published site; create one with `treasury publish --out {folder}`."
        )
    try:
        return ThreadingHTTPServer(
            (LOOPBACK_HOST, port), partial(_SiteHandler, directory=str(folder.resolve()))
        )
    except OSError as error:
        raise SiteError(
            f"Cannot listen on {LOOPBACK_HOST}:{port}: {error.strerror}; choose another --port."
        ) from None
