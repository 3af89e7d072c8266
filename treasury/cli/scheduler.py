"""``treasury scheduler``: run the reconciliation job on an interval (APScheduler).

The scheduler logs JSON lines (``treasury.logs``); each run's summary line is printed as before.
"""

from __future__ import annotations

import typer
from sqlalchemy.exc import SQLAlchemyError

from treasury.cli.context import fail, invocation, settings
from treasury.exceptions import TreasuryError
from treasury.logs import LogFormat, configure_logging
from treasury.scheduler import run_scheduler

app = typer.Typer(
    help=(
        "Run the reconciliation, then the overdue key health check, on a schedule; several "
        "instances never reconcile at once."
    ),
    no_args_is_help=True,
)

ERROR_EXIT_CODE = 2


@app.command()
def run(
    interval: float = typer.Option(60.0, min=0.1, help="Seconds between reconciliation runs."),
    stop_after: float | None = typer.Option(
        None, help="Stop after this many seconds (default: run until Ctrl-C)."
    ),
) -> None:
    """Reconcile now and then every --interval seconds, retrying with backoff when a node is down."""
    configure_logging(LogFormat.JSON, invocation().log_level)
    try:
        run_scheduler(settings().database_url, interval, stop_after_s=stop_after)
    except TreasuryError as exc:
        raise fail(exc, ERROR_EXIT_CODE) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise fail(f"the database refused the operation ({reason})", ERROR_EXIT_CODE) from None
