"""Spend proposals: the state machine, approvals bound to a transaction hash, crash-safe release.

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

The modules, lowest first:

- ``states``: ``ProposalState`` and the allowed transitions.
- ``ports``: the ``ChainSpender`` and ``SpendLedger`` protocols and the values crossing them.
- ``actors``: the audit actor of steps no officer takes.
- ``ledger_hook``: ``LedgerSpendHook``, the ``SpendLedger`` port on the state ledger.
- ``tables``: the ORM tables (registered with ``treasury.migrate`` through this package),
  among them the Bitcoin vault rotations whose sweeps are spends (``treasury.rotation``) and
  the fee bumps that replace a broadcast spend (``treasury.fee_bumps``).
- ``reservations``: the Safe nonce and Bitcoin inputs a prepared transaction holds for its
  proposal, one live holder per resource.
- ``rows``: locking, moving and reading proposal rows, shared by the phases.
- ``views``: ``ProposalView`` and how it is read.
- ``judging``: asking the policy and recording its decision, refusals included.
- ``context``: ``WorkflowContext``, what every phase shares.
- ``proposing``, ``preparing``, ``approving``, ``closing``, ``signing``, ``broadcasting``: the
  phases, as functions over the context.
- ``workflow``: ``Workflow``, the service the CLI, the API and the scheduler call.
"""

from treasury.proposals.actors import SYSTEM_ACTOR
from treasury.proposals.broadcasting import DEFAULT_CONFIRMATIONS_REQUIRED
from treasury.proposals.closing import REASON_MAX_CHARS
from treasury.proposals.ledger_hook import LedgerSpendHook, SpendAccounts
from treasury.proposals.ports import (
    ChainSpender,
    PreparedTx,
    SealedTx,
    SpendLedger,
    SpendPosting,
    SpendRequest,
)
from treasury.proposals.proposing import PURPOSE_MAX_CHARS
from treasury.proposals.states import (
    ALLOWED_TRANSITIONS,
    COMMITTED_STATES,
    ProposalState,
    check_transition,
)
from treasury.proposals.tables import (
    TX_HASH_MAX_CHARS,
    ApprovalRow,
    ApprovalVoidRow,
    FeeBumpRow,
    PreparedTxRow,
    ReservationRow,
    SealedTxRow,
    SignatureRow,
    SpendProposalRow,
    VaultRotationRow,
)
from treasury.proposals.views import ApprovalView, ProposalView
from treasury.proposals.workflow import Workflow

__all__ = [
    "ALLOWED_TRANSITIONS",
    "COMMITTED_STATES",
    "DEFAULT_CONFIRMATIONS_REQUIRED",
    "PURPOSE_MAX_CHARS",
    "REASON_MAX_CHARS",
    "SYSTEM_ACTOR",
    "TX_HASH_MAX_CHARS",
    "ApprovalRow",
    "ApprovalView",
    "ApprovalVoidRow",
    "ChainSpender",
    "FeeBumpRow",
    "LedgerSpendHook",
    "PreparedTx",
    "PreparedTxRow",
    "ProposalState",
    "ProposalView",
    "ReservationRow",
    "SealedTx",
    "SealedTxRow",
    "SignatureRow",
    "SpendAccounts",
    "SpendLedger",
    "SpendPosting",
    "SpendProposalRow",
    "SpendRequest",
    "VaultRotationRow",
    "Workflow",
    "check_transition",
]
