"""Spend proposals: the state machine, approvals bound to a transaction hash, crash-safe release.

States::

    draft -> proposed -> approved -> signed -> broadcast -> confirmed
       \\        \\           \\          \\          \\
        rejected/expired   (back to proposed when approvals are voided)   failed

Every transition goes through a ``Workflow`` method that checks the officer's role, asks the
policy engine (``treasury.policy.evaluate``), records the decision, and appends an audit event in
the same database transaction. A refusal changes nothing but the decision log.

Approvals name the hash of the exact transaction prepared for the proposal (the PSBT's unsigned
transaction hash, or the SafeTx hash). Preparing a different transaction voids them all.

Crash safety: approval, each institution's signature, the broadcast intent, the txid, and the
confirmation are each committed before the next step starts. A broadcast first commits an
intent; a retry after a crash asks the chain (``ChainSpender.find_broadcast``) whether the
transaction was already sent before sending it, so a proposal is broadcast at most once.

Chains are reached only through the ``ChainSpender`` protocol, the ledger only through
``SpendLedger``: the custody and ledger modules are adapted to them at the edges.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from custody.clock import Clock, utc_now
from treasury import audit, ledger, officers
from treasury.audit import AuditKind
from treasury.canonical import canonical_json
from treasury.db import Base, UtcDateTime, begin_serialised_write
from treasury.ledger.amounts import Amount
from treasury.officers import InstitutionRow, Officer, OfficerRow, Role
from treasury.policy import (
    ADDRESS_MAX_CHARS,
    ASSET_CODE_MAX_CHARS,
    ROLLING_WINDOW,
    Action,
    ActorFacts,
    ApprovalFacts,
    Decision,
    LegalBasisRow,
    PolicyContext,
    PolicyVersionRow,
    ReconciliationGate,
    RecordedDecision,
    SpendFacts,
    StoredPolicy,
    TableReconciliationGate,
    counted_approvals,
    current_policy,
    decisions_for,
    destination_allowed,
    evaluate,
    legal_basis_by_reference,
    load_legal_basis,
    record_decision,
    veto_window_end,
)
from treasury.workflow_exceptions import (
    NotAuthorisedError,
    NotConfiguredError,
    PolicyRefusedError,
    ProposalTransitionError,
    TransactionMismatchError,
    UnknownRecordError,
    WorkflowInputError,
)

T = TypeVar("T")

PURPOSE_MAX_CHARS = 2000
REASON_MAX_CHARS = 2000
TX_HASH_MAX_CHARS = 130
DEFAULT_CONFIRMATIONS_REQUIRED = 1
"""Blocks after which a broadcast spend counts as confirmed, unless configured per asset."""
SYSTEM_ACTOR = "system"
"""Audit actor of steps that need no officer: broadcast, confirmation tracking, expiry."""


class ProposalState(StrEnum):
    DRAFT = "draft"
    PROPOSED = "proposed"
    APPROVED = "approved"
    SIGNED = "signed"
    BROADCAST = "broadcast"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"


ALLOWED_TRANSITIONS: Mapping[ProposalState, frozenset[ProposalState]] = {
    ProposalState.DRAFT: frozenset(
        {ProposalState.PROPOSED, ProposalState.REJECTED, ProposalState.EXPIRED}
    ),
    ProposalState.PROPOSED: frozenset(
        {ProposalState.APPROVED, ProposalState.REJECTED, ProposalState.EXPIRED}
    ),
    ProposalState.APPROVED: frozenset(
        {
            ProposalState.PROPOSED,
            ProposalState.SIGNED,
            ProposalState.REJECTED,
            ProposalState.EXPIRED,
        }
    ),
    ProposalState.SIGNED: frozenset({ProposalState.BROADCAST, ProposalState.FAILED}),
    ProposalState.BROADCAST: frozenset({ProposalState.CONFIRMED, ProposalState.FAILED}),
    ProposalState.CONFIRMED: frozenset(),
    ProposalState.REJECTED: frozenset(),
    ProposalState.EXPIRED: frozenset(),
    ProposalState.FAILED: frozenset(),
}
"""The state machine; ``check_transition`` refuses everything else."""

COMMITTED_STATES = frozenset(
    {
        ProposalState.APPROVED,
        ProposalState.SIGNED,
        ProposalState.BROADCAST,
        ProposalState.CONFIRMED,
    }
)
"""States whose amount counts against the 24 h limit and the decree ceiling."""


def check_transition(proposal_id: int, current: ProposalState, target: ProposalState) -> None:
    """Raise unless the state machine allows ``current -> target``."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise ProposalTransitionError(
            f"Proposal {proposal_id} is {current.value} and cannot become {target.value}."
        )


# --- The chain and ledger interfaces ----------------------------------------------------------


@dataclass(frozen=True)
class SpendRequest:
    """What a chain spender needs to build the transaction of a proposal."""

    proposal_id: int
    asset: str
    amount: int
    destination: str


@dataclass(frozen=True)
class PreparedTx:
    """A transaction prepared for a proposal, with the signatures gathered so far.

    ``tx_hash`` is what approvals bind to and must not change while signatures are added:
    the unsigned-transaction hash of a PSBT, or the SafeTx hash.
    """

    tx_hash: str
    summary: Mapping[str, Any]
    """The decoded transaction approvers review: outputs, amounts, fee, nonce."""
    payload: str
    """Serialised PSBT or SafeTx plus signatures; public data, never key material."""
    fee: int
    """Fee paid from the vault in the asset's base units (0 when a relayer pays gas)."""


class ChainSpender(Protocol):
    """The narrow interface the approval path needs from a chain's custody signer."""

    def build(self, request: SpendRequest) -> PreparedTx:
        """Prepare the unsigned transaction paying ``request`` from the vault."""
        ...

    def sign(
        self, prepared: PreparedTx, institution: str, shares: Sequence[str], passphrase: str
    ) -> PreparedTx:
        """Add ``institution``'s signature, recovering its key from ``shares``; same ``tx_hash``.

        Must refuse a ``prepared`` whose payload does not hash to ``prepared.tx_hash``.
        """
        ...

    def broadcast(self, prepared: PreparedTx) -> str:
        """Send the fully signed transaction; returns the chain's transaction id."""
        ...

    def find_broadcast(self, prepared: PreparedTx) -> str | None:
        """The txid if this transaction was already sent (mempool or chain), else ``None``."""
        ...

    def confirmations(self, txid: str) -> int:
        """Blocks on top of the transaction (0 in the mempool); negative if it failed or was
        replaced (Bitcoin Core's convention for conflicted transactions)."""
        ...


@dataclass(frozen=True)
class SpendPosting:
    """What the ledger records for a broadcast spend: vault -> destination, vault -> fees."""

    proposal_id: int
    asset: str
    amount: int
    fee: int
    destination: str
    txid: str

    @property
    def idempotency_key(self) -> str:
        """One ledger entry per proposal, however often a step is retried."""
        return self.key_for(self.proposal_id)

    @staticmethod
    def key_for(proposal_id: int) -> str:
        return f"spend-proposal:{proposal_id}"


class SpendLedger(Protocol):
    """The ledger operations a spend needs, each inside the caller's transaction."""

    def ready(self, session: Session, asset: str) -> None:
        """Raise unless spends of ``asset`` can be booked (checked before anything is sent)."""
        ...

    def hold(self, session: Session, spend: SpendPosting) -> None:
        """Record a pending entry for a broadcast spend (idempotent by its key)."""
        ...

    def post(self, session: Session, proposal_id: int) -> None:
        """Post the pending entry of a confirmed spend."""
        ...

    def void(self, session: Session, proposal_id: int) -> None:
        """Void the pending entry of a failed spend."""
        ...


@dataclass(frozen=True)
class SpendAccounts:
    """The ledger accounts a spend of one asset moves between (all in that asset)."""

    holdings: str
    """The vault's holdings account, credited with amount plus fee."""
    payments: str
    """Where paid-out amounts go (debited with the amount)."""
    fees: str
    """The network-fee expense account (debited with the fee)."""


class LedgerSpendHook:
    """``SpendLedger`` on the state ledger: pending at broadcast, posted or voided at the end."""

    def __init__(self, accounts: Mapping[str, SpendAccounts], *, clock: Clock = utc_now) -> None:
        self._accounts = dict(accounts)
        self._clock = clock

    def _for(self, asset: str) -> SpendAccounts:
        found = self._accounts.get(asset)
        if found is None:
            raise NotConfiguredError(f"No ledger accounts are configured for spends of {asset}.")
        return found

    def ready(self, session: Session, asset: str) -> None:
        accounts = self._for(asset)
        for code in (accounts.holdings, accounts.payments, accounts.fees):
            ledger.get_account(session, code)

    def hold(self, session: Session, spend: SpendPosting) -> None:
        accounts = self._for(spend.asset)
        legs = [
            ledger.Leg.credit(accounts.holdings, spend.amount + spend.fee),
            ledger.Leg.debit(accounts.payments, spend.amount),
        ]
        if spend.fee:
            legs.append(ledger.Leg.debit(accounts.fees, spend.fee))
        ledger.record_entry(
            session,
            spend.idempotency_key,
            legs,
            description=f"Spend proposal {spend.proposal_id} to {spend.destination}, txid {spend.txid}",
            pending=True,
            clock=self._clock,
        )

    def _pending_id(self, session: Session, proposal_id: int) -> int:
        key = SpendPosting.key_for(proposal_id)
        entry = ledger.find_entry(session, key)
        if entry is None:
            raise UnknownRecordError(f"No pending ledger entry has the key {key!r}.")
        return entry.id

    def post(self, session: Session, proposal_id: int) -> None:
        pending_id = self._pending_id(session, proposal_id)
        key = f"{SpendPosting.key_for(proposal_id)}:post"
        ledger.post_pending(session, pending_id, key, clock=self._clock)

    def void(self, session: Session, proposal_id: int) -> None:
        pending_id = self._pending_id(session, proposal_id)
        key = f"{SpendPosting.key_for(proposal_id)}:void"
        ledger.void_pending(
            session,
            pending_id,
            key,
            actor=SYSTEM_ACTOR,
            reason=f"Spend proposal {proposal_id}'s transaction failed on chain.",
            clock=self._clock,
        )


# --- Tables -----------------------------------------------------------------------------------


class SpendProposalRow(Base):
    __tablename__ = "spend_proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset: Mapped[str] = mapped_column(String(ASSET_CODE_MAX_CHARS))
    amount: Mapped[int] = mapped_column(Amount)
    destination: Mapped[str] = mapped_column(String(ADDRESS_MAX_CHARS))
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis_id: Mapped[int] = mapped_column(ForeignKey("legal_bases.id"))
    proposer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    quorum_reached_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    broadcast_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    """Committed before the transaction is sent: a retry must ask the chain before resending."""
    txid: Mapped[str | None] = mapped_column(String(TX_HASH_MAX_CHARS), nullable=True)
    broadcast_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("officers.id"), nullable=True)
    closed_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class PreparedTxRow(Base):
    """Every transaction ever prepared for a proposal; the current one is not superseded."""

    __tablename__ = "prepared_transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("spend_proposals.id"), index=True)
    tx_hash: Mapped[str] = mapped_column(String(TX_HASH_MAX_CHARS))
    summary: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    fee: Mapped[int] = mapped_column(Amount)
    prepared_at: Mapped[datetime] = mapped_column(UtcDateTime)
    superseded_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


_STANDING = "voided_at IS NULL"


class ApprovalRow(Base):
    """An approval of one prepared transaction; voided, never deleted.

    Partial unique indexes make "one standing approval per officer and per institution" hold
    even against concurrent requests.
    """

    __tablename__ = "proposal_approvals"
    __table_args__ = (
        Index(
            "uq_proposal_approvals_standing_officer",
            "proposal_id",
            "officer_id",
            unique=True,
            sqlite_where=text(_STANDING),
            postgresql_where=text(_STANDING),
        ),
        Index(
            "uq_proposal_approvals_standing_institution",
            "proposal_id",
            "institution_id",
            unique=True,
            sqlite_where=text(_STANDING),
            postgresql_where=text(_STANDING),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("spend_proposals.id"), index=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    tx_hash: Mapped[str] = mapped_column(String(TX_HASH_MAX_CHARS))
    approved_at: Mapped[datetime] = mapped_column(UtcDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    void_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class SignatureRow(Base):
    """One institution's signature on one prepared transaction (no key material, only the fact)."""

    __tablename__ = "proposal_signatures"
    __table_args__ = (UniqueConstraint("proposal_id", "tx_hash", "institution_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("spend_proposals.id"))
    tx_hash: Mapped[str] = mapped_column(String(TX_HASH_MAX_CHARS))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    signed_at: Mapped[datetime] = mapped_column(UtcDateTime)


# --- Views ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalView:
    officer_id: int
    institution: str
    tx_hash: str
    approved_at: datetime
    voided_at: datetime | None
    void_reason: str | None


@dataclass(frozen=True)
class ProposalView:
    """A proposal as officers, auditors, the CLI and the API see it."""

    id: int
    state: ProposalState
    asset: str
    amount: int
    destination: str
    purpose: str
    legal_basis: str
    proposer_id: int
    created_at: datetime
    tx_hash: str | None
    tx_summary: Mapping[str, Any] | None
    fee: int | None
    approvals: tuple[ApprovalView, ...]
    signed_by: tuple[str, ...]
    """Institutions that signed the current transaction."""
    quorum_reached_at: datetime | None
    veto_window_ends_at: datetime | None
    txid: str | None
    closed_reason: str | None


# --- The workflow -----------------------------------------------------------------------------


class _Refused(Exception):  # noqa: N818 - internal signal, turned into PolicyRefusedError
    """Carries a refusal out of the rolled-back transaction so it can be recorded on its own."""

    def __init__(
        self,
        decision: Decision,
        spend: SpendFacts,
        approvals: Sequence[ApprovalFacts],
        context: PolicyContext,
        actor: str,
    ) -> None:
        super().__init__(decision)
        self.decision = decision
        self.spend = spend
        self.approvals = approvals
        self.context = context
        self.actor = actor


@dataclass(frozen=True)
class _Judged:
    decision_id: int
    spend: SpendFacts
    approvals: tuple[ApprovalFacts, ...]
    context: PolicyContext


def _actor_name(actor: Officer | None) -> str:
    return SYSTEM_ACTOR if actor is None else f"officer:{actor.id}"


def _text(value: str, field: str, max_chars: int) -> str:
    value = value.strip()
    if not value or len(value) > max_chars:
        raise WorkflowInputError(f"The {field} must be 1 to {max_chars} characters long.")
    return value


class Workflow:
    """The service every interface (CLI, REST API, scheduler) goes through to move a spend."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        ledger: SpendLedger,
        *,
        clock: Clock = utc_now,
        reconciliation: ReconciliationGate | None = None,
        confirmations_required: Mapping[str, int] | None = None,
    ) -> None:
        self._sessions = sessions
        self._ledger = ledger
        self._clock = clock
        self._reconciliation = reconciliation or TableReconciliationGate()
        self._confirmations_required = dict(confirmations_required or {})

    # -- plumbing

    def _write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one serialised transaction; record a policy refusal on its own."""
        try:
            with self._sessions.begin() as session:
                begin_serialised_write(session)
                return work(session)
        except _Refused as refused:
            self._record_refusal(refused)
            raise PolicyRefusedError(refused.decision) from None

    def _record_refusal(self, refused: _Refused) -> None:
        with self._sessions.begin() as session:
            begin_serialised_write(session)
            spend = refused.spend
            if (
                spend.proposal_id is not None
                and session.get(SpendProposalRow, spend.proposal_id) is None
            ):
                spend = replace(spend, proposal_id=None)  # a draft rolled back with the refusal
            decision_id = record_decision(
                session, refused.decision, spend, refused.approvals, refused.context
            )
            refs: dict[str, str | int] = {"decision_id": decision_id}
            if spend.proposal_id is not None:
                refs["proposal_id"] = spend.proposal_id
            audit.append(
                session,
                kind=AuditKind.PROPOSAL,
                actor=refused.actor,
                refs=refs,
                payload={
                    "event": "policy_refused",
                    "action": refused.context.action.value,
                    "policy_version": refused.decision.policy_version,
                    "reasons": [r.code.value for r in refused.decision.reasons],
                },
                clock=self._clock,
            )

    def _read(self, work: Callable[[Session], T]) -> T:
        with self._sessions() as session:
            return work(session)

    def _audit(
        self,
        session: Session,
        kind: AuditKind,
        actor: Officer | None,
        row: SpendProposalRow,
        event: str,
        **payload: Any,
    ) -> None:
        refs: dict[str, str | int] = {"proposal_id": row.id}
        if actor is not None:
            refs["officer_id"] = actor.id
        audit.append(
            session,
            kind=kind,
            actor=_actor_name(actor),
            refs=refs,
            payload={"event": event, "state": row.state, **payload},
            clock=self._clock,
        )

    @staticmethod
    def _locked(session: Session, proposal_id: int) -> SpendProposalRow:
        row = session.scalar(
            select(SpendProposalRow).where(SpendProposalRow.id == proposal_id).with_for_update()
        )
        if row is None:
            raise UnknownRecordError(f"No spend proposal has the id {proposal_id}.")
        return row

    @staticmethod
    def _move(row: SpendProposalRow, target: ProposalState) -> None:
        check_transition(row.id, ProposalState(row.state), target)
        row.state = target.value

    @staticmethod
    def _current_tx(session: Session, proposal_id: int) -> PreparedTxRow | None:
        return session.scalar(
            select(PreparedTxRow).where(
                PreparedTxRow.proposal_id == proposal_id, PreparedTxRow.superseded_at.is_(None)
            )
        )

    @staticmethod
    def _earlier_signers(
        session: Session, actor: Officer, proposal_id: int, tx_hash: str
    ) -> Sequence[int]:
        """The institutions that signed ``tx_hash`` already; each signs once, so the actor's must
        not be among them."""
        signed_already = session.scalars(
            select(SignatureRow.institution_id).where(
                SignatureRow.proposal_id == proposal_id, SignatureRow.tx_hash == tx_hash
            )
        ).all()
        if actor.institution_id in signed_already:
            raise WorkflowInputError(
                f"Institution {actor.institution_code} has already signed proposal {proposal_id}."
            )
        return signed_already

    @staticmethod
    def _prepared(row: PreparedTxRow) -> PreparedTx:
        return PreparedTx(row.tx_hash, json.loads(row.summary), row.payload, row.fee)

    @staticmethod
    def _standing_approvals(session: Session, proposal_id: int) -> list[ApprovalFacts]:
        rows = session.execute(
            select(ApprovalRow, InstitutionRow.code, OfficerRow.revoked_at)
            .join(InstitutionRow, InstitutionRow.id == ApprovalRow.institution_id)
            .join(OfficerRow, OfficerRow.id == ApprovalRow.officer_id)
            .where(ApprovalRow.proposal_id == proposal_id, ApprovalRow.voided_at.is_(None))
            .order_by(ApprovalRow.id)
        )
        return [ApprovalFacts(a.officer_id, code, a.tx_hash, revoked) for a, code, revoked in rows]

    def _committed_elsewhere(
        self, session: Session, row: SpendProposalRow, now: datetime
    ) -> tuple[int, int]:
        """Amounts of other committed spends of the asset: in the last 24 h, under the same basis."""
        others = session.execute(
            select(
                SpendProposalRow.amount,
                SpendProposalRow.quorum_reached_at,
                SpendProposalRow.legal_basis_id,
            ).where(
                SpendProposalRow.asset == row.asset,
                SpendProposalRow.id != row.id,
                SpendProposalRow.state.in_([s.value for s in COMMITTED_STATES]),
            )
        )
        spent_24h = under_basis = 0
        for amount, quorum_at, basis_id in others:
            if quorum_at is not None and quorum_at > now - ROLLING_WINDOW:
                spent_24h += amount
            if basis_id == row.legal_basis_id:
                under_basis += amount
        return spent_24h, under_basis

    def _judge(
        self,
        session: Session,
        policy: StoredPolicy,
        row: SpendProposalRow,
        action: Action,
        actor: Officer | None = None,
    ) -> _Judged:
        """Evaluate ``action``; record the decision if allowed, else raise ``_Refused``."""
        now = self._clock()
        # The officer as stored now: a revocation after they authenticated still counts.
        stored_actor = None if actor is None else officers.get_officer(session, actor.id)
        spent_24h, under_basis = self._committed_elsewhere(session, row, now)
        current = self._current_tx(session, row.id)
        spend = SpendFacts(
            proposal_id=row.id,
            asset=row.asset,
            amount=row.amount,
            destination=row.destination,
            proposer_id=row.proposer_id,
            legal_basis=load_legal_basis(session, row.legal_basis_id),
            quorum_reached_at=row.quorum_reached_at,
        )
        approvals = tuple(self._standing_approvals(session, row.id))
        context = PolicyContext(
            action=action,
            now=now,
            spent_24h=spent_24h,
            committed_under_basis=under_basis,
            destination_allowed=destination_allowed(session, row.asset, row.destination, now=now),
            reconciliation=self._reconciliation.latest(session, row.asset),
            current_tx_hash=None if current is None else current.tx_hash,
            actor=None
            if stored_actor is None
            else ActorFacts(
                stored_actor.id, stored_actor.institution_code, stored_actor.revoked_at
            ),
        )
        decision = evaluate(policy, spend, approvals, context)
        if not decision.allowed:
            raise _Refused(decision, spend, approvals, context, _actor_name(actor))
        decision_id = record_decision(session, decision, spend, approvals, context)
        return _Judged(decision_id, spend, approvals, context)

    # -- officers

    def revoke_officer(self, actor: Officer, officer_id: int) -> Officer:
        """Revoke an officer now (admin only) and void their approvals of unsigned spends."""
        actor.require(Role.ADMIN)

        def work(session: Session) -> Officer:
            now = self._clock()
            revoked = officers.revoke_officer(session, officer_id, at=now)
            audit.append(
                session,
                kind=AuditKind.POLICY_CHANGE,
                actor=_actor_name(actor),
                refs={"officer_id": officer_id},
                payload={"event": "officer_revoked", "revoked_at": now.isoformat()},
                clock=self._clock,
            )
            standing = session.scalars(
                select(ApprovalRow)
                .join(SpendProposalRow, SpendProposalRow.id == ApprovalRow.proposal_id)
                .where(
                    ApprovalRow.officer_id == officer_id,
                    ApprovalRow.voided_at.is_(None),
                    SpendProposalRow.state.in_(
                        [ProposalState.PROPOSED.value, ProposalState.APPROVED.value]
                    ),
                )
            ).all()
            for approval in standing:
                approval.voided_at = now
                approval.void_reason = (
                    f"Officer {officer_id} was revoked before the spend was signed."
                )
                row = self._locked(session, approval.proposal_id)
                self._requorum(session, row, actor, "approval_voided", officer_id=officer_id)
            return revoked

        return self._write(work)

    def _requorum(
        self,
        session: Session,
        row: SpendProposalRow,
        actor: Officer | None,
        event: str,
        **extra: Any,
    ) -> None:
        """After approvals were voided: fall back to proposed if the quorum no longer holds."""
        session.flush()
        if row.state == ProposalState.APPROVED.value:
            policy = current_policy(session)
            current = self._current_tx(session, row.id)
            counted = counted_approvals(
                policy.document,
                row.proposer_id,
                self._standing_approvals(session, row.id),
                None if current is None else current.tx_hash,
                self._clock(),
            )
            if len(counted) < policy.document.quorum_required:
                self._move(row, ProposalState.PROPOSED)
                row.quorum_reached_at = None
        self._audit(session, AuditKind.APPROVAL, actor, row, event, **extra)

    # -- proposing

    def propose(
        self,
        actor: Officer,
        *,
        asset: str,
        amount: int,
        destination: str,
        purpose: str,
        legal_basis: str,
        submit: bool = True,
    ) -> ProposalView:
        """Draft a spend citing ``legal_basis`` and, by default, submit it under the policy."""
        actor.require(Role.PROPOSER)
        asset = _text(asset, "asset code", ASSET_CODE_MAX_CHARS)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise WorkflowInputError(
                f"The amount must be a positive integer in base units (satoshi, wei); got {amount!r}."
            )
        destination = _text(destination, "destination address", ADDRESS_MAX_CHARS)
        purpose = _text(purpose, "purpose", PURPOSE_MAX_CHARS)

        def work(session: Session) -> ProposalView:
            now = self._clock()
            if not actor.is_active(now):
                raise NotAuthorisedError(f"Officer {actor.id} is revoked and cannot propose.")
            basis_id, _basis = legal_basis_by_reference(session, legal_basis)
            row = SpendProposalRow(
                asset=asset,
                amount=amount,
                destination=destination,
                purpose=purpose,
                legal_basis_id=basis_id,
                proposer_id=actor.id,
                state=ProposalState.DRAFT.value,
                created_at=now,
            )
            session.add(row)
            session.flush()
            self._audit(session, AuditKind.PROPOSAL, actor, row, "drafted", amount=str(amount))
            if submit:
                self._submit(session, row, actor)
            return self._view(session, row)

        return self._write(work)

    def submit(self, actor: Officer, proposal_id: int) -> ProposalView:
        """Submit a draft for approval (its proposer only), under the policy's spend rules."""

        def work(session: Session) -> ProposalView:
            row = self._locked(session, proposal_id)
            if row.proposer_id != actor.id:
                raise NotAuthorisedError(
                    f"Only the proposer of proposal {proposal_id} may submit it."
                )
            self._submit(session, row, actor)
            return self._view(session, row)

        return self._write(work)

    def _submit(self, session: Session, row: SpendProposalRow, actor: Officer) -> None:
        check_transition(row.id, ProposalState(row.state), ProposalState.PROPOSED)
        policy = current_policy(session)
        judged = self._judge(session, policy, row, Action.SUBMIT, actor)
        self._move(row, ProposalState.PROPOSED)
        self._audit(
            session, AuditKind.PROPOSAL, actor, row, "submitted", decision_id=judged.decision_id
        )

    # -- preparing and approving

    def prepare(self, actor: Officer, proposal_id: int, spender: ChainSpender) -> ProposalView:
        """Build the proposal's transaction; a different transaction voids standing approvals.

        The spender is called between two transactions, never inside one: it talks to a node and
        writes custody's own records, and SQLite's single writer would otherwise wait on itself.
        """
        actor.require(Role.PROPOSER, Role.ADMIN)

        def preparable(session: Session) -> SpendProposalRow:
            row = self._locked(session, proposal_id)
            if row.state not in (ProposalState.PROPOSED.value, ProposalState.APPROVED.value):
                raise ProposalTransitionError(
                    f"Proposal {proposal_id} is {row.state}; a transaction is prepared only while "
                    "it is proposed or approved."
                )
            return row

        row = self._write(preparable)
        prepared = spender.build(SpendRequest(row.id, row.asset, row.amount, row.destination))

        def work(session: Session) -> ProposalView:
            row = preparable(session)
            current = self._current_tx(session, row.id)
            if current is not None and current.tx_hash == prepared.tx_hash:
                return self._view(session, row)
            now = self._clock()
            if current is not None:
                current.superseded_at = now
            session.add(
                PreparedTxRow(
                    proposal_id=row.id,
                    tx_hash=prepared.tx_hash,
                    summary=canonical_json(dict(prepared.summary)),
                    payload=prepared.payload,
                    fee=prepared.fee,
                    prepared_at=now,
                )
            )
            for approval in session.scalars(
                select(ApprovalRow).where(
                    ApprovalRow.proposal_id == row.id, ApprovalRow.voided_at.is_(None)
                )
            ):
                approval.voided_at = now
                approval.void_reason = f"The prepared transaction changed from {approval.tx_hash} to {prepared.tx_hash}."
            self._requorum(
                session, row, actor, "transaction_prepared", tx_hash=prepared.tx_hash,
                replaced=None if current is None else current.tx_hash,
            )  # fmt: skip
            return self._view(session, row)

        return self._write(work)

    def approve(self, actor: Officer, proposal_id: int, tx_hash: str) -> ProposalView:
        """Approve the prepared transaction ``tx_hash`` for the actor's institution."""
        actor.require(Role.APPROVER)

        def work(session: Session) -> ProposalView:
            row = self._locked(session, proposal_id)
            if row.state != ProposalState.PROPOSED.value:
                raise ProposalTransitionError(
                    f"Proposal {proposal_id} is {row.state}; approvals are taken only while it is proposed."
                )
            current = self._current_tx(session, row.id)
            if current is not None and current.tx_hash != tx_hash:
                raise TransactionMismatchError(
                    f"The approval names transaction {tx_hash}, but proposal {proposal_id}'s "
                    f"prepared transaction is {current.tx_hash}; review it and approve that hash."
                )
            policy = current_policy(session)
            judged = self._judge(session, policy, row, Action.APPROVE, actor)
            now = judged.context.now
            session.add(
                ApprovalRow(
                    proposal_id=row.id,
                    officer_id=actor.id,
                    institution_id=actor.institution_id,
                    tx_hash=tx_hash,
                    approved_at=now,
                )
            )
            session.flush()
            counted = counted_approvals(
                policy.document,
                row.proposer_id,
                self._standing_approvals(session, row.id),
                tx_hash,
                now,
            )
            if len(counted) >= policy.document.quorum_required:
                self._move(row, ProposalState.APPROVED)
                row.quorum_reached_at = now
            self._audit(
                session, AuditKind.APPROVAL, actor, row, "approved",
                tx_hash=tx_hash, decision_id=judged.decision_id,
                institution=actor.institution_code,
            )  # fmt: skip
            return self._view(session, row)

        return self._write(work)

    # -- closing early

    def reject(self, actor: Officer, proposal_id: int, reason: str) -> ProposalView:
        """Reject an unsigned proposal (an approver, an admin, or its own proposer withdrawing)."""
        reason = _text(reason, "reason", REASON_MAX_CHARS)

        def work(session: Session) -> ProposalView:
            row = self._locked(session, proposal_id)
            if row.proposer_id != actor.id:
                actor.require(Role.APPROVER, Role.ADMIN)
            return self._close(session, row, actor, ProposalState.REJECTED, "rejected", reason)

        return self._write(work)

    def veto(self, actor: Officer, proposal_id: int, reason: str) -> ProposalView:
        """Cancel a spend (oversight only) before approval or during its veto window."""
        actor.require(Role.OVERSIGHT)
        reason = _text(reason, "reason", REASON_MAX_CHARS)

        def work(session: Session) -> ProposalView:
            row = self._locked(session, proposal_id)
            if row.state == ProposalState.APPROVED.value:
                policy = current_policy(session)
                ends = self._veto_window_end(session, policy, row)
                if ends is None or self._clock() >= ends:
                    raise ProposalTransitionError(
                        f"Proposal {proposal_id} is approved and has no open veto window"
                        + ("" if ends is None else f" (it closed at {ends.isoformat()})")
                        + "; oversight can no longer cancel it."
                    )
            elif row.state not in (ProposalState.DRAFT.value, ProposalState.PROPOSED.value):
                raise ProposalTransitionError(
                    f"Proposal {proposal_id} is {row.state} and can no longer be vetoed."
                )
            return self._close(session, row, actor, ProposalState.REJECTED, "vetoed", reason)

        return self._write(work)

    def _close(
        self,
        session: Session,
        row: SpendProposalRow,
        actor: Officer | None,
        target: ProposalState,
        event: str,
        reason: str,
    ) -> ProposalView:
        self._move(row, target)
        row.closed_at = self._clock()
        row.closed_by = None if actor is None else actor.id
        row.closed_reason = reason
        self._audit(session, AuditKind.PROPOSAL, actor, row, event, reason=reason)
        return self._view(session, row)

    def expire_due(self) -> list[int]:
        """Expire unsigned proposals past the policy's time-to-live or their legal basis."""

        def work(session: Session) -> list[int]:
            now = self._clock()
            ttl = timedelta(seconds=current_policy(session).document.proposal_ttl_seconds)
            open_states = [
                ProposalState.DRAFT.value,
                ProposalState.PROPOSED.value,
                ProposalState.APPROVED.value,
            ]
            expired: list[int] = []
            for row in session.scalars(
                select(SpendProposalRow)
                .where(SpendProposalRow.state.in_(open_states))
                .order_by(SpendProposalRow.id)
                .with_for_update()
            ):
                basis = load_legal_basis(session, row.legal_basis_id)
                if now >= row.created_at + ttl or now >= basis.expires_at:
                    why = (
                        "legal basis expired" if now >= basis.expires_at else "time-to-live passed"
                    )
                    self._close(session, row, None, ProposalState.EXPIRED, "expired", why)
                    expired.append(row.id)
            return expired

        return self._write(work)

    # -- signing and release

    def sign(
        self,
        actor: Officer,
        proposal_id: int,
        spender: ChainSpender,
        shares: Sequence[str],
        passphrase: str,
    ) -> ProposalView:
        """Add the actor's institution's signature from its share holders' shares.

        The shares and passphrase go to the spender only; nothing of them is stored or logged.
        """
        actor.require(Role.APPROVER)

        def signable(session: Session) -> tuple[PreparedTx, int]:
            row = self._locked(session, proposal_id)
            if row.state != ProposalState.APPROVED.value:
                raise ProposalTransitionError(
                    f"Proposal {proposal_id} is {row.state}; only an approved proposal is signed."
                )
            policy = current_policy(session)
            judged = self._judge(session, policy, row, Action.SIGN, actor)
            counted = counted_approvals(
                policy.document,
                row.proposer_id,
                judged.approvals,
                judged.context.current_tx_hash,
                judged.context.now,
            )
            if actor.institution_code not in counted:
                raise NotAuthorisedError(
                    f"Institution {actor.institution_code} has no standing approval of proposal "
                    f"{proposal_id}'s transaction, so it may not sign it."
                )
            current = self._current_tx(session, row.id)
            assert current is not None  # the SIGN decision refuses a proposal without one
            self._earlier_signers(session, actor, row.id, current.tx_hash)
            return self._prepared(current), judged.decision_id

        # The signer runs between transactions (see ``prepare``); the record step re-checks.
        approved, decision_id = self._write(signable)
        signed = spender.sign(approved, actor.institution_code, shares, passphrase)
        if signed.tx_hash != approved.tx_hash:
            raise TransactionMismatchError(
                f"The signer returned transaction {signed.tx_hash}, not the approved {approved.tx_hash}."
            )

        def work(session: Session) -> ProposalView:
            row = self._locked(session, proposal_id)
            current = self._current_tx(session, row.id)
            if row.state != ProposalState.APPROVED.value or current is None:
                raise ProposalTransitionError(
                    f"Proposal {proposal_id} became {row.state} while it was being signed."
                )
            if current.tx_hash != approved.tx_hash:
                raise TransactionMismatchError(
                    f"Proposal {proposal_id}'s transaction changed to {current.tx_hash} while "
                    f"{approved.tx_hash} was being signed; sign the new transaction."
                )
            signed_already = self._earlier_signers(session, actor, row.id, current.tx_hash)
            policy = current_policy(session)
            now = self._clock()
            current.payload = signed.payload
            session.add(
                SignatureRow(
                    proposal_id=row.id,
                    tx_hash=current.tx_hash,
                    institution_id=actor.institution_id,
                    officer_id=actor.id,
                    signed_at=now,
                )
            )
            if len(signed_already) + 1 >= policy.document.quorum_required:
                self._move(row, ProposalState.SIGNED)
                row.signed_at = now
            self._audit(
                session, AuditKind.APPROVAL, actor, row, "signed",
                institution=actor.institution_code, tx_hash=current.tx_hash,
                decision_id=decision_id,
            )  # fmt: skip
            return self._view(session, row)

        return self._write(work)

    def broadcast(self, proposal_id: int, spender: ChainSpender) -> ProposalView:
        """Send a signed proposal's transaction exactly once, however often this is retried."""

        def begin(session: Session) -> tuple[PreparedTx, bool] | None:
            row = self._locked(session, proposal_id)
            if row.state in (ProposalState.BROADCAST.value, ProposalState.CONFIRMED.value):
                return None
            check_transition(row.id, ProposalState(row.state), ProposalState.BROADCAST)
            current = self._current_tx(session, row.id)
            assert current is not None  # a signed proposal always has its transaction
            if row.broadcast_started_at is not None:
                return self._prepared(current), True
            judged = self._judge(session, current_policy(session), row, Action.BROADCAST)
            self._ledger.ready(session, row.asset)
            row.broadcast_started_at = judged.context.now
            self._audit(
                session, AuditKind.BROADCAST, None, row, "broadcast_started",
                tx_hash=current.tx_hash, decision_id=judged.decision_id,
            )  # fmt: skip
            return self._prepared(current), False

        started = self._write(begin)
        if started is not None:
            prepared, retry = started
            txid = spender.find_broadcast(prepared) if retry else None
            if txid is None:
                txid = spender.broadcast(prepared)
            self._write(
                lambda session: self._record_broadcast(session, proposal_id, prepared, txid)
            )
        return self.view(proposal_id)

    def _record_broadcast(
        self, session: Session, proposal_id: int, prepared: PreparedTx, txid: str
    ) -> None:
        row = self._locked(session, proposal_id)
        if row.state != ProposalState.SIGNED.value:
            return  # a concurrent retry recorded it first
        self._move(row, ProposalState.BROADCAST)
        row.txid = txid
        row.broadcast_at = self._clock()
        self._ledger.hold(
            session,
            SpendPosting(row.id, row.asset, row.amount, prepared.fee, row.destination, txid),
        )
        self._audit(session, AuditKind.BROADCAST, None, row, "broadcast", txid=txid)

    def refresh(self, proposal_id: int, spender: ChainSpender) -> ProposalView:
        """Track a broadcast spend: post its ledger entry once confirmed, void it if it failed."""
        txid = self._read(lambda session: self._txid_if_broadcast(session, proposal_id))
        if txid is not None:
            depth = spender.confirmations(txid)
            self._write(lambda session: self._settle(session, proposal_id, depth))
        return self.view(proposal_id)

    @staticmethod
    def _txid_if_broadcast(session: Session, proposal_id: int) -> str | None:
        row = session.get(SpendProposalRow, proposal_id)
        if row is None:
            raise UnknownRecordError(f"No spend proposal has the id {proposal_id}.")
        return row.txid if row.state == ProposalState.BROADCAST.value else None

    def _settle(self, session: Session, proposal_id: int, depth: int) -> None:
        row = self._locked(session, proposal_id)
        if row.state != ProposalState.BROADCAST.value:
            return
        required = self._confirmations_required.get(row.asset, DEFAULT_CONFIRMATIONS_REQUIRED)
        if depth >= required:
            self._move(row, ProposalState.CONFIRMED)
            row.confirmed_at = self._clock()
            self._ledger.post(session, row.id)
            self._audit(session, AuditKind.BROADCAST, None, row, "confirmed", confirmations=depth)
        elif depth < 0:
            self._move(row, ProposalState.FAILED)
            row.closed_at = self._clock()
            row.closed_reason = f"The chain reports transaction {row.txid} failed or was replaced."
            self._ledger.void(session, row.id)
            self._audit(session, AuditKind.BROADCAST, None, row, "failed", txid=row.txid or "")

    def resume(self, spenders: Mapping[str, ChainSpender]) -> list[ProposalView]:
        """After a restart: finish every signed or broadcast spend whose chain is configured."""
        in_flight = self._read(
            lambda session: session.execute(
                select(SpendProposalRow.id, SpendProposalRow.asset, SpendProposalRow.state)
                .where(
                    SpendProposalRow.state.in_(
                        [ProposalState.SIGNED.value, ProposalState.BROADCAST.value]
                    )
                )
                .order_by(SpendProposalRow.id)
            ).all()
        )
        views: list[ProposalView] = []
        for proposal_id, asset, state in in_flight:
            spender = spenders.get(asset)
            if spender is None:
                continue
            if state == ProposalState.SIGNED.value:
                self.broadcast(proposal_id, spender)
            views.append(self.refresh(proposal_id, spender))
        return views

    # -- reading

    def status(self, actor: Officer, proposal_id: int) -> ProposalView:
        """A proposal's full status; every role may read."""
        self._require_reader(actor)
        return self.view(proposal_id)

    def view(self, proposal_id: int) -> ProposalView:
        def work(session: Session) -> ProposalView:
            row = session.get(SpendProposalRow, proposal_id)
            if row is None:
                raise UnknownRecordError(f"No spend proposal has the id {proposal_id}.")
            return self._view(session, row)

        return self._read(work)

    def list_proposals(
        self, actor: Officer, state: ProposalState | None = None
    ) -> list[ProposalView]:
        """Proposals, newest first, optionally in one state; every role may read."""
        self._require_reader(actor)

        def work(session: Session) -> list[ProposalView]:
            query = select(SpendProposalRow).order_by(SpendProposalRow.id.desc())
            if state is not None:
                query = query.where(SpendProposalRow.state == state.value)
            return [self._view(session, row) for row in session.scalars(query)]

        return self._read(work)

    def decisions(self, actor: Officer, proposal_id: int) -> list[RecordedDecision]:
        """Every policy decision taken about a proposal, for replay by an auditor."""
        self._require_reader(actor)
        return self._read(lambda session: decisions_for(session, proposal_id))

    @staticmethod
    def _require_reader(actor: Officer) -> None:
        actor.require(*Role)

    def _veto_window_end(
        self, session: Session, policy: StoredPolicy, row: SpendProposalRow
    ) -> datetime | None:
        spend = SpendFacts(
            row.id, row.asset, row.amount, row.destination, row.proposer_id,
            load_legal_basis(session, row.legal_basis_id), row.quorum_reached_at,
        )  # fmt: skip
        return veto_window_end(policy.document, spend)

    def _view(self, session: Session, row: SpendProposalRow) -> ProposalView:
        session.flush()
        current = self._current_tx(session, row.id)
        approvals = session.execute(
            select(ApprovalRow, InstitutionRow.code)
            .join(InstitutionRow, InstitutionRow.id == ApprovalRow.institution_id)
            .where(ApprovalRow.proposal_id == row.id)
            .order_by(ApprovalRow.id)
        ).all()
        signed_by: Iterable[str] = ()
        if current is not None:
            signed_by = session.scalars(
                select(InstitutionRow.code)
                .join(SignatureRow, SignatureRow.institution_id == InstitutionRow.id)
                .where(SignatureRow.proposal_id == row.id, SignatureRow.tx_hash == current.tx_hash)
                .order_by(InstitutionRow.code)
            ).all()
        basis = session.get(LegalBasisRow, row.legal_basis_id)
        has_policy = session.scalar(select(PolicyVersionRow.version).limit(1)) is not None
        ends = self._veto_window_end(session, current_policy(session), row) if has_policy else None
        return ProposalView(
            id=row.id,
            state=ProposalState(row.state),
            asset=row.asset,
            amount=row.amount,
            destination=row.destination,
            purpose=row.purpose,
            legal_basis="" if basis is None else basis.reference,
            proposer_id=row.proposer_id,
            created_at=row.created_at,
            tx_hash=None if current is None else current.tx_hash,
            tx_summary=None if current is None else json.loads(current.summary),
            fee=None if current is None else current.fee,
            approvals=tuple(
                ApprovalView(
                    a.officer_id, code, a.tx_hash, a.approved_at, a.voided_at, a.void_reason
                )
                for a, code in approvals
            ),
            signed_by=tuple(signed_by),
            quorum_reached_at=row.quorum_reached_at,
            veto_window_ends_at=ends,
            txid=row.txid,
            closed_reason=row.closed_reason,
        )
