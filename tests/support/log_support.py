"""Log records as the treasury's edges print them, for tests that read every field of every line."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from treasury.logs import LogFormat, formatter


def rendered(records: Iterable[logging.LogRecord]) -> str:
    """Every record through every configured formatter (the CLI's lines and the API's JSON), so
    each ``extra=`` fact, argument and exception text of each record is in the result."""
    kept = list(records)
    lines = [formatter(log_format).format(record) for log_format in LogFormat for record in kept]
    return "\n".join(lines)
