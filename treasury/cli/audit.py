"""``treasury audit``: verify the hash-chained audit log (and the roster chain bound to it) and
export its head for anchoring.

``audit verify`` is the one command an auditor runs to learn whether the books' history can be
trusted, so it covers every chain the treasury keeps: the audit log, the signed roster and policy
chain, the policy versions with every decision replayed under them (what ``treasury policy verify``
checks on its own), and every veto the log records (the proposal still rejected, its signed
statement still stored: ``treasury.proposals.veto_record``).
"""

from __future__ import annotations

import json

import typer

from treasury import audit
from treasury.authority.verify import roster_exists, verify_roster
from treasury.cli.context import fail
from treasury.cli.ledger import ERROR_EXIT_CODE, database_session
from treasury.cli.roster import echo_verdict
from treasury.policy import verify_decisions
from treasury.proposals.veto_record import verify_vetoes

app = typer.Typer(
    help="Verify the tamper-evident audit log and print its head hash.", no_args_is_help=True
)


@app.command()
def verify(
    anchor_sequence: int | None = typer.Option(
        None, help="Sequence of a head exported earlier (e.g. anchored on chain) to check against."
    ),
    anchor_hash: str | None = typer.Option(None, help="The hash of that anchored head."),
) -> None:
    """Walk the audit chain, replay the roster chain if there is one, and replay every policy decision: exit 0 if all are intact, 1 naming the first edited, deleted or reordered event, bad roster record, or decision that does not reproduce."""
    if (anchor_sequence is None) != (anchor_hash is None):
        raise fail("give both --anchor-sequence and --anchor-hash, or neither.", ERROR_EXIT_CODE)
    anchor = None
    if anchor_sequence is not None and anchor_hash is not None:
        anchor = audit.ChainHead(anchor_sequence, anchor_hash)
    with database_session() as session:
        verdict = audit.verify(session, anchor)
        roster = verify_roster(session) if roster_exists(session) else None
        decisions = verify_decisions(session)
        vetoes = verify_vetoes(session)
    if verdict.brk is not None:
        typer.secho(
            f"broken ({verdict.brk.kind.value} at #{verdict.brk.sequence}): {verdict.brk.message}",
            err=True,
            fg=typer.colors.RED,
        )
    else:
        typer.echo(
            f"intact: {verdict.events_checked} events, head #{verdict.head.sequence} {verdict.head.hash}"
        )
    if roster is not None:
        echo_verdict(roster)
    mismatch = decisions.mismatch
    if mismatch is not None:
        typer.secho(
            f"policy: not reproduced ({mismatch.kind.value}): {mismatch.message}",
            err=True,
            fg=typer.colors.RED,
        )
    else:
        typer.echo(
            f"policy: all {decisions.decisions_checked} decisions reproduce under "
            f"{decisions.policies_checked} intact policy versions"
        )
    if vetoes.message is not None:
        typer.secho(f"vetoes: {vetoes.message}", err=True, fg=typer.colors.RED)
    else:
        typer.echo(f"vetoes: all {vetoes.checked} recorded vetoes still stand")
    if (
        verdict.brk is not None
        or (roster is not None and not roster.ok)
        or mismatch is not None
        or not vetoes.ok
    ):
        raise typer.Exit(code=1)


@app.command()
def head(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of text."),
) -> None:
    """Print the newest event's sequence and hash: the value to anchor on chain (0 and zeros if empty)."""
    with database_session() as session:
        current = audit.head(session)
    if as_json:
        typer.echo(json.dumps({"sequence": current.sequence, "hash": current.hash}))
    else:
        typer.echo(f"{current.sequence} {current.hash}")
