"""The spend policy: a versioned document, the facts it judges, and a pure evaluation.

``evaluate(policy, spend, approvals, context)`` is a pure function of its arguments. The
workflow gathers the facts (24 h spending, allowlist, reconciliation, the prepared transaction's
hash), calls it, and records the decision with the policy version, the policy's content hash and
the inputs, so an auditor can replay exactly why a spend was allowed or refused
(``replay_decision``).

One module per concept:

- ``document``: the written policy, parsed and validated, and its content hash;
- ``versions``: the stored versions (set, current, by number);
- ``legal_bases``: the decrees spends cite, with ceilings per asset and an expiry;
- ``allowlist``: destinations that need their own quorum and then a delay;
- ``gate``: the reconciliation gate (no spend unless chain and ledger recently agreed);
- ``rules``: the facts, the refusals and ``evaluate``;
- ``decisions``: recorded decisions with their inputs, and their replay;
- ``replay``: the whole decision log replayed and policy versions checked at rest
  (``verify_decisions``, ``treasury policy verify``);
- ``tables``: the ORM rows of all of the above (policy, decree and allowlist rows immutable);
- ``change_audit``: the audit event every change to the policy's state appends.

This package re-exports the public names, so ``from treasury.policy import X`` keeps working.
"""

from treasury.canonical import canonical_json
from treasury.policy.allowlist import (
    AllowlistEntry,
    approve_destination,
    destination_allowed,
    request_destination,
)
from treasury.policy.decisions import (
    RecordedDecision,
    decision_inputs,
    decisions_for,
    record_decision,
    replay_decision,
)
from treasury.policy.document import (
    AssetLimits,
    PolicyDocument,
    StoredPolicy,
    parse_policy,
    sha256_hex,
)
from treasury.policy.gate import (
    ReconciliationFacts,
    ReconciliationGate,
    ReconciliationOutcome,
    TableReconciliationGate,
    record_reconciliation,
)
from treasury.policy.legal_bases import (
    LegalBasis,
    add_legal_basis,
    legal_basis_by_reference,
    load_legal_basis,
)
from treasury.policy.replay import (
    DecisionMismatch,
    DecisionsVerdict,
    MismatchKind,
    verify_decisions,
)
from treasury.policy.rules import (
    ROLLING_WINDOW,
    Action,
    ActorFacts,
    ApprovalFacts,
    Decision,
    PolicyContext,
    PolicyRefusedError,
    Refusal,
    RefusalCode,
    SpendFacts,
    counted_approvals,
    evaluate,
    veto_window_end,
)
from treasury.policy.tables import (
    ADDRESS_MAX_CHARS,
    ASSET_CODE_MAX_CHARS,
    REFERENCE_MAX_CHARS,
    AllowlistActivationRow,
    AllowlistApprovalRow,
    AllowlistEntryRow,
    LegalBasisCeilingRow,
    LegalBasisRow,
    PolicyDecisionRow,
    PolicyVersionRow,
    ReconciliationCheckpointRow,
)
from treasury.policy.versions import (
    StoredPolicyAlteredError,
    current_policy,
    policy_version,
    set_policy,
)

__all__ = [
    "ADDRESS_MAX_CHARS",
    "ASSET_CODE_MAX_CHARS",
    "REFERENCE_MAX_CHARS",
    "ROLLING_WINDOW",
    "Action",
    "ActorFacts",
    "AllowlistActivationRow",
    "AllowlistApprovalRow",
    "AllowlistEntry",
    "AllowlistEntryRow",
    "ApprovalFacts",
    "AssetLimits",
    "Decision",
    "DecisionMismatch",
    "DecisionsVerdict",
    "LegalBasis",
    "LegalBasisCeilingRow",
    "LegalBasisRow",
    "MismatchKind",
    "PolicyContext",
    "PolicyDecisionRow",
    "PolicyDocument",
    "PolicyRefusedError",
    "PolicyVersionRow",
    "ReconciliationCheckpointRow",
    "ReconciliationFacts",
    "ReconciliationGate",
    "ReconciliationOutcome",
    "RecordedDecision",
    "Refusal",
    "RefusalCode",
    "SpendFacts",
    "StoredPolicy",
    "StoredPolicyAlteredError",
    "TableReconciliationGate",
    "add_legal_basis",
    "approve_destination",
    "canonical_json",
    "counted_approvals",
    "current_policy",
    "decision_inputs",
    "decisions_for",
    "destination_allowed",
    "evaluate",
    "legal_basis_by_reference",
    "load_legal_basis",
    "parse_policy",
    "policy_version",
    "record_decision",
    "record_reconciliation",
    "replay_decision",
    "request_destination",
    "set_policy",
    "sha256_hex",
    "verify_decisions",
    "veto_window_end",
]
