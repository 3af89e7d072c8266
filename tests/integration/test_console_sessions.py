"""Console sessions are server-side, expire, and end at logout (issue 13, sessions).

The console's cookie used to be the officer's raw API token: it never expired and outlived
logout. Now it names a server-side session that keeps only a hash of its id, ends at logout, at
its absolute expiry and after idling, and stops the moment its officer, or the API token it was
opened with, is revoked. A guessed session id is refused and writes nothing. On SQLite and
PostgreSQL, through the real app and the FastAPI TestClient.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, text
from workflow_support import DECREE, DESTINATION, World

from treasury.api.console import LOGIN_CSRF_COOKIE, SESSION_COOKIE, csrf_token
from treasury.console_sessions import (
    SESSION_IDLE_TIMEOUT,
    SESSION_MAX_AGE,
    ConsoleSessionRow,
    resume_session,
)
from treasury.officers import issue_token, revoke_officer, revoke_token
from treasury.proposals import ApprovalRow

HTTP_URL = "http://treasury.example"
HTTPS_URL = "https://treasury.example"
OFFICER = "mof_approver"
"""Logs in in most tests; the MOF ``admin`` may revoke them and their tokens."""


def client_of(world: World, base_url: str = HTTP_URL) -> TestClient:
    """A browser on the console (the whole API app, with the world's stepping clock)."""
    return world.api(base_url=base_url, follow_redirects=False)


def log_in(world: World, token: str, base_url: str = HTTP_URL) -> tuple[TestClient, Any]:
    """A browser logged in with ``token``, and the login's response."""
    client = client_of(world, base_url)
    client.get("/console/login")
    response = client.post(
        "/console/login", data={"token": token, "csrf": client.cookies[LOGIN_CSRF_COOKIE]}
    )
    assert response.status_code == 303, response.text[:300]
    return client, response


def logged_in(world: World, officer: str = OFFICER) -> TestClient:
    return log_in(world, world.tokens[officer])[0]


def replaying(world: World, session_id: str) -> TestClient:
    """Another browser presenting ``session_id`` as its console cookie (a copy, a guess)."""
    client = client_of(world)
    client.cookies.set(SESSION_COOKIE, session_id, path="/console")
    return client


def admitted(client: TestClient) -> bool:
    """Whether the console serves the client a page (True) or sends it to log in (False)."""
    response = client.get("/console/proposals")
    if response.status_code == 303:
        assert response.headers["location"] == "/console/login"
        return False
    assert response.status_code == 200, response.text[:300]
    return True


def session_rows(world: World) -> list[tuple[Any, ...]]:
    with world.engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(text("SELECT * FROM console_sessions ORDER BY id"))
        ]


def token_for(world: World, officer: str, **ttl: float) -> str:
    """A further API token for ``officer``, issued by the MOF admin."""
    with world.sessions.begin() as session:
        return issue_token(
            session,
            world.officers[officer].id,
            actor=world.officers["admin"],
            now=world.clock(),
            ttl=timedelta(**ttl) if ttl else timedelta(days=30),
        )


def test_the_cookie_holds_a_session_id_and_the_database_only_its_hash(world: World) -> None:
    """After login the browser holds a random session id (HttpOnly, SameSite=Strict, Secure on
    https, Path=/console), never the token; the table keeps neither the id nor the token."""
    token = world.tokens[OFFICER]
    token_secret = token.rsplit("_", 1)[1]
    client, response = log_in(world, token, HTTPS_URL)
    set_cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}=")
    )
    attributes = {part.strip().lower() for part in set_cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "secure", "path=/console"} <= attributes
    session_id = client.cookies[SESSION_COOKIE]
    assert token_secret not in session_id
    assert all(token_secret not in header for header in response.headers.get_list("set-cookie"))
    page = client.get("/console/proposals")
    assert page.status_code == 200
    assert token_secret not in page.text
    assert session_id not in page.text
    ((row),) = session_rows(world)
    stored = " ".join(str(value) for value in row)
    assert session_id.rsplit("_", 1)[1] not in stored
    assert token_secret not in stored
    with world.sessions() as session:
        (stored_row,) = session.scalars(select(ConsoleSessionRow)).all()
    assert stored_row.officer_id == world.officers[OFFICER].id
    assert stored_row.token_lookup_id == token.split("_")[1]
    assert stored_row.expires_at == world.clock() + SESSION_MAX_AGE
    assert stored_row.idle_timeout_seconds == SESSION_IDLE_TIMEOUT.total_seconds()
    plain, _response = log_in(world, world.tokens["cb_approver"], HTTP_URL)
    plain_cookie = next(
        h for h in _response.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}=")
    )
    assert "secure" not in {part.strip().lower() for part in plain_cookie.split(";")[1:]}
    assert admitted(plain)


def test_the_raw_api_token_is_no_console_cookie(world: World) -> None:
    """The old cookie, the raw API token itself, no longer opens the console."""
    assert not admitted(replaying(world, world.tokens[OFFICER]))


def test_logout_ends_the_session_on_the_server_and_a_replayed_cookie_is_refused(
    world: World,
) -> None:
    """A copy of the cookie taken before logout opens nothing afterwards: pages go to the login
    and an approval posted with it (and its CSRF token) writes nothing."""
    wf = world.workflow()
    view = wf.propose(
        world.officers["proposer"], asset="BTC", amount=30_000_000, destination=DESTINATION,
        purpose="School heating", legal_basis=DECREE,
    )  # fmt: skip
    view = wf.prepare(world.officers["proposer"], view.id, world.chain)
    assert view.tx_hash is not None
    client = logged_in(world, "parl_approver")
    session_id = client.cookies[SESSION_COOKIE]
    forged = client.post("/console/logout", data={"csrf": "not the token"})
    assert forged.status_code == 403
    assert admitted(replaying(world, session_id)), "a logout without CSRF ended nothing"
    out = client.post("/console/logout", data={"csrf": csrf_token(session_id)})
    assert out.status_code == 303
    assert out.headers["location"] == "/console/login"
    with world.sessions() as session:
        (row,) = session.scalars(select(ConsoleSessionRow)).all()
    assert row.ended_at == world.clock()
    thief = replaying(world, session_id)
    assert not admitted(thief)
    before = session_rows(world)
    approval = thief.post(
        f"/console/proposals/{view.id}/approve",
        data={"tx_hash": view.tx_hash, "csrf": csrf_token(session_id)},
    )
    assert approval.status_code == 303
    assert approval.headers["location"] == "/console/login"
    with world.sessions() as session:
        approvals = session.scalars(
            select(ApprovalRow).where(ApprovalRow.proposal_id == view.id)
        ).all()
    assert approvals == []
    assert session_rows(world) == before


def test_a_session_ends_at_its_absolute_expiry_however_active(world: World) -> None:
    """Used every 20 minutes, the session still ends SESSION_MAX_AGE after login."""
    client = logged_in(world)
    step = timedelta(minutes=20)
    elapsed = timedelta()
    while elapsed + step < SESSION_MAX_AGE:
        world.clock.advance(seconds=step.total_seconds())
        elapsed += step
        assert admitted(client), f"refused after {elapsed} of activity"
    world.clock.advance(seconds=(SESSION_MAX_AGE - elapsed).total_seconds())
    assert not admitted(client)


def test_an_idle_session_ends_and_each_request_slides_the_idle_window(world: World) -> None:
    """Requests a little under the idle timeout apart keep the session (each one moves
    ``last_seen_at``); one idle timeout of silence ends it, and the refused request moves
    nothing."""
    client = logged_in(world)
    almost = SESSION_IDLE_TIMEOUT - timedelta(minutes=1)
    for _ in range(3):
        world.clock.advance(seconds=almost.total_seconds())
        assert admitted(client)
    with world.sessions() as session:
        (row,) = session.scalars(select(ConsoleSessionRow)).all()
    assert row.last_seen_at == world.clock()
    world.clock.advance(seconds=SESSION_IDLE_TIMEOUT.total_seconds())
    before = session_rows(world)
    assert not admitted(client)
    assert session_rows(world) == before


def test_a_revoked_officer_is_refused_at_once(world: World) -> None:
    """Revoking the officer stops their open session on its next request."""
    client = logged_in(world)
    assert admitted(client)
    with world.sessions.begin() as session:
        revoke_officer(
            session, world.officers[OFFICER].id, actor=world.officers["admin"], at=world.clock()
        )
    assert not admitted(client)


def test_the_officer_is_re_read_on_every_request(world: World) -> None:
    """Even with the token untouched (a revocation written straight into the officers table),
    the session stops: authentication re-reads the officer, not a value cached at login."""
    client = logged_in(world)
    assert admitted(client)
    with world.engine.begin() as connection:
        connection.execute(
            text("UPDATE officers SET revoked_at = :at WHERE id = :id"),
            {"at": world.clock(), "id": world.officers[OFFICER].id},
        )
    assert not admitted(client)


def test_revoking_a_token_ends_the_sessions_opened_with_it_and_no_other(world: World) -> None:
    """Two logins of one officer with two tokens: revoking the first token stops the first
    session only."""
    first = logged_in(world)
    second = log_in(world, token_for(world, OFFICER))[0]
    with world.sessions.begin() as session:
        revoke_token(
            session,
            world.tokens[OFFICER].split("_")[1],
            actor=world.officers[OFFICER],
            now=world.clock(),
        )
    assert not admitted(first)
    assert admitted(second)


def test_a_session_ends_when_its_token_expires(world: World) -> None:
    """A session opened with a token that has ten minutes left ends with the token, well before
    its own absolute or idle expiry."""
    client = log_in(world, token_for(world, OFFICER, minutes=10))[0]
    world.clock.advance(minutes=9)
    assert admitted(client)
    world.clock.advance(minutes=1)
    assert not admitted(client)


def test_guessed_session_ids_are_refused_and_write_nothing(world: World) -> None:
    """Random ids, the real lookup with a wrong secret, malformed and control-character ids are
    all sent to log in, and the sessions table is left exactly as it was."""
    client = logged_in(world)
    real = client.cookies[SESSION_COOKIE]
    prefix, lookup, secret = real.split("_")
    world.clock.advance(minutes=5)
    before = session_rows(world)
    guesses = [
        f"{prefix}_{secrets.token_hex(8)}_{secrets.token_hex(32)}",
        f"{prefix}_{lookup}_{secrets.token_hex(32)}",
        f"{prefix}_{lookup}_{secret[:-1]}{'0' if secret[-1] != '0' else '1'}",
        f"{prefix}_{lookup}_{secret.upper()}",
        f"{prefix}_{lookup}",
        f"{prefix}_{lookup}_{secret}_",
        f"{prefix}_{lookup}_{secret[:-2]}\x01\x00",
        "x" * 5000,
        "",
    ]
    for guess in guesses:
        assert not admitted(replaying(world, guess)), guess
    assert session_rows(world) == before


def test_a_new_login_ends_the_browsers_previous_session(world: World) -> None:
    """Logging in again from a browser that holds a session replaces it: the old id is ended."""
    client = logged_in(world)
    old = client.cookies[SESSION_COOKIE]
    client.get("/console/login")
    again = client.post(
        "/console/login",
        data={"token": world.tokens[OFFICER], "csrf": client.cookies[LOGIN_CSRF_COOKIE]},
    )
    assert again.status_code == 303
    assert client.cookies[SESSION_COOKIE] != old
    assert admitted(client)
    assert not admitted(replaying(world, old))


def test_a_refused_login_opens_no_session(world: World) -> None:
    """A wrong token gets 401 and no session row or cookie."""
    token = world.tokens[OFFICER]
    wrong = token[:-1] + ("1" if token.endswith("0") else "0")
    client = client_of(world)
    client.get("/console/login")
    refused = client.post(
        "/console/login",
        data={"token": wrong, "csrf": client.cookies[LOGIN_CSRF_COOKIE]},
    )
    assert refused.status_code == 401
    assert SESSION_COOKIE not in refused.cookies
    assert session_rows(world) == []


def test_the_session_secret_is_not_in_its_repr(world: World) -> None:
    """A resumed session's value carries the id for the CSRF key, but its repr does not."""
    client = logged_in(world)
    session_id = client.cookies[SESSION_COOKIE]
    with world.sessions.begin() as session:
        live = resume_session(session, session_id, now=world.clock())
    assert live.secret == session_id
    assert session_id.rsplit("_", 1)[1] not in repr(live)
