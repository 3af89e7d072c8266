"""``treasury proofs``: account holders' proof packages and codes, for any past attestation.

Each attestation keeps its liability tree's secret in the database (``treasury.attest.
account_proofs``), so these commands rebuild the tree in this process, check it against the
root the recorded bundle published, and only then issue. This module parses arguments and
prints; a package or a code goes to a file (0600) or to standard output, never to a log.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from treasury.attest.account_proofs import kept_tree
from treasury.cli.context import committed_session, fail

PRIVATE_FILE_MODE = 0o600
"""A package holds the holder's salt, a code opens it: both are for one person's eyes."""
MAX_ACCOUNTS_FILE_BYTES = 64 * 1024 * 1024
"""Largest accounts list ``treasury proofs codes`` reads (one id per line)."""

app = typer.Typer(
    help=(
        "Account holders' private proofs for any past attestation. An attestation publishes "
        "only the root of the liability tree; each holder checks that their own account is in "
        "it with a proof package (their leaf, salt and Merkle path), which the treasury issues "
        "here, or which the holder fetches with their account id and code from the API "
        "(POST /holders/proof) or the site's check page. Check a package with "
        "`reserve-verify attestation-N.json --package FILE` or on the site."
    ),
    no_args_is_help=True,
)

Sequence = Annotated[
    int,
    typer.Option(
        "--attestation",
        "-a",
        min=1,
        help="The attestation's number (its sequence, as in attestation-N.json).",
    ),
]


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (created 0600, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, PRIVATE_FILE_MODE)
    temporary.replace(path)


ISSUE_HELP = (
    "Issue ACCOUNT's proof package for attestation N, rebuilt from the database and checked "
    "against the root that attestation published.\n\n"
    'The package is JSON: {"version": 1, "attestation": {"sequence", "digest"}, "root", '
    '"leaf": {"account_id", "amounts", "salt"}, "proof": {"leaf_index", "siblings"}}. '
    "Give it to the account holder only: it holds their salt. They check it on the site's "
    "check page, or with `reserve-verify attestation-N.json --package FILE`.\n\n"
    "Example: treasury proofs issue citizen:0001 --attestation 3 --out citizen-0001-3.json"
)
CODE_HELP = (
    "Print ACCOUNT's holder code for attestation N (XXXXX-XXXXX).\n\n"
    "With their account id and this code a holder fetches their package from the API "
    "(POST /holders/proof) or on the site's check page. Each attestation has new codes; "
    "send each holder theirs privately (use `treasury proofs codes` for many)."
)
CODES_HELP = (
    "Write the holder code of every account listed in --accounts for attestation N, as a CSV "
    "(account_id,code) for the notice to holders.\n\n"
    "An account not in the attestation's tree is refused, naming it, and nothing is written."
)


@app.command("issue", help=ISSUE_HELP)
def issue(
    account: Annotated[str, typer.Argument(help="The account id, exactly as in the liabilities.")],
    attestation: Sequence,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the package here (mode 0600) instead of standard output."),
    ] = None,
) -> None:
    """Write ACCOUNT's package of attestation N to ``out`` or standard output (``ISSUE_HELP``)."""
    with committed_session() as session:
        package = kept_tree(session, attestation).package(account)
    text = json.dumps(package, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        _write_private(out, text)
    except OSError as exc:
        raise fail(f"the package could not be written to {out} ({exc.strerror}).") from None
    typer.echo(f"package of {account!r} in attestation {attestation} written to {out}", err=True)


@app.command("code", help=CODE_HELP)
def code(
    account: Annotated[str, typer.Argument(help="The account id, exactly as in the liabilities.")],
    attestation: Sequence,
) -> None:
    """Print ACCOUNT's code of attestation N (``CODE_HELP``)."""
    with committed_session() as session:
        tree = kept_tree(session, attestation)
        tree.package(account)  # refuse an account the tree does not hold
        typer.echo(tree.holder_code(account))


@app.command("codes", help=CODES_HELP)
def codes(
    attestation: Sequence,
    accounts: Annotated[
        Path, typer.Option(help="A text file of account ids, one per line (blank lines skipped).")
    ],
    out: Annotated[Path, typer.Option(help="The CSV to write (account_id,code), mode 0600.")],
) -> None:
    """Write the codes of the listed accounts (``CODES_HELP``)."""
    try:
        if accounts.stat().st_size > MAX_ACCOUNTS_FILE_BYTES:
            raise fail(f"{accounts} is larger than {MAX_ACCOUNTS_FILE_BYTES} bytes.")
        ids = [line.strip() for line in accounts.read_text("utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"the accounts list {accounts} cannot be read as UTF-8 text ({exc}).") from None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["account_id", "code"])
    with committed_session() as session:
        tree = kept_tree(session, attestation)
        for account in ids:
            tree.tree.index_of(account)
            writer.writerow([account, tree.holder_code(account)])
    try:
        _write_private(out, buffer.getvalue())
    except OSError as exc:
        raise fail(f"the codes could not be written to {out} ({exc.strerror}).") from None
    typer.echo(f"{len(ids)} code(s) of attestation {attestation} written to {out}", err=True)
