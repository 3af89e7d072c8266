"""The statement an officer signs about a proposal, built from what the treasury holds now.

``statement_for`` reads the proposal (asset, amount, destination, legal basis), its current
prepared transaction (hash; and the chain facts its spender recorded in the summary: chain,
vault, vault id, the most fee or the Safe nonce) and the policy in force, and builds the
``ApprovalStatement`` the officer's key signs. ``verified_statement`` is the server's check of
a signed statement before the approval (or veto) that carries it is stored.

It lives beside the workflow rather than in ``treasury.authority`` because it reads the
workflow's tables, and the workflow imports the authority store: keeping it here keeps the two
packages free of an import cycle.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from eth_utils.address import is_address, to_checksum_address
from sqlalchemy.orm import Session

from custody.authority import ApprovalStatement, RosterState, SignedStatement, StatementKind
from custody.authority.statement import EVM_CHAIN_PREFIX
from treasury.authority.statements import (
    DEFAULT_STATEMENT_TTL,
    StatementSubject,
    build_statement,
    check_signed_statement,
)
from treasury.officers import Officer
from treasury.policy import current_policy, load_legal_basis
from treasury.proposals.rows import current_tx
from treasury.proposals.tables import SpendProposalRow
from treasury.workflow_exceptions import (
    NotConfiguredError,
    ProposalTransitionError,
    UnknownRecordError,
)

__all__ = ["statement_for", "statement_subject", "verified_statement"]

SUMMARY_CHAIN = "chain"
"""Summary key of the chain (``bitcoin:<network>`` / ``eip155:<id>``) a spender prepared on."""
SUMMARY_VAULT = "vault"
SUMMARY_VAULT_ID = "vault_id"
SUMMARY_MAX_FEE = "max_fee_sats"
SUMMARY_NONCE = "nonce"


def _fact(summary: dict[str, Any], key: str, proposal_id: int) -> Any:
    value = summary.get(key)
    if value is None or value == "":
        raise NotConfiguredError(
            f"Proposal {proposal_id}'s prepared transaction does not record its {key}, which a "
            "signed statement must name; prepare it again (`treasury spend prepare`)."
        )
    return value


def statement_subject(session: Session, proposal_id: int) -> StatementSubject:
    """What a statement about ``proposal_id`` says, officer and expiry aside."""
    row = session.get(SpendProposalRow, proposal_id)
    if row is None:
        raise UnknownRecordError(f"No spend proposal has the id {proposal_id}.")
    current = current_tx(session, row.id)
    if current is None:
        raise ProposalTransitionError(
            f"Proposal {proposal_id} has no prepared transaction yet; a statement names the "
            "transaction it approves, so prepare it first."
        )
    summary: dict[str, Any] = json.loads(current.summary)
    chain = str(_fact(summary, SUMMARY_CHAIN, row.id))
    evm = chain.startswith(EVM_CHAIN_PREFIX)
    destination = row.destination
    if evm and is_address(destination):
        destination = to_checksum_address(destination)
    return StatementSubject(
        proposal_id=row.id,
        chain=chain,
        vault=str(_fact(summary, SUMMARY_VAULT, row.id)),
        vault_id=str(_fact(summary, SUMMARY_VAULT_ID, row.id)),
        asset=row.asset,
        amount=row.amount,
        destination=destination,
        tx_hash=current.tx_hash,
        safe_nonce=int(_fact(summary, SUMMARY_NONCE, row.id)) if evm else None,
        max_fee=None if evm else int(_fact(summary, SUMMARY_MAX_FEE, row.id)),
        policy_hash=current_policy(session).content_hash,
        legal_basis=load_legal_basis(session, row.legal_basis_id).reference,
    )


def statement_for(
    session: Session,
    proposal_id: int,
    officer: Officer,
    kind: StatementKind,
    now: datetime,
    ttl: timedelta = DEFAULT_STATEMENT_TTL,
) -> ApprovalStatement:
    """The statement ``officer`` signs to approve (or veto) proposal ``proposal_id`` as it is now.

    Roster officer ids are the treasury's officer ids as text; institutions their codes.
    """
    return build_statement(
        statement_subject(session, proposal_id),
        kind,
        str(officer.id),
        officer.institution_code,
        now,
        ttl,
    )


def verified_statement(
    session: Session,
    state: RosterState,
    officer: Officer,
    proposal_id: int,
    signed: SignedStatement,
    kind: StatementKind,
    now: datetime,
) -> SignedStatement:
    """``signed``, once it is checked to be ``officer``'s genuine ``kind`` statement of the
    proposal as it stands now; otherwise a specific workflow error and nothing is written."""
    expected = statement_for(session, proposal_id, officer, kind, now)
    check_signed_statement(state, signed, expected, now)
    return signed
