"""Approval statements on the treasury's side: built for people, checked before they are stored.

The statement is what an officer's key signs (``custody.authority.ApprovalStatement``); the
signers check it against the transaction they decode themselves and trust nothing the server
says. The server still checks each statement before storing it, so a wrong one is refused at
once with a clear answer instead of at signing time: it must be signed by an active key of this
officer in the replayed roster, name the signing officer's role, and equal -- field by field,
expiry aside -- the statement the server builds now from the proposal, its prepared transaction,
its vault and the policy in force (``treasury.proposals.signed_statements.statement_for``).

This module is pure (no database): the facts come in as a ``StatementSubject``. It imports
nothing of ``treasury.proposals`` or ``treasury.officers``, so the workflow can import it without
an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from custody.authority import (
    ApprovalStatement,
    AuthorityError,
    RosterState,
    SignedStatement,
    StatementKind,
    signature_from_json,
    verify_signer,
)
from custody.ethereum.signer import ERC20_ASSET_PREFIX
from treasury.workflow_exceptions import (
    NotAuthorisedError,
    NotConfiguredError,
    TransactionMismatchError,
    WorkflowInputError,
)

__all__ = [
    "DEFAULT_STATEMENT_TTL",
    "MAX_STATEMENT_TTL",
    "StatementSubject",
    "build_statement",
    "check_signed_statement",
    "human_summary",
    "signed_from_json",
    "signed_to_json",
]

DEFAULT_STATEMENT_TTL = timedelta(hours=24)
"""How long a statement counts after it is built, unless the caller asks for less."""
MAX_STATEMENT_TTL = timedelta(days=7)
"""The server refuses a statement valid for longer: an approval should not outlive its review."""

_COMPARED_FIELDS = tuple(f.name for f in fields(ApprovalStatement) if f.name != "expires_at")
"""Every field but the expiry, which is the signing officer's (within ``MAX_STATEMENT_TTL``)."""

_UNITS: dict[str, tuple[int, str]] = {"BTC": (8, "sat"), "ETH": (18, "wei")}
"""Decimals and base-unit name of the assets shown in coin units."""


@dataclass(frozen=True)
class StatementSubject:
    """What a statement says about the spend, as the server knows it now (no officer, no expiry)."""

    proposal_id: int
    chain: str
    vault: str
    vault_id: str
    asset: str
    amount: int
    destination: str
    tx_hash: str
    safe_nonce: int | None
    max_fee: int | None
    policy_hash: str
    legal_basis: str


def build_statement(
    subject: StatementSubject,
    kind: StatementKind,
    officer_id: str,
    institution: str,
    now: datetime,
    ttl: timedelta = DEFAULT_STATEMENT_TTL,
) -> ApprovalStatement:
    """The statement ``officer_id`` of ``institution`` signs to approve or veto ``subject``."""
    if not timedelta(0) < ttl <= MAX_STATEMENT_TTL:
        raise WorkflowInputError(
            f"A statement's time to live must be positive and at most {MAX_STATEMENT_TTL}; "
            f"got {ttl}."
        )
    try:
        return ApprovalStatement(
            kind=kind,
            proposal_id=str(subject.proposal_id),
            chain=subject.chain,
            vault=subject.vault,
            vault_id=subject.vault_id,
            asset=subject.asset,
            amount=subject.amount,
            destination=subject.destination,
            tx_hash=subject.tx_hash,
            safe_nonce=subject.safe_nonce,
            max_fee=subject.max_fee,
            policy_hash=subject.policy_hash,
            legal_basis=subject.legal_basis,
            expires_at=(now + ttl).replace(microsecond=0),
            officer_id=officer_id,
            institution=institution,
        )
    except AuthorityError as exc:
        raise NotConfiguredError(
            f"Proposal {subject.proposal_id}'s transaction cannot be stated for signing: {exc}"
        ) from exc


EVM_NATIVE_UNITS = (18, "wei")
"""Every EVM chain's native coin (ether, BNB) has 18 decimals, its base unit the wei."""
EVM_CHAIN_PREFIX = "eip155:"


def coin_units(asset: str, amount: int, chain: str | None = None) -> str:
    """``0.25 BTC (25000000 sat)``; a further EVM chain's native coin (``chain`` ``eip155:…``,
    not a token) in its 18 decimals; an asset of unknown decimals in base units only."""
    known = _UNITS.get(asset)
    if known is None and chain is not None and chain.startswith(EVM_CHAIN_PREFIX):
        known = None if asset.startswith(ERC20_ASSET_PREFIX) else EVM_NATIVE_UNITS
    if known is None:
        return f"{amount} {asset} base units"
    decimals, unit = known
    value = Decimal(amount).scaleb(-decimals)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {asset} ({amount} {unit})"


def human_summary(statement: ApprovalStatement) -> str:
    """The statement for the person signing it: what moves, from where, to where, under what."""
    verb = "APPROVE" if statement.kind is StatementKind.APPROVE else "VETO"
    lines = [
        f"{verb} proposal {statement.proposal_id}: "
        f"{coin_units(statement.asset, statement.amount, statement.chain)} to "
        f"{statement.destination}",
        f"  from vault {statement.vault} on {statement.chain}",
        f"  vault id: {statement.vault_id}",
        f"  transaction: {statement.tx_hash}",
    ]
    if statement.max_fee is not None:
        lines.append(
            f"  fee at most: {coin_units(statement.asset, statement.max_fee, statement.chain)}"
        )
    if statement.safe_nonce is not None:
        lines.append(f"  Safe nonce: {statement.safe_nonce}")
    lines += [
        f"  policy: {statement.policy_hash}",
        f"  legal basis: {statement.legal_basis}",
        f"  signed by officer {statement.officer_id} ({statement.institution}), "
        f"valid until {statement.expires_at.isoformat()}",
    ]
    return "\n".join(lines)


def check_signed_statement(
    state: RosterState,
    signed: SignedStatement,
    expected: ApprovalStatement,
    now: datetime,
) -> None:
    """Refuse ``signed`` unless it is ``expected`` (expiry aside), unexpired and genuinely signed.

    ``expected`` is the statement the server builds now for the acting officer; the roster
    ``state`` says which keys and roles that officer holds.
    """
    given = signed.statement
    if given.kind is not expected.kind:
        raise WorkflowInputError(
            f"A {expected.kind.value} needs a {expected.kind.value} statement; a "
            f"{given.kind.value} statement was given."
        )
    if (given.officer_id, given.institution) != (expected.officer_id, expected.institution):
        raise NotAuthorisedError(
            f"The statement is made out to officer {given.officer_id} ({given.institution}); "
            f"you are officer {expected.officer_id} ({expected.institution})."
        )
    differing = [n for n in _COMPARED_FIELDS if getattr(given, n) != getattr(expected, n)]
    if differing:
        detail = "; ".join(
            f"{n} {getattr(given, n)!r} instead of {getattr(expected, n)!r}" for n in differing
        )
        raise TransactionMismatchError(
            f"The signed statement is not proposal {expected.proposal_id}'s as it stands: "
            f"{detail}. Fetch the statement again, review it and sign that."
        )
    if given.expires_at <= now:
        raise WorkflowInputError(
            f"The signed statement expired at {given.expires_at.isoformat()}; sign a fresh one."
        )
    if given.expires_at > now + MAX_STATEMENT_TTL:
        raise WorkflowInputError(
            f"The signed statement is valid until {given.expires_at.isoformat()}, more than "
            f"{MAX_STATEMENT_TTL} ahead; sign one that expires sooner."
        )
    _check_signer(state, signed)
    if expected.kind is StatementKind.APPROVE and state.policy_hash != expected.policy_hash:
        raise NotConfiguredError(
            f"The policy in force ({expected.policy_hash}) is not the one the signed roster "
            f"chain sets ({state.policy_hash}); the signers would refuse this approval. The "
            "admins must sign the policy into the roster chain first."
        )


def _check_signer(state: RosterState, signed: SignedStatement) -> None:
    """Custody's own check of who signed (``verify_signer``), answered as a refusal of the officer."""
    try:
        verify_signer(state, signed)
    except AuthorityError as exc:
        raise NotAuthorisedError(str(exc)) from exc


def signed_to_json(signed: SignedStatement) -> dict[str, Any]:
    """A signed statement as JSON: ``{"statement": {...}, "key_id": ..., "signature": {...}}``."""
    return {
        "statement": signed.statement.to_json(),
        "key_id": signed.key_id,
        "signature": signed.signature.to_json(),
    }


def signed_from_json(obj: Any) -> SignedStatement:
    """The inverse of ``signed_to_json``; malformed input is a ``WorkflowInputError``."""
    if not isinstance(obj, dict) or set(obj) != {"statement", "key_id", "signature"}:
        raise WorkflowInputError(
            "A signed statement is an object with exactly statement, key_id and signature."
        )
    if not isinstance(obj["key_id"], str) or not obj["key_id"]:
        raise WorkflowInputError("The signed statement's key_id must be a non-empty string.")
    try:
        statement = ApprovalStatement.from_json(obj["statement"])
        signature = signature_from_json(obj["signature"])
    except AuthorityError as exc:
        raise WorkflowInputError(f"The signed statement is malformed: {exc}") from exc
    return SignedStatement(statement, obj["key_id"], signature)
