"""``treasury policy verify``: replay every recorded policy decision under its stored policy.

Like ``treasury audit verify`` it needs no token: it only reads, and an auditor runs it. Exit 0
when every policy version is intact and every decision reproduces, 1 naming the first that does
not, 2 when the database cannot be read.
"""

from __future__ import annotations

import typer

from treasury.cli.ledger import database_session
from treasury.policy import verify_decisions

MISMATCH_EXIT_CODE = 1
"""Exit code when a policy version or a decision does not reproduce."""


def verify() -> None:
    """Check every policy version at rest and replay every decision; exit 1 naming the first mismatch."""
    with database_session() as session:
        verdict = verify_decisions(session)
    mismatch = verdict.mismatch
    if mismatch is not None:
        typer.secho(
            f"not reproduced ({mismatch.kind.value}): {mismatch.message}",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(code=MISMATCH_EXIT_CODE)
    typer.echo(
        f"reproduced: all {verdict.decisions_checked} decisions under "
        f"{verdict.policies_checked} intact policy versions"
    )
