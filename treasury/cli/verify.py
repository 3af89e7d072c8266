"""``treasury verify``: the auditors' independent check of an attestation bundle.

This command only parses arguments and prints: every check lives in ``reporting.verify``, which
imports nothing from ``custody`` or ``treasury``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reporting.bundle import Bundle, BundleFormatError
from reporting.verify import LeafQuery, Nodes, verify_bundle


def _read(path: Path, what: str) -> bytes:
    """Read a file or exit with a one-line error."""
    try:
        return path.read_bytes()
    except OSError as error:
        typer.echo(f"error: cannot read the {what} {path}: {error.strerror}.", err=True)
        raise typer.Exit(code=2) from None


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
    bitcoin_rpc: Annotated[
        str | None, typer.Option(help="Your bitcoind, as http://user:password@host:port.")
    ] = None,
    evm_rpc: Annotated[str | None, typer.Option(help="Your node of the Safes' chain.")] = None,
    services_rpc: Annotated[
        str | None, typer.Option(help="Your node of the services chain holding the registry.")
    ] = None,
    offline: Annotated[
        bool, typer.Option(help="Accept checks skipped for want of a node (exit 0 if none failed).")
    ] = False,
) -> None:
    """Check an attestation bundle (roots, totals, signatures, proofs of control, anchors) and exit 0 only if every check holds."""
    query = None
    if proof is not None:
        try:
            package = json.loads(_read(proof, "proof file"))
        except json.JSONDecodeError:
            typer.echo(f"error: the proof file {proof} is not JSON.", err=True)
            raise typer.Exit(code=2) from None
        account = leaf or str(package.get("leaf", {}).get("account_id", ""))
        query = LeafQuery(account, package=package)
    elif leaf is not None:
        try:
            query = LeafQuery(leaf, bytes.fromhex(salt) if salt else None)
        except ValueError:
            typer.echo("error: --salt must be hexadecimal.", err=True)
            raise typer.Exit(code=2) from None
    elif salt is not None:
        typer.echo("error: --salt needs --leaf ACCOUNT.", err=True)
        raise typer.Exit(code=2)
    earlier = None
    if previous is not None:
        try:
            earlier = Bundle.from_bytes(_read(previous, "previous bundle"))
        except BundleFormatError as error:
            typer.echo(f"error: the previous bundle is unusable: {error}", err=True)
            raise typer.Exit(code=2) from None
    report = verify_bundle(
        _read(bundle, "bundle"),
        nodes=Nodes(bitcoin=bitcoin_rpc, evm=evm_rpc, services=services_rpc),
        leaf=query,
        previous=earlier,
    )
    typer.echo(report.render())
    if not report.passed(allow_skipped=offline):
        raise typer.Exit(code=1)
