"""Signing: each institution adds its signature to the approved transaction, once.

The shares and passphrase go to the chain spender only and are never stored or logged. The
signer runs between two transactions; the second re-checks that the proposal and its
transaction did not change meanwhile before it records the signature.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.audit import AuditKind
from treasury.officers import Officer, Role
from treasury.policy import Action, counted_approvals, current_policy
from treasury.proposals.context import WorkflowContext
from treasury.proposals.ports import ChainSpender, PreparedTx
from treasury.proposals.rows import current_tx, locked, move, prepared, required_tx
from treasury.proposals.states import ProposalState
from treasury.proposals.tables import SignatureRow
from treasury.proposals.views import ProposalView, proposal_view
from treasury.workflow_exceptions import (
    NotAuthorisedError,
    ProposalTransitionError,
    TransactionMismatchError,
    WorkflowInputError,
)


def earlier_signers(
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


def sign(
    ctx: WorkflowContext,
    actor: Officer,
    proposal_id: int,
    spender: ChainSpender,
    shares: Sequence[str],
    passphrase: str,
) -> ProposalView:
    """Add the actor's institution's signature from its share holders' shares."""
    actor.require(Role.APPROVER)

    def signable(session: Session) -> tuple[PreparedTx, int]:
        row = locked(session, proposal_id)
        if row.state != ProposalState.APPROVED.value:
            raise ProposalTransitionError(
                f"Proposal {proposal_id} is {row.state}; only an approved proposal is signed."
            )
        policy = current_policy(session)
        judged = ctx.judge(session, policy, row, Action.SIGN, actor)
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
        current = required_tx(session, row, "sign")  # the SIGN decision refuses one without
        earlier_signers(session, actor, row.id, current.tx_hash)
        return prepared(current), judged.decision_id

    # The signer runs between transactions (see ``prepare``); the record step re-checks.
    approved, decision_id = ctx.write(signable)
    signed = spender.sign(approved, actor.institution_code, shares, passphrase)
    if signed.tx_hash != approved.tx_hash:
        raise TransactionMismatchError(
            f"The signer returned transaction {signed.tx_hash}, not the approved {approved.tx_hash}."
        )

    def work(session: Session) -> ProposalView:
        row = locked(session, proposal_id)
        current = current_tx(session, row.id)
        if row.state != ProposalState.APPROVED.value or current is None:
            raise ProposalTransitionError(
                f"Proposal {proposal_id} became {row.state} while it was being signed."
            )
        if current.tx_hash != approved.tx_hash:
            raise TransactionMismatchError(
                f"Proposal {proposal_id}'s transaction changed to {current.tx_hash} while "
                f"{approved.tx_hash} was being signed; sign the new transaction."
            )
        signed_already = earlier_signers(session, actor, row.id, current.tx_hash)
        policy = current_policy(session)
        now = ctx.clock()
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
            move(row, ProposalState.SIGNED)
            row.signed_at = now
        ctx.audit(
            session, AuditKind.APPROVAL, actor, row, "signed",
            institution=actor.institution_code, tx_hash=current.tx_hash,
            decision_id=decision_id,
        )  # fmt: skip
        return proposal_view(session, row)

    return ctx.write(work)
