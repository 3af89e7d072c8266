"""``treasury officers`` and ``treasury policy``: who may act, and under which written policy.

Every command but ``officers bootstrap`` authenticates with an officer's API token, taken from
``--token`` or ``TREASURY_API_TOKEN``, and is authorised by that officer's roles.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
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
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError
from treasury.officers import Officer, Role
from treasury.proposals import Workflow
from treasury.settings import API_TOKEN_ENV, Settings
from treasury.wiring import configured_workflow

app = typer.Typer(
    help="Register institutions and officers, issue API tokens, revoke officers.",
    no_args_is_help=True,
)
policy_app = typer.Typer(
    help="Set and show the spend policy and the legal bases spends cite.", no_args_is_help=True
)

TokenOption = typer.Option(
    None, "--token", envvar=API_TOKEN_ENV, help="Your API token.", show_default=False
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


@contextlib.contextmanager
def cli_context(token: str | None) -> Iterator[OfficerContext]:
    """``workflow_context`` for the officer whose API token ``token`` is (required)."""
    if not token:
        raise fail(f"an API token is required: pass --token or set {API_TOKEN_ENV}.")
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
        officers.add_institution(session, institution, institution_name, actor="bootstrap", now=now)
        admin = officers.add_officer(
            session, institution, admin_name, [Role.ADMIN], actor="bootstrap", now=now
        )
        token = officers.issue_token(session, admin.id, actor="bootstrap", now=now)
    typer.echo(f"admin officer {admin.id}; token (shown once, keep it secret): {token}")


@app.command("add-institution")
def add_institution(code: str, name: str, token: str | None = TokenOption) -> None:
    """Register an institution that can take part in spend quorums (admin)."""
    with cli_context(token) as ctx, ctx.sessions.begin() as session:
        actor = _admin(ctx)
        added = officers.add_institution(
            session, code, name, actor=f"officer:{actor.id}", now=utc_now()
        )
    typer.echo(f"institution {added.code} ({added.name}) registered.")


@app.command("add")
def add_officer(
    name: str,
    role: Annotated[list[Role], typer.Option(help="A role to grant; repeat for several.")],
    institution: str = typer.Option(..., help="The officer's institution code."),
    token: str | None = TokenOption,
) -> None:
    """Register an officer of an institution with one or more roles (admin)."""
    with cli_context(token) as ctx, ctx.sessions.begin() as session:
        actor = _admin(ctx)
        added = officers.add_officer(
            session, institution, name, role, actor=f"officer:{actor.id}", now=utc_now()
        )
    typer.echo(f"officer {added.id} ({added.name}, {added.institution_code}) added.")


@app.command("issue-token")
def issue_token(officer_id: int, token: str | None = TokenOption) -> None:
    """Issue an API token for an officer and print it once; only its hash is stored (admin)."""
    with cli_context(token) as ctx, ctx.sessions.begin() as session:
        actor = _admin(ctx)
        issued = officers.issue_token(
            session, officer_id, actor=f"officer:{actor.id}", now=utc_now()
        )
    typer.echo(issued)


@app.command()
def revoke(officer_id: int, token: str | None = TokenOption) -> None:
    """Revoke an officer now: tokens stop working and approvals of unsigned spends are voided (admin)."""
    with cli_context(token) as ctx:
        revoked = ctx.workflow.revoke_officer(ctx.actor, officer_id)
    typer.echo(f"officer {revoked.id} revoked at {revoked.revoked_at}.")


@app.command("list")
def list_officers(token: str | None = TokenOption) -> None:
    """List every officer with institution, roles and revocation time (any role)."""
    with cli_context(token) as ctx, ctx.sessions() as session:
        ctx.actor.require(*Role)
        for o in officers.list_officers(session):
            roles = ",".join(sorted(r.value for r in o.roles))
            typer.echo(f"{o.id}\t{o.institution_code}\t{o.name}\t{roles}\t{o.revoked_at or ''}")


@policy_app.command("set")
def set_policy(path: Path, token: str | None = TokenOption) -> None:
    """Store the JSON policy document at PATH as the next immutable version (admin)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read a JSON policy from {path}: {exc}") from None
    with cli_context(token) as ctx, ctx.sessions.begin() as session:
        stored = policy.set_policy(session, _admin(ctx), document, now=utc_now())
    typer.echo(f"policy version {stored.version} stored, hash {stored.content_hash}")


@policy_app.command("show")
def show_policy(
    version: int | None = typer.Option(None, help="A past version; the newest by default."),
    token: str | None = TokenOption,
) -> None:
    """Print a policy version's document, version number and content hash (any role)."""
    with cli_context(token) as ctx, ctx.sessions() as session:
        ctx.actor.require(*Role)
        stored = (
            policy.current_policy(session)
            if version is None
            else policy.policy_version(session, version)
        )
    typer.echo(f"version {stored.version}, hash {stored.content_hash}")
    typer.echo(json.dumps(stored.document.to_json(), indent=2, sort_keys=True))


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
    token: str | None = TokenOption,
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
    with cli_context(token) as ctx, ctx.sessions.begin() as session:
        basis = policy.LegalBasis(reference, title, expires, ceilings)
        policy.add_legal_basis(session, _admin(ctx), basis, now=utc_now())
    typer.echo(f"legal basis {reference} registered, expires {expires.isoformat()}.")
