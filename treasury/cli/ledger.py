"""``treasury ledger``: read the state ledger (balances and the journal) from the command line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from treasury import ledger
from treasury.cli.context import fail, settings
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError

app = typer.Typer(
    help="Read the state ledger: balances per account and the journal of entries.",
    no_args_is_help=True,
)

ERROR_EXIT_CODE = 2
"""Exit code when the command could not run at all (bad setting, schema missing, bad option)."""


@contextlib.contextmanager
def database_session() -> Iterator[Session]:
    """A read session on TREASURY_DATABASE_URL; errors become one-line messages, not tracebacks."""
    try:
        engine = make_engine(settings().database_url)
    except TreasuryError as exc:
        raise fail(exc, ERROR_EXIT_CODE) from None
    try:
        with session_factory(engine)() as session:
            yield session
    except TreasuryError as exc:
        raise fail(exc, ERROR_EXIT_CODE) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise fail(
            f"the database could not be read ({reason}); is the schema there (`treasury db upgrade`)?",
            ERROR_EXIT_CODE,
        ) from None
    finally:
        engine.dispose()


def _cutoff(as_of_entry: int | None, as_of: datetime | None) -> ledger.Cutoff:
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    return ledger.Cutoff(entry_id=as_of_entry, time=as_of)


@app.command()
def balances(
    asset: str | None = typer.Option(None, help="Only accounts of this asset code, e.g. BTC."),
    as_of_entry: int | None = typer.Option(
        None, "--as-of-entry", help="Count only entries up to this entry id."
    ),
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of", help="Count only entries recorded up to this time (UTC if no zone)."
        ),
    ] = None,
) -> None:
    """Print every account's posted, pending and available balance, then the trial balance per asset (exit 1 if one does not balance)."""
    cutoff = _cutoff(as_of_entry, as_of)
    with database_session() as session:
        accounts = [account.code for account in ledger.list_accounts(session, asset)]
        rows = ledger.balances(session, accounts, cutoff) if accounts else []
        assets = {line.asset: ledger.get_asset(session, line.asset) for line in rows}
        totals = [
            line
            for line in ledger.trial_balance(session, cutoff)
            if asset is None or line.asset == asset
        ]
        units = {t.asset: ledger.get_asset(session, t.asset) for t in totals}
    for row in rows:
        spec = assets[row.asset]

        def shown(amount: int, spec: ledger.AssetSpec = spec) -> str:
            return f"{ledger.format_amount(amount, spec.decimals)} {spec.code}"

        typer.echo(
            f"{row.account:32} posted {shown(row.posted):>30}  pending {shown(row.pending):>30}  "
            f"available {shown(row.available):>30}"
        )
    unbalanced = []
    for line in totals:
        t, spec = line.totals, units[line.asset]
        verdict = "balanced" if line.balanced else "NOT BALANCED"
        typer.echo(
            f"trial balance {line.asset}: debits {t.debits_posted} = credits {t.credits_posted} "
            f"{spec.unit_name} posted, {t.debits_pending} = {t.credits_pending} pending: {verdict}"
        )
        if not line.balanced:
            unbalanced.append(line.asset)
    if unbalanced:
        raise fail(f"the trial balance of {', '.join(unbalanced)} is not zero.", code=1)


@app.command()
def entries(
    account: str | None = typer.Option(None, help="Only entries touching this account code."),
    after: int = typer.Option(0, help="Start after this entry id (for paging)."),
    limit: int = typer.Option(50, min=1, max=10_000, help="Print at most this many entries."),
) -> None:
    """Print journal entries oldest first: id, time, kind, idempotency key, description, then each leg in base units."""
    with database_session() as session:
        found = ledger.list_entries(session, account=account, after_id=after, limit=limit)
    for entry in found:
        links = ""
        if entry.pending_id is not None:
            links = f" (resolves #{entry.pending_id})"
        if entry.reverses_id is not None:
            links = f" (reverses #{entry.reverses_id})"
        typer.echo(
            f"#{entry.id} {entry.recorded_at.isoformat()} {entry.kind.value}{links} "
            f"key={entry.key!r} {entry.description}".rstrip()
        )
        for leg in entry.legs:
            typer.echo(f"    {leg.side.value:6} {leg.account:32} {leg.amount}")
