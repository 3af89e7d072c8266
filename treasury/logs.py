"""Logging: stdlib loggers at the call sites, structlog's rendering at the edges.

Modules log through ``logging.getLogger(__name__)`` and put their facts in ``extra=``. An edge
calls ``configure_logging`` once; from then on every stdlib record is rendered by
``structlog.stdlib.ProcessorFormatter``: its ``ExtraAdder`` copies each ``extra=`` fact into
the line, and ``merge_contextvars`` adds the business ids the edge bound with ``bound_ids``
(``proposal_id``, ``spend_id``, ``alarm_id``...), so they appear on every line logged inside.

* ``LogFormat.CONSOLE`` (the CLI): ``time [level] message [logger] key=value ...``, for people;
* ``LogFormat.JSON`` (``treasury api serve`` and ``treasury scheduler run``): one JSON object a
  line, for log collectors.

Both write to standard error, resolved when a record is written (a test runner swaps it), so
command output on standard output stays clean.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import sys
from collections.abc import Iterator, Mapping

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger


def _without_colour_copy(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """Drop uvicorn's ``color_message`` extra: the message again, with terminal colour codes."""
    event.pop("color_message", None)
    return event


_PRE_CHAIN: tuple[Processor, ...] = (
    structlog.stdlib.ExtraAdder(),
    _without_colour_copy,
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
)
"""What every record gets before rendering: its ``extra=`` facts first (they win over bound ids
of the same name), then the bound ids, level, logger name and a UTC timestamp."""


class LogFormat(enum.Enum):
    """How log lines are written."""

    CONSOLE = "console"
    """One human-readable line per record with every fact as key=value (the CLI)."""
    JSON = "json"
    """One JSON object per line (the API server and the scheduler)."""


def formatter(log_format: LogFormat) -> structlog.stdlib.ProcessorFormatter:
    """The formatter that renders stdlib records, with all their facts, in ``log_format``."""
    renderer: Processor
    if log_format is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer(default=str, sort_keys=True)
        tail: tuple[Processor, ...] = (structlog.processors.format_exc_info, renderer)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
        tail = (renderer,)
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=list(_PRE_CHAIN),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )


class _StderrHandler(logging.Handler):
    """Writes each record to whatever ``sys.stderr`` is at that moment."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never take the command down
            self.handleError(record)


def configure_logging(
    log_format: LogFormat,
    level: int = logging.WARNING,
    *,
    loggers: Mapping[str, int] | None = None,
) -> None:
    """Render every record at ``level`` or above to stderr in ``log_format`` (idempotent).

    ``loggers`` sets named loggers to their own level, e.g. uvicorn's request lines at INFO
    while everything else stays at ``level``. The root logger is only ever lowered, so a test
    runner's own capture level is kept.
    """
    own = dict(loggers or {})
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(formatter(log_format))
    handler.setLevel(min([level, *own.values()]))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    for name, named_level in own.items():
        logging.getLogger(name).setLevel(named_level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


@contextlib.contextmanager
def bound_ids(**ids: object) -> Iterator[None]:
    """Put these business ids on every line logged inside the block (``None`` ones are left out)."""
    with structlog.contextvars.bound_contextvars(
        **{name: value for name, value in ids.items() if value is not None}
    ):
        yield


def bind_ids(**ids: object) -> None:
    """Make these the only business ids of the current context (one API request's, say)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        **{name: value for name, value in ids.items() if value is not None}
    )


__all__ = ["LogFormat", "bind_ids", "bound_ids", "configure_logging", "formatter"]
