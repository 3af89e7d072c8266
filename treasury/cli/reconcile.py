"""``treasury reconcile``: run a reconciliation now, see its state and alarms, acknowledge alarms."""

from __future__ import annotations

import typer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from custody.clock import utc_now
from custody.exceptions import CustodyError
from treasury.cli.context import fail, settings
from treasury.cli.officers import TokenOption, cli_context
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError
from treasury.ledger import format_amount, get_asset
from treasury.logs import bound_ids
from treasury.reconcile import (
    acknowledge,
    configured_nodes,
    list_alarms,
    newest_results,
    reconcile_now,
)
from treasury.reconcile.records import WARNING_KINDS, CursorRow, RunRow
from treasury.reconcile.retries import describe

app = typer.Typer(
    help="Keep the state ledger true to the chains: run, inspect, acknowledge alarms.",
    no_args_is_help=True,
)

ERROR_EXIT_CODE = 2
FAILED_RUN_EXIT_CODE = 1


def _database_error(exc: SQLAlchemyError) -> typer.Exit:
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return fail(
        f"the database refused the operation ({reason}); run `treasury db upgrade`?",
        ERROR_EXIT_CODE,
    )


@app.command()
def now() -> None:
    """Reconcile every vault once against the configured nodes, printing progress as it goes."""
    configured = settings()
    try:
        bitcoin, evm = configured_nodes(configured.nodes)
        report = reconcile_now(
            configured.database_url,
            bitcoin=bitcoin,
            evm=evm,
            settings=configured.reconcile,
            progress=typer.echo,
            evm_chains=configured.evm_chains,
            reserve_chain=configured.reserve_chain(),
        )
    except (TreasuryError, CustodyError) as exc:
        raise fail(exc, ERROR_EXIT_CODE) from None
    except SQLAlchemyError as exc:
        raise _database_error(exc) from None
    typer.echo(describe(report))
    if report.skipped or report.status is None or report.status.value != "succeeded":
        raise typer.Exit(code=FAILED_RUN_EXIT_CODE)


@app.command()
def status() -> None:
    """Show the last run, each vault's cursor and newest comparison, and every open alarm."""
    try:
        engine = make_engine(settings().database_url)
    except TreasuryError as exc:
        raise fail(exc, ERROR_EXIT_CODE) from None
    try:
        with session_factory(engine)() as session:
            run = session.scalar(select(RunRow).order_by(RunRow.id.desc()).limit(1))
            if run is None:
                typer.echo("no reconciliation has run yet")
            else:
                typer.echo(
                    f"last run {run.id}: {run.status.value}, started {run.started_at.isoformat()} "
                    f"(pid {run.pid}), {run.booked} booked, {run.reversed} reversed"
                    + (f"; {run.error}" if run.error else "")
                )
            for cursor in session.scalars(select(CursorRow).order_by(CursorRow.scope)):
                typer.echo(
                    f"cursor {cursor.scope}: block {cursor.height} {cursor.block_hash} "
                    f"(updated {cursor.updated_at.isoformat()})"
                )
            for result in newest_results(session):
                decimals = get_asset(session, result.asset).decimals
                typer.echo(
                    f"{'ok      ' if result.matched else 'MISMATCH'} {result.scope} "
                    f"{result.gate_asset}: chain {format_amount(result.chain_balance, decimals)}, "
                    f"ledger {format_amount(result.ledger_balance, decimals)}, "
                    f"difference {result.difference} base units at block {result.height}"
                )
            alarms = list_alarms(session, only_open=True)
            blocking = [a for a in alarms if a.kind not in WARNING_KINDS]
            typer.echo(
                f"{len(alarms)} open alarm(s)" + (": spends are blocked" if blocking else "")
            )
            for alarm in alarms:
                acks = ", ".join(f"{a.officer_name} ({a.role})" for a in alarm.acknowledgements)
                typer.echo(
                    f"  alarm {alarm.id} [{alarm.kind.value}] {alarm.scope} raised "
                    f"{alarm.raised_at.isoformat()}: {alarm.detail}"
                    + (f" (acknowledged by {acks})" if acks else "")
                )
    except TreasuryError as exc:
        raise fail(exc, ERROR_EXIT_CODE) from None
    except SQLAlchemyError as exc:
        raise _database_error(exc) from None
    finally:
        engine.dispose()


@app.command()
def ack(
    alarm_id: int,
    reason: str = typer.Option(..., help="What was checked and why it is safe, in a sentence."),
    token_file: str | None = TokenOption,
) -> None:
    """Acknowledge an alarm: one oversight officer, or two approvers/admins, clear it."""
    with (
        bound_ids(alarm_id=alarm_id),
        cli_context(token_file) as ctx,
        ctx.sessions.begin() as session,
    ):
        alarm = acknowledge(session, alarm_id, ctx.actor, reason, clock=utc_now)
    state = "cleared" if not alarm.open else "still open: a second officer must acknowledge it"
    typer.echo(f"alarm {alarm.id} acknowledged by {ctx.actor.name}; {state}")
