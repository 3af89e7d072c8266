"""Fee bumps through the workflow: a stuck Bitcoin spend replaced by fee (RBF), under approvals.

A bump is a spend proposal of its own (``propose_bump``) that pays exactly what the stuck one
pays (asset, amount, destination, legal basis) and whose transaction replaces the stuck one:
custody builds it from the broadcast transaction with ``psbtbumpfee`` (``bump_spend``: the same
inputs and payments, less change and more fee), and refuses one whose fee exceeds the ceiling.
The ceiling is the bump's ``max_fee``, so the approvers' signed statements name it, with the new
transaction's hash, amount and destination; the signers then check the decoded replacement
against those statements like any spend: a database writer who raises the ceiling or changes an
output gets a different transaction hash (or a higher fee) than the officers signed, and no
signature.

Once the replacement is on chain, the stuck transaction conflicts: its proposal fails on
refresh (or in the reconciler) and its pending ledger entry is voided, while the bump's own
entry is held at its broadcast and posted at its confirmation, through the same write-ahead
steps as every spend. So the ledger holds one posting of the payment and one of the fee that
was finally paid.

Reservations: the replaced inputs stay reserved by the stuck proposal (its transaction still
spends them); the bump reserves ``btc-replaces:<txid>`` (so one live bump per stuck transaction)
and any input it adds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from custody.bitcoin import load_vault
from custody.bitcoin.approval import Payment
from custody.bitcoin.psbt import parse_psbt
from custody.bitcoin.rpc import BitcoinRPC
from custody.bitcoin.signer import BITCOIN_ASSET, bitcoin_vault_id
from custody.bitcoin.spend import bump_spend, spend_inputs
from custody.clock import Clock, utc_now
from treasury.officers import Officer
from treasury.policy import load_legal_basis
from treasury.proposals import (
    ChainSpender,
    FeeBumpRow,
    PreparedTx,
    PreparedTxRow,
    ProposalState,
    ProposalView,
    SealedTx,
    SpendProposalRow,
    SpendRequest,
    Workflow,
)
from treasury.proposals.preparing import REPLACES_TXID
from treasury.spenders import input_claim
from treasury.workflow_exceptions import (
    ProposalTransitionError,
    TransactionMismatchError,
    WorkflowInputError,
)

__all__ = ["BUMP_CLAIM", "BumpSpender", "propose_bump", "replaced_by"]

BTC = "BTC"
BUMP_CLAIM = "btc-replaces:"
"""Prefix of a bump's reservation claim: ``btc-replaces:<replaced txid>``."""
FEE_RATE_MAX_CHARS = 32


def replaced_by(session: Session, proposal_id: int) -> list[int]:
    """The bump proposals made to replace ``proposal_id``'s transaction, oldest first."""
    return list(
        session.scalars(
            select(FeeBumpRow.proposal_id)
            .where(FeeBumpRow.replaces_proposal_id == proposal_id)
            .order_by(FeeBumpRow.proposal_id)
        )
    )


def _stuck(session: Session, proposal_id: int) -> SpendProposalRow:
    row = session.get(SpendProposalRow, proposal_id)
    if row is None:
        raise WorkflowInputError(f"No spend proposal has the id {proposal_id}.")
    if row.asset != BTC or row.state != ProposalState.BROADCAST.value or row.txid is None:
        raise ProposalTransitionError(
            f"Proposal {proposal_id} is a {row.asset} spend in state {row.state}; only a "
            "broadcast, unconfirmed Bitcoin spend is bumped."
        )
    return row


def propose_bump(
    workflow: Workflow,
    sessions: sessionmaker[Session],
    actor: Officer,
    proposal_id: int,
    *,
    fee_rate_sat_vb: Decimal,
    fee_ceiling_sats: int,
    clock: Clock = utc_now,
) -> ProposalView:
    """Propose replacing stuck proposal ``proposal_id``'s transaction at ``fee_rate_sat_vb``,
    paying at most ``fee_ceiling_sats`` in fee; then prepare it with a ``BumpSpender``.

    The bump pays what the stuck proposal pays, under its legal basis, and is judged by the
    policy like any proposal. Refused if the stuck proposal is not broadcast, or already has a
    bump that is not closed.
    """
    text = format(fee_rate_sat_vb, "f")
    if not fee_rate_sat_vb.is_finite() or fee_rate_sat_vb <= 0 or len(text) > FEE_RATE_MAX_CHARS:
        raise WorkflowInputError(f"The bump's fee rate must be a positive number; got {text}.")
    if isinstance(fee_ceiling_sats, bool) or fee_ceiling_sats <= 0:
        raise WorkflowInputError("The bump's fee ceiling must be a positive number of sats.")
    with sessions() as session:
        stuck = _stuck(session, proposal_id)
        for bump_id in replaced_by(session, proposal_id):
            bump = session.get(SpendProposalRow, bump_id)
            if bump is not None and bump.state not in _CLOSED:
                raise ProposalTransitionError(
                    f"Proposal {proposal_id} already has bump proposal {bump_id} ({bump.state}); "
                    "reject it before proposing another."
                )
        asset, amount, destination, txid = stuck.asset, stuck.amount, stuck.destination, stuck.txid
        basis = load_legal_basis(session, stuck.legal_basis_id).reference
    view = workflow.propose(
        actor,
        asset=asset,
        amount=amount,
        destination=destination,
        purpose=f"Fee bump of proposal {proposal_id}: replaces transaction {txid}",
        legal_basis=basis,
    )
    with sessions.begin() as session:
        session.add(
            FeeBumpRow(
                proposal_id=view.id,
                replaces_proposal_id=proposal_id,
                replaced_txid=txid,
                fee_rate_sat_vb=text,
                fee_ceiling=fee_ceiling_sats,
                created_at=clock(),
            )
        )
    return view


_CLOSED = frozenset(
    {ProposalState.REJECTED.value, ProposalState.EXPIRED.value, ProposalState.FAILED.value}
)


class BumpSpender:
    """The ``ChainSpender`` of bump proposals: builds the replacement with custody's
    ``bump_spend``; signs, seals, sends and tracks it through the vault's ``BitcoinSpender``
    (the replacement is an ordinary custody spend of the same vault)."""

    def __init__(
        self, sessions: sessionmaker[Session], rpc: BitcoinRPC, inner: ChainSpender
    ) -> None:
        self._sessions = sessions
        self._rpc = rpc
        self._inner = inner

    def __repr__(self) -> str:
        return f"BumpSpender({self._inner!r})"

    def build(self, request: SpendRequest) -> PreparedTx:
        with self._sessions.begin() as session:
            bump = session.get(FeeBumpRow, request.proposal_id)
            if bump is None:
                raise TransactionMismatchError(
                    f"Proposal {request.proposal_id} is not a fee bump; prepare it with the "
                    "vault's own spender."
                )
            stuck = _stuck(session, bump.replaces_proposal_id)
            if stuck.txid != bump.replaced_txid:
                raise TransactionMismatchError(
                    f"Proposal {stuck.id}'s transaction is now {stuck.txid}, not the "
                    f"{bump.replaced_txid} this bump was proposed to replace."
                )
            original = session.scalar(
                select(PreparedTxRow).where(
                    PreparedTxRow.proposal_id == stuck.id, PreparedTxRow.tx_hash == stuck.txid
                )
            )
            if original is None:
                raise TransactionMismatchError(
                    f"Proposal {stuck.id} has no prepared transaction {stuck.txid} to replace."
                )
            body: dict[str, Any] = json.loads(original.payload)
            try:
                rate = Decimal(bump.fee_rate_sat_vb)
            except InvalidOperation:
                raise WorkflowInputError(
                    f"Bump {request.proposal_id}'s fee rate {bump.fee_rate_sat_vb!r} is no number."
                ) from None
            spend = bump_spend(session, self._rpc, int(body["spend_id"]), rate, bump.fee_ceiling)
            wanted = (Payment(request.destination, request.amount),)
            if tuple(p.as_dict() for p in spend.approval.payments) != tuple(
                p.as_dict() for p in wanted
            ):
                raise TransactionMismatchError(
                    f"The replacement of {stuck.txid} pays {spend.approval.payments}, not the "
                    f"bump proposal's {request.amount} sats to {request.destination}."
                )
            descriptor = load_vault(session, spend.vault_name).descriptor
            replaced = set(spend_inputs(str(body["psbt"])))
            replaced_txid = stuck.txid
        inputs = spend_inputs(spend.unsigned_psbt)
        if not replaced & set(inputs):
            raise TransactionMismatchError(
                f"The replacement spends none of {replaced_txid}'s inputs, so it would not "
                "replace it: both could confirm."
            )
        summary = {
            "vault": spend.vault_name,
            "payments": [{"address": request.destination, "amount_sats": str(request.amount)}],
            "fee_sats": str(spend.fee_sats),
            "fee_rate_sat_vb": str(spend.fee_rate_sat_vb),
            "inputs": len(parse_psbt(spend.unsigned_psbt).inputs),
            "unsigned_txid": spend.approval.unsigned_txid,
            REPLACES_TXID: replaced_txid,
            "chain": f"bitcoin:{descriptor.network.value}",
            "vault_id": bitcoin_vault_id(descriptor),
            "asset": BITCOIN_ASSET,
            "max_fee_sats": str(spend.approval.max_fee_sats),
        }
        payload = json.dumps({"spend_id": spend.id, "psbt": spend.unsigned_psbt})
        added = (input_claim(o) for o in inputs if o not in replaced)
        claims = (f"{BUMP_CLAIM}{replaced_txid}", *added)
        return PreparedTx(spend.approval.unsigned_txid, summary, payload, spend.fee_sats, claims)

    def sign(
        self, prepared: PreparedTx, institution: str, shares: Sequence[str], passphrase: str
    ) -> PreparedTx:
        return self._inner.sign(prepared, institution, shares, passphrase)

    def seal(self, prepared: PreparedTx) -> SealedTx:
        return self._inner.seal(prepared)

    def send(self, prepared: PreparedTx, sealed: SealedTx) -> str:
        return self._inner.send(prepared, sealed)

    def find_broadcast(self, prepared: PreparedTx, sealed: SealedTx | None) -> str | None:
        return self._inner.find_broadcast(prepared, sealed)

    def confirmations(self, txid: str) -> int:
        return self._inner.confirmations(txid)
