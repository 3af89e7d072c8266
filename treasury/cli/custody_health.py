"""``treasury custody``: periodic key health checks of each institution's SLIP-39 shares.

A quorum of share holders proves their shares still recombine to the key their ceremony recorded;
nothing is signed, and the seed is wiped at once. Shares come from the holders' files or a prompt
without echo, the passphrase from a file or a prompt, never from the command line (shell history,
``ps``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.clock import utc_now
from custody.health import HealthOutcome
from treasury.cli.context import committed_session, settings
from treasury.cli.share_input import share_words, slip39_passphrase
from treasury.custody_health import (
    DEFAULT_INTERVAL_DAYS,
    HealthPolicy,
    KeyHealthStatus,
    health_status,
    raise_overdue_alarms,
    run_health_check,
    transcript_for,
    verify_check_proof,
)
from treasury.settings import KEY_HEALTH_INTERVAL_ENV

INTERVAL_ENV = KEY_HEALTH_INTERVAL_ENV
"""Days between required checks per institution (default 90)."""
FAILED_CHECK_EXIT_CODE = 3
"""Exit code of ``health-check`` when the check ran and failed (it was still recorded)."""

app = typer.Typer(
    help=(
        "Key health checks: a quorum of an institution's share holders proves, every "
        f"{DEFAULT_INTERVAL_DAYS} days (or {INTERVAL_ENV}), that their shares still recombine to "
        "the key the ceremony recorded. Every check is kept in the audit log; a failed or overdue "
        "check opens an alarm that the next passing check clears. Nothing is ever signed."
    ),
    no_args_is_help=True,
)

IntervalOption = typer.Option(
    "--every-days",
    envvar=INTERVAL_ENV,
    min=1,
    help=f"A passing check is due every this many days per institution (default "
    f"{DEFAULT_INTERVAL_DAYS}; or {INTERVAL_ENV}).",
)


@app.command("health-check")
def health_check(
    institution: Annotated[
        str,
        typer.Argument(
            help="The institution: its code (e.g. CB) or its ceremony's name (`treasury ceremony show`)."
        ),
    ],
    share_file: Annotated[
        list[Path] | None,
        typer.Option(
            help="A holder's share file, as the ceremony wrote it; repeat once per holder taking "
            "part (at least the threshold). Without it the words are prompted without echo."
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the SLIP-39 passphrase (without it, prompted without echo if the "
            "ceremony set one)."
        ),
    ] = None,
    by: Annotated[
        str,
        typer.Option(help="Who ran the check (kept as the audit event's actor)."),
    ] = "key-health-cli",
) -> None:
    """Prove a quorum of INSTITUTION's shares recombines to its recorded key, and record it.

    The seed is recombined in a wipeable buffer; its fingerprint, BIP-48 xpub and Safe owner address must equal the ceremony's. The quorum then proves possession by signing a fresh challenge with both keys (BIP-322 by the account key's /0/0 address, EIP-191 by the Safe owner); no transaction is signed, and the seed is wiped at once.

    The outcome (ok, mismatch or malformed), the member indexes that took part and the time go to the audit log; a failure opens an alarm (exit code 3), a pass clears the institution's open alarms. Example:

        treasury custody health-check CB --share-file alice.txt --share-file bob.txt
    """
    with committed_session() as session:
        transcript = transcript_for(session, institution)
    passphrase = slip39_passphrase(
        passphrase_file, transcript.passphrase_protected, transcript.institution
    )
    words = share_words(share_file, transcript.threshold)
    network = settings().bitcoin_network
    with committed_session() as session:
        check = run_health_check(
            session,
            transcript.institution,
            words,
            passphrase,
            actor=by,
            now=utc_now(),
            network=network,
        )
    holders = ", ".join(
        f"member {index} ({holder})"
        for index, holder in zip(check.member_indexes, check.holders, strict=True)
    )
    typer.echo(f"health check {check.id} of {check.institution}: {check.outcome.value.upper()}")
    typer.echo(f"  took part: {holders or '(no readable share)'}")
    typer.echo(f"  {check.reason}")
    if check.proof is not None:
        typer.echo(f"  challenge: {check.challenge!r}")
        typer.echo(f"  BIP-322 by {check.proof.bitcoin_address}: {check.proof.bip322_signature}")
        typer.echo(f"  EIP-191 by {check.proof.eth_address}: {check.proof.eip191_signature}")
    if check.outcome is not HealthOutcome.OK:
        raise typer.Exit(code=FAILED_CHECK_EXIT_CODE)


def _line(status: KeyHealthStatus) -> str:
    name = f"{status.code} ({status.institution})" if status.code else status.institution
    last = (
        f"last check {status.last_check_at.isoformat(timespec='seconds')} "
        f"{status.last_outcome.value if status.last_outcome else ''}"
        if status.last_check_at is not None
        else "never checked"
    )
    state = "OVERDUE" if status.overdue else ("ALARM" if status.alarm else "ok")
    alarms = f", {len(status.open_alarms)} open alarm(s)" if status.open_alarms else ""
    return f"{name}: {state}; {last}; due {status.due_at.isoformat(timespec='seconds')}{alarms}"


@app.command()
def health(every_days: Annotated[int, IntervalOption] = DEFAULT_INTERVAL_DAYS) -> None:
    """Show each institution's key health: last check, its result, the due date and overdue.

    An institution is overdue when its last passing check (or, with none, its ceremony) is older than the interval; each overdue institution gets an alarm recorded in the audit log (once per due date), which its next passing check clears.
    """
    policy = HealthPolicy(every_days)
    now = utc_now()
    with committed_session() as session:
        raised = raise_overdue_alarms(session, now, policy)
        statuses = health_status(session, now, policy)
    if not statuses:
        typer.echo("No ceremonies recorded yet; run `treasury ceremony run`.")
    for status in statuses:
        typer.echo(_line(status))
    for alarm in raised:
        typer.echo(f"alarm {alarm.id} opened: {alarm.detail}")


@app.command("verify-proof")
def verify_proof(
    check_id: Annotated[
        int, typer.Argument(help="The health check's id (`treasury custody health`).")
    ],
) -> None:
    """Re-verify a recorded check's proof of possession from the ceremony's public record alone."""
    with committed_session() as session:
        problem = verify_check_proof(session, check_id, settings().bitcoin_network)
    if problem is not None:
        typer.echo(f"health check {check_id}: NOT PROVEN: {problem}")
        raise typer.Exit(code=FAILED_CHECK_EXIT_CODE)
    typer.echo(f"health check {check_id}: both signatures verify against the ceremony's keys")
