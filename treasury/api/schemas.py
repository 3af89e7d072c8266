"""Request and response bodies. Amounts travel as decimal strings: wei overflows JSON numbers.

Every value a request carries is checked here, before any route runs, so nothing malformed
reaches the workflow or the database (issue 13): ids are in the range the id columns hold
(``RecordId``), amounts are exact digit strings, and text is text both databases store
(``SingleLineText``, ``MultiLineText``: no control characters, no lone surrogates).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from custody.authority import ApprovalStatement
from treasury.authority.statements import human_summary
from treasury.policy import Decision, RecordedDecision
from treasury.proposals import ApprovalView, ProposalState, ProposalView
from treasury.text import LINE_BREAKS, unstorable_characters, unstorable_message

AMOUNT_PATTERN = re.compile(r"[1-9][0-9]{0,77}", re.ASCII)
"""A whole amount exactly as written: ASCII digits, no sign, no leading zero, no padding."""
TX_HASH_PATTERN = re.compile(r"(0x)?[0-9a-fA-F]{64}", re.ASCII)

RECORD_ID_MAX = 2**31 - 1
"""Largest id any record the API looks up can have: PostgreSQL's ``integer``, the type of the
proposal and officer id columns (SQLite's are 64-bit, so this is the narrower of the two). A
larger id, or one below 1, names no record on either database and is refused before a query."""

RecordId = Annotated[
    int,
    Path(ge=1, le=RECORD_ID_MAX, description=f"A record's id, from 1 to {RECORD_ID_MAX}."),
]
"""The type of every id in a path (``proposal_id``, ``officer_id``): 422 outside 1..max."""

UNSTORABLE_TEXT = "unstorable_text"
"""The validation error type of text with control characters or lone surrogates; the API
records such a refusal in the audit log (``treasury.api.input_refusals``)."""


def _text_checker(allowed: frozenset[str]) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, str):
            found = unstorable_characters(value, allowed)
            if found:
                raise PydanticCustomError(
                    UNSTORABLE_TEXT,
                    "must be {what}",
                    {"what": unstorable_message(found), "found": " ".join(found)},
                )
        return value

    return BeforeValidator(check)


SingleLineText = Annotated[str, _text_checker(frozenset())]
"""Text of one line (a code, an address, a reference, a name): no control character at all."""
MultiLineText = Annotated[str, _text_checker(LINE_BREAKS)]
"""Free text (a purpose, a reason): tabs and line breaks allowed, no other control character."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProposeBody(_Body):
    asset: SingleLineText = Field(min_length=1, max_length=64, examples=["BTC"])
    amount: str = Field(
        description=(
            "Positive whole number of base units (satoshi, wei) as a decimal string of ASCII "
            "digits, exactly: no sign, no leading zero, no spaces, no exponent or fraction."
        ),
        examples=["150000000"],
    )
    destination: SingleLineText = Field(min_length=1, max_length=128)
    purpose: MultiLineText = Field(min_length=1, max_length=2000)
    legal_basis: SingleLineText = Field(
        min_length=1, max_length=64, description="Decree or act reference."
    )

    @field_validator("amount", mode="before")
    @classmethod
    def _whole_base_units(cls, value: object) -> object:
        # Before the model strips whitespace: " 100 " is not the amount "100", it is refused.
        if not isinstance(value, str) or not AMOUNT_PATTERN.fullmatch(value):
            raise ValueError(
                "amount must be a positive whole number of base units (satoshi, wei) written as "
                "a decimal string of ASCII digits with no sign, spaces or leading zero, "
                "e.g. '150000000'"
            )
        return value


class ApproveBody(_Body):
    tx_hash: SingleLineText = Field(
        description="Hash of the prepared transaction you reviewed and approve."
    )
    signed: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Your signed approval statement, required once the roster chain is founded: "
            '{"statement": <the object GET /proposals/{id}/statement returns>, "key_id": '
            '"k1:...", "signature": {"kind": "secp256k1", "signature": "<65-byte hex>"}} '
            "(or a WebAuthn signature object)."
        ),
    )

    @field_validator("tx_hash")
    @classmethod
    def _hex_hash(cls, value: str) -> str:
        if not TX_HASH_PATTERN.fullmatch(value):
            raise ValueError("tx_hash must be 64 hexadecimal characters, optionally prefixed 0x")
        return value


class StatementOut(BaseModel):
    """The statement an officer signs: its fields, its exact bytes, their digest, for people."""

    statement: dict[str, str | None]
    canonical: str = Field(description="The exact UTF-8 text whose digest is signed.")
    digest: str = Field(description="SHA-256 of the domain tag and the canonical text, in hex.")
    summary: str = Field(description="The statement in coin units, for the officer to review.")

    @classmethod
    def of(cls, statement: ApprovalStatement) -> StatementOut:
        return cls(
            statement=statement.to_json(),
            canonical=statement.encode().decode("utf-8"),
            digest=statement.digest().hex(),
            summary=human_summary(statement),
        )


class ReasonBody(_Body):
    reason: MultiLineText = Field(min_length=1, max_length=2000)


class ApprovalOut(BaseModel):
    officer_id: int
    institution: str
    tx_hash: str
    approved_at: datetime
    voided_at: datetime | None
    void_reason: str | None

    @classmethod
    def of(cls, view: ApprovalView) -> ApprovalOut:
        return cls(**view.__dict__)


class ProposalOut(BaseModel):
    id: int
    state: ProposalState
    asset: str
    amount: str
    destination: str
    purpose: str
    legal_basis: str
    proposer_id: int
    created_at: datetime
    tx_hash: str | None
    tx_summary: dict[str, Any] | None
    fee: str | None
    approvals: list[ApprovalOut]
    signed_by: list[str]
    quorum_reached_at: datetime | None
    veto_window_ends_at: datetime | None
    txid: str | None
    closed_reason: str | None

    @classmethod
    def of(cls, view: ProposalView) -> ProposalOut:
        return cls(
            id=view.id,
            state=view.state,
            asset=view.asset,
            amount=str(view.amount),
            destination=view.destination,
            purpose=view.purpose,
            legal_basis=view.legal_basis,
            proposer_id=view.proposer_id,
            created_at=view.created_at,
            tx_hash=view.tx_hash,
            tx_summary=None if view.tx_summary is None else dict(view.tx_summary),
            fee=None if view.fee is None else str(view.fee),
            approvals=[ApprovalOut.of(a) for a in view.approvals],
            signed_by=list(view.signed_by),
            quorum_reached_at=view.quorum_reached_at,
            veto_window_ends_at=view.veto_window_ends_at,
            txid=view.txid,
            closed_reason=view.closed_reason,
        )


class RefusalOut(BaseModel):
    code: str
    message: str


class DecisionOut(BaseModel):
    id: int
    action: str
    allowed: bool
    reasons: list[RefusalOut]
    policy_version: int
    policy_hash: str
    inputs_digest: str
    decided_at: datetime

    @classmethod
    def of(cls, recorded: RecordedDecision) -> DecisionOut:
        decision = recorded.decision
        return cls(
            id=recorded.id,
            action=recorded.action.value,
            allowed=decision.allowed,
            reasons=refusals(decision),
            policy_version=decision.policy_version,
            policy_hash=decision.policy_hash,
            inputs_digest=recorded.inputs_digest,
            decided_at=recorded.decided_at,
        )


def refusals(decision: Decision) -> list[RefusalOut]:
    return [RefusalOut(code=r.code.value, message=r.message) for r in decision.reasons]


class BalanceOut(BaseModel):
    account: str
    asset: str
    posted: str
    pending: str
    available: str


class AuditHeadOut(BaseModel):
    sequence: int
    hash: str


class AuditVerifyOut(BaseModel):
    ok: bool
    events_checked: int
    head: AuditHeadOut
    problem: str | None
