"""The ``treasury`` command: one entry point, one sub-command group per domain."""

from __future__ import annotations

import logging

import typer

from treasury.cli import db, devnet
from treasury.demo import run_demo

app = typer.Typer(
    help=(
        "Custody, state ledger and proof-of-reserves for the national crypto reserve. "
        "Start with `treasury demo` to see the whole story on local devnets."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(devnet.app, name="devnet")
app.add_typer(db.app, name="db")


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress at INFO level."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def demo() -> None:
    """Run the whole story on fresh local devnets and print what happened."""
    run_demo(typer.echo)


def main() -> None:
    """Console-script entry point."""
    app()
