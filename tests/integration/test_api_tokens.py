"""API tokens expire on their own and can be revoked one at a time (issue 13, sessions).

A token copied from a laptop or a log must stop working without anyone noticing the copy, and an
officer who leaves a token on a shared machine must be able to stop that one token without losing
their office. Both on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner
from workflow_support import World

from treasury import migrate, officers
from treasury.cli import app
from treasury.db import make_engine
from treasury.settings import API_TOKEN_ENV, DATABASE_URL_ENV
from treasury.workflow_exceptions import (
    AuthenticationError,
    NotAuthorisedError,
    UnknownRecordError,
    WorkflowInputError,
)


def _lookup(token: str) -> str:
    return token.split("_")[1]


def _issue(world: World, officer: str, **ttl: float) -> str:
    with world.sessions.begin() as session:
        return officers.issue_token(
            session,
            world.officers[officer].id,
            actor=world.officers["admin"],
            now=world.clock(),
            ttl=timedelta(**ttl) if ttl else officers.DEFAULT_TOKEN_TTL,
        )


def _authenticates(world: World, token: str) -> bool:
    with world.sessions() as session:
        try:
            officers.authenticate(session, token, now=world.clock())
        except AuthenticationError:
            return False
        return True


def test_a_token_works_until_it_expires_then_stops_on_its_own(world: World) -> None:
    """Issued for 2 days: valid a second before, refused at expiry, with the one refusal message."""
    token = _issue(world, "proposer", days=2)
    assert _authenticates(world, token)
    world.clock.advance(days=2, seconds=-1)
    assert _authenticates(world, token)
    world.clock.advance(seconds=1)
    with world.sessions() as session, pytest.raises(AuthenticationError, match="expired"):
        officers.authenticate(session, token, now=world.clock())


def test_every_token_expires_by_default(world: World) -> None:
    """The world's tokens were issued with the default life: 30 days later none works."""
    token = world.tokens["proposer"]
    assert _authenticates(world, token)
    world.clock.advance(days=officers.DEFAULT_TOKEN_TTL.days)
    assert not _authenticates(world, token)


@pytest.mark.parametrize("ttl", [timedelta(seconds=30), officers.MAX_TOKEN_TTL + timedelta(1)])
def test_a_token_life_out_of_bounds_is_refused_and_nothing_written(
    world: World, ttl: timedelta
) -> None:
    with world.sessions() as session:
        before = len(officers.list_tokens(session, world.officers["proposer"].id))
    with world.sessions.begin() as session, pytest.raises(WorkflowInputError, match="life"):
        officers.issue_token(
            session,
            world.officers["proposer"].id,
            actor=world.officers["admin"],
            now=world.clock(),
            ttl=ttl,
        )
    with world.sessions() as session:
        assert len(officers.list_tokens(session, world.officers["proposer"].id)) == before


def test_the_holder_revokes_one_token_and_keeps_the_others(world: World) -> None:
    spare = _issue(world, "proposer")
    main = world.tokens["proposer"]
    with world.sessions.begin() as session:
        info = officers.revoke_token(
            session, _lookup(spare), actor=world.officers["proposer"], now=world.clock()
        )
    assert info.state(world.clock()) == "revoked"
    assert not _authenticates(world, spare)
    assert _authenticates(world, main)
    with world.sessions() as session:
        states = {
            t.lookup_id: t.state(world.clock())
            for t in officers.list_tokens(session, world.officers["proposer"].id)
        }
    assert states == {_lookup(main): "active", _lookup(spare): "revoked"}
    with world.sessions.begin() as session, pytest.raises(WorkflowInputError, match="already"):
        officers.revoke_token(
            session, _lookup(spare), actor=world.officers["proposer"], now=world.clock()
        )


def test_an_admin_revokes_a_token_of_its_own_institution_only(world: World) -> None:
    """MOF's admin may stop a MOF proposer's token; CB's admin may not (403), nothing changes."""
    token = world.tokens["proposer"]
    with world.sessions.begin() as session, pytest.raises(NotAuthorisedError, match="own"):
        officers.revoke_token(
            session, _lookup(token), actor=world.officers["cb_admin"], now=world.clock()
        )
    assert _authenticates(world, token)
    with world.sessions.begin() as session, pytest.raises(NotAuthorisedError):
        officers.revoke_token(
            session, _lookup(token), actor=world.officers["cb_approver"], now=world.clock()
        )
    assert _authenticates(world, token)
    with world.sessions.begin() as session:
        officers.revoke_token(
            session, _lookup(token), actor=world.officers["admin"], now=world.clock()
        )
    assert not _authenticates(world, token)
    with world.sessions.begin() as session, pytest.raises(UnknownRecordError):
        officers.revoke_token(session, "0" * 16, actor=world.officers["admin"], now=world.clock())


def test_the_cli_lists_and_revokes_tokens_without_showing_secrets(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, world.url)
    spare = _issue(world, "proposer", days=1)
    monkeypatch.setenv(API_TOKEN_ENV, world.tokens["proposer"])
    runner = CliRunner()
    listed = runner.invoke(app, ["officers", "tokens", str(world.officers["proposer"].id)])
    assert listed.exit_code == 0, listed.output
    assert _lookup(spare) in listed.output
    assert spare.split("_")[2] not in listed.output
    revoked = runner.invoke(app, ["officers", "revoke-token", _lookup(spare)])
    assert revoked.exit_code == 0, revoked.output
    assert f"token {_lookup(spare)} of officer {world.officers['proposer'].id} revoked" in (
        revoked.output
    )
    listed = runner.invoke(app, ["officers", "tokens", str(world.officers["proposer"].id)])
    assert f"{_lookup(spare)}\t" in listed.output
    assert "revoked" in listed.output


def test_migration_gives_existing_tokens_the_default_life(db_url: str) -> None:
    """A token issued before 0012 expires 30 days after its issue once the database is upgraded."""
    migrate.upgrade(db_url, "0011")
    engine = make_engine(db_url)
    issued = datetime(2026, 5, 1, tzinfo=UTC)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO institutions (id, code, name, created_at) "
                    "VALUES (1, 'CB', 'Central Bank', :t)"
                ),
                {"t": issued},
            )
            connection.execute(
                text(
                    "INSERT INTO officers (id, institution_id, name, created_at) "
                    "VALUES (1, 1, 'a', :t)"
                ),
                {"t": issued},
            )
            connection.execute(
                text(
                    "INSERT INTO api_tokens (id, officer_id, lookup_id, salt_hex, digest_hex, "
                    "created_at) VALUES (1, 1, 'abcd', '00', 'ff', :t)"
                ),
                {"t": issued},
            )
        migrate.upgrade(db_url)
        with Session(engine) as session:
            row = session.get(officers.ApiTokenRow, 1)
            assert row is not None
            assert row.expires_at == issued + officers.DEFAULT_TOKEN_TTL
    finally:
        engine.dispose()
