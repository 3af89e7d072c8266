"""``treasury btc``: multisig vaults on bitcoind and their spends (build, sign, broadcast, bump).

Signing first shows the transaction decoded from its PSBT (payments, change back to the vault,
fee, hash) and asks the holders to confirm (``--yes`` skips the question); only then are shares
read from the holders' files or prompted without echo; they are never command-line arguments.
bitcoind comes from ``TREASURY_BITCOIN_RPC_URL`` or the running ``treasury devnet up``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from custody.bitcoin import (
    Payment,
    Spend,
    broadcast_spend,
    build_spend,
    bump_spend,
    create_vault,
    export_vault,
    load_spend,
    load_vault,
    next_receive_address,
    parse_psbt,
    sign_spend,
    unsigned_txid,
    vault_balance,
)
from custody.bitcoin.rpc import BitcoinRPC
from custody.ceremony import load_transcript
from custody.exceptions import (
    CustodyError,
    NotACosignerError,
    SpendApprovalMismatchError,
    SpendStateError,
)
from custody.records import SpendState
from treasury.cli.ceremony import database_session, read_share
from treasury.cli.context import fail, settings
from treasury.cli.review import confirm_before_shares, review_bitcoin_spend
from treasury.logs import bound_ids
from treasury.settings import NodeNotConfiguredError

app = typer.Typer(
    help="Bitcoin multisig vaults: addresses, exports, balances and spends.", no_args_is_help=True
)
vault_app = typer.Typer(
    help="Create M-of-N vaults over ceremony keys and use their addresses.", no_args_is_help=True
)
spend_app = typer.Typer(
    help="Build, sign (share quorums), broadcast and fee-bump vault spends.", no_args_is_help=True
)
app.add_typer(vault_app, name="vault")
app.add_typer(spend_app, name="spend")


def _rpc() -> BitcoinRPC:
    try:
        return settings().bitcoin_endpoint().rpc()
    except NodeNotConfiguredError as exc:
        raise fail(exc) from None


def _payment(text: str) -> Payment:
    address, _, amount = text.rpartition(":")
    try:
        return Payment(address, int(amount))
    except ValueError as exc:
        raise fail(
            f"--pay {text!r} must be ADDRESS:SATS with SATS a whole number ({exc})."
        ) from None


def _fee_rate(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise fail(f"--fee-rate {text!r} is not a number of sat/vB.") from None


def _echo_spend(spend: Spend) -> None:
    typer.echo(f"spend {spend.id} ({spend.state.value}) from vault {spend.vault_name}")
    for payment in spend.approval.payments:
        typer.echo(f"  pay {payment.amount_sats} sats to {payment.address}")
    typer.echo(
        f"  fee {spend.fee_sats} sats at {spend.fee_rate_sat_vb} sat/vB "
        f"(approved max {spend.approval.max_fee_sats})"
    )
    typer.echo(f"  approval bound to unsigned txid {spend.approval.unsigned_txid}")
    if spend.replaces_id is not None:
        typer.echo(f"  replaces spend {spend.replaces_id}")
    typer.echo(f"  signed by: {', '.join(spend.signed_by) or '(nobody yet)'}")
    if spend.txid:
        typer.echo(f"  txid {spend.txid}")


@vault_app.command("create")
def vault_create(
    name: Annotated[str, typer.Argument(help="Vault name (letters, digits, '-', '_').")],
    threshold: Annotated[int, typer.Option(help="How many cosigner institutions must sign.")],
    cosigner: Annotated[list[str], typer.Option(help="A cosigner institution; repeat for each.")],
) -> None:
    """Create an M-of-N P2WSH vault over the institutions' ceremony keys as a watch-only bitcoind wallet."""
    rpc = _rpc()
    with database_session() as session:
        vault = create_vault(session, rpc, name, threshold, cosigner)
    typer.echo(
        f"vault {vault.name}: {threshold}-of-{len(cosigner)}, bitcoind wallet {vault.wallet_name}"
    )
    typer.echo(f"receive: {vault.receive_descriptor}")
    typer.echo(f"change:  {vault.change_descriptor}")


@vault_app.command("address")
def vault_address(name: str = typer.Argument(..., help="Vault name.")) -> None:
    """Issue the vault's next receive address, cross-checked against bitcoind and bitcoinlib."""
    rpc = _rpc()
    with database_session() as session:
        index, address = next_receive_address(session, rpc, name)
    typer.echo(f"{address} (receive index {index})")


@vault_app.command("export")
def vault_export(
    name: Annotated[str, typer.Argument(help="Vault name.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="descriptor (Bitcoin Core), caravan (JSON) or bsms (BIP-129)."
        ),
    ] = "descriptor",
) -> None:
    """Print the vault's watch-only configuration for Bitcoin Core, Sparrow or Caravan."""
    with database_session() as session:
        text = export_vault(load_vault(session, name), fmt)
    typer.echo(text)


@vault_app.command("balance")
def vault_balance_command(name: str = typer.Argument(..., help="Vault name.")) -> None:
    """Show the vault's confirmed and unconfirmed balance in satoshis."""
    rpc = _rpc()
    with database_session() as session:
        vault = load_vault(session, name)
    try:
        balance = vault_balance(rpc, vault)
    except CustodyError as exc:
        raise fail(exc) from None
    typer.echo(
        f"{name}: {balance.confirmed_sats} sats confirmed, "
        f"{balance.unconfirmed_sats} sats unconfirmed"
    )


@spend_app.command("build")
def spend_build(
    vault: Annotated[str, typer.Argument(help="Vault to spend from.")],
    pay: Annotated[
        list[str], typer.Option(help="ADDRESS:SATS to pay; repeat for several payments.")
    ],
    fee_rate: Annotated[str, typer.Option(help="Fee rate in sat/vB.")],
    max_fee_sats: Annotated[int, typer.Option(help="The highest total fee the approvers accept.")],
) -> None:
    """Build an unsigned replaceable PSBT paying the given outputs and record its approval."""
    payments = [_payment(text) for text in pay]
    rate = _fee_rate(fee_rate)
    rpc = _rpc()
    with bound_ids(vault=vault), database_session() as session:
        spend = build_spend(session, rpc, vault, payments, rate, max_fee_sats)
    _echo_spend(spend)


@spend_app.command("sign")
def spend_sign(
    spend_id: Annotated[int, typer.Argument(help="Spend id from `spend build`.")],
    institution: Annotated[str, typer.Option(help="The signing cosigner institution.")],
    share_file: Annotated[
        list[Path] | None,
        typer.Option(
            help="A holder's share file; repeat; without any, shares are prompted without echo."
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Sign without asking to confirm the decoded transaction.")
    ] = False,
) -> None:
    """Show the transaction decoded from the PSBT, ask to confirm, then recombine an institution's key from its holders' shares and add its signatures."""
    with bound_ids(spend_id=spend_id):
        with database_session() as session:
            transcript = load_transcript(session, institution)
            _check_signable(session, spend_id, institution)
            review = review_bitcoin_spend(session, spend_id)
        confirm_before_shares(review.lines(), f"Sign this transaction as {institution}?", yes=yes)
        with database_session() as session:
            if share_file:
                shares = [read_share(path, "") for path in share_file]
            else:
                shares = [
                    read_share(None, f"Share {n} of {transcript.threshold}")
                    for n in range(1, transcript.threshold + 1)
                ]
            passphrase = (
                typer.prompt("SLIP-39 passphrase", hide_input=True)
                if transcript.passphrase_protected
                else ""
            )
            now = unsigned_txid(parse_psbt(load_spend(session, spend_id).unsigned_psbt))
            if now != review.unsigned_txid:
                raise SpendApprovalMismatchError(
                    f"Spend {spend_id} is now transaction {now}, not the reviewed "
                    f"{review.unsigned_txid}; nothing was signed, review it again."
                )
            spend = sign_spend(session, spend_id, institution, shares, passphrase)
    _echo_spend(spend)


def _check_signable(session: Session, spend_id: int, institution: str) -> None:
    """Refuse before the holders are asked anything if custody would refuse after."""
    spend = load_spend(session, spend_id)
    if spend.state is not SpendState.BUILT:
        raise SpendStateError(
            f"Spend {spend_id} is {spend.state.value}; only a built spend can be signed."
        )
    if institution in spend.signed_by:
        raise SpendStateError(f"{institution!r} has already signed spend {spend_id}.")
    cosigners = [t.institution for t in load_vault(session, spend.vault_name).cosigners]
    if institution not in cosigners:
        raise NotACosignerError(
            f"{institution!r} is not a cosigner of vault {spend.vault_name!r} "
            f"(cosigners: {', '.join(cosigners)})."
        )


@spend_app.command("broadcast")
def spend_broadcast(spend_id: int = typer.Argument(..., help="Spend id.")) -> None:
    """Combine the institutions' signatures, finalize the transaction and broadcast it."""
    rpc = _rpc()
    with bound_ids(spend_id=spend_id), database_session() as session:
        txid = broadcast_spend(session, rpc, spend_id)
    typer.echo(f"broadcast spend {spend_id}: txid {txid}")


@spend_app.command("bump")
def spend_bump(
    spend_id: Annotated[int, typer.Argument(help="Id of the broadcast, unconfirmed spend.")],
    fee_rate: Annotated[str, typer.Option(help="The new, higher fee rate in sat/vB.")],
    max_fee_sats: Annotated[int, typer.Option(help="The highest total fee the approvers accept.")],
) -> None:
    """Build a replace-by-fee successor of a stuck spend; it needs its own signatures."""
    rate = _fee_rate(fee_rate)
    rpc = _rpc()
    with bound_ids(spend_id=spend_id), database_session() as session:
        spend = bump_spend(session, rpc, spend_id, rate, max_fee_sats)
    _echo_spend(spend)


@spend_app.command("show")
def spend_show(spend_id: int = typer.Argument(..., help="Spend id.")) -> None:
    """Show a spend's payments, fee, approval hash, signers and state."""
    with bound_ids(spend_id=spend_id), database_session() as session:
        spend = load_spend(session, spend_id)
    _echo_spend(spend)
