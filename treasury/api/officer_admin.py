"""The officer-administration routes: list officers, add one, issue a token, revoke.

Each route calls the same domain functions as the CLI (``treasury.officers``, and the workflow
for revocation, which also voids the officer's approvals of unsigned spends), so the admin scope
is enforced there and answered here: an admin acts only inside its own institution, and adding
an officer to, issuing a token for, or revoking an officer of another institution is a 403 whose
``detail`` names both institutions, with nothing written.

Founding an institution's first admin is deliberately not offered: it is the operator's act with
the database credentials (``treasury officers found``), never something an API token can do.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from custody.clock import Clock, utc_now
from treasury import officers
from treasury.api.schemas import RecordId, SingleLineText
from treasury.officers import INSTITUTION_CODE_MAX_CHARS, NAME_MAX_CHARS, Officer, Role
from treasury.proposals import Workflow


class OfficerBody(BaseModel):
    """A new officer of the admin's own institution."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    institution: SingleLineText = Field(
        min_length=1, max_length=INSTITUTION_CODE_MAX_CHARS, examples=["MOF"]
    )
    name: SingleLineText = Field(min_length=1, max_length=NAME_MAX_CHARS)
    roles: list[Role] = Field(min_length=1, description="One or more roles to grant.")


class OfficerOut(BaseModel):
    id: int
    name: str
    institution: str
    roles: list[Role]
    revoked_at: datetime | None

    @classmethod
    def of(cls, officer: Officer) -> OfficerOut:
        return cls(
            id=officer.id,
            name=officer.name,
            institution=officer.institution_code,
            roles=sorted(officer.roles),
            revoked_at=officer.revoked_at,
        )


class TokenOut(BaseModel):
    """A freshly issued API token: shown in this answer only; the database keeps its hash."""

    officer_id: int
    token: str = Field(repr=False)


def officer_admin_router(
    workflow: Workflow,
    sessions: sessionmaker[Session],
    authenticated: Callable[..., Officer],
    *,
    clock: Clock = utc_now,
) -> APIRouter:
    """The routes under ``/officers``; ``authenticated`` is the API's bearer-token dependency."""
    router = APIRouter(prefix="/officers", tags=["officers"])
    acting: Any = Depends(authenticated)

    @router.get("")
    def list_officers(actor: Officer = acting) -> list[OfficerOut]:
        """Every officer with institution, roles and revocation time (any role)."""
        actor.require(*Role)
        with sessions() as session:
            return [OfficerOut.of(o) for o in officers.list_officers(session)]

    @router.post("", status_code=status.HTTP_201_CREATED)
    def add_officer(body: OfficerBody, actor: Officer = acting) -> OfficerOut:
        """Add an officer to your own institution (admin); another institution's is a 403."""
        with sessions.begin() as session:
            added = officers.add_officer(
                session, body.institution, body.name, body.roles, actor=actor, now=clock()
            )
        return OfficerOut.of(added)

    @router.post("/{officer_id}/tokens", status_code=status.HTTP_201_CREATED)
    def issue_token(officer_id: RecordId, actor: Officer = acting) -> TokenOut:
        """Issue an API token for an officer of your institution (admin), shown once."""
        with sessions.begin() as session:
            token = officers.issue_token(session, officer_id, actor=actor, now=clock())
        return TokenOut(officer_id=officer_id, token=token)

    @router.post("/{officer_id}/revoke")
    def revoke(officer_id: RecordId, actor: Officer = acting) -> OfficerOut:
        """Revoke an officer of your institution now and void their unsigned approvals (admin)."""
        return OfficerOut.of(workflow.revoke_officer(actor, officer_id))

    return router


__all__ = ["OfficerBody", "OfficerOut", "TokenOut", "officer_admin_router"]
