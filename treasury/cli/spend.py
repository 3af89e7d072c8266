"""``treasury spend``: propose, prepare, approve, sign, broadcast and track spends of the reserve.

The same ``Workflow`` service as the REST API, wired by ``treasury.wiring`` to the configured
vaults and nodes; authenticate with ``TREASURY_API_TOKEN`` or ``--token-file``. ``sign`` first shows
the transaction decoded from its own bytes (the PSBT, the SafeTx), refuses one that does not pay
what the proposal says, names the approvers and asks to confirm (``--yes`` skips the question);
only then are share words and passphrases read, from the holders' files or prompts without echo,
never from the command line.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from custody.authority import (
    ApprovalStatement,
    Secp256k1Signature,
    SignedStatement,
    load_public_key,
    sign_digest,
)
from custody.ethereum import SafeVaults, SigningPolicy
from custody.ethereum.signer import ERC20_ASSET_PREFIX, TokenTransfer
from treasury.authority.statements import human_summary
from treasury.chains import NATIVE_DECIMALS, chain_for
from treasury.cli.context import fail, key_passphrase
from treasury.cli.officers import OfficerContext, TokenOption, cli_context
from treasury.cli.review import (
    TokenUnits,
    btc,
    coin_units,
    confirm_before_shares,
    paid,
    review_bitcoin_spend,
    safe_lines,
    spend_id_of,
)
from treasury.cli.share_input import share_words, slip39_passphrase
from treasury.fee_bumps import propose_bump
from treasury.logs import bound_ids
from treasury.officers import Role, get_officer, list_institutions
from treasury.proposals import ProposalState, ProposalView
from treasury.settings import (
    BTC_FEE_RATE_ENV,
    BTC_MAX_FEE_ENV,
    BTC_VAULT_ENV,
    CONFIRMATIONS_ENV,
    ETH_RELAYER_ENV,
    SAFE_VAULT_ENV,
)
from treasury.spenders import require_roster_genesis
from treasury.wiring import (
    BTC,
    institution_transcript,
    paying_safe,
    resolve_asset,
    spender_for_proposal,
    token_registry,
    vault_of,
)
from treasury.workflow_exceptions import ProposalTransitionError, TransactionMismatchError

app = typer.Typer(
    help=(
        "Propose, prepare, approve, sign, broadcast and track spends of the reserve. Spends are "
        f"paid from the only Bitcoin vault or Safe in the database, or from {BTC_VAULT_ENV} / "
        f"{SAFE_VAULT_ENV}; nodes come from TREASURY_BITCOIN_RPC_URL / TREASURY_RESERVE_RPC_URL "
        "or the running `treasury devnet up`. Bitcoin fees: "
        f"{BTC_FEE_RATE_ENV} (default 2) and {BTC_MAX_FEE_ENV} (default 50000). The Safe pays no "
        f"gas: a relayer does, {ETH_RELAYER_ENV} (an address the node signs for) or, on a devnet, "
        f"the node's first account. Confirmations: {', '.join(CONFIRMATIONS_ENV.values())} "
        "(default 1). Assets: BTC, ETH, each further EVM chain's native coin (e.g. BNB, paid from "
        "that chain's Safe through its node), and each ERC-20 the reconciler tracks on a Safe's "
        "chain, named ERC20:<contract address> or by its tracked symbol (e.g. KGST); amounts are "
        "always whole base units of the asset (satoshi, wei, the token's smallest unit)."
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


AMOUNT_DIGITS = re.compile(r"[1-9][0-9]{0,77}", re.ASCII)
"""An amount exactly as written, the API's rule (``treasury.api.schemas.AMOUNT_PATTERN``)."""


def whole_base_units(text: str) -> int:
    """``--amount`` exactly as typed: ASCII digits, no sign, padding or leading zero.

    Python's ``int`` (click's ``INT``) reads " 100 ", "+100", "0100" and "1_00" as 100; an
    amount of money must be what the officer wrote, as the API requires, so these are refused.
    """
    if not AMOUNT_DIGITS.fullmatch(text):
        raise typer.BadParameter(
            f"{text!r} is not a whole number of base units (satoshi, wei) written in ASCII "
            "digits with no sign, spaces, separators or leading zero, e.g. 150000000."
        )
    return int(text)


@app.command()
def propose(
    asset: str = typer.Option(
        ...,
        help=(
            "BTC, ETH, a further EVM chain's native coin (e.g. BNB), or a token tracked on a "
            "Safe's chain: ERC20:<contract address> (any letter case) or its tracked symbol, "
            "e.g. KGST."
        ),
    ),
    amount: int = typer.Option(
        ...,
        parser=whole_base_units,
        metavar="BASE_UNITS",
        help=(
            "Whole base units (satoshi, wei, a token's smallest unit: 1 KGST with 18 decimals "
            "is 1000000000000000000) in ASCII digits, never a decimal."
        ),
    ),
    destination: str = typer.Option(..., help="An allowlisted destination address."),
    purpose: str = typer.Option(..., help="Why the reserve pays this."),
    legal_basis: str = typer.Option(..., help="Reference of the decree or act that authorises it."),
    token_file: str | None = TokenOption,
) -> None:
    """Propose a spend citing its legal basis; the policy checks limits, allowlist and reconciliation at once."""
    with cli_context(token_file) as ctx:
        with ctx.sessions() as session:
            code = resolve_asset(session, asset, ctx.settings)
        view = ctx.workflow.propose(
            ctx.actor,
            asset=code,
            amount=amount,
            destination=destination,
            purpose=purpose,
            legal_basis=legal_basis,
        )
    _show(view)


@contextlib.contextmanager
def _on_proposal(token_file: str | None, proposal_id: int) -> Iterator[OfficerContext]:
    """The token's officer's context, with the proposal's id on every log line inside."""
    with bound_ids(proposal_id=proposal_id), cli_context(token_file) as ctx:
        yield ctx


def _act(
    token_file: str | None, proposal_id: int, step: Callable[[OfficerContext], ProposalView]
) -> None:
    """Take one workflow step on a proposal as the token's officer, and show the result."""
    with _on_proposal(token_file, proposal_id) as ctx:
        view = step(ctx)
    _show(view)


@app.command()
def prepare(proposal_id: int, token_file: str | None = TokenOption) -> None:
    """Build the proposal's transaction on its chain and print the decoded summary and the hash approvers approve (proposer or admin)."""
    with _on_proposal(token_file, proposal_id) as ctx:
        ctx.actor.require(Role.PROPOSER, Role.ADMIN)
        view = ctx.workflow.status(ctx.actor, proposal_id)
        spender = spender_for_proposal(ctx.sessions, view, ctx.settings)
        view = ctx.workflow.prepare(ctx.actor, proposal_id, spender)
    _show(view)
    typer.echo(
        f"hash to approve: {view.tx_hash} "
        f"(`treasury spend approve {view.id} --tx-hash {view.tx_hash}`)"
    )


FEE_RATE_TEXT = re.compile(r"[1-9][0-9]{0,5}(\.[0-9]{1,3})?")
"""A fee rate as an officer types it: sat/vB, at most three decimals."""


@app.command()
def bump(
    proposal_id: Annotated[int, typer.Argument(help="The broadcast, unconfirmed BTC spend.")],
    fee_rate: Annotated[str, typer.Option(help="The replacement's fee rate in sat/vB.")],
    max_fee_sats: Annotated[
        str, typer.Option(help="The fee ceiling the approvers' statements name, in sats.")
    ],
    token_file: str | None = TokenOption,
) -> None:
    """Propose and prepare a replace-by-fee bump of a stuck Bitcoin spend (proposer or admin).

    The bump is a proposal of its own paying exactly what the stuck one pays; approvers approve
    its replacement transaction (with the fee ceiling in their statements), institutions sign
    it, and `treasury spend broadcast` sends it. Once it confirms, the stuck proposal fails on
    `treasury spend refresh` and its pending ledger entry is voided.
    """
    if not FEE_RATE_TEXT.fullmatch(fee_rate):
        raise typer.BadParameter(f"--fee-rate {fee_rate!r} is not a fee rate in sat/vB.")
    ceiling = whole_base_units(max_fee_sats)
    with _on_proposal(token_file, proposal_id) as ctx:
        ctx.actor.require(Role.PROPOSER, Role.ADMIN)
        view = propose_bump(
            ctx.workflow,
            ctx.sessions,
            ctx.actor,
            proposal_id,
            fee_rate_sat_vb=Decimal(fee_rate),
            fee_ceiling_sats=ceiling,
        )
        spender = spender_for_proposal(ctx.sessions, view, ctx.settings)
        view = ctx.workflow.prepare(ctx.actor, view.id, spender)
    _show(view)
    typer.echo(
        f"bump proposal {view.id} replaces proposal {proposal_id}'s transaction; hash to "
        f"approve: {view.tx_hash} (`treasury spend approve {view.id} --tx-hash {view.tx_hash}`)"
    )


def _show_statement(statement: ApprovalStatement) -> None:
    """The statement for people, then exactly what is signed: canonical JSON and its digest."""
    typer.echo(human_summary(statement))
    typer.echo(f"statement: {statement.encode().decode('utf-8')}")
    typer.echo(f"digest to sign: {statement.digest().hex()}")


@app.command()
def statement(proposal_id: int, token_file: str | None = TokenOption) -> None:
    """Print the statement you would sign to approve the proposal: in coin units, as canonical JSON, and its digest (approver)."""
    with _on_proposal(token_file, proposal_id) as ctx:
        built = ctx.workflow.statement(ctx.actor, proposal_id)
    _show_statement(built)


def _signed_statement(
    ctx: OfficerContext,
    proposal_id: int,
    tx_hash: str,
    key_file: Path,
    passphrase_file: Path | None,
) -> SignedStatement:
    """Build the proposal's statement, show it, and sign it with the officer's key file."""
    built = ctx.workflow.statement(ctx.actor, proposal_id)
    if built.tx_hash != tx_hash:
        raise TransactionMismatchError(
            f"You reviewed transaction {tx_hash}, but proposal {proposal_id}'s prepared "
            f"transaction is {built.tx_hash}; review it and approve that hash. Nothing was signed."
        )
    _show_statement(built)
    key = load_public_key(key_file)
    digest = built.digest()
    signature = Secp256k1Signature(sign_digest(key_file, key_passphrase(passphrase_file), digest))
    typer.echo(f"signed with key {key.key_id}")
    return SignedStatement(built, key.key_id, signature)


@app.command()
def approve(
    proposal_id: int,
    tx_hash: str = typer.Option(
        ..., help="Hash of the prepared transaction you reviewed (see `status`)."
    ),
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="Your officer key file: the statement is shown and signed with it (required once the roster is founded)."
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the key file's passphrase (without it, prompted without echo)."
        ),
    ] = None,
    token_file: str | None = TokenOption,
) -> None:
    """Approve a proposal's prepared transaction, by its hash, for your institution; with --key-file, sign the approval statement shown."""
    with _on_proposal(token_file, proposal_id) as ctx:
        signed = None
        if key_file is not None:
            signed = _signed_statement(ctx, proposal_id, tx_hash, key_file, passphrase_file)
        elif passphrase_file is not None:
            raise fail("--passphrase-file opens a key file; give --key-file too.")
        view = ctx.workflow.approve(ctx.actor, proposal_id, tx_hash, signed)
    _show(view)


@app.command()
def reject(
    proposal_id: int, reason: str = ReasonOption, token_file: str | None = TokenOption
) -> None:
    """Reject an unsigned proposal (approvers and admins; proposers may withdraw their own)."""
    _act(token_file, proposal_id, lambda ctx: ctx.workflow.reject(ctx.actor, proposal_id, reason))


@app.command()
def veto(
    proposal_id: int, reason: str = ReasonOption, token_file: str | None = TokenOption
) -> None:
    """Cancel a spend during its veto window (oversight officers only)."""
    _act(token_file, proposal_id, lambda ctx: ctx.workflow.veto(ctx.actor, proposal_id, reason))


@app.command()
def status(proposal_id: int, token_file: str | None = TokenOption) -> None:
    """Show a proposal's state, prepared transaction, approvals, signatures and txid."""
    _act(token_file, proposal_id, lambda ctx: ctx.workflow.status(ctx.actor, proposal_id))


@app.command("list")
def list_proposals(
    state: Annotated[
        ProposalState | None, typer.Option(help="Only proposals in this state.")
    ] = None,
    token_file: str | None = TokenOption,
) -> None:
    """List proposals, newest first, optionally only those in one state."""
    with cli_context(token_file) as ctx:
        for view in ctx.workflow.list_proposals(ctx.actor, state):
            typer.echo(
                f"{view.id}\t{view.state.value}\t{view.amount}\t{view.asset}\t{view.destination}"
            )


def _mismatch(view: ProposalView, decoded: str) -> TransactionMismatchError:
    return TransactionMismatchError(
        f"The transaction to sign {decoded}, but proposal {view.id} is for {view.amount} "
        f"{view.asset} base units to {view.destination}: refusing before any share is read."
    )


def _bitcoin_lines(session: Session, ctx: OfficerContext, view: ProposalView) -> list[str]:
    """The proposal's PSBT decoded by custody's signer checks; refused unless it pays the proposal."""
    vault = vault_of(session, view.asset, ctx.settings)
    spend_id = spend_id_of(session, vault, str(view.tx_hash))
    if spend_id is None:
        raise TransactionMismatchError(
            f"No spend of Bitcoin vault {vault!r} is transaction {view.tx_hash}; "
            f"proposal {view.id} cannot be signed from it."
        )
    review = review_bitcoin_spend(session, spend_id)
    payments = [(out.address, out.amount_sats) for out in review.payments]
    if review.unsigned_txid != view.tx_hash or payments != [(view.destination, view.amount)]:
        listed = "; ".join(f"{btc(amount)} to {address}" for address, amount in payments)
        raise _mismatch(view, f"{review.unsigned_txid} pays {listed or 'nothing'}")
    return review.lines()


def _safe_lines(ctx: OfficerContext, view: ProposalView) -> list[str]:
    """The proposal's SafeTx decoded by custody's signer with the paying Safe's chain, native coin
    and token registry, read through that chain's node; refused unless it pays the proposal: the
    chain's native coin to the destination, or the proposal's token to it."""
    with ctx.sessions() as session:
        safe = paying_safe(session, view.asset, ctx.settings)
        tokens = token_registry(session, safe.chain_id)
    vaults = SafeVaults(chain_for(ctx.settings.reserve_chains(), safe.chain_id), ctx.sessions)
    registry = SigningPolicy(
        frozenset(t.address for t in tokens.values()),
        chain_id=safe.chain_id,
        native_asset=safe.native_asset,
    )
    approval = vaults.approval(str(view.tx_hash), registry)
    action = approval.action
    token = tokens.get(view.asset)
    payment: tuple[str, int] | None
    if token is None:
        payment = paid(approval)
    elif isinstance(action, TokenTransfer) and action.token == token.address:
        payment = (action.to, action.amount)
    else:
        payment = None
    if payment is None or (payment[0].lower(), payment[1]) != (
        view.destination.lower(),
        view.amount,
    ):
        raise _mismatch(view, f"does '{action.describe()}'")
    units = None if token is None else TokenUnits(token.symbol, token.decimals)
    return safe_lines(approval, vaults.proposal(str(view.tx_hash)).vault_name, units)


def _amount_line(ctx: OfficerContext, view: ProposalView) -> str:
    """The proposal's amount in its asset's units: BTC, an EVM chain's native coin (``ETH``,
    ``BNB``: 18 decimals, wei), or a tracked token's symbol."""
    if view.asset == BTC:
        return btc(view.amount)
    if view.asset.startswith(ERC20_ASSET_PREFIX):
        with ctx.sessions() as session:
            token = token_registry(
                session, paying_safe(session, view.asset, ctx.settings).chain_id
            ).get(view.asset)
        if token is None:
            return f"{view.amount} base units of {view.asset}"
        return coin_units(view.amount, token.decimals, token.symbol, f"base units of {view.asset}")
    return coin_units(view.amount, NATIVE_DECIMALS, view.asset, "wei")


def _review_lines(ctx: OfficerContext, view: ProposalView) -> list[str]:
    """What the share holders confirm: the proposal as recorded, the transaction decoded from its
    own bytes (refused if it does not pay what the proposal says), and who approved it."""
    amount = _amount_line(ctx, view)
    lines = [
        f"Proposal {view.id} (as recorded): {amount} to {view.destination}",
        f"  purpose: {view.purpose}; legal basis: {view.legal_basis}",
    ]
    with ctx.sessions() as session:
        if view.asset == BTC:
            lines += _bitcoin_lines(session, ctx, view)
        else:
            lines += _safe_lines(ctx, view)
        names = {i.code: i.name for i in list_institutions(session)}
        for approval in view.approvals:
            if approval.tx_hash == view.tx_hash and approval.voided_at is None:
                officer = get_officer(session, approval.officer_id)
                lines.append(
                    f"  approved by {officer.name} ({approval.institution}, "
                    f"{names.get(approval.institution, '?')}) at "
                    f"{approval.approved_at.isoformat(timespec='seconds')}"
                )
    return lines


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
    yes: Annotated[
        bool, typer.Option("--yes", help="Sign without asking to confirm the decoded transaction.")
    ] = False,
    token_file: str | None = TokenOption,
) -> None:
    """Show the approved transaction decoded from itself with its approvers, ask to confirm, then sign it for your institution with its holders' shares (approver)."""
    with _on_proposal(token_file, proposal_id) as ctx:
        ctx.actor.require(Role.APPROVER)
        view = ctx.workflow.status(ctx.actor, proposal_id)
        if view.state is not ProposalState.APPROVED or view.tx_hash is None:
            # Checked before the holders type their shares; the workflow checks again.
            raise ProposalTransitionError(
                f"Proposal {proposal_id} is {view.state.value}; only an approved proposal is signed."
            )
        spender = spender_for_proposal(ctx.sessions, view, ctx.settings)
        with ctx.sessions() as session:
            require_roster_genesis(session)  # refused before the holders type anything
            transcript = institution_transcript(session, ctx.actor.institution_code)
        confirm_before_shares(
            _review_lines(ctx, view),
            f"Sign this transaction for {ctx.actor.institution_code}?",
            yes=yes,
        )
        passphrase = slip39_passphrase(
            passphrase_file, transcript.passphrase_protected, transcript.institution
        )
        words = share_words(share_file or [], transcript.threshold)
        current = ctx.workflow.status(ctx.actor, proposal_id).tx_hash
        if current != view.tx_hash:
            raise TransactionMismatchError(
                f"Proposal {proposal_id}'s transaction changed to {current} while {view.tx_hash} "
                "was being reviewed; nothing was signed, review it again."
            )
        view = ctx.workflow.sign(ctx.actor, proposal_id, spender, words, passphrase)
    _show(view)


@app.command()
def broadcast(proposal_id: int, token_file: str | None = TokenOption) -> None:
    """Send a signed proposal's transaction to its chain, at most once however often it is retried (proposer, approver or admin)."""
    with _on_proposal(token_file, proposal_id) as ctx:
        ctx.actor.require(Role.PROPOSER, Role.APPROVER, Role.ADMIN)
        view = ctx.workflow.status(ctx.actor, proposal_id)
        spender = spender_for_proposal(ctx.sessions, view, ctx.settings)
        view = ctx.workflow.broadcast(proposal_id, spender)
    _show(view)


@app.command()
def refresh(proposal_id: int, token_file: str | None = TokenOption) -> None:
    """Track a broadcast spend: once confirmed its ledger entry is posted, if it failed voided (any role).

    A signed spend whose broadcast began but was never recorded (a crash around the send) is
    finished first: its own transaction is adopted from the chain, or sent if it never got there.
    """
    with _on_proposal(token_file, proposal_id) as ctx:
        view = ctx.workflow.status(ctx.actor, proposal_id)
        if view.state in (ProposalState.SIGNED, ProposalState.BROADCAST):
            spender = spender_for_proposal(ctx.sessions, view, ctx.settings)
            view = ctx.workflow.refresh(proposal_id, spender)
    _show(view)
