"""``treasury ceremony``: run a cosigner key ceremony, check a share, show transcripts.

Shares and passphrases are never taken from command-line arguments (they would land in shell
history and ``ps``): shares come from the holder's file or a prompt without echo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from custody.ceremony import (
    CeremonyPlan,
    PrintedShares,
    ShareDelivery,
    ShareFiles,
    Transcript,
    check_share,
    list_transcripts,
    load_transcript,
    read_share_file,
    run_ceremony,
)
from custody.exceptions import CustodyError
from custody.shamir import ShareMnemonic
from treasury.cli.context import fail, settings
from treasury.db import make_engine, session_factory

app = typer.Typer(
    help="Run a cosigner key ceremony (SLIP-39 split among officers) and check shares.",
    no_args_is_help=True,
)


@contextmanager
def database_session() -> Iterator[Session]:
    """A session on the configured database that commits on success; errors become one line."""
    engine = make_engine(settings().database_url)
    try:
        with session_factory(engine)() as session, session.begin():
            yield session
    except CustodyError as exc:
        raise fail(exc) from None
    except SQLAlchemyError as exc:
        raise fail(
            f"the database refused the operation ({type(exc).__name__}); "
            "is its schema current? Run `treasury db upgrade`."
        ) from None
    finally:
        engine.dispose()


def read_share(path: Path | None, prompt: str) -> ShareMnemonic:
    """A share from a holder's file, or typed at a prompt that does not echo."""
    words = read_share_file(path) if path is not None else typer.prompt(prompt, hide_input=True)
    return ShareMnemonic(words)


def echo_transcript(transcript: Transcript, echo: Callable[[str], None] = typer.echo) -> None:
    echo(f"institution:   {transcript.institution}")
    echo(f"fingerprint:   {transcript.fingerprint}")
    echo(f"account xpub:  {transcript.account_path} {transcript.account_xpub}")
    echo(f"eth address:   {transcript.eth_address}")
    echo(
        f"shares:        any {transcript.threshold} of {transcript.share_count} "
        f"(identifier {transcript.identifier}, passphrase "
        f"{'yes' if transcript.passphrase_protected else 'no'})"
    )
    for entry in transcript.holders:
        echo(f"  member {entry.member_index}: {entry.holder}")
    echo(f"witnesses:     {', '.join(transcript.witnesses) or '(none)'}")
    echo(f"performed at:  {transcript.performed_at.isoformat()}")


@app.command()
def run(
    institution: Annotated[
        str, typer.Option(help="The cosigner institution, e.g. 'National Bank'.")
    ],
    holder: Annotated[
        list[str], typer.Option(help="A share holder's name; repeat once per share.")
    ],
    threshold: Annotated[int, typer.Option(help="How many holders together recover the seed.")],
    witness: Annotated[
        list[str] | None, typer.Option(help="A witness's name; repeat for each witness.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option(help="Folder for one 0600 share file per holder (created 0700).")
    ] = None,
    print_shares: Annotated[
        bool, typer.Option("--print-shares", help="Print each share once instead of writing files.")
    ] = False,
    passphrase: Annotated[
        bool, typer.Option("--passphrase", help="Prompt (without echo) for a SLIP-39 passphrase.")
    ] = False,
) -> None:
    """Generate an institution's cosigner seed, split it among its holders and record the transcript."""
    if (out_dir is None) == (not print_shares):
        raise fail("choose exactly one of --out-dir FOLDER or --print-shares.")
    secret = (
        typer.prompt("SLIP-39 passphrase", hide_input=True, confirmation_prompt=True)
        if passphrase
        else ""
    )
    delivery: ShareDelivery = (
        ShareFiles(out_dir) if out_dir is not None else PrintedShares(typer.echo)
    )
    with database_session() as session:
        plan = CeremonyPlan(institution, tuple(holder), threshold, tuple(witness or ()))
        transcript = run_ceremony(session, plan, delivery, secret)
    echo_transcript(transcript)
    if isinstance(delivery, ShareFiles):
        for path in delivery.written:
            typer.echo(f"share file:    {path}")


@app.command("check-share")
def check_share_command(
    institution: Annotated[
        str, typer.Option(help="The institution whose transcript to check against.")
    ],
    holder: Annotated[
        str | None, typer.Option(help="The holder the share should be issued to.")
    ] = None,
    share_file: Annotated[
        Path | None,
        typer.Option(
            help="The holder's share file; without it the words are prompted without echo."
        ),
    ] = None,
) -> None:
    """Check a share's checksum, identifier and member index against the transcript, without recombining."""
    with database_session() as session:
        transcript = load_transcript(session, institution)
        health = check_share(transcript, read_share(share_file, "Share words"), holder)
    typer.echo(
        f"OK: checksum valid; member {health.member_index} of {health.institution} "
        f"(identifier {health.identifier}), issued to {health.holder}."
    )


@app.command()
def show(
    institution: Annotated[
        str | None, typer.Option(help="Only this institution's transcript.")
    ] = None,
) -> None:
    """Print ceremony transcripts: holders, threshold, fingerprint, xpub, witnesses and time."""
    with database_session() as session:
        transcripts = (
            [load_transcript(session, institution)] if institution else list_transcripts(session)
        )
    if not transcripts:
        typer.echo("No ceremonies recorded yet; run `treasury ceremony run`.")
    for number, transcript in enumerate(transcripts):
        if number:
            typer.echo("")
        echo_transcript(transcript)
