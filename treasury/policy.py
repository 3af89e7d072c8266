"""The spend policy: a versioned document, the facts it judges, and a pure evaluation.

``evaluate(policy, spend, approvals, context)`` is a pure function of its arguments. The
workflow gathers the facts (24 h spending, allowlist, reconciliation, the prepared transaction's
hash), calls it, and records the decision with the policy version, the policy's content hash and
the inputs, so an auditor can replay exactly why a spend was allowed or refused
(``replay_decision``).

Also here, because the policy judges them: the legal bases spends cite (decree ceilings and
expiry), the destination allowlist (an address needs its own institutional quorum and then a
delay before it is usable), and the reconciliation gate.

Reconciliation gate contract: the reconciliation job appends one row per asset and run to
``reconciliation_checkpoints`` through ``record_reconciliation``; ``TableReconciliationGate``
reads the newest row per asset. The policy refuses spends when there is no row, when the newest
row says ``mismatched``, or when it is older than ``reconciliation_max_age_seconds``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from treasury import audit
from treasury.audit import AuditKind
from treasury.canonical import canonical_json
from treasury.db import Base, UtcDateTime
from treasury.ledger.amounts import Amount
from treasury.officers import Officer, Role
from treasury.workflow_exceptions import (
    DecisionReplayError,
    NotAuthorisedError,
    NotConfiguredError,
    PolicyDocumentError,
    UnknownRecordError,
    WorkflowInputError,
)

ROLLING_WINDOW = timedelta(hours=24)
"""The span of the rolling spending limit."""
ASSET_CODE_MAX_CHARS = 16
ADDRESS_MAX_CHARS = 128
REFERENCE_MAX_CHARS = 64


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- The policy document ------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetLimits:
    """Limits for one asset, all in its base units (satoshi, wei, token units)."""

    per_tx_limit: int
    daily_limit: int
    """Rolling 24 h total of committed spends (approved and later), this one included."""
    veto_threshold: int
    """Spends of at least this amount wait out the veto window after approval."""


@dataclass(frozen=True)
class PolicyDocument:
    """The written policy, parsed and validated; ``to_json`` is what is stored and hashed."""

    quorum_institutions: tuple[str, ...]
    quorum_required: int
    assets: Mapping[str, AssetLimits]
    veto_window_seconds: int
    allowlist_required: int
    allowlist_delay_seconds: int
    reconciliation_max_age_seconds: int
    proposal_ttl_seconds: int

    def to_json(self) -> dict[str, Any]:
        return {
            "quorum": {
                "institutions": list(self.quorum_institutions),
                "required": self.quorum_required,
            },
            "assets": {
                code: {
                    "per_tx_limit": limits.per_tx_limit,
                    "daily_limit": limits.daily_limit,
                    "veto_threshold": limits.veto_threshold,
                }
                for code, limits in sorted(self.assets.items())
            },
            "veto_window_seconds": self.veto_window_seconds,
            "allowlist": {
                "required": self.allowlist_required,
                "delay_seconds": self.allowlist_delay_seconds,
            },
            "reconciliation_max_age_seconds": self.reconciliation_max_age_seconds,
            "proposal_ttl_seconds": self.proposal_ttl_seconds,
        }


def _field(data: Mapping[str, Any], key: str, path: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise PolicyDocumentError(f"The policy document lacks the field {path}{key}.")
    return data[key]


def _count(data: Mapping[str, Any], key: str, path: str, *, minimum: int = 0) -> int:
    value = _field(data, key, path)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyDocumentError(
            f"The policy field {path}{key} must be an integer of at least {minimum}; got {value!r}."
        )
    return value


def parse_policy(data: Mapping[str, Any]) -> PolicyDocument:
    """Validate a policy document (as JSON data) and return it; errors name the field."""
    quorum = _field(data, "quorum", "")
    institutions = _field(quorum, "institutions", "quorum.")
    if (
        not isinstance(institutions, list)
        or not institutions
        or not all(isinstance(code, str) and code for code in institutions)
        or len(set(institutions)) != len(institutions)
    ):
        raise PolicyDocumentError(
            "The policy field quorum.institutions must be a non-empty list of distinct institution codes."
        )
    required = _count(quorum, "required", "quorum.", minimum=1)
    if required > len(institutions):
        raise PolicyDocumentError(
            f"The policy field quorum.required ({required}) exceeds the {len(institutions)} institutions listed."
        )
    assets_data = _field(data, "assets", "")
    if not isinstance(assets_data, Mapping) or not assets_data:
        raise PolicyDocumentError("The policy field assets must map asset codes to their limits.")
    assets: dict[str, AssetLimits] = {}
    for code, limits in assets_data.items():
        path = f"assets.{code}."
        assets[code] = AssetLimits(
            per_tx_limit=_count(limits, "per_tx_limit", path, minimum=1),
            daily_limit=_count(limits, "daily_limit", path, minimum=1),
            veto_threshold=_count(limits, "veto_threshold", path, minimum=1),
        )
    allowlist = _field(data, "allowlist", "")
    allowlist_required = _count(allowlist, "required", "allowlist.", minimum=1)
    if allowlist_required > len(institutions):
        raise PolicyDocumentError(
            f"The policy field allowlist.required ({allowlist_required}) exceeds the {len(institutions)} institutions listed."
        )
    return PolicyDocument(
        quorum_institutions=tuple(institutions),
        quorum_required=required,
        assets=assets,
        veto_window_seconds=_count(data, "veto_window_seconds", ""),
        allowlist_required=allowlist_required,
        allowlist_delay_seconds=_count(allowlist, "delay_seconds", "allowlist."),
        reconciliation_max_age_seconds=_count(
            data, "reconciliation_max_age_seconds", "", minimum=1
        ),
        proposal_ttl_seconds=_count(data, "proposal_ttl_seconds", "", minimum=1),
    )


@dataclass(frozen=True)
class StoredPolicy:
    """One immutable stored version of the policy."""

    version: int
    content_hash: str
    """SHA-256 of the document's canonical JSON."""
    document: PolicyDocument


class PolicyVersionRow(Base):
    """Policy versions are only ever inserted; a new version supersedes, nothing is edited."""

    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    document: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[int] = mapped_column(ForeignKey("officers.id"))


def _stored(row: PolicyVersionRow) -> StoredPolicy:
    return StoredPolicy(row.version, row.content_hash, parse_policy(json.loads(row.document)))


def set_policy(
    session: Session, actor: Officer, data: Mapping[str, Any], *, now: datetime
) -> StoredPolicy:
    """Store ``data`` as the next policy version (admin only) and return it."""
    actor.require(Role.ADMIN)
    document = parse_policy(data)
    text = canonical_json(document.to_json())
    latest = session.scalar(
        select(PolicyVersionRow.version).order_by(PolicyVersionRow.version.desc())
    )
    row = PolicyVersionRow(
        version=(latest or 0) + 1,
        document=text,
        content_hash=sha256_hex(text),
        created_at=now,
        created_by=actor.id,
    )
    session.add(row)
    session.flush()
    _audit(
        session, actor, {"policy_version": row.version}, "policy_set", now, hash=row.content_hash
    )
    return _stored(row)


def _audit(
    session: Session,
    actor: Officer,
    refs: dict[str, str | int],
    event: str,
    now: datetime,
    **payload: Any,
) -> None:
    audit.append(
        session,
        kind=AuditKind.POLICY_CHANGE,
        actor=f"officer:{actor.id}",
        refs={"officer_id": actor.id, **refs},
        payload={"event": event, **payload},
        clock=lambda: now,
    )


def current_policy(session: Session) -> StoredPolicy:
    """The newest policy version."""
    row = session.scalar(select(PolicyVersionRow).order_by(PolicyVersionRow.version.desc()))
    if row is None:
        raise NotConfiguredError(
            "No policy has been set yet; an admin must run `treasury policy set`."
        )
    return _stored(row)


def policy_version(session: Session, version: int) -> StoredPolicy:
    """Policy version ``version``, for replaying old decisions."""
    row = session.get(PolicyVersionRow, version)
    if row is None:
        raise UnknownRecordError(f"No policy version {version} exists.")
    return _stored(row)


# --- Legal bases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LegalBasis:
    """A decree or act that authorises spending, up to a ceiling per asset, until it expires."""

    reference: str
    title: str
    expires_at: datetime
    ceilings: Mapping[str, int]
    """Asset code to the most that may be committed under this basis, in base units."""


class LegalBasisRow(Base):
    __tablename__ = "legal_bases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(REFERENCE_MAX_CHARS), unique=True)
    title: Mapped[str] = mapped_column(String(400))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LegalBasisCeilingRow(Base):
    __tablename__ = "legal_basis_ceilings"

    legal_basis_id: Mapped[int] = mapped_column(ForeignKey("legal_bases.id"), primary_key=True)
    asset: Mapped[str] = mapped_column(String(ASSET_CODE_MAX_CHARS), primary_key=True)
    ceiling: Mapped[int] = mapped_column(Amount)


def add_legal_basis(
    session: Session,
    actor: Officer,
    basis: LegalBasis,
    *,
    now: datetime,
) -> int:
    """Register a legal basis (admin only) and return its row id."""
    actor.require(Role.ADMIN)
    reference = basis.reference.strip()
    if not reference or len(reference) > REFERENCE_MAX_CHARS:
        raise WorkflowInputError(
            f"The legal basis reference must be 1 to {REFERENCE_MAX_CHARS} characters."
        )
    if not basis.ceilings:
        raise WorkflowInputError("A legal basis needs at least one ceiling (ceilings is empty).")
    for asset, ceiling in basis.ceilings.items():
        if isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling <= 0:
            raise WorkflowInputError(
                f"The ceiling for {asset} must be a positive integer in base units."
            )
    if session.scalar(select(LegalBasisRow.id).where(LegalBasisRow.reference == reference)):
        raise WorkflowInputError(f"The legal basis {reference!r} is already registered.")
    row = LegalBasisRow(
        reference=reference, title=basis.title, expires_at=basis.expires_at, created_at=now
    )
    session.add(row)
    session.flush()
    session.add_all(
        LegalBasisCeilingRow(legal_basis_id=row.id, asset=asset, ceiling=ceiling)
        for asset, ceiling in basis.ceilings.items()
    )
    session.flush()
    _audit(
        session, actor, {"legal_basis_id": row.id}, "legal_basis_added", now,
        reference=reference, expires_at=basis.expires_at.isoformat(),
        ceilings={asset: str(ceiling) for asset, ceiling in basis.ceilings.items()},
    )  # fmt: skip
    return row.id


def legal_basis_by_reference(session: Session, reference: str) -> tuple[int, LegalBasis]:
    """The row id and content of the legal basis registered as ``reference``."""
    row = session.scalar(select(LegalBasisRow).where(LegalBasisRow.reference == reference))
    if row is None:
        raise UnknownRecordError(f"No legal basis is registered under the reference {reference!r}.")
    return row.id, load_legal_basis(session, row.id)


def load_legal_basis(session: Session, legal_basis_id: int) -> LegalBasis:
    row = session.get(LegalBasisRow, legal_basis_id)
    if row is None:
        raise UnknownRecordError(f"No legal basis has the id {legal_basis_id}.")
    ceilings = session.scalars(
        select(LegalBasisCeilingRow).where(LegalBasisCeilingRow.legal_basis_id == legal_basis_id)
    )
    return LegalBasis(
        reference=row.reference,
        title=row.title,
        expires_at=row.expires_at,
        ceilings={ceiling.asset: ceiling.ceiling for ceiling in ceilings},
    )


# --- Destination allowlist ----------------------------------------------------------------------


@dataclass(frozen=True)
class AllowlistEntry:
    id: int
    asset: str
    address: str
    label: str
    requested_by: int
    approving_institutions: tuple[str, ...]
    active_from: datetime | None
    """``None`` until the allowlist quorum is reached; then quorum time plus the policy's delay."""


class AllowlistEntryRow(Base):
    __tablename__ = "allowlist_entries"
    __table_args__ = (Index("ix_allowlist_entries_asset_address", "asset", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset: Mapped[str] = mapped_column(String(ASSET_CODE_MAX_CHARS))
    address: Mapped[str] = mapped_column(String(ADDRESS_MAX_CHARS))
    label: Mapped[str] = mapped_column(String(200))
    requested_by: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    active_from: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AllowlistApprovalRow(Base):
    __tablename__ = "allowlist_approvals"

    entry_id: Mapped[int] = mapped_column(ForeignKey("allowlist_entries.id"), primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    approved_at: Mapped[datetime] = mapped_column(UtcDateTime)


def request_destination(
    session: Session, actor: Officer, asset: str, address: str, label: str, *, now: datetime
) -> AllowlistEntry:
    """Ask for ``address`` to become an allowed destination for ``asset`` (proposer or admin)."""
    actor.require(Role.PROPOSER, Role.ADMIN)
    if not address or len(address) > ADDRESS_MAX_CHARS:
        raise WorkflowInputError(
            f"The destination address must be 1 to {ADDRESS_MAX_CHARS} characters."
        )
    row = AllowlistEntryRow(
        asset=asset, address=address, label=label, requested_by=actor.id, requested_at=now
    )
    session.add(row)
    session.flush()
    _audit(
        session, actor, {"allowlist_entry_id": row.id}, "destination_requested", now,
        asset=asset, address=address,
    )  # fmt: skip
    return _entry(session, row)


def approve_destination(
    session: Session, actor: Officer, entry_id: int, policy: StoredPolicy, *, now: datetime
) -> AllowlistEntry:
    """Approve an allowlist request for the actor's institution; the quorum starts the delay."""
    actor.require(Role.APPROVER)
    row = session.get(AllowlistEntryRow, entry_id)
    if row is None:
        raise UnknownRecordError(f"No allowlist request has the id {entry_id}.")
    document = policy.document
    if not actor.is_active(now):
        raise NotAuthorisedError(f"Officer {actor.id} is revoked and cannot approve destinations.")
    if actor.id == row.requested_by:
        raise NotAuthorisedError("The officer who requested a destination may not approve it.")
    if actor.institution_code not in document.quorum_institutions:
        raise NotAuthorisedError(
            f"Institution {actor.institution_code} is not one of the policy's quorum institutions."
        )
    existing = session.get(AllowlistApprovalRow, (entry_id, actor.institution_id))
    if existing is not None:
        raise WorkflowInputError(
            f"Institution {actor.institution_code} has already approved allowlist request {entry_id}."
        )
    session.add(
        AllowlistApprovalRow(
            entry_id=entry_id,
            institution_id=actor.institution_id,
            officer_id=actor.id,
            approved_at=now,
        )
    )
    session.flush()
    entry = _entry(session, row)
    if row.active_from is None and len(entry.approving_institutions) >= document.allowlist_required:
        row.active_from = now + timedelta(seconds=document.allowlist_delay_seconds)
        session.flush()
        entry = _entry(session, row)
    _audit(
        session, actor, {"allowlist_entry_id": entry_id}, "destination_approved", now,
        institution=actor.institution_code,
        active_from=None if entry.active_from is None else entry.active_from.isoformat(),
    )  # fmt: skip
    return entry


def _entry(session: Session, row: AllowlistEntryRow) -> AllowlistEntry:
    from treasury.officers import InstitutionRow

    codes = session.scalars(
        select(InstitutionRow.code)
        .join(AllowlistApprovalRow, AllowlistApprovalRow.institution_id == InstitutionRow.id)
        .where(AllowlistApprovalRow.entry_id == row.id)
        .order_by(InstitutionRow.code)
    )
    return AllowlistEntry(
        id=row.id,
        asset=row.asset,
        address=row.address,
        label=row.label,
        requested_by=row.requested_by,
        approving_institutions=tuple(codes),
        active_from=row.active_from,
    )


def destination_allowed(session: Session, asset: str, address: str, *, now: datetime) -> bool:
    """Whether ``address`` is an active allowlisted destination for ``asset`` at ``now``."""
    found = session.scalar(
        select(AllowlistEntryRow.id).where(
            AllowlistEntryRow.asset == asset,
            AllowlistEntryRow.address == address,
            AllowlistEntryRow.active_from.is_not(None),
            AllowlistEntryRow.active_from <= now,
        )
    )
    return found is not None


# --- Reconciliation gate ------------------------------------------------------------------------


class ReconciliationOutcome(StrEnum):
    MATCHED = "matched"
    MISMATCHED = "mismatched"


@dataclass(frozen=True)
class ReconciliationFacts:
    """The newest reconciliation of one asset: did the chain match the ledger, and when."""

    outcome: ReconciliationOutcome
    checked_at: datetime


class ReconciliationCheckpointRow(Base):
    __tablename__ = "reconciliation_checkpoints"
    __table_args__ = (
        Index("ix_reconciliation_checkpoints_asset_checked_at", "asset", "checked_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset: Mapped[str] = mapped_column(String(ASSET_CODE_MAX_CHARS))
    outcome: Mapped[str] = mapped_column(String(16))
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    detail: Mapped[str] = mapped_column(Text)


class ReconciliationGate(Protocol):
    """Where the policy learns the newest reconciliation of an asset (``None``: never run)."""

    def latest(self, session: Session, asset: str) -> ReconciliationFacts | None: ...


class TableReconciliationGate:
    """The default gate: the newest ``reconciliation_checkpoints`` row for the asset."""

    def latest(self, session: Session, asset: str) -> ReconciliationFacts | None:
        row = session.scalar(
            select(ReconciliationCheckpointRow)
            .where(ReconciliationCheckpointRow.asset == asset)
            .order_by(
                ReconciliationCheckpointRow.checked_at.desc(), ReconciliationCheckpointRow.id.desc()
            )
        )
        if row is None:
            return None
        return ReconciliationFacts(ReconciliationOutcome(row.outcome), row.checked_at)


def record_reconciliation(
    session: Session,
    asset: str,
    outcome: ReconciliationOutcome,
    *,
    checked_at: datetime,
    detail: str = "",
) -> None:
    """Append a reconciliation result for ``asset`` (called by the reconciliation job)."""
    session.add(
        ReconciliationCheckpointRow(
            asset=asset, outcome=outcome.value, checked_at=checked_at, detail=detail
        )
    )
    session.flush()


# --- Evaluation -------------------------------------------------------------------------------


class Action(StrEnum):
    """The workflow step being judged."""

    SUBMIT = "submit"
    APPROVE = "approve"
    SIGN = "sign"
    BROADCAST = "broadcast"


class RefusalCode(StrEnum):
    ASSET_NOT_IN_POLICY = "asset_not_in_policy"
    OVER_PER_TX_LIMIT = "over_per_tx_limit"
    OVER_DAILY_LIMIT = "over_daily_limit"
    DESTINATION_NOT_ALLOWED = "destination_not_allowed"
    LEGAL_BASIS_EXPIRED = "legal_basis_expired"
    ASSET_NOT_IN_LEGAL_BASIS = "asset_not_in_legal_basis"
    ABOVE_DECREE_CEILING = "above_decree_ceiling"
    RECONCILIATION_MISSING = "reconciliation_missing"
    RECONCILIATION_MISMATCHED = "reconciliation_mismatched"
    RECONCILIATION_STALE = "reconciliation_stale"
    PROPOSER_MAY_NOT_APPROVE = "proposer_may_not_approve"
    OFFICER_REVOKED = "officer_revoked"
    INSTITUTION_NOT_IN_QUORUM = "institution_not_in_quorum"
    OFFICER_ALREADY_APPROVED = "officer_already_approved"
    INSTITUTION_ALREADY_APPROVED = "institution_already_approved"
    NO_PREPARED_TRANSACTION = "no_prepared_transaction"
    QUORUM_NOT_MET = "quorum_not_met"
    VETO_WINDOW_OPEN = "veto_window_open"


@dataclass(frozen=True)
class Refusal:
    code: RefusalCode
    message: str
    """One full sentence naming the figures involved."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: tuple[Refusal, ...]
    policy_version: int
    policy_hash: str


@dataclass(frozen=True)
class SpendFacts:
    """What the policy needs to know about the spend itself."""

    proposal_id: int | None
    asset: str
    amount: int
    destination: str
    proposer_id: int
    legal_basis: LegalBasis
    quorum_reached_at: datetime | None


@dataclass(frozen=True)
class ApprovalFacts:
    """One approval on record (not voided), with its officer's revocation time."""

    officer_id: int
    institution: str
    tx_hash: str
    officer_revoked_at: datetime | None


@dataclass(frozen=True)
class ActorFacts:
    """The officer asking to approve."""

    officer_id: int
    institution: str
    revoked_at: datetime | None


@dataclass(frozen=True)
class PolicyContext:
    """Everything else the decision depends on, gathered by the workflow at decision time."""

    action: Action
    now: datetime
    spent_24h: int
    """Other spends of the asset committed (approved or later) in the last 24 h, base units."""
    committed_under_basis: int
    """Other spends of the asset committed under the same legal basis, base units."""
    destination_allowed: bool
    reconciliation: ReconciliationFacts | None
    current_tx_hash: str | None
    actor: ActorFacts | None = field(default=None)


def _active(revoked_at: datetime | None, now: datetime) -> bool:
    return revoked_at is None or now < revoked_at


def counted_approvals(
    policy: PolicyDocument,
    proposer_id: int,
    approvals: Sequence[ApprovalFacts],
    current_tx_hash: str | None,
    now: datetime,
) -> dict[str, ApprovalFacts]:
    """Approvals that count toward the quorum, one per institution.

    An approval counts only if it names the transaction prepared now, its officer is not
    revoked, it is not the proposer's, and its institution is one of the policy's.
    """
    counted: dict[str, ApprovalFacts] = {}
    for approval in approvals:
        if (
            approval.tx_hash == current_tx_hash
            and _active(approval.officer_revoked_at, now)
            and approval.officer_id != proposer_id
            and approval.institution in policy.quorum_institutions
        ):
            counted.setdefault(approval.institution, approval)
    return counted


def veto_window_end(policy: PolicyDocument, spend: SpendFacts) -> datetime | None:
    """When the veto window of a large, approved spend closes (``None``: no window applies)."""
    limits = policy.assets.get(spend.asset)
    if limits is None or spend.quorum_reached_at is None or spend.amount < limits.veto_threshold:
        return None
    return spend.quorum_reached_at + timedelta(seconds=policy.veto_window_seconds)


def _spend_rules(
    policy: PolicyDocument, spend: SpendFacts, context: PolicyContext
) -> list[Refusal]:
    refusals: list[Refusal] = []
    asset, amount = spend.asset, spend.amount
    limits = policy.assets.get(asset)
    if limits is None:
        refusals.append(
            Refusal(
                RefusalCode.ASSET_NOT_IN_POLICY,
                f"The policy sets no limits for {asset}, so it cannot be spent.",
            )
        )
    else:
        if amount > limits.per_tx_limit:
            refusals.append(
                Refusal(
                    RefusalCode.OVER_PER_TX_LIMIT,
                    f"The amount {amount} {asset} exceeds the per-transaction limit of {limits.per_tx_limit}.",
                )
            )
        if context.spent_24h + amount > limits.daily_limit:
            refusals.append(
                Refusal(
                    RefusalCode.OVER_DAILY_LIMIT,
                    f"The amount {amount} {asset} on top of {context.spent_24h} committed in the last 24 hours "
                    f"exceeds the rolling 24-hour limit of {limits.daily_limit}.",
                )
            )
    if not context.destination_allowed:
        refusals.append(
            Refusal(
                RefusalCode.DESTINATION_NOT_ALLOWED,
                f"The destination {spend.destination} is not an active allowlisted address for {asset}.",
            )
        )
    basis = spend.legal_basis
    if context.now >= basis.expires_at:
        refusals.append(
            Refusal(
                RefusalCode.LEGAL_BASIS_EXPIRED,
                f"The legal basis {basis.reference} expired at {basis.expires_at.isoformat()}.",
            )
        )
    ceiling = basis.ceilings.get(asset)
    if ceiling is None:
        refusals.append(
            Refusal(
                RefusalCode.ASSET_NOT_IN_LEGAL_BASIS,
                f"The legal basis {basis.reference} authorises no spending of {asset}.",
            )
        )
    elif context.committed_under_basis + amount > ceiling:
        refusals.append(
            Refusal(
                RefusalCode.ABOVE_DECREE_CEILING,
                f"The amount {amount} {asset} on top of {context.committed_under_basis} already committed "
                f"exceeds the ceiling of {ceiling} set by {basis.reference}.",
            )
        )
    refusals.extend(_reconciliation_rules(policy, asset, context))
    return refusals


def _reconciliation_rules(
    policy: PolicyDocument, asset: str, context: PolicyContext
) -> list[Refusal]:
    facts = context.reconciliation
    if facts is None:
        return [
            Refusal(
                RefusalCode.RECONCILIATION_MISSING,
                f"No reconciliation of {asset} has been recorded, so no spend is allowed.",
            )
        ]
    if facts.outcome is ReconciliationOutcome.MISMATCHED:
        return [
            Refusal(
                RefusalCode.RECONCILIATION_MISMATCHED,
                f"The latest reconciliation of {asset} ({facts.checked_at.isoformat()}) found the chain "
                "and the ledger mismatched.",
            )
        ]
    age = context.now - facts.checked_at
    if age > timedelta(seconds=policy.reconciliation_max_age_seconds):
        return [
            Refusal(
                RefusalCode.RECONCILIATION_STALE,
                f"The latest reconciliation of {asset} is {int(age.total_seconds())} seconds old, older "
                f"than the {policy.reconciliation_max_age_seconds} seconds allowed.",
            )
        ]
    return []


def _approval_rules(
    policy: PolicyDocument,
    spend: SpendFacts,
    approvals: Sequence[ApprovalFacts],
    context: PolicyContext,
) -> list[Refusal]:
    actor = context.actor
    if actor is None:
        raise WorkflowInputError(
            "An approval decision needs the approving officer (context.actor)."
        )
    refusals: list[Refusal] = []
    if not _active(actor.revoked_at, context.now):
        refusals.append(
            Refusal(
                RefusalCode.OFFICER_REVOKED,
                f"Officer {actor.officer_id} is revoked and cannot approve.",
            )
        )
    if actor.officer_id == spend.proposer_id:
        refusals.append(
            Refusal(
                RefusalCode.PROPOSER_MAY_NOT_APPROVE,
                f"Officer {actor.officer_id} proposed this spend and may not approve it.",
            )
        )
    if actor.institution not in policy.quorum_institutions:
        refusals.append(
            Refusal(
                RefusalCode.INSTITUTION_NOT_IN_QUORUM,
                f"Institution {actor.institution} is not one of the policy's quorum institutions.",
            )
        )
    standing = [a for a in approvals if a.tx_hash == context.current_tx_hash]
    if any(a.officer_id == actor.officer_id for a in standing):
        refusals.append(
            Refusal(
                RefusalCode.OFFICER_ALREADY_APPROVED,
                f"Officer {actor.officer_id} has already approved this transaction.",
            )
        )
    elif any(a.institution == actor.institution for a in standing):
        refusals.append(
            Refusal(
                RefusalCode.INSTITUTION_ALREADY_APPROVED,
                f"Institution {actor.institution} has already approved this transaction through another officer.",
            )
        )
    return refusals


def _release_rules(
    policy: PolicyDocument,
    spend: SpendFacts,
    approvals: Sequence[ApprovalFacts],
    context: PolicyContext,
) -> list[Refusal]:
    refusals: list[Refusal] = []
    counted = counted_approvals(
        policy, spend.proposer_id, approvals, context.current_tx_hash, context.now
    )
    if len(counted) < policy.quorum_required:
        refusals.append(
            Refusal(
                RefusalCode.QUORUM_NOT_MET,
                f"{len(counted)} of the required {policy.quorum_required} institutions have validly approved "
                "the prepared transaction.",
            )
        )
    window_end = veto_window_end(policy, spend)
    if window_end is not None and context.now < window_end:
        refusals.append(
            Refusal(
                RefusalCode.VETO_WINDOW_OPEN,
                f"The spend is at or above the veto threshold; its veto window is open until {window_end.isoformat()}.",
            )
        )
    return refusals


def evaluate(
    policy: StoredPolicy,
    spend: SpendFacts,
    approvals: Sequence[ApprovalFacts],
    context: PolicyContext,
) -> Decision:
    """Judge ``context.action`` on ``spend``; pure, so a recorded decision can be replayed."""
    document = policy.document
    refusals = _spend_rules(document, spend, context)
    if context.action is not Action.SUBMIT and context.current_tx_hash is None:
        refusals.append(
            Refusal(
                RefusalCode.NO_PREPARED_TRANSACTION,
                "No transaction has been prepared for this spend yet, so there is nothing to approve or sign.",
            )
        )
    if context.action is Action.APPROVE:
        refusals.extend(_approval_rules(document, spend, approvals, context))
    if context.action in (Action.SIGN, Action.BROADCAST):
        refusals.extend(_release_rules(document, spend, approvals, context))
    return Decision(
        allowed=not refusals,
        reasons=tuple(refusals),
        policy_version=policy.version,
        policy_hash=policy.content_hash,
    )


# --- Recorded decisions -----------------------------------------------------------------------


class PolicyDecisionRow(Base):
    """Every decision with its full inputs, so ``replay_decision`` can re-run it."""

    __tablename__ = "policy_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(16))
    policy_version: Mapped[int] = mapped_column(ForeignKey("policy_versions.version"))
    policy_hash: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[str] = mapped_column(Text)
    inputs_digest: Mapped[str] = mapped_column(String(64))
    allowed: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class RecordedDecision:
    id: int
    proposal_id: int | None
    action: Action
    decision: Decision
    inputs_digest: str
    decided_at: datetime


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def decision_inputs(
    spend: SpendFacts, approvals: Sequence[ApprovalFacts], context: PolicyContext
) -> dict[str, Any]:
    """The JSON form of a decision's inputs (what is digested, stored and replayed)."""
    basis = spend.legal_basis
    recon = context.reconciliation
    actor = context.actor
    return {
        "spend": {
            "proposal_id": spend.proposal_id,
            "asset": spend.asset,
            "amount": str(spend.amount),
            "destination": spend.destination,
            "proposer_id": spend.proposer_id,
            "quorum_reached_at": _time(spend.quorum_reached_at),
            "legal_basis": {
                "reference": basis.reference,
                "title": basis.title,
                "expires_at": _time(basis.expires_at),
                "ceilings": {
                    asset: str(ceiling) for asset, ceiling in sorted(basis.ceilings.items())
                },
            },
        },
        "approvals": [
            {
                "officer_id": a.officer_id,
                "institution": a.institution,
                "tx_hash": a.tx_hash,
                "officer_revoked_at": _time(a.officer_revoked_at),
            }
            for a in approvals
        ],
        "context": {
            "action": context.action.value,
            "now": _time(context.now),
            "spent_24h": str(context.spent_24h),
            "committed_under_basis": str(context.committed_under_basis),
            "destination_allowed": context.destination_allowed,
            "reconciliation": None
            if recon is None
            else {"outcome": recon.outcome.value, "checked_at": _time(recon.checked_at)},
            "current_tx_hash": context.current_tx_hash,
            "actor": None
            if actor is None
            else {
                "officer_id": actor.officer_id,
                "institution": actor.institution,
                "revoked_at": _time(actor.revoked_at),
            },
        },
    }


def _inputs_from_json(
    data: Mapping[str, Any],
) -> tuple[SpendFacts, list[ApprovalFacts], PolicyContext]:
    s, c = data["spend"], data["context"]
    b = s["legal_basis"]
    basis = LegalBasis(
        reference=b["reference"],
        title=b["title"],
        expires_at=datetime.fromisoformat(b["expires_at"]),
        ceilings={asset: int(ceiling) for asset, ceiling in b["ceilings"].items()},
    )
    spend = SpendFacts(
        proposal_id=s["proposal_id"],
        asset=s["asset"],
        amount=int(s["amount"]),
        destination=s["destination"],
        proposer_id=s["proposer_id"],
        legal_basis=basis,
        quorum_reached_at=_parse_time(s["quorum_reached_at"]),
    )
    approvals = [
        ApprovalFacts(
            a["officer_id"], a["institution"], a["tx_hash"], _parse_time(a["officer_revoked_at"])
        )
        for a in data["approvals"]
    ]
    r, a = c["reconciliation"], c["actor"]
    context = PolicyContext(
        action=Action(c["action"]),
        now=datetime.fromisoformat(c["now"]),
        spent_24h=int(c["spent_24h"]),
        committed_under_basis=int(c["committed_under_basis"]),
        destination_allowed=c["destination_allowed"],
        reconciliation=None
        if r is None
        else ReconciliationFacts(
            ReconciliationOutcome(r["outcome"]), datetime.fromisoformat(r["checked_at"])
        ),
        current_tx_hash=c["current_tx_hash"],
        actor=None
        if a is None
        else ActorFacts(a["officer_id"], a["institution"], _parse_time(a["revoked_at"])),
    )
    return spend, approvals, context


def record_decision(
    session: Session,
    decision: Decision,
    spend: SpendFacts,
    approvals: Sequence[ApprovalFacts],
    context: PolicyContext,
) -> int:
    """Store ``decision`` with its inputs; returns the record's id."""
    inputs = canonical_json(decision_inputs(spend, approvals, context))
    row = PolicyDecisionRow(
        proposal_id=spend.proposal_id,
        action=context.action.value,
        policy_version=decision.policy_version,
        policy_hash=decision.policy_hash,
        inputs=inputs,
        inputs_digest=sha256_hex(inputs),
        allowed=decision.allowed,
        reasons=canonical_json(
            [{"code": r.code.value, "message": r.message} for r in decision.reasons]
        ),
        decided_at=context.now,
    )
    session.add(row)
    session.flush()
    return row.id


def _recorded(row: PolicyDecisionRow) -> RecordedDecision:
    reasons = tuple(Refusal(RefusalCode(r["code"]), r["message"]) for r in json.loads(row.reasons))
    return RecordedDecision(
        id=row.id,
        proposal_id=row.proposal_id,
        action=Action(row.action),
        decision=Decision(row.allowed, reasons, row.policy_version, row.policy_hash),
        inputs_digest=row.inputs_digest,
        decided_at=row.decided_at,
    )


def decisions_for(session: Session, proposal_id: int) -> list[RecordedDecision]:
    """Every recorded decision about a proposal, oldest first."""
    rows = session.scalars(
        select(PolicyDecisionRow)
        .where(PolicyDecisionRow.proposal_id == proposal_id)
        .order_by(PolicyDecisionRow.id)
    )
    return [_recorded(row) for row in rows]


def replay_decision(session: Session, decision_id: int) -> tuple[RecordedDecision, Decision]:
    """The recorded decision and the decision re-computed from its stored inputs and policy.

    An auditor checks that the two agree, that the inputs still hash to the stored digest, and
    that the stored policy still hashes to the recorded policy hash.
    """
    row = session.get(PolicyDecisionRow, decision_id)
    if row is None:
        raise UnknownRecordError(f"No policy decision has the id {decision_id}.")
    policy_row = session.get(PolicyVersionRow, row.policy_version)
    if policy_row is None or sha256_hex(policy_row.document) != row.policy_hash:
        raise DecisionReplayError(
            f"Policy version {row.policy_version} no longer hashes to the recorded hash."
        )
    if sha256_hex(row.inputs) != row.inputs_digest:
        raise DecisionReplayError(
            f"The inputs of decision {decision_id} no longer hash to their recorded digest."
        )
    spend, approvals, context = _inputs_from_json(json.loads(row.inputs))
    return _recorded(row), evaluate(_stored(policy_row), spend, approvals, context)
