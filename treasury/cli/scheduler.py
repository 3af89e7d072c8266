"""``treasury scheduler``: run the reconciliation job on an interval (APScheduler)."""

from __future__ import annotations

import typer
from sqlalchemy.exc import SQLAlchemyError

from treasury.exceptions import TreasuryError
from treasury.reconcile.scheduler import run_scheduler

app = typer.Typer(
    help="Run the reconciliation on a schedule; several instances never reconcile at once.",
    no_args_is_help=True,
)


@app.command()
def run(
    interval: float = typer.Option(60.0, min=0.1, help="Seconds between reconciliation runs."),
    stop_after: float | None = typer.Option(
        None, help="Stop after this many seconds (default: run until Ctrl-C)."
    ),
) -> None:
    """Reconcile now and then every --interval seconds, retrying with backoff when a node is down."""
    try:
        run_scheduler(interval, stop_after_s=stop_after)
    except TreasuryError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        typer.secho(
            f"error: the database refused the operation ({reason})", err=True, fg=typer.colors.RED
        )
        raise typer.Exit(code=2) from None
