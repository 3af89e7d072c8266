"""The FastAPI application: one route per workflow operation, errors mapped to HTTP statuses.

Status codes: 401 missing or bad token, 403 wrong role, 404 unknown record, 409 refused by the
state machine, the policy (the body lists each reason code) or custody, 422 bad input (the
body's ``detail`` is one sentence naming the field), 502 a node failed, 503 not configured.
Every error of the ``treasury``, ``custody`` and ``reporting`` packages is answered with a JSON
``detail`` (``treasury.api.errors``); the proposal a request is about is on its every log line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from custody.authority import StatementKind
from custody.clock import Clock, utc_now
from treasury import audit, ledger
from treasury.api.console import console_router
from treasury.api.errors import DOMAIN_ERRORS, status_of
from treasury.api.holder_proofs import holder_proofs_router
from treasury.api.input_refusals import record_input_refusal
from treasury.api.limits import RequestLimits, restore_recursion_limit
from treasury.api.officer_admin import officer_admin_router
from treasury.api.schemas import (
    RECORD_ID_MAX,
    UNSTORABLE_TEXT,
    ApproveBody,
    AuditHeadOut,
    AuditVerifyOut,
    BalanceOut,
    DecisionOut,
    ProposalOut,
    ProposeBody,
    ReasonBody,
    RecordId,
    StatementOut,
    refusals,
)
from treasury.authority.statements import signed_from_json
from treasury.logs import bind_ids
from treasury.officers import Officer, Role, authenticate
from treasury.policy.rules import PolicyRefusedError
from treasury.proposals import ChainSpender, ProposalState, Workflow
from treasury.settings import Settings
from treasury.wiring import resolve_asset
from treasury.workflow_exceptions import (
    AuthenticationError,
    NotConfiguredError,
)

log = logging.getLogger(__name__)

_bearer = HTTPBearer(
    auto_error=False, description="An officer's API token (treasury officers token)."
)


def _officer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Officer:
    """The officer whose bearer token came with the request (401 otherwise)."""
    token = _bearer_token(credentials)
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        return _authenticate_in(session, request, token)


def _bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The token of a bearer ``Authorization`` header (401, before any database work, if none)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationError(
            "An API token is required: send the header 'Authorization: Bearer <token>'."
        )
    return credentials.credentials


def _read_without_transaction(session: Session) -> None:
    """On PostgreSQL, run ``session``'s statements each in its own implicit transaction.

    For a session that only reads, this changes nothing a reader sees: under PostgreSQL's
    READ COMMITTED (the treasury's level) every statement takes its own snapshot inside a
    transaction too. It saves the ``BEGIN`` and ``ROLLBACK`` round trips the driver would
    otherwise make around the reads of every request. SQLite has no round trips to save.
    Must be called before the session first uses its connection.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def _authenticate_in(session: Session, request: Request, token: str) -> Officer:
    """The officer holding ``token``, authenticated in the read-only ``session`` (401 otherwise)."""
    _read_without_transaction(session)
    officer = authenticate(session, token, now=request.app.state.clock())
    # Kept for the 422 handler: a body refused for unstorable text is recorded under its sender.
    request.state.officer = officer
    return officer


Actor = Annotated[Officer, Depends(_officer)]


@dataclass(frozen=True)
class Reader:
    """An authenticated officer and the open session their token was checked in.

    The read-only routes run their query in this same session: one connection checkout (and
    its liveness ping) and one thread-pool trip fewer per request than authenticating in a
    session of its own. The route closes the session when it is done.
    """

    officer: Officer
    session: Session


async def _reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AsyncIterator[Reader]:
    """``_officer`` for read-only routes: the officer, and the session they were checked in.

    The token is checked exactly as ``_officer`` checks it, before any parameter is validated;
    the session is closed however the request ends (in a worker thread if it still holds a
    connection, since closing it then talks to the database).
    """
    token = _bearer_token(credentials)
    sessions: sessionmaker[Session] = request.app.state.sessions
    session = sessions()
    try:
        officer = await run_in_threadpool(_authenticate_in, session, request, token)
        yield Reader(officer, session)
    finally:
        if session.get_transaction() is not None:
            await run_in_threadpool(session.close)
        else:
            session.close()


Reading = Annotated[Reader, Depends(_reader)]

_BALANCES = TypeAdapter(list[BalanceOut])


def _json(model: BaseModel, status_code: int = status.HTTP_200_OK) -> Response:
    """``model`` as the JSON body FastAPI would send for it, serialised once, here.

    A sync route's returned model is otherwise validated again against the route's response
    model on a second trip through the thread pool, then serialised: on the hot routes that
    second validation and thread hop are pure overhead, since the model was just built (and
    validated) from the workflow's view. The route keeps ``response_model`` for its schema.
    """
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


async def _bind_request_ids(request: Request) -> None:
    """Put the request's business ids (the proposal in its path) on every line it logs.

    Async, so it runs in the request's own task, whose context the route's thread inherits.
    """
    bind_ids(proposal_id=_path_proposal_id(request) or request.path_params.get("proposal_id"))


def _path_proposal_id(request: Request) -> int | None:
    """The proposal id in the request's path, if it is one a proposal can have."""
    text = str(request.path_params.get("proposal_id", ""))
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 1 <= value <= RECORD_ID_MAX else None


async def _record_unstorable_text(
    request: Request, errors: Sequence[tuple[str, Mapping[str, Any]]]
) -> None:
    """Record a refusal for control characters in the audit log, if an officer sent it.

    The officer is the one ``_officer`` authenticated for this request: FastAPI resolves the
    route's dependencies before it validates the body, so a refused body has a known sender.
    """
    unstorable = [(where, error) for where, error in errors if error["type"] == UNSTORABLE_TEXT]
    officer = getattr(request.state, "officer", None)
    if not unstorable or officer is None:
        return
    fields = [where for where, _error in unstorable]
    found = [point for _where, error in unstorable for point in str(error["ctx"]["found"]).split()]
    route = request.scope.get("route")
    await run_in_threadpool(
        record_input_refusal,
        request.app.state.sessions,
        officer,
        method=request.method,
        route=getattr(route, "path", request.url.path),
        fields=fields,
        found=found,
        proposal_id=_path_proposal_id(request),
        clock=request.app.state.clock,
    )


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    """Any package's error as JSON: its sentence, under the status ``status_of`` gives it."""
    code = status_of(exc) if isinstance(exc, DOMAIN_ERRORS) else 500
    if code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
        log.warning("request failed: %s", exc, extra={"status": code, "error": type(exc).__name__})
    headers = {"WWW-Authenticate": "Bearer"} if code == status.HTTP_401_UNAUTHORIZED else None
    return JSONResponse(status_code=code, content={"detail": str(exc)}, headers=headers)


def create_app(
    workflow: Workflow,
    sessions: sessionmaker[Session],
    *,
    spenders: Mapping[str, ChainSpender] | None = None,
    clock: Clock = utc_now,
    settings: Settings | None = None,
) -> FastAPI:
    """The API over ``workflow``; ``spenders`` (asset -> chain) enable preparing transactions.

    ``settings`` are the ones the server was started with, kept as ``app.state.settings``.
    """
    chains = dict(spenders or {})
    app = FastAPI(
        title="National reserve treasury",
        version="1",
        description="Spend proposals under policy, the state ledger and the audit log.",
        dependencies=[Depends(_bind_request_ids)],
    )
    app.state.sessions = sessions
    app.state.clock = clock
    app.state.settings = settings or Settings()
    # Outermost: every body is bounded in size and nesting before routing, auth or parsing.
    app.add_middleware(RequestLimits)
    restore_recursion_limit()

    @app.exception_handler(PolicyRefusedError)
    async def _refused(_request: Request, exc: PolicyRefusedError) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_409_CONFLICT,
            content={
                "detail": str(exc),
                "policy_version": exc.decision.policy_version,
                "reasons": [r.model_dump() for r in refusals(exc.decision)],
            },
        )

    for root in DOMAIN_ERRORS:
        app.add_exception_handler(root, _domain_error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        located = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"] if part != "body")
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == UNSTORABLE_TEXT:
                message = f"{where.rpartition('.')[2]} {message}"
            problems.append(f"{where}: {message}")
            located.append((where, error))
        await _record_unstorable_text(request, located)
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": "Invalid request: " + "; ".join(problems) + ".", "errors": problems},
        )

    @app.post(
        "/proposals",
        status_code=status.HTTP_201_CREATED,
        tags=["spend"],
        response_model=ProposalOut,
    )
    def propose(body: ProposeBody, actor: Actor) -> Response:
        """Propose a spend citing a legal basis (proposer role); the asset is named by its code
        (``BTC``, ``ERC20:<contract>``) or a tracked token's symbol (``KGST``), as on the CLI."""
        with sessions() as session:
            code = resolve_asset(session, body.asset, app.state.settings)
        view = workflow.propose(
            actor,
            asset=code,
            amount=int(body.amount),
            destination=body.destination,
            purpose=body.purpose,
            legal_basis=body.legal_basis,
        )
        return _json(ProposalOut.of(view), status.HTTP_201_CREATED)

    @app.post("/proposals/{proposal_id}/prepare", tags=["spend"])
    def prepare(proposal_id: RecordId, actor: Actor) -> ProposalOut:
        """Build the proposal's transaction on its chain; approvers review and approve its hash."""
        view = workflow.status(actor, proposal_id)
        spender = chains.get(view.asset)
        if spender is None:
            raise NotConfiguredError(f"No chain spender is configured for {view.asset}.")
        return ProposalOut.of(workflow.prepare(actor, proposal_id, spender))

    @app.post("/proposals/{proposal_id}/approve", tags=["spend"], response_model=ProposalOut)
    def approve(proposal_id: RecordId, body: ApproveBody, actor: Actor) -> Response:
        """Approve the prepared transaction by its hash for your institution (approver role).

        Once the roster chain is founded, ``signed`` (your signed statement, see ``statement``)
        is required; it is verified and stored with the approval.
        """
        signed = None if body.signed is None else signed_from_json(body.signed)
        return _json(ProposalOut.of(workflow.approve(actor, proposal_id, body.tx_hash, signed)))

    @app.get("/proposals/{proposal_id}/statement", tags=["spend"])
    def statement(
        proposal_id: RecordId, actor: Actor, kind: StatementKind = StatementKind.APPROVE
    ) -> StatementOut:
        """The statement you sign to approve (or veto) the proposal as it stands, and its digest."""
        return StatementOut.of(workflow.statement(actor, proposal_id, kind))

    @app.post("/proposals/{proposal_id}/reject", tags=["spend"])
    def reject(proposal_id: RecordId, body: ReasonBody, actor: Actor) -> ProposalOut:
        """Reject an unsigned proposal (approver or admin; its proposer may withdraw it)."""
        return ProposalOut.of(workflow.reject(actor, proposal_id, body.reason))

    @app.post("/proposals/{proposal_id}/veto", tags=["spend"])
    def veto(proposal_id: RecordId, body: ReasonBody, actor: Actor) -> ProposalOut:
        """Cancel a spend during its veto window (oversight role)."""
        return ProposalOut.of(workflow.veto(actor, proposal_id, body.reason))

    @app.get("/proposals/{proposal_id}", tags=["spend"], response_model=ProposalOut)
    def proposal_status(proposal_id: RecordId, reader: Reading) -> Response:
        """A proposal's state, transaction, approvals and signatures (any role)."""
        with reader.session as session:
            view = workflow.status_in(session, reader.officer, proposal_id)
        return _json(ProposalOut.of(view))

    @app.get("/proposals", tags=["spend"])
    def list_proposals(actor: Actor, state: ProposalState | None = None) -> list[ProposalOut]:
        """Proposals, newest first, optionally in one state (any role)."""
        return [ProposalOut.of(view) for view in workflow.list_proposals(actor, state)]

    @app.get("/proposals/{proposal_id}/decisions", tags=["spend"])
    def proposal_decisions(proposal_id: RecordId, actor: Actor) -> list[DecisionOut]:
        """Every policy decision about a proposal, with policy version and inputs digest."""
        return [DecisionOut.of(d) for d in workflow.decisions(actor, proposal_id)]

    @app.get("/ledger/balances", tags=["ledger"], response_model=list[BalanceOut])
    def ledger_balances(reader: Reading) -> Response:
        """Every ledger account's posted, pending and available balance (read-only, any role)."""
        reader.officer.require(*Role)
        with reader.session as session:
            balances = [
                BalanceOut(
                    account=b.account,
                    asset=b.asset,
                    posted=str(b.posted),
                    pending=str(b.pending),
                    available=str(b.available),
                )
                for b in ledger.balances(session)
            ]
        return Response(_BALANCES.dump_json(balances), media_type="application/json")

    @app.get("/audit/head", tags=["audit"], response_model=AuditHeadOut)
    def audit_head(reader: Reading) -> Response:
        """The audit log's newest sequence and hash (what reporting anchors on chain)."""
        reader.officer.require(*Role)
        with reader.session as session:
            head = audit.head(session)
        return _json(AuditHeadOut(sequence=head.sequence, hash=head.hash))

    @app.get("/audit/verify", tags=["audit"])
    def audit_verify(actor: Actor) -> AuditVerifyOut:
        """Walk the audit hash chain and report the first broken link (auditor or admin)."""
        actor.require(Role.AUDITOR, Role.ADMIN, Role.OVERSIGHT)
        with sessions() as session:
            verdict = audit.verify(session)
        return AuditVerifyOut(
            ok=verdict.ok,
            events_checked=verdict.events_checked,
            head=AuditHeadOut(sequence=verdict.head.sequence, hash=verdict.head.hash),
            problem=None if verdict.brk is None else verdict.brk.message,
        )

    app.include_router(officer_admin_router(workflow, sessions, _officer, clock=clock))
    app.include_router(console_router(workflow, sessions, clock=clock))
    app.include_router(holder_proofs_router(sessions))
    return app
