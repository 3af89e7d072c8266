"""``treasury spend``: propose, approve, reject, veto and inspect spend proposals.

The same ``Workflow`` service as the REST API; authenticate with ``--token`` or
``TREASURY_API_TOKEN``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from treasury.cli.officers import TokenOption, cli_context
from treasury.proposals import ProposalState, ProposalView

app = typer.Typer(help="Propose, approve and inspect spends of the reserve.", no_args_is_help=True)


def _show(view: ProposalView) -> None:
    typer.echo(
        f"proposal {view.id}: {view.state.value}, {view.amount} {view.asset} base units to "
        f"{view.destination} under {view.legal_basis}"
    )
    if view.tx_hash:
        typer.echo(f"  transaction {view.tx_hash} (fee {view.fee})")
    for a in view.approvals:
        status = f"void: {a.void_reason}" if a.voided_at else "standing"
        typer.echo(
            f"  approval by officer {a.officer_id} ({a.institution}) of {a.tx_hash}: {status}"
        )
    if view.signed_by:
        typer.echo(f"  signed by {', '.join(view.signed_by)}")
    if view.veto_window_ends_at:
        typer.echo(f"  veto window ends {view.veto_window_ends_at.isoformat()}")
    if view.txid:
        typer.echo(f"  txid {view.txid}")
    if view.closed_reason:
        typer.echo(f"  closed: {view.closed_reason}")


@app.command()
def propose(
    asset: str = typer.Option(..., help="Asset code, e.g. BTC or ETH."),
    amount: int = typer.Option(..., help="Whole base units (satoshi, wei), never a decimal."),
    destination: str = typer.Option(..., help="An allowlisted destination address."),
    purpose: str = typer.Option(..., help="Why the reserve pays this."),
    legal_basis: str = typer.Option(..., help="Reference of the decree or act that authorises it."),
    token: str | None = TokenOption,
) -> None:
    """Propose a spend citing its legal basis; the policy checks limits, allowlist and reconciliation at once."""
    with cli_context(token) as ctx:
        assert ctx.actor is not None
        view = ctx.workflow.propose(
            ctx.actor,
            asset=asset,
            amount=amount,
            destination=destination,
            purpose=purpose,
            legal_basis=legal_basis,
        )
    _show(view)


@app.command()
def approve(
    proposal_id: int,
    tx_hash: str = typer.Option(
        ..., help="Hash of the prepared transaction you reviewed (see `status`)."
    ),
    token: str | None = TokenOption,
) -> None:
    """Approve a proposal's prepared transaction, by its hash, for your institution."""
    with cli_context(token) as ctx:
        assert ctx.actor is not None
        _show(ctx.workflow.approve(ctx.actor, proposal_id, tx_hash))


@app.command()
def reject(
    proposal_id: int,
    reason: str = typer.Option(..., help="Why, in a sentence; it is kept in the audit log."),
    token: str | None = TokenOption,
) -> None:
    """Reject an unsigned proposal (approvers and admins; proposers may withdraw their own)."""
    with cli_context(token) as ctx:
        assert ctx.actor is not None
        _show(ctx.workflow.reject(ctx.actor, proposal_id, reason))


@app.command()
def veto(
    proposal_id: int,
    reason: str = typer.Option(..., help="Why, in a sentence; it is kept in the audit log."),
    token: str | None = TokenOption,
) -> None:
    """Cancel a spend during its veto window (oversight officers only)."""
    with cli_context(token) as ctx:
        assert ctx.actor is not None
        _show(ctx.workflow.veto(ctx.actor, proposal_id, reason))


@app.command()
def status(proposal_id: int, token: str | None = TokenOption) -> None:
    """Show a proposal's state, prepared transaction, approvals, signatures and txid."""
    with cli_context(token) as ctx:
        assert ctx.actor is not None
        _show(ctx.workflow.status(ctx.actor, proposal_id))


@app.command("list")
def list_proposals(
    state: Annotated[
        ProposalState | None, typer.Option(help="Only proposals in this state.")
    ] = None,
    token: str | None = TokenOption,
) -> None:
    """List proposals, newest first, optionally only those in one state."""
    with cli_context(token) as ctx:
        assert ctx.actor is not None
        for view in ctx.workflow.list_proposals(ctx.actor, state):
            typer.echo(
                f"{view.id}\t{view.state.value}\t{view.amount}\t{view.asset}\t{view.destination}"
            )
