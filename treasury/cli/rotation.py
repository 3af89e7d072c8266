"""``treasury btc rotation``: replace a vault whose cosigner is replaced or compromised.

The steps of ``treasury.rotation``, as the officers run them with their API tokens: an admin
starts the rotation (the new vault over the new key set; the replaced institution holds its new
ceremony first, ``treasury ceremony run`` under a new name), the officers allowlist the printed
sweep address like any destination (in the treasury and in the roster chain), a proposer
proposes the sweep (``sweep``: every coin, less the fee, through the ordinary approvals and
signatures of ``treasury spend``), and once it is confirmed an admin retires the old vault.
"""

from __future__ import annotations

from typing import Annotated

import typer

from treasury.authority.statements import coin_units
from treasury.cli.officers import TokenOption, cli_context
from treasury.officers import Role
from treasury.proposals.rotations import list_rotations
from treasury.rotation import record_sweep, retire, start_rotation, sweep_purpose, sweep_quote_for
from treasury.settings import NodeNotConfiguredError
from treasury.wiring import spender_for_proposal
from treasury.workflow_exceptions import NotConfiguredError

app = typer.Typer(
    help="Rotate a Bitcoin vault: new vault, sweep through the officers, retire the old one.",
    no_args_is_help=True,
)


@app.command()
def start(
    old_vault: Annotated[str, typer.Argument(help="The vault to retire.")],
    new_vault: Annotated[str, typer.Argument(help="The new vault's name.")],
    cosigner: Annotated[
        list[str], typer.Option(help="A ceremony's institution name (repeat per cosigner).")
    ],
    threshold: Annotated[int, typer.Option(help="Signatures the new vault needs.")],
    reason: Annotated[str, typer.Option(help="Why (which cosigner was replaced).")],
    token_file: str | None = TokenOption,
) -> None:
    """Create the new vault over the new key set and record the rotation (admin)."""
    with cli_context(token_file) as ctx:
        try:
            rpc = ctx.settings.bitcoin_endpoint().rpc()
        except NodeNotConfiguredError as exc:
            raise NotConfiguredError(str(exc)) from None
        with ctx.sessions.begin() as session:
            rotation = start_rotation(
                session,
                rpc,
                ctx.actor,
                old_vault=old_vault,
                new_vault=new_vault,
                threshold=threshold,
                institutions=cosigner,
                reason=reason,
            )
    typer.echo(
        f"rotation {rotation.id}: {rotation.old_vault} -> {rotation.new_vault}; sweep address "
        f"{rotation.sweep_address} (allowlist it for BTC, in the treasury and the roster chain, "
        f"then `treasury btc rotation sweep {rotation.id} --legal-basis ...`)"
    )


@app.command()
def sweep(
    rotation_id: Annotated[int, typer.Argument(help="The rotation.")],
    legal_basis: Annotated[str, typer.Option(help="The decree the sweep cites.")],
    token_file: str | None = TokenOption,
) -> None:
    """Propose and prepare the sweep of every coin of the old vault (proposer or admin)."""
    with cli_context(token_file) as ctx:
        ctx.actor.require(Role.PROPOSER, Role.ADMIN)
        try:
            rpc = ctx.settings.bitcoin_endpoint().rpc()
        except NodeNotConfiguredError as exc:
            raise NotConfiguredError(str(exc)) from None
        rate = ctx.settings.spends.btc_fee_rate_sat_vb
        with ctx.sessions() as session:
            quote = sweep_quote_for(session, rpc, rotation_id, rate)
            rotation = next(r for r in list_rotations(session) if r.id == rotation_id)
        view = ctx.workflow.propose(
            ctx.actor,
            asset="BTC",
            amount=quote.amount_sats,
            destination=rotation.sweep_address,
            purpose=sweep_purpose(rotation),
            legal_basis=legal_basis,
        )
        with ctx.sessions.begin() as session:
            record_sweep(session, rotation_id, view.id)
        view = ctx.workflow.prepare(
            ctx.actor, view.id, spender_for_proposal(ctx.sessions, view, ctx.settings)
        )
    typer.echo(
        f"sweep proposal {view.id}: {quote.inputs} coins, {coin_units('BTC', quote.amount_sats)} "
        f"after a fee of {quote.fee_sats} sat; hash to approve: {view.tx_hash}"
    )


@app.command("retire")
def retire_command(
    rotation_id: Annotated[int, typer.Argument(help="The rotation whose sweep confirmed.")],
    token_file: str | None = TokenOption,
) -> None:
    """Retire the old vault once its sweep confirmed and it holds nothing on chain (admin)."""
    with cli_context(token_file) as ctx:
        try:
            rpc = ctx.settings.bitcoin_endpoint().rpc()
        except NodeNotConfiguredError as exc:
            raise NotConfiguredError(str(exc)) from None
        with ctx.sessions.begin() as session:
            rotation = retire(session, rpc, rotation_id, ctx.actor)
    typer.echo(
        f"vault {rotation.old_vault} retired; spends now come from {rotation.new_vault}; a "
        "deposit to the retired vault raises an alarm"
    )


@app.command("list")
def list_command(token_file: str | None = TokenOption) -> None:
    """Every rotation: old and new vault, sweep proposal, state."""
    with cli_context(token_file) as ctx, ctx.sessions() as session:
        rotations = list_rotations(session)
    for r in rotations:
        state = f"retired {r.retired_at.isoformat()}" if r.retired_at else "sweeping"
        typer.echo(
            f"{r.id}: {r.old_vault} -> {r.new_vault}, sweep proposal "
            f"{r.sweep_proposal_id or '-'} to {r.sweep_address}, {state}"
        )
