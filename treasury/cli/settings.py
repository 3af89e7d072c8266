"""``treasury settings``: every setting with its value (secrets masked) and where it came from."""

from __future__ import annotations

import typer

from treasury.cli.context import SETTINGS_EXIT_CODE, fail, invocation
from treasury.settings import read_settings


def show_settings() -> None:
    """List every setting the treasury reads with its current value (passwords and tokens masked) and its source: env, devnet state or default."""
    reading = read_settings(invocation().environ)
    width = max(len(row.variable) for row in reading.rows)
    source_width = max(len(row.source.value) for row in reading.rows)
    for row in reading.rows:
        line = f"{row.variable:{width}}  {row.source.value:{source_width}}  {row.shown}"
        typer.echo(line if row.problem is None else f"{line}  (unusable)")
    if reading.errors:
        raise fail(reading.errors[0], SETTINGS_EXIT_CODE)
