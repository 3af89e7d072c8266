"""The console's read-only views: balances, reconciliation alarms, audit log, policy, allowlist.

An officer deciding on a spend needs to see what the reserve holds, whether the books were last
found to agree with the chains (and what to do if not), what the audit log says and whether its
hash chain holds, which policy is enforced and which destinations are allowed. These pages show
that in the officer's language (``t``), amounts in coin units with the exact base units on hover
(``units``), and tables that reflow into labelled cards on a phone. They read the same tables the
workflow and the policy engine read, and change nothing.

The router also serves the bundled key-file signer (``/console/static/keyfile.js``, built by
``scripts/install-console-js.sh`` from ``console_js/``), which the proposal page's key-file form
(``keyfile_sign.html``) loads; see ``console_keyfile`` for the server side.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse, PlainTextResponse, Response
from markupsafe import Markup, escape
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from custody.clock import Clock, utc_now
from custody.exceptions import CustodyError
from reporting.site.i18n import Catalogue
from treasury import audit
from treasury.api.console_pages import PREFIX, SECURITY_HEADERS, ConsolePages
from treasury.exceptions import TreasuryError
from treasury.ledger.balances import balances
from treasury.ledger.models import Account, AccountType
from treasury.officers import InstitutionRow, OfficerRow, Role
from treasury.policy import ReconciliationCheckpointRow
from treasury.policy.document import StoredPolicy
from treasury.policy.tables import (
    AllowlistActivationRow,
    AllowlistApprovalRow,
    AllowlistEntryRow,
    LegalBasisCeilingRow,
    LegalBasisRow,
    PolicyVersionRow,
)
from treasury.policy.versions import current_policy
from treasury.proposals import COMMITTED_STATES, SpendProposalRow
from treasury.reconcile import list_alarms
from treasury.translations import TranslationKind, TranslationRow, translations_by_key

__all__ = [
    "AUDIT_PAGE_SIZE",
    "KEYFILE_BUNDLE",
    "console_views_router",
    "duration",
    "latest_checkpoints",
]

KEYFILE_BUNDLE = Path(__file__).resolve().parents[2] / ".nodes" / "npm-console" / "keyfile.js"
"""The key-file signer bundled by ``scripts/install-console-js.sh`` (not in git)."""
VIEWS_STYLE = Path(__file__).resolve().parent / "console_templates" / "views.css"
"""The views' own stylesheet (the core's ``console.css`` styles the rest)."""
AUDIT_PAGE_SIZE = 25
"""Audit events per page, newest first."""
CLEARED_ALARMS_SHOWN = 20
"""Cleared alarms listed under the open ones (the newest)."""
PAYLOAD_SHOWN_CHARS = 240
"""How much of an audit event's payload JSON the table shows before "…" (the rest on hover)."""
ACCOUNT_TYPE_ORDER = (
    AccountType.ASSET,
    AccountType.LIABILITY,
    AccountType.EQUITY,
    AccountType.INCOME,
    AccountType.EXPENSE,
)
"""Holdings first, then what they are owed to, then the flows."""


# --- Facts the pages show ----------------------------------------------------------------------


@dataclass(frozen=True)
class AccountLine:
    """One ledger account's balance (signed on its normal side), in base units."""

    code: str
    name: str
    type: str
    posted: int
    pending: int
    available: int


@dataclass(frozen=True)
class AssetBalances:
    """Every account of one asset, and what the reserve's asset accounts hold in total."""

    asset: str
    held_posted: int
    held_available: int
    accounts: tuple[AccountLine, ...]


def asset_balances(session: Session) -> list[AssetBalances]:
    """Each asset's accounts with their balances, asset accounts first, assets by code."""
    rows = {row.code: row for row in session.scalars(select(Account))}
    grouped: dict[str, list[AccountLine]] = {}
    for found in balances(session):
        row = rows[found.account]
        grouped.setdefault(found.asset, []).append(
            AccountLine(
                code=found.account,
                name=row.name,
                type=row.type.value,
                posted=found.posted,
                pending=found.pending,
                available=found.available,
            )
        )
    order = {kind.value: position for position, kind in enumerate(ACCOUNT_TYPE_ORDER)}
    result = []
    for asset in sorted(grouped):
        lines = sorted(grouped[asset], key=lambda line: (order.get(line.type, 99), line.code))
        held = [line for line in lines if line.type == AccountType.ASSET.value]
        result.append(
            AssetBalances(
                asset=asset,
                held_posted=sum(line.posted for line in held),
                held_available=sum(line.available for line in held),
                accounts=tuple(lines),
            )
        )
    return result


@dataclass(frozen=True)
class Checkpoint:
    """The newest reconciliation result of one asset, as the spend policy reads it."""

    asset: str
    outcome: str
    checked_at: datetime
    detail: str
    runs: int
    """How many results this asset has in all (only the newest counts)."""
    stale: bool
    """Older than the policy's ``reconciliation_max_age_seconds``: spends are refused."""


def latest_checkpoints(
    session: Session, *, now: datetime, max_age: timedelta | None
) -> list[Checkpoint]:
    """The newest reconciliation result per asset (the one the policy's gate reads), by asset."""
    newest: dict[str, ReconciliationCheckpointRow] = {}
    runs: dict[str, int] = {}
    for row in session.scalars(
        select(ReconciliationCheckpointRow).order_by(
            ReconciliationCheckpointRow.checked_at.desc(), ReconciliationCheckpointRow.id.desc()
        )
    ):
        newest.setdefault(row.asset, row)
        runs[row.asset] = runs.get(row.asset, 0) + 1
    return [
        Checkpoint(
            asset=asset,
            outcome=row.outcome,
            checked_at=row.checked_at,
            detail=row.detail,
            runs=runs[asset],
            stale=max_age is not None and row.checked_at < now - max_age,
        )
        for asset, row in sorted(newest.items())
    ]


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit log, newest first, and the verdict on the whole hash chain."""

    events: tuple[audit.AuditEventRecord, ...]
    page: int
    pages: int
    total: int
    verdict: audit.ChainVerdict


def audit_page(session: Session, page: int) -> AuditPage:
    """Page ``page`` (1 = newest) of the audit log; the chain is walked from genesis to head."""
    total = session.scalar(select(func.count()).select_from(audit.AuditEvent)) or 0
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = session.scalars(
        select(audit.AuditEvent)
        .order_by(audit.AuditEvent.sequence.desc())
        .offset((page - 1) * AUDIT_PAGE_SIZE)
        .limit(AUDIT_PAGE_SIZE)
    )
    events = tuple(audit.AuditEventRecord.of(row) for row in rows)
    return AuditPage(events, page, pages, total, audit.verify(session))


@dataclass(frozen=True)
class Decree:
    """A legal basis: its ceiling per asset, what committed spends use of it, and its expiry."""

    reference: str
    title: str
    expires_at: datetime
    expired: bool
    ceilings: tuple[tuple[str, int, int], ...]
    """(asset, ceiling, committed) in base units."""


@dataclass(frozen=True)
class PolicyView:
    policy: StoredPolicy
    created_at: datetime
    created_by: str
    decrees: tuple[Decree, ...]


def policy_view(session: Session, now: datetime) -> PolicyView:
    """The enforced (newest) policy version and every decree with its use."""
    policy = current_policy(session)
    row = session.get(PolicyVersionRow, policy.version)
    created_at = row.created_at if row is not None else now
    created_by = _officer_names(session).get(row.created_by, "—") if row is not None else "—"
    committed: dict[tuple[int, str], int] = {}
    for basis_id, asset, amount in session.execute(
        select(
            SpendProposalRow.legal_basis_id, SpendProposalRow.asset, SpendProposalRow.amount
        ).where(SpendProposalRow.state.in_([state.value for state in COMMITTED_STATES]))
    ):
        committed[(basis_id, asset)] = committed.get((basis_id, asset), 0) + int(amount)
    decrees = []
    for basis in session.scalars(select(LegalBasisRow).order_by(LegalBasisRow.expires_at.desc())):
        ceilings = session.scalars(
            select(LegalBasisCeilingRow)
            .where(LegalBasisCeilingRow.legal_basis_id == basis.id)
            .order_by(LegalBasisCeilingRow.asset)
        )
        decrees.append(
            Decree(
                reference=basis.reference,
                title=basis.title,
                expires_at=basis.expires_at,
                expired=basis.expires_at <= now,
                ceilings=tuple(
                    (c.asset, int(c.ceiling), committed.get((basis.id, c.asset), 0))
                    for c in ceilings
                ),
            )
        )
    return PolicyView(policy, created_at, created_by, tuple(decrees))


@dataclass(frozen=True)
class AllowlistLine:
    """One allowlisted (or requested) destination."""

    id: int
    asset: str
    address: str
    label: str
    requested_by: str
    requested_at: datetime
    approvals: tuple[str, ...]
    """The approving institutions' codes."""
    active_from: datetime | None
    state: str
    """``active``, ``waiting`` (quorum reached, delay running) or ``pending`` (approvals missing)."""


def allowlist_lines(session: Session, now: datetime) -> list[AllowlistLine]:
    """Every allowlist entry, newest request first, with who asked, who approved, and its state."""
    names = _officer_names(session)
    codes: dict[int, str] = {
        institution_id: code
        for institution_id, code in session.execute(select(InstitutionRow.id, InstitutionRow.code))
    }
    approvals: dict[int, list[str]] = {}
    for entry_id, institution_id in session.execute(
        select(AllowlistApprovalRow.entry_id, AllowlistApprovalRow.institution_id)
    ):
        approvals.setdefault(entry_id, []).append(codes.get(institution_id, "?"))
    active: dict[int, datetime] = {
        entry_id: active_from
        for entry_id, active_from in session.execute(
            select(AllowlistActivationRow.entry_id, AllowlistActivationRow.active_from)
        )
    }
    lines = []
    for row in session.scalars(
        select(AllowlistEntryRow).order_by(
            AllowlistEntryRow.requested_at.desc(), AllowlistEntryRow.id.desc()
        )
    ):
        active_from = active.get(row.id)
        state = "pending" if active_from is None else "active" if active_from <= now else "waiting"
        lines.append(
            AllowlistLine(
                id=row.id,
                asset=row.asset,
                address=row.address,
                label=row.label,
                requested_by=names.get(row.requested_by, "—"),
                requested_at=row.requested_at,
                approvals=tuple(sorted(approvals.get(row.id, []))),
                active_from=active_from,
                state=state,
            )
        )
    return lines


def _officer_names(session: Session) -> dict[int, str]:
    """``name (INSTITUTION)`` of every officer by id."""
    return {
        officer_id: f"{name} ({code})"
        for officer_id, name, code in session.execute(
            select(OfficerRow.id, OfficerRow.name, InstitutionRow.code).join(
                InstitutionRow, InstitutionRow.id == OfficerRow.institution_id
            )
        )
    }


TRANSLATED_KINDS = (TranslationKind.ACCOUNT, TranslationKind.LEGAL_BASIS, TranslationKind.PAYEE)
"""The officers' texts these views show: account names, decree titles, payee labels."""


def _wordings(session: Session) -> dict[TranslationKind, dict[str, dict[str, str]]]:
    """The translations in force of the texts the views show (none before the table exists)."""
    if not inspect(session.connection()).has_table(TranslationRow.__tablename__):
        return {}
    return {kind: translations_by_key(session, kind) for kind in TRANSLATED_KINDS}


# --- Words that depend on the language ---------------------------------------------------------


def duration(catalogue: Catalogue, span: timedelta) -> str:
    """A span as a reader says it: ``3 d 4 h``, ``1 d``, ``2 h 5 min``, ``6 h`` or ``7 min``."""
    minutes = max(0, int(span.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        if hours:
            return catalogue.text("views.span.days_hours", days=days, hours=hours)
        return catalogue.text("views.span.days", days=days)
    if hours:
        if minutes:
            return catalogue.text("views.span.hours_minutes", hours=hours, minutes=minutes)
        return catalogue.text("views.span.hours", hours=hours)
    return catalogue.text("views.span.minutes", minutes=minutes)


_BACKTICKED = re.compile(r"`([^`]+)`")


def with_code(text: str) -> Markup:
    """A message whose `backticked` parts are commands: escaped, with those parts as <code>."""
    escaped = str(escape(text))  # every character of the message escaped first
    return Markup(_BACKTICKED.sub(r"<code>\1</code>", escaped))  # noqa: S704 (escaped above)


# --- The router --------------------------------------------------------------------------------


def console_views_router(sessions: sessionmaker[Session], *, clock: Clock = utc_now) -> APIRouter:
    """The views' routes under ``/console``; ``console.console_router`` includes them first."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    pages = ConsolePages(sessions, clock=clock)

    def view(
        request: Request, name: str, gather: Callable[[Session, datetime], dict[str, Any]]
    ) -> Response:
        """Render ``name`` for any officer of the live session with what ``gather`` reads."""
        found = pages.officer_of(request)
        if found is None:
            return pages.to_login()
        actor, secret = found
        now = clock()
        catalogue = pages.catalogue(request)
        try:
            actor.require(*Role)
            with sessions() as session:
                context = gather(session, now)
                wordings = _wordings(session)
        except (TreasuryError, CustodyError) as failure:
            return pages.error(request, actor, secret, failure)
        lang = catalogue.code

        def translated(kind: str, key: str, original: str) -> str:
            """The officers' translation of a record's text into the page's language, if any."""
            return wordings.get(TranslationKind(kind), {}).get(key, {}).get(lang, original)

        return pages.render(
            request,
            name,
            officer=actor,
            secret=secret,
            now=now,
            age=lambda moment: duration(catalogue, now - moment),
            age_until=lambda moment: duration(catalogue, moment - now),
            kind_name=lambda kind: catalogue.messages.get(f"views.audit.kind.{kind}", kind),
            span=lambda seconds: duration(catalogue, timedelta(seconds=seconds)),
            view_name=name,
            translated=translated,
            coded=with_code,
            **context,
        )

    @router.get("/static/keyfile.js")
    def keyfile_script() -> Response:
        if not KEYFILE_BUNDLE.is_file():
            return PlainTextResponse(
                "The key-file signer is not built: run scripts/install-console-js.sh "
                f"(it writes {KEYFILE_BUNDLE.name} into .nodes/npm-console/).",
                status_code=status.HTTP_404_NOT_FOUND,
                headers=SECURITY_HEADERS,
            )
        return FileResponse(
            KEYFILE_BUNDLE, media_type="text/javascript; charset=utf-8", headers=SECURITY_HEADERS
        )

    @router.get("/static/views.css")
    def views_style() -> Response:
        return FileResponse(
            VIEWS_STYLE, media_type="text/css; charset=utf-8", headers=SECURITY_HEADERS
        )

    @router.get("/balances")
    def balances_page(request: Request) -> Response:
        return view(request, "balances", lambda session, _now: {"assets": asset_balances(session)})

    @router.get("/alarms")
    def alarms_page(request: Request) -> Response:
        def gather(session: Session, now: datetime) -> dict[str, Any]:
            tables = inspect(session.connection())
            available = tables.has_table("reconcile_alarms")
            raised = list_alarms(session) if available else []
            try:
                max_age_s: int | None = current_policy(
                    session
                ).document.reconciliation_max_age_seconds
            except TreasuryError:
                max_age_s = None  # no policy yet: nothing is stale, and nothing may be spent
            max_age = None if max_age_s is None else timedelta(seconds=max_age_s)
            return {
                "alarms_available": available,
                "open_alarms": [a for a in raised if a.open],
                "cleared_alarms": [a for a in raised if not a.open][:CLEARED_ALARMS_SHOWN],
                "checkpoints": latest_checkpoints(session, now=now, max_age=max_age),
                "max_age_s": max_age_s,
            }

        return view(request, "alarms", gather)

    @router.get("/audit")
    def audit_log(request: Request, page: int = 1) -> Response:
        def gather(session: Session, _now: datetime) -> dict[str, Any]:
            found = audit_page(session, page)
            names = _officer_names(session)
            return {
                "log": found,
                "actor_name": lambda actor: _actor_name(actor, names),
                "payload_text": lambda record: _payload_text(record.payload),
                "refs_text": lambda record: _refs_text(record.refs),
            }

        return view(request, "audit", gather)

    @router.get("/policy")
    def policy_page(request: Request) -> Response:
        return view(request, "policy", lambda session, now: {"view": policy_view(session, now)})

    @router.get("/allowlist")
    def allowlist_page(request: Request) -> Response:
        def gather(session: Session, now: datetime) -> dict[str, Any]:
            try:
                required = current_policy(session).document.allowlist_required
            except TreasuryError:
                required = None
            return {"entries": allowlist_lines(session, now), "required": required}

        return view(request, "allowlist", gather)

    return router


def _payload_text(payload: str) -> str:
    """An event's payload as ``key: value; ...`` (shortened), for the table."""
    try:
        data = json.loads(payload)
    except json.JSONDecodeError:
        return payload[:PAYLOAD_SHOWN_CHARS]
    if not isinstance(data, dict):
        return payload[:PAYLOAD_SHOWN_CHARS]
    text = "; ".join(
        f"{key}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for key, value in data.items()
    )
    return text if len(text) <= PAYLOAD_SHOWN_CHARS else text[: PAYLOAD_SHOWN_CHARS - 1] + "…"


def _actor_name(actor: str, names: dict[int, str]) -> str:
    """``officer:6`` as the officer's name and institution; any other actor as written."""
    kind, _, number = actor.partition(":")
    if kind == "officer" and number.isdigit() and int(number) in names:
        return names[int(number)]
    return actor


def _refs_text(refs: str) -> str:
    """An event's business ids as ``name=value, ...``."""
    try:
        data = json.loads(refs)
    except json.JSONDecodeError:
        return refs
    if not isinstance(data, dict):
        return refs
    return ", ".join(f"{key}={value}" for key, value in data.items())
