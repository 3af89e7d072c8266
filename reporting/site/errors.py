"""Errors of the published site: a source that cannot be read, a page that cannot be rendered."""

from __future__ import annotations

from reporting.exceptions import ReportingError


class SiteError(ReportingError):
    """The site cannot be published or served; the message names the file, folder or key."""


class SourceError(SiteError, ValueError):
    """An attestation folder, bundle file or the treasury's export cannot be read for publishing."""


class CatalogueError(SiteError, KeyError):
    """A message catalogue is missing, malformed, or lacks a key a page uses."""

    def __str__(self) -> str:
        """Show the sentence, not KeyError's quoted repr of it."""
        return str(self.args[0]) if self.args else ""
