"""``treasury window``: the public delay window before large spends, from the command line.

A spend at or above the veto threshold of the signed policy (the last ``POLICY_SET`` of the
roster chain) is signed by a custody signer only once it is announced in the window registry on
the services chain, that chain's block time has passed the announcement's plus the policy's
``veto_window_seconds``, and no genuine veto of it is on that chain
(``custody/authority/DELAY-WINDOW.md``). The signers read the registry themselves; these
commands only put things there and show what is there:

- ``deploy`` the registry from its committed artifact (once per services chain);
- ``announce`` a prepared proposal's spend, from the registry's publisher account;
- ``veto`` it with an officer's key file: any one institution's approver or oversight officer
  may, and a veto is final;
- ``status``: every announced spend, when its window ends, and who vetoed it.

The library does the work (``treasury.announcements``, ``custody.ethereum.announcements``);
this module reads the settings, builds the announcement and the veto statement the way the
workflow does, and prints the result for people (amounts in coin units, times in UTC and in
services-chain block time).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_abi.abi import decode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import is_address, to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.authority import (
    Secp256k1Signature,
    SignedStatement,
    StatementKind,
    load_public_key,
    sign_digest,
)
from custody.authority.delay import (
    DelayRule,
    SpendAnnouncement,
    WindowObservation,
    delay_rule,
    proposal_key,
    utc_from_timestamp,
)
from custody.clock import utc_now
from custody.ethereum import EthChain
from custody.ethereum.announcements import ServicesChainWindow, deploy_window_registry
from custody.ethereum.rpc import EvmRPC
from treasury.announcements import (
    AnnouncementRow,
    Publisher,
    SpendVetoRow,
    WindowStatus,
    announce,
    pending_spends_export,
    record_chain_vetoes,
    relay_veto,
)
from treasury.authority.statements import coin_units, human_summary
from treasury.authority.store import require_roster_state, roster_state
from treasury.cli.context import fail, key_passphrase, settings
from treasury.cli.officers import OfficerContext, TokenOption, cli_context, workflow_context
from treasury.exceptions import TreasuryError
from treasury.logs import bound_ids
from treasury.officers import Role
from treasury.proposals import ProposalState
from treasury.proposals.signed_statements import statement_subject
from treasury.settings import (
    SERVICES_RPC_URL_ENV,
    WINDOW_FROM_BLOCK_ENV,
    WINDOW_REGISTRY_ENV,
    NodeNotConfiguredError,
    Settings,
)
from treasury.story.units import human_duration
from treasury.wiring import window_reader

__all__ = ["app"]

PUBLISHER_SELECTOR = function_signature_to_4byte_selector("publisher()")
"""The registry's ``publisher()`` getter: the one account it lets announce."""
CLOSED_STATES = frozenset(
    {
        ProposalState.BROADCAST,
        ProposalState.CONFIRMED,
        ProposalState.REJECTED,
        ProposalState.EXPIRED,
        ProposalState.FAILED,
    }
)
"""States in which announcing a spend makes no sense: it was sent, or it never will be."""
DEFAULT_VETO_REASON = "Vetoed on the services chain"

app = typer.Typer(
    help=(
        "The public delay window before large spends. A spend at or above the veto threshold "
        "of the signed policy (the roster chain's last POLICY_SET) must be announced in the "
        "window registry on the services chain; the custody signers read that registry "
        "themselves and sign only once the services chain's block time has passed the "
        "announcement's plus the policy's veto_window_seconds, and only if no genuine veto is "
        "there. Any one institution's approver or oversight officer may veto with their own "
        "officer key file; the signers verify it against the roster, and a veto is final. "
        f"Settings: {SERVICES_RPC_URL_ENV} (or the running `treasury devnet up`), "
        f"{WINDOW_REGISTRY_ENV} and {WINDOW_FROM_BLOCK_ENV} (printed by `treasury window "
        "deploy`). Amounts are shown in coin units with their base units."
    ),
    no_args_is_help=True,
)

ProposalArgument = Annotated[int, typer.Argument(metavar="PROPOSAL", help="The proposal's id.")]


# --- The services chain ---------------------------------------------------------------------


def _services_chain(configured: Settings) -> EthChain:
    """The services chain's node, or one error line saying what to set."""
    try:
        return EthChain(EvmRPC(configured.services_rpc_url()))
    except NodeNotConfiguredError as exc:
        raise fail(exc) from None


def _window(configured: Settings) -> ServicesChainWindow:
    """The registry the signers read, as the settings configure it; one error line if none."""
    reader = window_reader(configured)
    if reader is None:
        missing = (
            SERVICES_RPC_URL_ENV
            if configured.nodes.services_rpc_url is None
            else WINDOW_REGISTRY_ENV
        )
        raise fail(
            f"No window registry is configured: set {missing} ({WINDOW_REGISTRY_ENV} is the "
            "address `treasury window deploy` printed, the one the signers read)."
        )
    return reader


def _publisher_of(window: ServicesChainWindow) -> str:
    """The account the registry lets announce (the treasury's publisher), read from the chain."""
    raw = window.chain.call(window.registry, PUBLISHER_SELECTOR, action="read the publisher")
    (address,) = decode(["address"], raw)
    return to_checksum_address(address)


def _address(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    if not is_address(text):
        raise typer.BadParameter(f"{option} {text!r} is not an EVM address (0x and 40 hex digits).")
    return to_checksum_address(text)


def _chain_time(block_time: datetime) -> str:
    """A time as the services chain counts it: its block timestamp, in Unix seconds."""
    return f"services-chain block time {int(block_time.timestamp())}"


def _left(opens_at: datetime, now: datetime) -> str:
    if now >= opens_at:
        return "the window has passed"
    return f"{human_duration(opens_at - now)} left"


# --- deploy ---------------------------------------------------------------------------------


@app.command()
def deploy(
    deployer: Annotated[
        str | None,
        typer.Option(
            help="The account that pays for the deployment, one the services node signs for "
            "(default: the node's first account)."
        ),
    ] = None,
    publisher: Annotated[
        str | None,
        typer.Option(
            help="The only account the registry lets announce spends: the treasury's publisher, "
            "one the services node signs for (default: the deployer). Anyone may submit a veto."
        ),
    ] = None,
) -> None:
    """Deploy the window registry on the services chain from its committed artifact and print the settings that point the treasury and the signers at it."""
    chain = _services_chain(settings())
    sender = _address(deployer, "--deployer")
    if sender is None:
        accounts = chain.accounts()
        if not accounts:
            raise fail(
                f"The services node at {chain.rpc.url} signs for no account; give --deployer."
            )
        sender = accounts[0]
    announcer = _address(publisher, "--publisher") or sender
    from_block = chain.block_number()  # at or before the deployment's block: no event is missed
    registry = deploy_window_registry(chain, sender, announcer)
    typer.echo(
        f"window registry deployed at {registry} on the services chain (chain id "
        f"{chain.chain_id}), its code checked against the committed artifact; publisher "
        f"{announcer}; anyone may submit a veto"
    )
    typer.echo("set these for the treasury and for every signing machine:")
    typer.echo(f"{WINDOW_REGISTRY_ENV}={registry}")
    typer.echo(f"{WINDOW_FROM_BLOCK_ENV}={from_block}")


# --- announce -------------------------------------------------------------------------------


@contextlib.contextmanager
def _on_proposal(token_file: str | None, proposal_id: int) -> Iterator[OfficerContext]:
    """The token's officer's context, with the proposal's id on every log line inside."""
    with bound_ids(proposal_id=proposal_id), cli_context(token_file) as ctx:
        yield ctx


def _announcement_of(session: Session, proposal_id: int) -> SpendAnnouncement:
    """The announcement of the proposal's prepared transaction, from the same facts its
    statements name (so its digest is the one the signer looks up after decoding it)."""
    subject = statement_subject(session, proposal_id)
    return SpendAnnouncement(
        proposal_id=str(subject.proposal_id),
        chain=subject.chain,
        vault_id=subject.vault_id,
        asset=subject.asset,
        amount=subject.amount,
        destination=subject.destination,
        tx_hash=subject.tx_hash,
        safe_nonce=subject.safe_nonce,
    )


def _signed_rule(session: Session, announcement: SpendAnnouncement) -> DelayRule:
    """The signed policy's window, refusing a spend it puts under none (nothing to announce)."""
    rule = delay_rule(require_roster_state(session).policy_document)
    if rule is None:
        raise fail(
            "The signed policy (the roster chain's last POLICY_SET) sets no veto window, so no "
            "spend waits for one; nothing was announced."
        )
    if not rule.applies(announcement.asset, announcement.amount):
        threshold = rule.thresholds[announcement.asset]
        raise fail(
            f"Proposal {announcement.proposal_id} spends "
            f"{coin_units(announcement.asset, announcement.amount)}, below the signed policy's "
            f"veto threshold of {coin_units(announcement.asset, threshold)}: the signers sign it "
            "without a window; nothing was announced."
        )
    return rule


def _show_announcement(
    row: AnnouncementRow, seen: WindowObservation, window_seconds: int, *, already: bool
) -> None:
    head = "already announced" if already else "announced"
    typer.echo(
        f"proposal {row.proposal_id} {head} on the services chain (chain id "
        f"{row.services_chain_id}, registry {row.window_registry}) in tx {row.services_tx}: "
        f"{coin_units(row.asset, row.amount)} to {row.destination}, transaction {row.tx_hash}"
    )
    typer.echo(
        f"  announced at {row.announced_at.isoformat()} UTC ({_chain_time(row.announced_at)})"
    )
    typer.echo(
        f"  window of {human_duration(timedelta(seconds=window_seconds))}: it opens at "
        f"{row.opens_at.isoformat()} UTC ({_chain_time(row.opens_at)}); the services chain "
        f"is at block {seen.block_number}, {seen.block_time.isoformat()} UTC: "
        f"{_left(row.opens_at, seen.block_time)}"
    )
    typer.echo(
        "  until then any institution's approver or oversight officer may veto it "
        f"(`treasury window veto {row.proposal_id} --key-file FILE`); the signers sign only "
        "after the services chain's time passes it with no veto"
    )


@app.command("announce")
def announce_command(proposal_id: ProposalArgument, token_file: str | None = TokenOption) -> None:
    """Announce a prepared proposal's spend in the window registry (proposer or admin); its window opens the policy's veto_window_seconds later by the services chain's block time. A second run prints the existing announcement."""
    with _on_proposal(token_file, proposal_id) as ctx:
        ctx.actor.require(Role.PROPOSER, Role.ADMIN)
        window = _window(ctx.settings)
        view = ctx.workflow.status(ctx.actor, proposal_id)
        if view.state in CLOSED_STATES:
            raise fail(
                f"Proposal {proposal_id} is {view.state.value}; only a spend still to be signed "
                "is announced."
            )
        with ctx.sessions.begin() as session:
            announcement = _announcement_of(session, proposal_id)
            rule = _signed_rule(session, announcement)
            digest = announcement.digest().hex()
            already = session.scalars(
                select(AnnouncementRow).where(AnnouncementRow.announcement_digest == digest)
            ).first()
            sender = _publisher_of(window)
            row = announce(
                session,
                Publisher(window, sender),
                proposal_id,
                announcement,
                rule.window_seconds,
            )
            seen = window.observe(announcement.digest(), proposal_key(announcement.proposal_id))
            _show_announcement(row, seen, rule.window_seconds, already=already is not None)


# --- veto -----------------------------------------------------------------------------------


@app.command()
def veto(
    proposal_id: ProposalArgument,
    key_file: Annotated[
        Path,
        typer.Option(
            "--key-file",
            "--officer-key",
            help="Your officer key file (the one `treasury officers keygen` made and the roster "
            "lists): the VETO statement shown is signed with it.",
        ),
    ],
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the key file's passphrase (without it, prompted without echo)."
        ),
    ] = None,
    submitter: Annotated[
        str | None,
        typer.Option(
            help="The services-chain account that sends the veto, one the node signs for "
            "(default: the registry's publisher). A veto needs no one's permission: an "
            "institution may send it from its own account."
        ),
    ] = None,
    reason: Annotated[
        str, typer.Option(help="Why, in a sentence; kept in the audit log of the workflow.")
    ] = DEFAULT_VETO_REASON,
    token_file: str | None = TokenOption,
) -> None:
    """Veto a proposal on the services chain with your officer key (any institution's approver or oversight officer). The statement is verified against the roster before anything is sent; once on chain the signers never sign the spend. An oversight officer's veto also cancels the proposal in the workflow."""
    sender = _address(submitter, "--submitter")
    with _on_proposal(token_file, proposal_id) as ctx:
        window = _window(ctx.settings)
        built = ctx.workflow.statement(ctx.actor, proposal_id, StatementKind.VETO)
        typer.echo(human_summary(built))
        typer.echo(f"digest to sign: {built.digest().hex()}")
        key = load_public_key(key_file)
        signature = sign_digest(key_file, key_passphrase(passphrase_file), built.digest())
        signed = SignedStatement(built, key.key_id, Secp256k1Signature(signature))
        typer.echo(f"signed with key {key.key_id}")
        with ctx.sessions.begin() as session:
            state = require_roster_state(session)
            row = relay_veto(
                session, window, sender or _publisher_of(window), state, signed, utc_now()
            )
        typer.echo(
            f"proposal {proposal_id} vetoed on the services chain (registry {window.registry}) "
            f"in tx {row.services_tx} by officer {row.officer_id} ({row.institution}): a veto is "
            "final, every signer reads it there and will never sign this spend"
        )
        if Role.OVERSIGHT in ctx.actor.roles:
            try:
                view = ctx.workflow.veto(ctx.actor, proposal_id, reason, signed)
            except TreasuryError as exc:
                typer.echo(
                    f"note: the workflow did not record the veto ({exc}); the veto on the "
                    "services chain stands all the same"
                )
            else:
                typer.echo(f"the workflow records it: proposal {view.id} is {view.state.value}")


# --- status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clock:
    """The time the window is judged by: the services chain's latest block, when configured."""

    now: datetime
    block_number: int | None


def _services_clock(window: ServicesChainWindow | None) -> _Clock:
    if window is None:
        return _Clock(utc_now(), None)
    block = window.chain.rpc.call("eth_getBlockByNumber", "latest", False)
    return _Clock(utc_from_timestamp(int(block["timestamp"], 16)), int(block["number"], 16))


def _first_vetoes(session: Session) -> dict[int, SpendVetoRow]:
    first: dict[int, SpendVetoRow] = {}
    for row in session.scalars(select(SpendVetoRow).order_by(SpendVetoRow.id)):
        first.setdefault(row.proposal_id, row)
    return first


def _status_line(spend: dict[str, Any], veto: SpendVetoRow | None, now: datetime) -> str:
    opens_at = datetime.fromisoformat(spend["opens_at"])
    head = (
        f"proposal {spend['proposal_id']}: {coin_units(spend['asset'], int(spend['amount']))} "
        f"to {spend['destination']} ({spend['chain']}, transaction {spend['tx_hash']})"
    )
    status = WindowStatus(spend["status"])
    if status is WindowStatus.VETOED and veto is not None:
        return (
            f"{head}\n  vetoed by officer {veto.officer_id} ({veto.institution}) in tx "
            f"{veto.services_tx}: never signed"
        )
    when = f"{opens_at.isoformat()} UTC ({_chain_time(opens_at)})"
    if status is WindowStatus.WAITING:
        return f"{head}\n  waiting: the window ends {when}; {_left(opens_at, now)}, anyone may veto"
    return f"{head}\n  open: the window ended {when} with no veto; the signers may sign"


@app.command()
def status(
    proposal_id: Annotated[
        int | None,
        typer.Argument(metavar="PROPOSAL", help="Only this proposal (default: every one)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for machines instead of lines.")
    ] = False,
) -> None:
    """List announced spends with their window's end and status: waiting (anyone may still veto), open (the window passed with no veto) or vetoed (by whom; never signed). Judged by the services chain's block time, as the signers judge it; vetoes institutions sent themselves are found on chain and recorded first."""
    with workflow_context() as ctx:
        window = _window(ctx.settings) if ctx.settings.spends.window_registry else None
        clock = _services_clock(window)
        with ctx.sessions.begin() as session:
            state = roster_state(session)
            if window is not None and state is not None:
                record_chain_vetoes(session, window, state, utc_now())
            spends = pending_spends_export(session, clock.now)
            vetoes = _first_vetoes(session)
    if proposal_id is not None:
        spends = [s for s in spends if s["proposal_id"] == proposal_id]
        if not spends:
            raise fail(
                f"Proposal {proposal_id} is not announced (`treasury window announce "
                f"{proposal_id}`)."
            )
    if as_json:
        for spend in spends:
            veto = vetoes.get(spend["proposal_id"])
            spend["vetoed_by_officer"] = None if veto is None else veto.officer_id
        document = {
            "judged_at": clock.now.isoformat(),
            "services_block": clock.block_number,
            "pending_spends": spends,
        }
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
        return
    if clock.block_number is None:
        typer.echo(
            f"no window registry configured ({WINDOW_REGISTRY_ENV}): judged by this machine's "
            f"clock, {clock.now.isoformat()} UTC"
        )
    else:
        typer.echo(
            f"services chain at block {clock.block_number}, {clock.now.isoformat()} UTC "
            f"({_chain_time(clock.now)})"
        )
    if not spends:
        typer.echo("no spend is announced")
    for spend in spends:
        typer.echo(_status_line(spend, vetoes.get(spend["proposal_id"]), clock.now))
