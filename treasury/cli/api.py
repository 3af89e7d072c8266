"""``treasury api``: serve the REST API (OpenAPI schema at /openapi.json) with uvicorn.

The API runs the configured workflow and chain spenders (``treasury.wiring``): ``prepare`` builds
transactions for every asset whose vault and node are configured, and answers 503 for the others.
The server logs JSON lines (``treasury.logs``), uvicorn's request lines among them.
"""

from __future__ import annotations

import logging

import typer
from sqlalchemy.exc import SQLAlchemyError

from treasury.api import create_app
from treasury.cli.context import fail, invocation, settings
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError
from treasury.logs import LogFormat, configure_logging
from treasury.wiring import configured_workflow, spender_setup

DEFAULT_PORT = 8080
SERVER_LOGGERS = {"uvicorn": logging.INFO}
"""uvicorn's start-up and request lines stay at INFO, as uvicorn logs them by default."""

app = typer.Typer(help="Serve the REST API for officers and auditors.", no_args_is_help=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(DEFAULT_PORT, help="TCP port to listen on."),
) -> None:
    """Serve the API on HOST:PORT over TREASURY_DATABASE_URL and the vaults and nodes `treasury spend --help` describes, until interrupted."""
    import uvicorn

    configured = settings()
    try:
        engine = make_engine(configured.database_url)
    except TreasuryError as exc:
        raise fail(exc) from None
    try:
        sessions = session_factory(engine)
        try:
            workflow = configured_workflow(sessions, configured)
            setup = spender_setup(sessions, configured)
        except TreasuryError as exc:
            raise fail(exc) from None
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise fail(
                f"the database refused the operation ({reason}); run `treasury db upgrade`?"
            ) from None
        for asset, problem in setup.problems.items():
            typer.secho(f"note: {asset} spends cannot be prepared: {problem}", err=True)
        configure_logging(LogFormat.JSON, invocation().log_level, loggers=SERVER_LOGGERS)
        api = create_app(workflow, sessions, spenders=setup.spenders, settings=configured)
        uvicorn.run(api, host=host, port=port, log_config=None)
    finally:
        engine.dispose()
