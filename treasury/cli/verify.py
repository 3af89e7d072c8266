"""``treasury verify``: the auditors' independent check of an attestation bundle.

This command only parses arguments and prints: reading the files and every check live in the
separately installable ``reserve_verifier`` (the auditor's ``reserve-verify`` runs the same
code), which imports nothing from ``custody``, ``treasury`` or ``reporting``. ``--trust FILE``
pins the keys and registry the auditor trusts; without it the report warns that they are
self-declared by the bundle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from reserve_verifier import UsageError
from reserve_verifier.cli import Invocation, nodes_of, run


def verify(
    bundle: Annotated[Path, typer.Argument(help="The attestation bundle (JSON) to check.")],
    leaf: Annotated[
        str | None,
        typer.Option(help="An account id whose inclusion in the liability tree to check."),
    ] = None,
    salt: Annotated[
        str | None, typer.Option(help="With --leaf: the salt (hex) the account was given.")
    ] = None,
    proof: Annotated[
        Path | None,
        typer.Option(help="An account's proof package (JSON: root, leaf, proof) to check."),
    ] = None,
    previous: Annotated[
        Path | None,
        typer.Option(help="The previous bundle of the chain, to check this one follows it."),
    ] = None,
    trust: Annotated[
        Path | None,
        typer.Option(
            help="Your trust file (JSON): the treasury's and audit office's public keys and the "
            "registry you pin; without it keys and registry are self-declared by the bundle."
        ),
    ] = None,
    announcements: Annotated[
        Path | None,
        typer.Option(
            help="The treasury's announcements file (JSON): key rotations and vault-set changes "
            "signed by the keys in force and announced in the registry; applied to --trust."
        ),
    ] = None,
    bitcoin_rpc: Annotated[
        str | None, typer.Option(help="Your bitcoind, as http://user:password@host:port.")
    ] = None,
    evm_rpc: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[CHAIN_ID=]URL",
            help="Your node of an EVM chain holding Safes, as CHAIN_ID=URL (repeat it for each "
            "chain), or a bare URL of whichever chain it serves.",
        ),
    ] = None,
    services_rpc: Annotated[
        str | None, typer.Option(help="Your node of the services chain holding the registry.")
    ] = None,
    offline: Annotated[
        bool, typer.Option(help="Accept checks skipped for want of a node (exit 0 if none failed).")
    ] = False,
) -> None:
    """Check an attestation bundle (roots, totals, signatures, proofs of control, anchors) and exit 0 only if every check holds."""
    try:
        invocation = Invocation(
            bundle=bundle,
            leaf=leaf,
            salt=salt,
            proof=proof,
            previous=previous,
            trust=trust,
            announcements=announcements,
            nodes=nodes_of(bitcoin_rpc, evm_rpc or (), services_rpc),
        )
        report = run(invocation)
    except UsageError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(report.render())
    if not report.passed(allow_skipped=offline):
        raise typer.Exit(code=1)
