"""``treasury db``: create or upgrade the database schema."""

from __future__ import annotations

import typer

from treasury import migrate
from treasury.db import database_url

app = typer.Typer(
    help="Create or upgrade the database schema (Alembic migrations).", no_args_is_help=True
)


@app.command()
def upgrade(
    revision: str = typer.Argument("heads", help="Target revision; 'heads' is the newest."),
) -> None:
    """Apply migrations up to REVISION on the database named by TREASURY_DATABASE_URL."""
    migrate.upgrade(revision=revision)
    typer.echo(f"Database at revision {migrate.current_revision()} ({_shown_url()}).")


@app.command()
def current() -> None:
    """Print the schema revision of the configured database."""
    typer.echo(f"{migrate.current_revision() or '(empty)'} ({_shown_url()})")


def _shown_url() -> str:
    """The database URL with any password masked."""
    from sqlalchemy.engine import make_url

    return make_url(database_url()).render_as_string(hide_password=True)
