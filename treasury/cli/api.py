"""``treasury api``: serve the REST API (OpenAPI schema at /openapi.json) with uvicorn."""

from __future__ import annotations

import typer

from treasury.api import create_app
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError
from treasury.proposals import LedgerSpendHook, Workflow

DEFAULT_PORT = 8080

app = typer.Typer(help="Serve the REST API for officers and auditors.", no_args_is_help=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(DEFAULT_PORT, help="TCP port to listen on."),
) -> None:
    """Serve the API on HOST:PORT against TREASURY_DATABASE_URL until interrupted."""
    import uvicorn

    try:
        engine = make_engine()
    except TreasuryError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1) from None
    sessions = session_factory(engine)
    # Chain spenders and ledger accounts are wired in at integration; until then the API
    # proposes, approves, vetoes and reads, and answers 503 to `prepare`.
    workflow = Workflow(sessions, LedgerSpendHook({}))
    try:
        uvicorn.run(create_app(workflow, sessions), host=host, port=port)
    finally:
        engine.dispose()
