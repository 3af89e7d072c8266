"""Server-side sessions of the officers' console: the cookie names a session, never a token.

An officer logs in to the console once with their API token; from then on the browser holds only
a random **session id** (``tcs_<lookup>_<secret>``). The database keeps, as for API tokens, the
public lookup in clear and a random salt with ``SHA-256(salt || secret)``: whoever reads the
table cannot present a session, and the comparison is constant-time. A session dies on its own:

* at **logout**, which ends it on the server (``ended_at``), so a copied or replayed cookie is
  refused afterwards;
* at its **absolute expiry** (``SESSION_MAX_AGE`` after login), however busy the officer is;
* after **idling** (``SESSION_IDLE_TIMEOUT`` since its last request; every accepted request
  slides it);
* the moment its **officer is revoked** (the officer is re-read on every request), or the **API
  token it was opened with** is revoked or expires (the session records that token's lookup id).

The session id is also the officer's per-session secret: the console keys its CSRF tokens and
passkey-registration challenges with it. It exists only in the browser's HttpOnly cookie, so
neither a script on the page nor someone reading the database can compute them.

A refused session id writes nothing (a guessed id leaves no trace to fill the table with), and
every refusal has one message, so none tells which check failed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from treasury.db import Base, UtcDateTime
from treasury.officers import (
    TOKEN_LOOKUP_BYTES,
    ApiTokenRow,
    Officer,
    RandomBytes,
    authenticate,
    get_officer,
)
from treasury.workflow_exceptions import AuthenticationError

__all__ = [
    "SESSION_IDLE_TIMEOUT",
    "SESSION_MAX_AGE",
    "ConsoleSession",
    "ConsoleSessionError",
    "ConsoleSessionRow",
    "end_session",
    "resume_session",
    "start_session",
]

SESSION_PREFIX = "tcs"
"""Public tag of a console session id (treasury console session); greppable, not a secret."""
SESSION_LOOKUP_BYTES = 8
"""Public part of a session id, stored in clear to find the row without scanning hashes."""
SESSION_SECRET_BYTES = 32
"""Secret part of a session id: 256 random bits, so guessing one is hopeless."""
SESSION_SALT_BYTES = 16
SESSION_MAX_AGE = timedelta(hours=8)
"""A session ends this long after login, however active: one working day, then log in again."""
SESSION_IDLE_TIMEOUT = timedelta(minutes=30)
"""A session ends after this long without a request (a console left open on an empty desk)."""
_REFUSED_MESSAGE = (
    "The console session is not valid: it is unknown, ended, expired or idle too long, or its "
    "officer or API token was revoked. Log in again."
)


class ConsoleSessionError(AuthenticationError):
    """A console session id is malformed, unknown, ended, expired, idle, or its officer or token
    was revoked (HTTP 401, like a bad API token)."""


class ConsoleSessionRow(Base):
    """One console login. Only the hash of its id is kept; ``ended_at`` is set at logout."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"), index=True)
    token_lookup_id: Mapped[str] = mapped_column(
        String(2 * TOKEN_LOOKUP_BYTES), ForeignKey("api_tokens.lookup_id"), index=True
    )
    """The API token the officer logged in with: revoking (or the expiry of) it ends the session."""
    lookup_id: Mapped[str] = mapped_column(String(2 * SESSION_LOOKUP_BYTES), unique=True)
    salt_hex: Mapped[str] = mapped_column(String(2 * SESSION_SALT_BYTES))
    digest_hex: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    """Absolute end: ``created_at + SESSION_MAX_AGE``, never moved."""
    idle_timeout_seconds: Mapped[int] = mapped_column(Integer)
    """The session ends once ``last_seen_at`` is this many seconds old."""
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


@dataclass(frozen=True)
class ConsoleSession:
    """A live console session: its officer as stored now, and the per-session secret.

    ``secret`` is the session id itself (what the cookie holds); it keys the CSRF tokens and the
    passkey challenges. It is kept out of ``repr`` so no log or error line can carry it.
    """

    officer: Officer
    lookup_id: str
    expires_at: datetime
    secret: str = field(repr=False)


def _digest(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode("ascii")).hexdigest()


def _parts(session_id: str) -> tuple[str, str]:
    """The lookup and secret of a well-formed session id (``ConsoleSessionError`` otherwise)."""
    parts = session_id.split("_")
    if (
        len(parts) != 3  # prefix, lookup, secret
        or parts[0] != SESSION_PREFIX
        or len(parts[1]) != 2 * SESSION_LOOKUP_BYTES
        or len(parts[2]) != 2 * SESSION_SECRET_BYTES
        or not all(c in "0123456789abcdef" for c in parts[1] + parts[2])
    ):
        raise ConsoleSessionError(_REFUSED_MESSAGE)
    return parts[1], parts[2]


def _token_lookup(api_token: str) -> str:
    """The public lookup id of an API token already authenticated (``trs_<lookup>_<secret>``)."""
    return api_token.split("_")[1]


def start_session(
    session: Session,
    api_token: str,
    *,
    now: datetime,
    random_bytes: RandomBytes = secrets.token_bytes,
    max_age: timedelta = SESSION_MAX_AGE,
    idle_timeout: timedelta = SESSION_IDLE_TIMEOUT,
) -> ConsoleSession:
    """Authenticate ``api_token`` and open a console session for its officer.

    Raises ``AuthenticationError`` (nothing written) if the token is not valid. The returned
    ``secret`` is the session id for the cookie; it is never stored and never shown again.
    """
    officer = authenticate(session, api_token, now=now)
    lookup = random_bytes(SESSION_LOOKUP_BYTES).hex()
    salt = random_bytes(SESSION_SALT_BYTES)
    secret = random_bytes(SESSION_SECRET_BYTES).hex()
    row = ConsoleSessionRow(
        officer_id=officer.id,
        token_lookup_id=_token_lookup(api_token),
        lookup_id=lookup,
        salt_hex=salt.hex(),
        digest_hex=_digest(salt, secret),
        created_at=now,
        last_seen_at=now,
        expires_at=now + max_age,
        idle_timeout_seconds=int(idle_timeout.total_seconds()),
    )
    session.add(row)
    session.flush()
    return ConsoleSession(officer, lookup, row.expires_at, f"{SESSION_PREFIX}_{lookup}_{secret}")


def _live_row(session: Session, session_id: str, now: datetime) -> ConsoleSessionRow:
    """The row of ``session_id`` if the session is live at ``now`` and its token still works."""
    lookup, secret = _parts(session_id)
    row = session.scalar(select(ConsoleSessionRow).where(ConsoleSessionRow.lookup_id == lookup))
    if row is None or not hmac.compare_digest(
        row.digest_hex, _digest(bytes.fromhex(row.salt_hex), secret)
    ):
        raise ConsoleSessionError(_REFUSED_MESSAGE)
    idle_until = row.last_seen_at + timedelta(seconds=row.idle_timeout_seconds)
    if row.ended_at is not None or now >= row.expires_at or now >= idle_until:
        raise ConsoleSessionError(_REFUSED_MESSAGE)
    token = session.scalar(select(ApiTokenRow).where(ApiTokenRow.lookup_id == row.token_lookup_id))
    if (
        token is None
        or token.officer_id != row.officer_id
        or token.revoked_at is not None
        or now >= token.expires_at
    ):
        raise ConsoleSessionError(_REFUSED_MESSAGE)
    return row


def resume_session(session: Session, session_id: str, *, now: datetime) -> ConsoleSession:
    """The live session named by ``session_id``, its idle clock restarted at ``now``.

    The officer is re-read, so a revocation stops the session at its instant. Raises
    ``ConsoleSessionError`` (and writes nothing) for any session that is not live.
    """
    row = _live_row(session, session_id, now)
    officer = get_officer(session, row.officer_id)
    if not officer.is_active(now):
        raise ConsoleSessionError(_REFUSED_MESSAGE)
    row.last_seen_at = now
    session.flush()
    return ConsoleSession(officer, row.lookup_id, row.expires_at, session_id)


def end_session(session: Session, session_id: str, *, now: datetime) -> bool:
    """End the session named by ``session_id`` (logout); whether a live one was ended.

    An unknown, malformed or already dead id ends nothing and writes nothing.
    """
    try:
        row = _live_row(session, session_id, now)
    except ConsoleSessionError:
        return False
    row.ended_at = now
    session.flush()
    return True
