"""``treasury publish`` and ``treasury serve``: write the parliament site, and browse it locally.

This module parses arguments and prints. ``treasury publish`` writes the treasury's export
(``treasury.publication``) to a temporary file and builds the site (``reporting.site``) from it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from reserve_verifier import UsageError
from reserve_verifier.cli import nodes_of

from custody.clock import utc_now
from reporting.site import SiteError, load_bundles, load_export, publish_site, site_server
from treasury.cli.context import settings
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError
from treasury.publication import EXPORT_FILE_NAME, write_export

DEFAULT_BUNDLES_DIR = Path("var") / "attestations"
"""Where attestation bundle files are kept unless ``--bundles`` says otherwise."""

DEFAULT_SERVE_PORT = 8000


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def publish(
    out: Annotated[Path, typer.Option(help="Folder to write the site to (created or replaced).")],
    bundles: Annotated[
        Path, typer.Option(help="Folder of attestation bundle files (*.json) to publish.")
    ] = DEFAULT_BUNDLES_DIR,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Treasury database to read spends and funds from (default: TREASURY_DATABASE_URL)."
        ),
    ] = None,
    bitcoin_rpc: Annotated[
        str | None,
        typer.Option(help="A bitcoind to verify against, as http://user:password@host:port."),
    ] = None,
    evm_rpc: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[CHAIN_ID=]URL",
            help="A node of an EVM chain holding Safes to verify against, as CHAIN_ID=URL "
            "(repeat it for each chain), or a bare URL of whichever chain it serves.",
        ),
    ] = None,
    services_rpc: Annotated[
        str | None, typer.Option(help="A node of the services chain holding the registry.")
    ] = None,
    proofs_api: Annotated[
        str | None,
        typer.Option(
            help="The treasury's POST /holders/proof URL (https://..., or http on localhost), for "
            "the check page's account id + code form; without it that form is shown disabled."
        ),
    ] = None,
) -> None:
    """Publish the parliament site: every attestation verified now, charts, spends, funds, open data, in Kyrgyz, Russian and English."""
    try:
        engine = make_engine(database_url or settings().database_url)
    except TreasuryError as error:
        raise _fail(str(error)) from None
    try:
        with tempfile.TemporaryDirectory(prefix="treasury-export-") as folder:
            export = write_export(
                session_factory(engine),
                Path(folder) / EXPORT_FILE_NAME,
                exported_at=utc_now(),
                bitcoin_network=settings().bitcoin_network.value,
            )
            records = load_export(export)
        published = load_bundles(bundles, nodes=nodes_of(bitcoin_rpc, evm_rpc or (), services_rpc))
        site = publish_site(
            published, records, out, published_at=utc_now(), proofs_api_url=proofs_api
        )
    except (SiteError, TreasuryError, UsageError) as error:
        raise _fail(str(error)) from None
    finally:
        engine.dispose()
    latest = published[-1]
    verdict = (
        "verified"
        if latest.report.passed()
        else (
            "verified offline"
            if latest.report.passed(allow_skipped=True)
            else "FAILED verification"
        )
    )
    typer.echo(
        f"published {site.attestations} attestations and {site.spends} spends to {site.folder}; "
        f"the latest (no. {latest.bundle.sequence}) {verdict}"
    )
    typer.echo(f"open {site.entry} or run: treasury serve {site.folder}")


def serve(
    folder: Annotated[Path, typer.Argument(help="A folder written by `treasury publish`.")],
    port: Annotated[
        int, typer.Option(help="TCP port on 127.0.0.1 (0 picks a free one).")
    ] = DEFAULT_SERVE_PORT,
) -> None:
    """Serve a published site on 127.0.0.1 so it can be browsed over HTTP, until interrupted."""
    try:
        server = site_server(folder, port)
    except SiteError as error:
        raise _fail(str(error)) from None
    host, bound = server.server_address[:2]
    typer.echo(f"serving {folder.resolve()} at http://{host!s}:{bound}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
