"""``treasury officers`` and ``treasury policy``: who may act, and under which written policy.

Every command but ``officers bootstrap`` and ``officers found`` authenticates with an officer's API
token, read from ``TREASURY_API_TOKEN`` or the file ``--token-file`` names (never from the
command line), and is authorised by that officer's roles.
An admin administers only its own institution (``treasury.officers``): adding an officer to,
issuing a token for, or revoking an officer of another institution is refused with one ``error:``
line. ``bootstrap`` (an empty database) and ``found`` (an institution with no active admin) are the
operator's founding acts: they need the database credentials, not a token, and create only an
institution's first admin.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from custody.clock import utc_now
from custody.exceptions import CustodyError
from treasury import officers, policy
from treasury.cli.context import fail, settings
from treasury.cli.policy_verify import verify as verify_policy
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError
from treasury.officers import Officer, Role
from treasury.proposals import Workflow
from treasury.settings import API_TOKEN_ENV, API_TOKEN_FILE_ENV, Settings
from treasury.wiring import configured_workflow

app = typer.Typer(
    help="Register institutions and officers, issue API tokens, revoke officers.",
    no_args_is_help=True,
)
policy_app = typer.Typer(
    help="Set and show the spend policy and the legal bases spends cite.", no_args_is_help=True
)

TokenOption = typer.Option(
    None,
    "--token-file",
    envvar=API_TOKEN_FILE_ENV,
    help=(
        f"A file holding your API token (or put the token itself in {API_TOKEN_ENV}). Never "
        "on the command line: arguments show in `ps` and in shell history."
    ),
    show_default=False,
)


@dataclass(frozen=True)
class CliContext:
    """What a command needs: the settings, the database sessions and the workflow."""

    settings: Settings
    sessions: sessionmaker[Session]
    workflow: Workflow


@dataclass(frozen=True)
class OfficerContext(CliContext):
    """A context whose token authenticated an officer: the one acting."""

    actor: Officer


@contextlib.contextmanager
def workflow_context() -> Iterator[CliContext]:
    """Open the database and the configured workflow; domain errors become one-line messages.

    The workflow is the configured one (``treasury.wiring``): chain and node errors of signing and
    broadcasting become one line too.
    """
    configured = settings()
    try:
        engine = make_engine(configured.database_url)
        try:
            sessions = session_factory(engine)
            yield CliContext(configured, sessions, configured_workflow(sessions, configured))
        finally:
            engine.dispose()
    except (TreasuryError, CustodyError) as exc:
        raise fail(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise fail(
            f"the database refused the operation ({reason}); is the schema up to date (`treasury db upgrade`)?"
        ) from None


def read_token(token_file: str | None) -> str:
    """The caller's API token: from ``--token-file`` (or its variable), else ``TREASURY_API_TOKEN``.

    A token is a bearer credential: on the command line it would be readable by every local user
    (``ps``) and stay in shell history, so the CLI takes it only from a file or the environment.
    """
    if token_file:
        path = Path(token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise fail(f"cannot read the token file {path}: {exc.strerror}.") from None
        except UnicodeDecodeError:
            raise fail(f"the token file {path} is not text.") from None
        if not token:
            raise fail(f"the token file {path} is empty.")
        return token
    token = os.environ.get(API_TOKEN_ENV, "").strip()
    if not token:
        raise fail(
            f"an API token is required: set {API_TOKEN_ENV}, or pass --token-file PATH (or set "
            f"{API_TOKEN_FILE_ENV})."
        )
    return token


@contextlib.contextmanager
def cli_context(token_file: str | None) -> Iterator[OfficerContext]:
    """``workflow_context`` for the officer whose API token ``read_token`` finds (required)."""
    token = read_token(token_file)
    with workflow_context() as ctx:
        with ctx.sessions() as session:
            actor = officers.authenticate(session, token, now=utc_now())
        yield OfficerContext(ctx.settings, ctx.sessions, ctx.workflow, actor)


def _admin(ctx: OfficerContext) -> Officer:
    ctx.actor.require(Role.ADMIN)
    return ctx.actor


@app.command()
def bootstrap(
    institution: str = typer.Option(..., help="Code of the first institution, e.g. MOF."),
    institution_name: str = typer.Option(..., help="Its full name."),
    admin_name: str = typer.Option(..., help="Name of the first admin officer."),
) -> None:
    """Create the first institution and admin on an empty database and print the admin's token once."""
    with workflow_context() as ctx, ctx.sessions.begin() as session:
        if session.scalar(select(officers.OfficerRow.id).limit(1)) is not None:
            raise fail("officers already exist; use an admin token with `treasury officers add`.")
        now = utc_now()
        founding = officers.Founding("bootstrap")
        officers.add_institution(session, institution, institution_name, actor=founding, now=now)
        admin, token = officers.found_admin(
            session, institution, admin_name, operator=founding.operator, now=now
        )
    typer.echo(f"admin officer {admin.id}; token (shown once, keep it secret): {token}")


@app.command()
def found(
    institution: str = typer.Argument(..., help="Code of a registered institution, e.g. NBKR."),
    admin_name: str = typer.Option(..., help="Name of the institution's first admin officer."),
) -> None:
    """Create the first admin of an institution that has no active admin; print its token once.

    The operator's founding act (database credentials, no token): no other institution's admin may staff an institution, so its first admin is appointed here and it adds its own officers. Refused once the institution has an active admin. The signed roster chain will replace this with a genesis signed by the institution's ceremony key.
    """
    with workflow_context() as ctx, ctx.sessions.begin() as session:
        admin, token = officers.found_admin(
            session, institution, admin_name, operator="founding", now=utc_now()
        )
    typer.echo(
        f"admin officer {admin.id} of {admin.institution_code}; "
        f"token (shown once, keep it secret): {token}"
    )


@app.command("add-institution")
def add_institution(code: str, name: str, token_file: str | None = TokenOption) -> None:
    """Register an institution that can take part in spend quorums (admin); found its admin next."""
    with cli_context(token_file) as ctx, ctx.sessions.begin() as session:
        added = officers.add_institution(session, code, name, actor=_admin(ctx), now=utc_now())
    typer.echo(
        f"institution {added.code} ({added.name}) registered; its first admin is created with "
        f"`treasury officers found {added.code} --admin-name NAME`."
    )


@app.command("add")
def add_officer(
    name: str,
    role: Annotated[list[Role], typer.Option(help="A role to grant; repeat for several.")],
    institution: str = typer.Option(..., help="The officer's institution code."),
    token_file: str | None = TokenOption,
) -> None:
    """Register an officer of your own institution with one or more roles (admin)."""
    with cli_context(token_file) as ctx, ctx.sessions.begin() as session:
        added = officers.add_officer(
            session, institution, name, role, actor=_admin(ctx), now=utc_now()
        )
    typer.echo(f"officer {added.id} ({added.name}, {added.institution_code}) added.")


@app.command("issue-token")
def issue_token(
    officer_id: int,
    valid_days: int = typer.Option(
        officers.DEFAULT_TOKEN_TTL.days,
        "--valid-days",
        min=1,
        max=officers.MAX_TOKEN_TTL.days,
        help="How many days the token works; it stops on its own after that.",
    ),
    token_file: str | None = TokenOption,
) -> None:
    """Issue an API token for an officer of your institution, printed once; only its hash is stored (admin).

    The token expires after --valid-days (30 by default). `treasury officers tokens OFFICER_ID`
    lists an officer's tokens by lookup id; `treasury officers revoke-token LOOKUP` stops one.
    """
    with cli_context(token_file) as ctx, ctx.sessions.begin() as session:
        issued = officers.issue_token(
            session,
            officer_id,
            actor=_admin(ctx),
            now=utc_now(),
            ttl=timedelta(days=valid_days),
        )
    typer.echo(issued)


@app.command("tokens")
def list_tokens(officer_id: int, token_file: str | None = TokenOption) -> None:
    """List an officer's tokens: lookup id, issued, expires, state (never the secrets)."""
    with cli_context(token_file) as ctx, ctx.sessions() as session:
        ctx.actor.require(*Role)
        now = utc_now()
        for info in officers.list_tokens(session, officer_id):
            typer.echo(
                f"{info.lookup_id}\t{info.created_at.isoformat()}\t"
                f"{info.expires_at.isoformat()}\t{info.state(now)}"
            )


@app.command("revoke-token")
def revoke_token(lookup_id: str, token_file: str | None = TokenOption) -> None:
    """Revoke one API token by its lookup id (the middle part of trs_<lookup>_<secret>).

    Your own token, or (admin) a token of an officer of your institution. The officer and their
    other tokens keep working; to stop an officer altogether use `treasury officers revoke`.
    """
    with cli_context(token_file) as ctx, ctx.sessions.begin() as session:
        info = officers.revoke_token(session, lookup_id, actor=ctx.actor, now=utc_now())
    typer.echo(f"token {info.lookup_id} of officer {info.officer_id} revoked at {info.revoked_at}.")


@app.command()
def revoke(officer_id: int, token_file: str | None = TokenOption) -> None:
    """Revoke an officer of your institution now: tokens stop, approvals of unsigned spends are voided (admin)."""
    with cli_context(token_file) as ctx:
        revoked = ctx.workflow.revoke_officer(ctx.actor, officer_id)
    typer.echo(f"officer {revoked.id} revoked at {revoked.revoked_at}.")


@app.command("list")
def list_officers(token_file: str | None = TokenOption) -> None:
    """List every officer with institution, roles and revocation time (any role)."""
    with cli_context(token_file) as ctx, ctx.sessions() as session:
        ctx.actor.require(*Role)
        for o in officers.list_officers(session):
            roles = ",".join(sorted(r.value for r in o.roles))
            typer.echo(f"{o.id}\t{o.institution_code}\t{o.name}\t{roles}\t{o.revoked_at or ''}")


@policy_app.command("set")
def set_policy(path: Path, token_file: str | None = TokenOption) -> None:
    """Store the JSON policy document at PATH as the next immutable version (admin)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read a JSON policy from {path}: {exc}") from None
    with cli_context(token_file) as ctx, ctx.sessions.begin() as session:
        stored = policy.set_policy(session, _admin(ctx), document, now=utc_now())
    typer.echo(f"policy version {stored.version} stored, hash {stored.content_hash}")


@policy_app.command("show")
def show_policy(
    version: int | None = typer.Option(None, help="A past version; the newest by default."),
    token_file: str | None = TokenOption,
) -> None:
    """Print a policy version's document, version number and content hash (any role)."""
    with cli_context(token_file) as ctx, ctx.sessions() as session:
        ctx.actor.require(*Role)
        stored = (
            policy.current_policy(session)
            if version is None
            else policy.policy_version(session, version)
        )
    typer.echo(f"version {stored.version}, hash {stored.content_hash}")
    typer.echo(json.dumps(stored.document.to_json(), indent=2, sort_keys=True))


policy_app.command("verify")(verify_policy)


@policy_app.command("add-legal-basis")
def add_legal_basis(
    reference: str,
    expires: Annotated[
        datetime,
        typer.Option(help="Expiry, ISO 8601 with a timezone, e.g. 2027-01-01T00:00:00+00:00."),
    ],
    ceiling: Annotated[
        list[str], typer.Option(help="ASSET=BASE_UNITS, e.g. BTC=500000000; repeat per asset.")
    ],
    title: str = typer.Option(..., help="The decree's or act's title."),
    token_file: str | None = TokenOption,
) -> None:
    """Register a decree or act that authorises spending up to a ceiling per asset until it expires (admin)."""
    ceilings: dict[str, int] = {}
    for item in ceiling:
        asset, _, amount = item.partition("=")
        if not asset or not amount.isdigit():
            raise fail(
                f"--ceiling {item!r} is not ASSET=BASE_UNITS (a whole number, e.g. BTC=500000000)."
            )
        ceilings[asset] = int(amount)
    if expires.tzinfo is None:
        raise fail("--expires needs a timezone, e.g. 2027-01-01T00:00:00+00:00.")
    with cli_context(token_file) as ctx, ctx.sessions.begin() as session:
        basis = policy.LegalBasis(reference, title, expires, ceilings)
        policy.add_legal_basis(session, _admin(ctx), basis, now=utc_now())
    typer.echo(f"legal basis {reference} registered, expires {expires.isoformat()}.")
