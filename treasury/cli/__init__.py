"""The ``treasury`` command: one entry point, one sub-command group per domain.

Groups are registered in the order of the reserve's story, which is the order ``--help`` lists.
"""

from __future__ import annotations

import logging
from typing import Any

import typer
from typer.core import TyperGroup

from custody.exceptions import CustodyError
from reporting.exceptions import ReportingError
from treasury.cli import (
    airgap,
    announce,
    api,
    attest,
    audit,
    btc,
    ceremony,
    custody_health,
    db,
    devnet,
    ledger,
    officers,
    passkeys,
    proofs,
    publish,
    reconcile,
    recovery,
    roster,
    safe,
    scheduler,
    settings,
    spend,
    translations,
    verify,
    window,
)
from treasury.cli.context import fail, running, start
from treasury.demo import run_demo
from treasury.exceptions import TreasuryError
from treasury.logs import LogFormat, configure_logging


class _OneErrorLine(TyperGroup):
    """The root command: an error of any package's root that no command handled is one line."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        with running():
            try:
                return super().invoke(ctx)
            except (CustodyError, TreasuryError, ReportingError) as exc:
                raise fail(exc) from None


app = typer.Typer(
    cls=_OneErrorLine,
    help=(
        "Custody, state ledger and proof-of-reserves for the national crypto reserve. "
        "Start with `treasury demo` to see the whole story on local devnets; every command "
        "has its own --help."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress at INFO level."),
) -> None:
    level = logging.INFO if verbose else logging.WARNING
    configure_logging(LogFormat.CONSOLE, level)
    start(ctx, level)


@app.command()
def demo(
    serve: bool = typer.Option(
        False,
        "--serve",
        help="Afterwards keep the devnets, the officers' console and the site running, with "
        "spends waiting for approval and a login printed for each officer, until Ctrl-C.",
    ),
) -> None:
    """Run the whole story on fresh local devnets and print what happened."""
    # The story prints the refresh alarm it provokes in its own words; the reconciler's warning
    # of the same alarm would only repeat it as a log line (still shown with --verbose).
    from treasury.reconcile.refresh import log as refresh_log

    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        refresh_log.setLevel(logging.ERROR)
    run_demo(typer.echo, serve=serve)


app.add_typer(devnet.app, name="devnet")
app.add_typer(db.app, name="db")
app.command(name="settings")(settings.show_settings)
app.add_typer(ceremony.app, name="ceremony")
app.add_typer(custody_health.app, name="custody")
app.add_typer(btc.app, name="btc")
app.add_typer(safe.app, name="safe")
# The name for it: an officer creates their own signing key (the same as roster keygen).
officers.app.command("keygen")(roster.keygen)
app.add_typer(officers.app, name="officers")
app.add_typer(officers.policy_app, name="policy")
app.add_typer(roster.app, name="roster")
app.add_typer(passkeys.app, name="passkeys")
app.add_typer(spend.app, name="spend")
app.add_typer(airgap.app, name="airgap")
app.add_typer(ledger.app, name="ledger")
app.add_typer(reconcile.app, name="reconcile")
app.add_typer(scheduler.app, name="scheduler")
app.add_typer(recovery.app, name="recovery")
app.add_typer(audit.app, name="audit")
app.add_typer(translations.app, name="translations")
app.command(name="attest")(attest.attest)
app.add_typer(announce.app, name="announce")
app.command(name="verify")(verify.verify)
app.add_typer(proofs.app, name="proofs")
app.command(name="publish")(publish.publish)
app.command(name="serve")(publish.serve)
app.add_typer(api.app, name="api")
app.add_typer(window.app, name="window")


def main() -> None:
    """Console-script entry point."""
    app()
