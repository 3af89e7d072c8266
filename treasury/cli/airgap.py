"""``treasury airgap``: sign approved spends on machines that never touch the network.

``export`` writes your institution's signing request for an approved proposal; carry it (a USB
stick, a QR code) to the offline machine, where ``custody-sign sign`` -- installed with custody
alone -- checks it, shows it in coin units, reads the holders' share files and writes the signed
file; carry that back and ``import`` it. This server never sees a share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from treasury.airgap import export_request, import_signed
from treasury.cli.officers import TokenOption, cli_context
from treasury.logs import bound_ids

app = typer.Typer(
    help=(
        "Air-gapped signing: `treasury airgap export PROPOSAL --out DIR` writes your "
        "institution's signing request for an approved proposal -- the PSBT (binary .psbt and "
        "base64 .psbt.b64, as bitcoind's analyzepsbt and hardware signers take it) or the Safe's "
        "EIP-712 typed data, with the roster chain and the officers' signed statements. On the "
        "offline machine (no network, no treasury, no database; only custody and the share "
        "files): `custody-sign show REQUEST` then `custody-sign sign REQUEST --share-file A "
        "--share-file B` (or `python -m custody.airgap ...`), which verifies the statements and "
        "the decoded transaction with custody's own signer before any share is read, and writes "
        "<stem>.signed.psbt or <stem>.signature.json. Back here, `treasury airgap import FILE` "
        "merges your institution's signature (combinepsbt semantics; Safe signatures sorted by "
        "owner) and, once the quorum has signed, broadcasts as `treasury spend broadcast` does."
    ),
    no_args_is_help=True,
)


@app.command()
def export(
    proposal_id: int,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the request files into.")],
    token_file: str | None = TokenOption,
) -> None:
    """Write your institution's signing request for an approved proposal (approver)."""
    with bound_ids(proposal_id=proposal_id), cli_context(token_file) as ctx:
        paths = export_request(
            ctx.workflow, ctx.sessions, ctx.settings, ctx.actor, proposal_id, out
        )
    for path in paths:
        typer.echo(f"wrote {path}")
    typer.echo(f"next, offline: custody-sign sign {paths[0]} --share-file ... --share-file ...")


@app.command("import")
def import_(
    file: Path,
    broadcast: Annotated[
        bool,
        typer.Option(help="Broadcast once the quorum of institutions has signed."),
    ] = True,
    token_file: str | None = TokenOption,
) -> None:
    """Merge your institution's signed PSBT or Safe signature file into its proposal (approver)."""
    with cli_context(token_file) as ctx:
        view = import_signed(
            ctx.workflow, ctx.sessions, ctx.settings, ctx.actor, file, broadcast=broadcast
        )
    signed = ", ".join(view.signed_by) or "nobody yet"
    typer.echo(f"proposal {view.id}: {view.state.value}; signed by {signed}")
    if view.txid:
        typer.echo(f"txid: {view.txid}")
