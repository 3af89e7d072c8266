"""``treasury api``: serve the REST API (OpenAPI schema at /openapi.json) with uvicorn.

The API runs the configured workflow and chain spenders (``treasury.wiring``): ``prepare`` builds
transactions for every asset whose vault and node are configured, and answers 503 for the others.
"""

from __future__ import annotations

import typer
from sqlalchemy.exc import SQLAlchemyError

from treasury.api import create_app
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError
from treasury.wiring import configured_workflow, spender_setup

DEFAULT_PORT = 8080

app = typer.Typer(help="Serve the REST API for officers and auditors.", no_args_is_help=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(DEFAULT_PORT, help="TCP port to listen on."),
) -> None:
    """Serve the API on HOST:PORT over TREASURY_DATABASE_URL and the vaults and nodes `treasury spend --help` describes, until interrupted."""
    import uvicorn

    try:
        engine = make_engine()
    except TreasuryError as exc:
        raise _fail(str(exc)) from None
    try:
        sessions = session_factory(engine)
        try:
            workflow = configured_workflow(sessions)
            setup = spender_setup(sessions)
        except TreasuryError as exc:
            raise _fail(str(exc)) from None
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise _fail(
                f"the database refused the operation ({reason}); run `treasury db upgrade`?"
            ) from None
        for asset, problem in setup.problems.items():
            typer.secho(f"note: {asset} spends cannot be prepared: {problem}", err=True)
        uvicorn.run(create_app(workflow, sessions, spenders=setup.spenders), host=host, port=port)
    finally:
        engine.dispose()


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)
