"""``treasury btc``: multisig vaults on bitcoind and their spends (build, sign, broadcast, bump).

Signing first shows the transaction decoded from its PSBT (payments, change back to the vault,
fee, hash) and asks the holders to confirm (``--yes`` skips the question); only then are shares
read from the holders' files or prompted without echo; they are never command-line arguments.
bitcoind comes from ``TREASURY_BITCOIN_RPC_URL`` or the running ``treasury devnet up``.

Custody signs only a transaction covered by the officers' approval statements: ``spend sign``
finds the proposal whose current transaction this spend is and hands the signer its roster chain
and statements, which the signer verifies itself. A spend that is no proposal's (or has no
statements) is refused -- exit code 2, before any share is read -- unless the holders choose the
break-glass path, ``--break-glass --reason TEXT``: they are shown the transaction and the reason,
confirm, sign without statements, and the signature is recorded (``treasury.reconcile.break_glass``),
audited and alarmed. Such a spend is broadcast only once EVERY cosigner institution has signed.
The helpers for that choice (``break_glass_choice``, ``signing_authority``) serve ``treasury
safe`` too.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from custody.authority.gate import (
    Authority,
    AuthorityEvidence,
    BreakGlass,
    approvers_line,
)
from custody.authority.statement import BITCOIN_CHAIN_PREFIX, StatementKind
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
from custody.bitcoin.spend import break_glass_reasons
from custody.ceremony import load_transcript
from custody.clock import utc_now
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
from treasury.cli.rotation import app as rotation_app
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError
from treasury.logs import bound_ids
from treasury.proposals.tables import PreparedTxRow
from treasury.reconcile.break_glass import break_glass_signatures_for, record_break_glass
from treasury.settings import NodeNotConfiguredError
from treasury.spenders import authority_evidence
from treasury.text import unstorable_characters, unstorable_message

REFUSED_EXIT_CODE = 2
"""Exit code of a signing request custody will not serve at all (no statements, no break-glass)."""
NO_STATEMENTS = (
    "custody signs only a transaction covered by the officers' approval statements; for an "
    "emergency use --break-glass --reason TEXT (every institution's holders must, and each "
    "break-glass signature is recorded, audited and raises an alarm). Nothing was signed."
)
BREAK_GLASS_HELP = (
    "EMERGENCY ONLY: sign without the officers' approval statements. Needs --reason; the "
    "signature is recorded, audited and raises an alarm, and the transaction is sent only once "
    "every institution has signed this way."
)
REASON_HELP = "Why the holders break the glass (required with --break-glass; kept on record)."
SIGN_EPILOG = (
    "Custody signs only a transaction covered by the officers' signed approval statements: the "
    "statements of the proposal whose current transaction this is are handed to the signer, "
    "which verifies them itself after the shares are read. Without them the command refuses "
    "(exit code 2) before any share is read. In an emergency the holders may use "
    "--break-glass --reason TEXT: they see the transaction and the reason, confirm (--yes "
    "skips the question), and sign without statements; every such signature is recorded, "
    "audited and raises an alarm, and the transaction is sent only once every institution has "
    "signed."
)

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
app.add_typer(rotation_app, name="rotation")


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


def break_glass_choice(flag: bool, reason: str | None) -> BreakGlass | None:
    """The holders' break-glass choice from ``--break-glass --reason``; exit 2 if malformed."""
    if not flag:
        if reason is not None:
            raise fail("--reason goes with --break-glass; without it, nothing is signed on a "
                       "reason alone.", REFUSED_EXIT_CODE)  # fmt: skip
        return None
    if reason is None:
        raise fail(
            "--break-glass needs --reason TEXT: why the holders sign without the officers' "
            "statements (it is recorded and audited).",
            REFUSED_EXIT_CODE,
        )
    found = unstorable_characters(reason)
    if found:
        raise fail(f"--reason must be {unstorable_message(found)}.", REFUSED_EXIT_CODE)
    try:
        return BreakGlass(reason)
    except ValueError as exc:
        raise fail(exc, REFUSED_EXIT_CODE) from None


def _officers_evidence(tx_hash: str) -> AuthorityEvidence | None:
    """The roster chain and statements of the proposal whose current transaction is ``tx_hash``.

    ``None`` if no proposal's current prepared transaction is ``tx_hash`` (a custody-level
    spend), or if no officer has signed a statement for it yet.
    """
    engine = make_engine(settings().database_url)
    try:
        sessions = session_factory(engine)
        with sessions() as session:
            proposal_id = session.scalar(
                select(PreparedTxRow.proposal_id).where(
                    PreparedTxRow.tx_hash == tx_hash, PreparedTxRow.superseded_at.is_(None)
                )
            )
        if proposal_id is None:
            return None
        evidence = authority_evidence(sessions, tx_hash)
    finally:
        engine.dispose()
    if evidence is None or not evidence.statements:
        return None
    return evidence


def signing_authority(tx_hash: str, emergency: BreakGlass | None) -> Authority:
    """What the signer is handed: the officers' statements, or the holders' break-glass choice.

    Refuses with exit code 2 (before any share is read) when there are no statements and no
    break-glass.
    """
    if emergency is not None:
        return emergency
    try:
        evidence = _officers_evidence(tx_hash)
    except TreasuryError as exc:
        raise fail(f"{exc} {NO_STATEMENTS}", REFUSED_EXIT_CODE) from None
    except SQLAlchemyError as exc:
        raise fail(
            f"the database refused the lookup of the officers' statements "
            f"({type(exc).__name__}); run `treasury db upgrade`. Nothing was signed."
        ) from None
    if evidence is None:
        raise fail(NO_STATEMENTS, REFUSED_EXIT_CODE)
    return evidence


def authority_lines(authority: Authority) -> list[str]:
    """What the holders are told, before any share, about the authority they sign on."""
    if isinstance(authority, BreakGlass):
        return [
            "BREAK-GLASS: this signature is made WITHOUT the officers' approval statements.",
            f"  reason: {authority.reason}",
            "  it is recorded, audited and raises an alarm; the transaction is sent only once "
            "every institution has signed.",
        ]
    approvers = [
        f"{s.statement.officer_id} ({s.statement.institution})"
        for s in authority.statements
        if s.statement.kind is StatementKind.APPROVE
    ]
    return [
        f"approval statements presented by: {', '.join(approvers) or 'nobody'} "
        "(the signer verifies them after the shares are read)"
    ]


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


@spend_app.command("sign", epilog=SIGN_EPILOG)
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
    break_glass: Annotated[bool, typer.Option("--break-glass", help=BREAK_GLASS_HELP)] = False,
    reason: Annotated[str | None, typer.Option(help=REASON_HELP)] = None,
) -> None:
    """Show the transaction decoded from the PSBT, ask to confirm, then sign it with an institution's recombined key on the officers' approval statements (or, in an emergency, with --break-glass --reason)."""
    emergency = break_glass_choice(break_glass, reason)
    with bound_ids(spend_id=spend_id):
        with database_session() as session:
            transcript = load_transcript(session, institution)
            _check_signable(session, spend_id, institution)
            review = review_bitcoin_spend(session, spend_id)
            network = load_vault(session, review.vault_name).descriptor.network.value
            if emergency is not None:
                # Read the record's table now: a database without it fails before any share.
                break_glass_signatures_for(
                    session, BITCOIN_CHAIN_PREFIX + network, review.unsigned_txid
                )
        authority = signing_authority(review.unsigned_txid, emergency)
        confirm_before_shares(
            [*review.lines(), *authority_lines(authority)],
            f"Sign this transaction as {institution}?",
            yes=yes,
        )
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
            spend = sign_spend(
                session, spend_id, institution, shares, passphrase, authority=authority
            )
            if emergency is not None:
                record_break_glass(
                    session,
                    chain=BITCOIN_CHAIN_PREFIX + network,
                    vault=review.vault_name,
                    tx_hash=review.unsigned_txid,
                    institution=institution,
                    reason=emergency.reason,
                    clock=utc_now,
                )
    _echo_spend(spend)
    if spend.authorization is not None:
        typer.echo(f"  signatures verified by the signer: {approvers_line(spend.authorization)}")
    if spend.break_glass is not None:
        typer.echo(f"  BREAK-GLASS signature recorded (reason: {spend.break_glass})")


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
    """Combine the institutions' signatures, finalize the transaction and broadcast it (a break-glass spend only with every institution's signature)."""
    rpc = _rpc()
    with bound_ids(spend_id=spend_id), database_session() as session:
        spend = load_spend(session, spend_id)
        network = load_vault(session, spend.vault_name).descriptor.network.value
        recorded = break_glass_signatures_for(
            session, BITCOIN_CHAIN_PREFIX + network, spend.approval.unsigned_txid
        )
        txid = broadcast_spend(session, rpc, spend_id, require_every_cosigner=bool(recorded))
    typer.echo(f"broadcast spend {spend_id}: txid {txid}")


@spend_app.command("bump")
def spend_bump(
    spend_id: Annotated[int, typer.Argument(help="Id of the broadcast, unconfirmed spend.")],
    fee_rate: Annotated[str, typer.Option(help="The new, higher fee rate in sat/vB.")],
    max_fee_sats: Annotated[int, typer.Option(help="The highest total fee the approvers accept.")],
) -> None:
    """Build a custody-level fee bump of a stuck spend, which only break-glass can sign (bump a workflow spend with `treasury spend bump`)."""
    # Its signers find no officers' statements for it (no proposal names it); a spend of the
    # workflow is bumped through the officers' approvals with `treasury spend bump PROPOSAL`.
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
        marks = break_glass_reasons(session, spend_id)
    _echo_spend(spend)
    for fingerprint, why in sorted(marks.items()):
        typer.echo(f"  BREAK-GLASS signature by cosigner {fingerprint} (reason: {why})")
