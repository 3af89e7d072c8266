"""Institutions, the officers who act for them, their roles, and their API tokens.

An officer belongs to exactly one institution (a ministry, the central bank, parliament's
oversight body) and holds one or more roles. Revocation is a point in time: from then on the
officer cannot authenticate, and the workflow voids the approvals they gave on unsigned spends.

API tokens are shown once, at issue; the database keeps only a random salt and
``SHA-256(salt || secret)``. The secret is 32 random bytes, so a fast hash is enough (nothing to
brute-force), and the comparison is constant-time. Every token expires (``DEFAULT_TOKEN_TTL``
unless the issuer chooses a shorter or longer life, at most ``MAX_TOKEN_TTL``): a token copied from
a laptop or a log stops working on its own. A single token is revoked by its public lookup id
(``revoke_token``) by its holder or an admin of their institution, without revoking the officer.

**Admin scope.** An admin administers only its own institution: adding its officers, issuing
their tokens and revoking them. Anything that reaches into another institution is refused with
``NotAuthorisedError`` (HTTP 403), before anything is written. Otherwise one admin could staff a
second institution with approvers (or hand itself their officers' tokens) and meet the
cross-institution quorum alone. The rule is enforced here, in the functions every edge calls (the
CLI, the API's ``/officers`` routes, the demo), and the acting officer is re-read in the same
transaction, so a stale or hand-made ``Officer`` value cannot widen it. (An admin still grants any
role inside its own institution; which institution may hold which role is not decided here.)

Who staffs an institution that has no admin yet (a new one, or one whose admins were all revoked)?
Nobody inside it can, and no other institution's admin may. That act is **founding**
(``Founding``): the operator, who holds the database credentials, creates the institution's first
admin (``found_admin``, ``treasury officers bootstrap`` and ``treasury officers found``), or sets
up a whole roster in a setup script. It is allowed only while the institution has no active admin,
so it never overrides an institution that can govern itself, and it is audited under the
operator's name. Founding grants nothing a database writer does not already have; it is the trust
that the signed roster chain (next step of issue 12) removes, where an institution's genesis roster
is signed by its ceremony key and every later change by that institution's own admins. Registering
a new, empty institution stays open to any admin: it grants no one any power until it is founded.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from treasury import audit
from treasury.audit import AuditKind
from treasury.db import Base, UtcDateTime
from treasury.workflow_exceptions import (
    AuthenticationError,
    NotAuthorisedError,
    UnknownRecordError,
    WorkflowInputError,
)

RandomBytes = Callable[[int], bytes]
"""Where token secrets come from; tests inject a seeded source."""

TOKEN_SECRET_BYTES = 32
TOKEN_LOOKUP_BYTES = 8
"""Public part of a token, stored in clear to find the row without scanning hashes."""
TOKEN_SALT_BYTES = 16
TOKEN_PREFIX = "trs"  # noqa: S105 - a public tag that makes tokens greppable, not a secret
DEFAULT_TOKEN_TTL = timedelta(days=30)
"""How long an API token works unless the issuer says otherwise."""
MAX_TOKEN_TTL = timedelta(days=365)
"""No token lives longer than a year: officers change, laptops are lost."""
INSTITUTION_CODE_MAX_CHARS = 32
NAME_MAX_CHARS = 200


class Role(StrEnum):
    """What an officer may do; auditors only read."""

    PROPOSER = "proposer"
    APPROVER = "approver"
    """Approves spends and holds a share of the institution's signing key."""
    OVERSIGHT = "oversight"
    """May veto a large spend during its delay window."""
    AUDITOR = "auditor"
    ADMIN = "admin"
    """Manages institutions, officers, tokens, legal bases and the policy."""


class InstitutionRow(Base):
    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(INSTITUTION_CODE_MAX_CHARS), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_CHARS))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OfficerRow(Base):
    __tablename__ = "officers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_CHARS))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class OfficerRoleRow(Base):
    __tablename__ = "officer_roles"

    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"), index=True)
    lookup_id: Mapped[str] = mapped_column(String(2 * TOKEN_LOOKUP_BYTES), unique=True)
    salt_hex: Mapped[str] = mapped_column(String(2 * TOKEN_SALT_BYTES))
    digest_hex: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


@dataclass(frozen=True)
class TokenInfo:
    """A token's public facts: its lookup id and life, never its secret or digest."""

    lookup_id: str
    officer_id: int
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``, for listings."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"


@dataclass(frozen=True)
class Founding:
    """The operator founding an institution's roster while it has no active admin (see above).

    ``operator`` is the name the audit log records (``bootstrap``, ``founding``, ``setup``).
    """

    operator: str


@dataclass(frozen=True)
class Institution:
    id: int
    code: str
    name: str


@dataclass(frozen=True)
class Officer:
    """An officer as the workflow sees them: identity, institution, roles, revocation time."""

    id: int
    name: str
    institution_id: int
    institution_code: str
    roles: frozenset[Role]
    revoked_at: datetime | None

    def is_active(self, at: datetime) -> bool:
        """Whether the officer may act at ``at`` (revocation takes effect at its instant)."""
        return self.revoked_at is None or at < self.revoked_at

    def require(self, *roles: Role) -> None:
        """Raise unless the officer holds at least one of ``roles``."""
        if not self.roles.intersection(roles):
            wanted = " or ".join(role.value for role in roles)
            raise NotAuthorisedError(
                f"Officer {self.id} ({self.name}) needs the role {wanted} for this action; "
                f"they hold {', '.join(sorted(r.value for r in self.roles)) or 'no role'}."
            )


def _text(value: str, field: str, max_chars: int) -> str:
    value = value.strip()
    if not value or len(value) > max_chars:
        raise WorkflowInputError(f"The {field} must be 1 to {max_chars} characters long.")
    return value


def _audit(
    session: Session, actor: str, refs: dict[str, str | int], event: str, now: datetime
) -> None:
    audit.append(
        session,
        kind=AuditKind.POLICY_CHANGE,
        actor=actor,
        refs=refs,
        payload={"event": event},
        clock=lambda: now,
    )


RosterActor = Officer | Founding
"""Who changes the roster: an admin (inside its own institution) or the founding operator."""


def _actor_label(actor: RosterActor) -> str:
    """The audit actor: ``officer:<id>`` as the workflow writes it, or the founding operator."""
    return actor.operator if isinstance(actor, Founding) else f"officer:{actor.id}"


def _active_admin_ids(session: Session, institution: Institution, now: datetime) -> list[int]:
    rows = session.scalars(
        select(OfficerRow)
        .join(OfficerRoleRow, OfficerRoleRow.officer_id == OfficerRow.id)
        .where(
            OfficerRow.institution_id == institution.id,
            OfficerRoleRow.role == Role.ADMIN.value,
        )
        .order_by(OfficerRow.id)
    )
    return [row.id for row in rows if row.revoked_at is None or now < row.revoked_at]


def _acting_admin(session: Session, actor: Officer, action: str, now: datetime) -> Officer:
    """``actor`` as stored now, if an active admin; re-read so a stale or altered value counts not."""
    acting = get_officer(session, actor.id)
    acting.require(Role.ADMIN)
    if not acting.is_active(now):
        raise NotAuthorisedError(
            f"Officer {acting.id} ({acting.name}) was revoked at {acting.revoked_at} and cannot "
            f"{action}."
        )
    return acting


def _authorise(
    session: Session, actor: RosterActor, institution: Institution, action: str, now: datetime
) -> None:
    """Raise ``NotAuthorisedError`` unless ``actor`` may ``action`` in ``institution`` at ``now``.

    An officer is re-read from the database: a revoked admin, an officer who lost the admin role,
    or an ``Officer`` value whose institution was altered in memory is judged by what is stored.
    """
    if isinstance(actor, Founding):
        admins = _active_admin_ids(session, institution, now)
        if admins:
            raise NotAuthorisedError(
                f"Institution {institution.code} already has an active admin (officer "
                f"{admins[0]}); founding cannot {action}: only its own admins change its roster."
            )
        return
    acting = _acting_admin(session, actor, action, now)
    if acting.institution_id != institution.id:
        raise NotAuthorisedError(
            f"Officer {acting.id} ({acting.name}) is an admin of {acting.institution_code} and "
            f"cannot {action} of {institution.code}: an admin acts only inside its own "
            "institution."
        )


def add_institution(
    session: Session, code: str, name: str, *, actor: RosterActor, now: datetime
) -> Institution:
    """Register an institution that may take part in spend quorums, with no officers yet.

    Any active admin, or the founding operator, may register one: an empty institution grants
    nobody any power; its first admin comes only from founding (``found_admin``).
    """
    if isinstance(actor, Officer):
        _acting_admin(session, actor, "register an institution", now)
    code = _text(code, "institution code", INSTITUTION_CODE_MAX_CHARS)
    name = _text(name, "institution name", NAME_MAX_CHARS)
    if session.scalar(select(InstitutionRow.id).where(InstitutionRow.code == code)) is not None:
        raise WorkflowInputError(f"The institution code {code!r} is already registered.")
    row = InstitutionRow(code=code, name=name, created_at=now)
    session.add(row)
    session.flush()
    _audit(session, _actor_label(actor), {"institution": code}, "institution_added", now)
    return Institution(row.id, row.code, row.name)


def institution_by_code(session: Session, code: str) -> Institution:
    """The institution registered under ``code``."""
    row = session.scalar(select(InstitutionRow).where(InstitutionRow.code == code))
    if row is None:
        raise UnknownRecordError(f"No institution is registered under the code {code!r}.")
    return Institution(row.id, row.code, row.name)


def list_institutions(session: Session) -> list[Institution]:
    """Every institution, by code."""
    rows = session.scalars(select(InstitutionRow).order_by(InstitutionRow.code))
    return [Institution(row.id, row.code, row.name) for row in rows]


def add_officer(
    session: Session,
    institution_code: str,
    name: str,
    roles: Iterable[Role],
    *,
    actor: RosterActor,
    now: datetime,
) -> Officer:
    """Register an officer of ``institution_code`` holding ``roles``.

    ``actor`` must be an admin of that same institution, or the founding operator while the
    institution has no active admin (module docstring).
    """
    institution = institution_by_code(session, institution_code)
    _authorise(session, actor, institution, "add an officer to the roster", now)
    wanted = frozenset(roles)
    if not wanted:
        raise WorkflowInputError("An officer needs at least one role (roles is empty).")
    row = OfficerRow(
        institution_id=institution.id,
        name=_text(name, "officer name", NAME_MAX_CHARS),
        created_at=now,
    )
    session.add(row)
    session.flush()
    session.add_all(OfficerRoleRow(officer_id=row.id, role=role.value) for role in wanted)
    session.flush()
    _audit(
        session,
        _actor_label(actor),
        {"officer_id": row.id, "institution": institution.code},
        "officer_added",
        now,
    )
    return get_officer(session, row.id)


def found_admin(
    session: Session,
    institution_code: str,
    admin_name: str,
    *,
    operator: str,
    now: datetime,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> tuple[Officer, str]:
    """Create the first admin of an institution that has no active admin, and its token.

    The founding act (module docstring): the operator appoints the admin who then staffs the
    institution. Refused once the institution has an active admin, so it never overrides one.
    Returns the admin and its API token, which is never shown again.
    """
    founding = Founding(operator)
    admin = add_officer(
        session, institution_code, admin_name, [Role.ADMIN], actor=founding, now=now
    )
    return admin, _issue(session, admin, founding, now, random_bytes)


def get_officer(session: Session, officer_id: int) -> Officer:
    """The officer with id ``officer_id``, with their institution and roles."""
    found = session.execute(
        select(OfficerRow, InstitutionRow)
        .join(InstitutionRow, InstitutionRow.id == OfficerRow.institution_id)
        .where(OfficerRow.id == officer_id)
    ).one_or_none()
    if found is None:
        raise UnknownRecordError(f"No officer has the id {officer_id}.")
    officer, institution = found
    roles = session.scalars(
        select(OfficerRoleRow.role).where(OfficerRoleRow.officer_id == officer_id)
    )
    return Officer(
        id=officer.id,
        name=officer.name,
        institution_id=institution.id,
        institution_code=institution.code,
        roles=frozenset(Role(role) for role in roles),
        revoked_at=officer.revoked_at,
    )


def list_officers(session: Session) -> list[Officer]:
    """Every officer, by id."""
    ids = session.scalars(select(OfficerRow.id).order_by(OfficerRow.id))
    return [get_officer(session, officer_id) for officer_id in ids]


def revoke_officer(session: Session, officer_id: int, *, actor: Officer, at: datetime) -> Officer:
    """Revoke the officer from ``at`` on, with their tokens; voiding approvals is the workflow's job.

    ``actor`` must be an active admin of the officer's own institution.
    """
    target = get_officer(session, officer_id)
    _authorise(
        session,
        actor,
        institution_by_code(session, target.institution_code),
        f"revoke officer {officer_id}",
        at,
    )
    row = session.get(OfficerRow, officer_id)
    if row is None:
        raise UnknownRecordError(f"No officer has the id {officer_id}.")
    if row.revoked_at is not None:
        raise WorkflowInputError(f"Officer {officer_id} was already revoked at {row.revoked_at}.")
    row.revoked_at = at
    for token in session.scalars(
        select(ApiTokenRow).where(
            ApiTokenRow.officer_id == officer_id, ApiTokenRow.revoked_at.is_(None)
        )
    ):
        token.revoked_at = at
    session.flush()
    return get_officer(session, officer_id)


def issue_token(
    session: Session,
    officer_id: int,
    *,
    actor: RosterActor,
    now: datetime,
    random_bytes: RandomBytes = secrets.token_bytes,
    ttl: timedelta = DEFAULT_TOKEN_TTL,
) -> str:
    """Create an API token for the officer, valid for ``ttl``, and return it; it is never shown again.

    ``actor`` must be an admin of the officer's own institution (a token is that officer's power,
    so whoever holds it acts for that institution), or the founding operator while the
    institution has no active admin.
    """
    officer = get_officer(session, officer_id)
    _authorise(
        session,
        actor,
        institution_by_code(session, officer.institution_code),
        f"issue a token for officer {officer_id}",
        now,
    )
    return _issue(session, officer, actor, now, random_bytes, ttl)


def _issue(
    session: Session,
    officer: Officer,
    actor: RosterActor,
    now: datetime,
    random_bytes: RandomBytes,
    ttl: timedelta = DEFAULT_TOKEN_TTL,
) -> str:
    officer_id = officer.id
    if not timedelta(minutes=1) <= ttl <= MAX_TOKEN_TTL:
        raise WorkflowInputError(
            f"A token's life must be between one minute and {MAX_TOKEN_TTL.days} days."
        )
    if not officer.is_active(now):
        raise WorkflowInputError(f"Officer {officer_id} is revoked and cannot receive a token.")
    lookup = random_bytes(TOKEN_LOOKUP_BYTES).hex()
    salt = random_bytes(TOKEN_SALT_BYTES)
    secret = random_bytes(TOKEN_SECRET_BYTES).hex()
    session.add(
        ApiTokenRow(
            officer_id=officer_id,
            lookup_id=lookup,
            salt_hex=salt.hex(),
            digest_hex=_digest(salt, secret),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    session.flush()
    _audit(
        session,
        _actor_label(actor),
        {"officer_id": officer_id, "token_lookup": lookup, "expires_at": (now + ttl).isoformat()},
        "token_issued",
        now,
    )
    return f"{TOKEN_PREFIX}_{lookup}_{secret}"


def _digest(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode("ascii")).hexdigest()


_REFUSED_MESSAGE = "The API token is not valid: it is malformed, unknown, expired or revoked."


def authenticate(session: Session, token: str, *, now: datetime) -> Officer:
    """The active officer holding ``token``; one message for every failure so none leaks which."""
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[2].isascii():
        raise AuthenticationError(_REFUSED_MESSAGE)
    # One round trip: the token, its officer, their institution and one row per role (every
    # request authenticates, so this is on the path of every read and write of the API).
    found = session.execute(
        select(
            ApiTokenRow.salt_hex,
            ApiTokenRow.digest_hex,
            ApiTokenRow.revoked_at,
            ApiTokenRow.expires_at,
            OfficerRow.id,
            OfficerRow.name,
            OfficerRow.revoked_at.label("officer_revoked_at"),
            InstitutionRow.id.label("institution_id"),
            InstitutionRow.code,
            OfficerRoleRow.role,
        )
        .join(OfficerRow, OfficerRow.id == ApiTokenRow.officer_id)
        .join(InstitutionRow, InstitutionRow.id == OfficerRow.institution_id)
        .outerjoin(OfficerRoleRow, OfficerRoleRow.officer_id == OfficerRow.id)
        .where(ApiTokenRow.lookup_id == parts[1])
    ).all()
    if not found:
        raise AuthenticationError(_REFUSED_MESSAGE)
    row = found[0]
    expected = row.digest_hex
    given = _digest(bytes.fromhex(row.salt_hex), parts[2])
    if (
        not hmac.compare_digest(expected, given)
        or row.revoked_at is not None
        or now >= row.expires_at
    ):
        raise AuthenticationError(_REFUSED_MESSAGE)
    officer = Officer(
        id=row.id,
        name=row.name,
        institution_id=row.institution_id,
        institution_code=row.code,
        roles=frozenset(Role(r.role) for r in found if r.role is not None),
        revoked_at=row.officer_revoked_at,
    )
    if not officer.is_active(now):
        raise AuthenticationError(_REFUSED_MESSAGE)
    return officer


def _token_info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(row.lookup_id, row.officer_id, row.created_at, row.expires_at, row.revoked_at)


def list_tokens(session: Session, officer_id: int) -> list[TokenInfo]:
    """An officer's tokens, oldest first: lookup ids and lives, never secrets."""
    get_officer(session, officer_id)
    rows = session.scalars(
        select(ApiTokenRow).where(ApiTokenRow.officer_id == officer_id).order_by(ApiTokenRow.id)
    )
    return [_token_info(row) for row in rows]


def revoke_token(session: Session, lookup_id: str, *, actor: Officer, now: datetime) -> TokenInfo:
    """Revoke one token by its public lookup id (the middle part of ``trs_<lookup>_<secret>``).

    Its holder may revoke it (a token left on a shared machine), and so may an admin of the
    holder's own institution; the officer and their other tokens are untouched.
    """
    row = session.scalar(
        select(ApiTokenRow).where(ApiTokenRow.lookup_id == lookup_id).with_for_update()
    )
    if row is None:
        raise UnknownRecordError(f"No token has the lookup id {lookup_id!r}.")
    if row.officer_id != actor.id:
        holder = get_officer(session, row.officer_id)
        _authorise(
            session,
            actor,
            institution_by_code(session, holder.institution_code),
            f"revoke a token of officer {holder.id}",
            now,
        )
    if row.revoked_at is not None:
        raise WorkflowInputError(f"Token {lookup_id} was already revoked at {row.revoked_at}.")
    row.revoked_at = now
    session.flush()
    _audit(
        session,
        _actor_label(actor),
        {"officer_id": row.officer_id, "token_lookup": lookup_id},
        "token_revoked",
        now,
    )
    return _token_info(row)
