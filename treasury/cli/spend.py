"""``treasury spend``: propose, prepare, approve, sign, broadcast and track spends of the reserve.

The same ``Workflow`` service as the REST API, wired by ``treasury.wiring`` to the configured
vaults and nodes; authenticate with ``--token`` or ``TREASURY_API_TOKEN``. Share words and
passphrases come from the holders' files or prompts without echo, never from the command line.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from custody.ceremony import read_share_file
from treasury.cli.context import fail
from treasury.cli.officers import OfficerContext, TokenOption, cli_context
from treasury.logs import bound_ids
from treasury.officers import Role
from treasury.proposals import ProposalState, ProposalView
from treasury.settings import (
    BTC_FEE_RATE_ENV,
    BTC_MAX_FEE_ENV,
    BTC_VAULT_ENV,
    CONFIRMATIONS_ENV,
    ETH_RELAYER_ENV,
    SAFE_VAULT_ENV,
)
from treasury.wiring import institution_transcript, spender_for, spender_for_proposal
from treasury.workflow_exceptions import ProposalTransitionError

app = typer.Typer(
    help=(
        "Propose, prepare, approve, sign, broadcast and track spends of the reserve. Spends are "
        f"paid from the only Bitcoin vault or Safe in the database, or from {BTC_VAULT_ENV} / "
        f"{SAFE_VAULT_ENV}; nodes come from TREASURY_BITCOIN_RPC_URL / TREASURY_RESERVE_RPC_URL "
        "or the running `treasury devnet up`. Bitcoin fees: "
        f"{BTC_FEE_RATE_ENV} (default 2) and {BTC_MAX_FEE_ENV} (default 50000). The Safe pays no "
        f"gas: a relayer does, {ETH_RELAYER_ENV} (an address the node signs for) or, on a devnet, "
        f"the node's first account. Confirmations: {', '.join(CONFIRMATIONS_ENV.values())} "
        "(default 1)."
    ),
    no_args_is_help=True,
)

ReasonOption = typer.Option(..., help="Why, in a sentence; it is kept in the audit log.")


def _rendered(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _show_summary(summary: Mapping[str, Any]) -> None:
    """The decoded transaction approvers review, one field a line."""
    for key, value in summary.items():
        if key == "payments" and isinstance(value, list):
            for payment in value:
                typer.echo(f"    pay {payment['amount_sats']} sats to {payment['address']}")
        else:
            typer.echo(f"    {key}: {_rendered(value)}")


def _show(view: ProposalView) -> None:
    typer.echo(
        f"proposal {view.id}: {view.state.value}, {view.amount} {view.asset} base units to "
        f"{view.destination} under {view.legal_basis}"
    )
    if view.tx_hash:
        typer.echo(f"  transaction {view.tx_hash} (fee {view.fee})")
    if view.tx_summary:
        _show_summary(view.tx_summary)
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
        view = ctx.workflow.propose(
            ctx.actor,
            asset=asset,
            amount=amount,
            destination=destination,
            purpose=purpose,
            legal_basis=legal_basis,
        )
    _show(view)


@contextlib.contextmanager
def _on_proposal(token: str | None, proposal_id: int) -> Iterator[OfficerContext]:
    """The token's officer's context, with the proposal's id on every log line inside."""
    with bound_ids(proposal_id=proposal_id), cli_context(token) as ctx:
        yield ctx


def _act(
    token: str | None, proposal_id: int, step: Callable[[OfficerContext], ProposalView]
) -> None:
    """Take one workflow step on a proposal as the token's officer, and show the result."""
    with _on_proposal(token, proposal_id) as ctx:
        view = step(ctx)
    _show(view)


@app.command()
def prepare(proposal_id: int, token: str | None = TokenOption) -> None:
    """Build the proposal's transaction on its chain and print the decoded summary and the hash approvers approve (proposer or admin)."""
    with _on_proposal(token, proposal_id) as ctx:
        ctx.actor.require(Role.PROPOSER, Role.ADMIN)
        view = ctx.workflow.status(ctx.actor, proposal_id)
        spender = spender_for(ctx.sessions, view.asset, ctx.settings)
        view = ctx.workflow.prepare(ctx.actor, proposal_id, spender)
    _show(view)
    typer.echo(
        f"hash to approve: {view.tx_hash} "
        f"(`treasury spend approve {view.id} --tx-hash {view.tx_hash}`)"
    )


@app.command()
def approve(
    proposal_id: int,
    tx_hash: str = typer.Option(
        ..., help="Hash of the prepared transaction you reviewed (see `status`)."
    ),
    token: str | None = TokenOption,
) -> None:
    """Approve a proposal's prepared transaction, by its hash, for your institution."""
    _act(token, proposal_id, lambda ctx: ctx.workflow.approve(ctx.actor, proposal_id, tx_hash))


@app.command()
def reject(proposal_id: int, reason: str = ReasonOption, token: str | None = TokenOption) -> None:
    """Reject an unsigned proposal (approvers and admins; proposers may withdraw their own)."""
    _act(token, proposal_id, lambda ctx: ctx.workflow.reject(ctx.actor, proposal_id, reason))


@app.command()
def veto(proposal_id: int, reason: str = ReasonOption, token: str | None = TokenOption) -> None:
    """Cancel a spend during its veto window (oversight officers only)."""
    _act(token, proposal_id, lambda ctx: ctx.workflow.veto(ctx.actor, proposal_id, reason))


@app.command()
def status(proposal_id: int, token: str | None = TokenOption) -> None:
    """Show a proposal's state, prepared transaction, approvals, signatures and txid."""
    _act(token, proposal_id, lambda ctx: ctx.workflow.status(ctx.actor, proposal_id))


@app.command("list")
def list_proposals(
    state: Annotated[
        ProposalState | None, typer.Option(help="Only proposals in this state.")
    ] = None,
    token: str | None = TokenOption,
) -> None:
    """List proposals, newest first, optionally only those in one state."""
    with cli_context(token) as ctx:
        for view in ctx.workflow.list_proposals(ctx.actor, state):
            typer.echo(
                f"{view.id}\t{view.state.value}\t{view.amount}\t{view.asset}\t{view.destination}"
            )


def _passphrase(path: Path | None, protected: bool, institution: str) -> str:
    if path is not None:
        if not protected:
            raise fail(
                f"--passphrase-file was given, but {institution}'s ceremony recorded no passphrase."
            )
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise fail(f"cannot read the passphrase file {path}: {exc.strerror}.") from None
    if not protected:
        return ""
    return str(typer.prompt(f"SLIP-39 passphrase of {institution}", hide_input=True))


def _share_words(files: list[Path], threshold: int) -> list[str]:
    if files:
        words = []
        for path in files:
            try:
                words.append(read_share_file(path))
            except OSError as exc:
                raise fail(f"cannot read the share file {path}: {exc.strerror}.") from None
        return words
    return [
        str(typer.prompt(f"Share words of holder {n} of {threshold}", hide_input=True))
        for n in range(1, threshold + 1)
    ]


@app.command()
def sign(
    proposal_id: int,
    share_file: Annotated[
        list[Path] | None,
        typer.Option(
            help="A holder's share file; repeat per holder (without it, shares are prompted without echo)."
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the SLIP-39 passphrase (without it, prompted without echo if the ceremony set one)."
        ),
    ] = None,
    token: str | None = TokenOption,
) -> None:
    """Sign an approved proposal's transaction for your institution with its holders' shares (approver)."""
    with _on_proposal(token, proposal_id) as ctx:
        ctx.actor.require(Role.APPROVER)
        view = ctx.workflow.status(ctx.actor, proposal_id)
        if view.state is not ProposalState.APPROVED:
            # Checked before the holders type their shares; the workflow checks again.
            raise ProposalTransitionError(
                f"Proposal {proposal_id} is {view.state.value}; only an approved proposal is signed."
            )
        spender = spender_for_proposal(ctx.sessions, view, ctx.settings)
        with ctx.sessions() as session:
            transcript = institution_transcript(session, ctx.actor.institution_code)
        passphrase = _passphrase(
            passphrase_file, transcript.passphrase_protected, transcript.institution
        )
        words = _share_words(share_file or [], transcript.threshold)
        view = ctx.workflow.sign(ctx.actor, proposal_id, spender, words, passphrase)
    _show(view)


@app.command()
def broadcast(proposal_id: int, token: str | None = TokenOption) -> None:
    """Send a signed proposal's transaction to its chain, at most once however often it is retried (proposer, approver or admin)."""
    with _on_proposal(token, proposal_id) as ctx:
        ctx.actor.require(Role.PROPOSER, Role.APPROVER, Role.ADMIN)
        view = ctx.workflow.status(ctx.actor, proposal_id)
        spender = spender_for_proposal(ctx.sessions, view, ctx.settings)
        view = ctx.workflow.broadcast(proposal_id, spender)
    _show(view)


@app.command()
def refresh(proposal_id: int, token: str | None = TokenOption) -> None:
    """Track a broadcast spend: once confirmed its ledger entry is posted, if it failed voided (any role)."""
    with _on_proposal(token, proposal_id) as ctx:
        view = ctx.workflow.status(ctx.actor, proposal_id)
        if view.state is ProposalState.BROADCAST:
            spender = spender_for_proposal(ctx.sessions, view, ctx.settings)
            view = ctx.workflow.refresh(proposal_id, spender)
    _show(view)
