"""``treasury recovery``: vaults with a timelocked recovery path (miniscript), and their windows.

``create`` stores a vault over stored ceremonies (the institutions' for the primary quorum, the
recovery bodies' for the recovery quorum) and registers its watch-only wallet; ``address`` issues
the next receive (or change) address; ``export`` prints the watch-only descriptors and the
BSMS record, full miniscript included; ``status`` shows each coin's blocks left before its
recovery path opens and the vault's refresh alarm. The reconciler watches the same windows on
every run and opens the alarm (``treasury.reconcile.refresh``); a refresh is a spend back into
the vault through the workflow.
"""

from __future__ import annotations

from typing import Annotated

import typer

from custody.bitcoin.descriptor import Branch
from custody.bitcoin.recovery import bsms_record, descriptor_export
from custody.bitcoin.rpc import BitcoinRPC
from treasury.cli.context import committed_session, fail, settings
from treasury.reconcile.refresh import (
    DEFAULT_REFRESH_ALARM_PERCENT_LEFT,
    check_alarm_percent,
    open_refresh_alarm,
    read_windows,
)
from treasury.recovery_vaults import create_recovery_vault, issue_address, list_recovery_vaults
from treasury.recovery_vaults import load_recovery_vault as load_vault
from treasury.settings import NodeNotConfiguredError

app = typer.Typer(
    help=(
        "Vaults with a timelocked recovery path: the institutions' quorum spends at any time, "
        "the recovery bodies' quorum only after N blocks without movement."
    ),
    no_args_is_help=True,
)


def _rpc() -> BitcoinRPC:
    try:
        return settings().bitcoin_endpoint().rpc()
    except NodeNotConfiguredError as exc:
        raise fail(exc) from None


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="The vault's name (its scope is btc:NAME).")],
    primary: Annotated[
        list[str],
        typer.Option(help="An institution's ceremony name, in script order; repeat per key."),
    ],
    recovery: Annotated[
        list[str],
        typer.Option(help="A recovery body's ceremony name, in script order; repeat per key."),
    ],
    delay_blocks: Annotated[
        int, typer.Option(min=1, max=0xFFFF, help="N: blocks a coin must rest before recovery.")
    ],
    primary_threshold: Annotated[int, typer.Option(min=1)] = 2,
    recovery_threshold: Annotated[int, typer.Option(min=1)] = 2,
    by: Annotated[str, typer.Option(help="Who created it (the audit event's actor).")] = "cli",
) -> None:
    """Store a recovery vault over stored ceremonies and register its watch-only wallet."""
    rpc = _rpc()
    with committed_session() as session:
        vault = create_recovery_vault(
            session,
            rpc,
            name,
            primary=primary,
            primary_threshold=primary_threshold,
            recovery=recovery,
            recovery_threshold=recovery_threshold,
            recovery_delay_blocks=delay_blocks,
            network=settings().bitcoin_network,
            actor=by,
        )
    typer.echo(f"recovery vault {vault.name}: wallet {vault.wallet_name}")
    typer.echo(vault.policy.multipath_text())


@app.command()
def address(
    name: Annotated[str, typer.Argument(help="The recovery vault.")],
    change: Annotated[bool, typer.Option(help="Issue a change address instead.")] = False,
) -> None:
    """Issue the vault's next receive (or change) address."""
    branch = Branch.CHANGE if change else Branch.RECEIVE
    with committed_session() as session:
        index, issued = issue_address(session, name, branch)
    typer.echo(f"{issued} ({branch.name.lower()} {index})")


@app.command()
def export(name: Annotated[str, typer.Argument(help="The recovery vault.")]) -> None:
    """Print the watch-only descriptors (multipath, receive, change) and the BSMS record."""
    with committed_session() as session:
        vault = load_vault(session, name)
    typer.echo(descriptor_export(vault.policy))
    typer.echo("")
    typer.echo(bsms_record(vault.policy))


@app.command()
def status(
    alarm_percent: Annotated[
        int, typer.Option(min=0, max=100, help="The refresh alarm's share of N, in percent.")
    ] = DEFAULT_REFRESH_ALARM_PERCENT_LEFT,
) -> None:
    """Each recovery vault's coins with the blocks left before recovery, and its refresh alarm."""
    check_alarm_percent(alarm_percent)
    rpc = _rpc()
    with committed_session() as session:
        vaults = list_recovery_vaults(session)
        alarms = {vault.name: open_refresh_alarm(session, vault.name) for vault in vaults}
    if not vaults:
        typer.echo("No recovery vault is stored; create one with `treasury recovery create`.")
    for vault in vaults:
        found = read_windows(rpc, vault)
        alarm = alarms[vault.name]
        typer.echo(
            f"{vault.name}: N={vault.delay_blocks} blocks, height {found.height}, "
            f"{len(found.windows)} coin(s); "
            + (
                f"REFRESH ALARM {alarm.id} open since {alarm.raised_at:%Y-%m-%d %H:%M}"
                if alarm
                else "no alarm"
            )
        )
        for window in found.windows:
            due = " REFRESH DUE" if window.refresh_due(alarm_percent) else ""
            typer.echo(
                f"  {window.txid}:{window.vout}: {window.confirmations} confirmations, "
                f"{window.blocks_left} blocks before recovery opens{due}"
            )
