"""``treasury db``: create or upgrade the database schema."""

from __future__ import annotations

import typer

from treasury import migrate
from treasury.cli.context import settings
from treasury.db import masked_database_url

app = typer.Typer(
    help="Create or upgrade the database schema (Alembic migrations).", no_args_is_help=True
)


@app.command()
def upgrade(
    revision: str = typer.Argument("heads", help="Target revision; 'heads' is the newest."),
) -> None:
    """Apply migrations up to REVISION on the database named by TREASURY_DATABASE_URL."""
    url = settings().database_url
    migrate.upgrade(url, revision=revision)
    typer.echo(
        f"Database at revision {migrate.current_revision(url)} ({masked_database_url(url)})."
    )


@app.command()
def current() -> None:
    """Print the schema revision of the configured database."""
    url = settings().database_url
    typer.echo(f"{migrate.current_revision(url) or '(empty)'} ({masked_database_url(url)})")
