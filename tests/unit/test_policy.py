"""The policy engine as a pure function: each rule refuses with its own code, and nothing else does."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treasury.policy import (
    Action,
    ActorFacts,
    ApprovalFacts,
    LegalBasis,
    PolicyContext,
    ReconciliationFacts,
    ReconciliationOutcome,
    RefusalCode,
    SpendFacts,
    StoredPolicy,
    canonical_json,
    counted_approvals,
    evaluate,
    parse_policy,
    sha256_hex,
    veto_window_end,
)
from treasury.workflow_exceptions import PolicyDocumentError

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TX = "ab" * 32
PER_TX, DAILY, VETO, CEILING = 1_000, 1_500, 500, 2_000
DOCUMENT: dict[str, Any] = {
    "quorum": {"institutions": ["MOF", "CB", "PARL"], "required": 2},
    "assets": {"BTC": {"per_tx_limit": PER_TX, "daily_limit": DAILY, "veto_threshold": VETO}},
    "veto_window_seconds": 3600,
    "allowlist": {"required": 2, "delay_seconds": 7200},
    "reconciliation_max_age_seconds": 600,
    "proposal_ttl_seconds": 86400,
}
POLICY = StoredPolicy(3, sha256_hex(canonical_json(DOCUMENT)), parse_policy(DOCUMENT))
BASIS = LegalBasis("DECREE-1", "Decree", NOW + timedelta(days=1), {"BTC": CEILING})
SPEND = SpendFacts(
    7, "BTC", 100, "bcrt1qpayee", proposer_id=1, legal_basis=BASIS, quorum_reached_at=None
)
MATCHED = ReconciliationFacts(ReconciliationOutcome.MATCHED, NOW - timedelta(seconds=60))
CONTEXT = PolicyContext(
    action=Action.SUBMIT,
    now=NOW,
    spent_24h=0,
    committed_under_basis=0,
    destination_allowed=True,
    reconciliation=MATCHED,
    current_tx_hash=TX,
)
CB = ApprovalFacts(officer_id=2, institution="CB", tx_hash=TX, officer_revoked_at=None)
PARL = ApprovalFacts(officer_id=3, institution="PARL", tx_hash=TX, officer_revoked_at=None)


def _codes(
    spend: SpendFacts = SPEND, approvals: tuple[ApprovalFacts, ...] = (), **context: Any
) -> set[RefusalCode]:
    decision = evaluate(POLICY, spend, approvals, replace(CONTEXT, **context))
    assert decision.allowed == (not decision.reasons)
    assert decision.policy_version == 3
    assert decision.policy_hash == POLICY.content_hash
    return {reason.code for reason in decision.reasons}


def _approve(
    actor: ActorFacts, approvals: tuple[ApprovalFacts, ...] = (), **spend: Any
) -> set[RefusalCode]:
    return _codes(replace(SPEND, **spend), approvals, action=Action.APPROVE, actor=actor)


def test_a_spend_within_every_rule_is_allowed() -> None:
    """The baseline spend passes submit, a fresh approval, and release once two institutions approved."""
    assert _codes() == set()
    assert _approve(ActorFacts(2, "CB", None)) == set()
    assert _codes(approvals=(CB, PARL), action=Action.SIGN) == set()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"spend": {"amount": PER_TX + 1}}, RefusalCode.OVER_PER_TX_LIMIT),
        ({"context": {"spent_24h": DAILY - 99}}, RefusalCode.OVER_DAILY_LIMIT),
        ({"context": {"destination_allowed": False}}, RefusalCode.DESTINATION_NOT_ALLOWED),
        (
            {"spend": {"legal_basis": replace(BASIS, expires_at=NOW)}},
            RefusalCode.LEGAL_BASIS_EXPIRED,
        ),
        ({"context": {"committed_under_basis": CEILING - 99}}, RefusalCode.ABOVE_DECREE_CEILING),
        ({"spend": {"asset": "ETH"}}, RefusalCode.ASSET_NOT_IN_POLICY),
        ({"context": {"reconciliation": None}}, RefusalCode.RECONCILIATION_MISSING),
        (
            {
                "context": {
                    "reconciliation": replace(MATCHED, outcome=ReconciliationOutcome.MISMATCHED)
                }
            },
            RefusalCode.RECONCILIATION_MISMATCHED,
        ),
        (
            {
                "context": {
                    "reconciliation": replace(MATCHED, checked_at=NOW - timedelta(seconds=601))
                }
            },
            RefusalCode.RECONCILIATION_STALE,
        ),
    ],
)
def test_each_spend_rule_refuses_with_its_own_code(
    change: dict[str, dict[str, Any]], code: RefusalCode
) -> None:
    """Breaking exactly one spend rule yields exactly that rule's refusal code."""
    spend = replace(SPEND, **change.get("spend", {}))
    codes = _codes(spend, **change.get("context", {}))
    if code is RefusalCode.ASSET_NOT_IN_POLICY:
        assert codes == {code, RefusalCode.ASSET_NOT_IN_LEGAL_BASIS}
    else:
        assert codes == {code}


def test_limits_are_inclusive() -> None:
    """An amount exactly at the per-transaction, daily and ceiling limits is allowed."""
    assert (
        _codes(
            replace(SPEND, amount=PER_TX),
            spent_24h=DAILY - PER_TX,
            committed_under_basis=CEILING - PER_TX,
        )
        == set()
    )


@pytest.mark.parametrize(
    ("actor", "approvals", "code"),
    [
        (ActorFacts(1, "MOF", None), (), RefusalCode.PROPOSER_MAY_NOT_APPROVE),
        (ActorFacts(2, "CB", NOW - timedelta(seconds=1)), (), RefusalCode.OFFICER_REVOKED),
        (ActorFacts(9, "CB", None), (CB,), RefusalCode.INSTITUTION_ALREADY_APPROVED),
        (ActorFacts(2, "CB", None), (CB,), RefusalCode.OFFICER_ALREADY_APPROVED),
        (ActorFacts(5, "AUDIT-OFFICE", None), (), RefusalCode.INSTITUTION_NOT_IN_QUORUM),
    ],
)
def test_each_approval_rule_refuses_with_its_own_code(
    actor: ActorFacts, approvals: tuple[ApprovalFacts, ...], code: RefusalCode
) -> None:
    """Proposer, revoked officer, repeat officer or institution, and outsiders are refused by code."""
    assert _approve(actor, approvals) == {code}


def test_an_approval_of_a_superseded_transaction_does_not_block_a_new_one() -> None:
    """An institution's approval of an old transaction hash neither counts nor blocks re-approval."""
    stale = replace(CB, tx_hash="cd" * 32)
    assert _approve(ActorFacts(9, "CB", None), (stale,)) == set()
    assert _codes(approvals=(stale, PARL), action=Action.SIGN) == {RefusalCode.QUORUM_NOT_MET}


def test_release_needs_a_quorum_of_valid_approvals() -> None:
    """Revoked officers' approvals, the proposer's, and a second one per institution do not count."""
    revoked = replace(PARL, officer_revoked_at=NOW)
    proposers = ApprovalFacts(1, "MOF", TX, None)
    second_cb = replace(CB, officer_id=8)
    for approvals in [(CB,), (CB, revoked), (CB, proposers), (CB, second_cb)]:
        assert _codes(approvals=approvals, action=Action.SIGN) == {RefusalCode.QUORUM_NOT_MET}
    assert set(counted_approvals(POLICY.document, 1, (CB, second_cb, PARL), TX, NOW)) == {
        "CB",
        "PARL",
    }


def test_release_without_a_prepared_transaction_is_refused() -> None:
    """Approving or signing before any transaction was prepared is refused."""
    assert RefusalCode.NO_PREPARED_TRANSACTION in _codes(action=Action.SIGN, current_tx_hash=None)


def test_a_large_spend_waits_out_the_veto_window() -> None:
    """At or above the threshold, release is refused until an hour after the quorum was reached."""
    large = replace(SPEND, amount=VETO, quorum_reached_at=NOW - timedelta(minutes=59))
    assert _codes(large, (CB, PARL), action=Action.SIGN) == {RefusalCode.VETO_WINDOW_OPEN}
    assert veto_window_end(POLICY.document, large) == NOW + timedelta(minutes=1)
    assert _codes(large, (CB, PARL), action=Action.SIGN, now=NOW + timedelta(minutes=1)) == set()
    small = replace(large, amount=VETO - 1)
    assert veto_window_end(POLICY.document, small) is None


@given(
    amount=st.integers(min_value=1, max_value=3 * DAILY),
    spent=st.integers(min_value=0, max_value=3 * DAILY),
    committed=st.integers(min_value=0, max_value=3 * CEILING),
)
def test_limit_refusals_match_the_arithmetic(amount: int, spent: int, committed: int) -> None:
    """For any amounts, each limit refuses exactly when its sum exceeds its bound."""
    codes = _codes(replace(SPEND, amount=amount), spent_24h=spent, committed_under_basis=committed)
    expected = set()
    if amount > PER_TX:
        expected.add(RefusalCode.OVER_PER_TX_LIMIT)
    if spent + amount > DAILY:
        expected.add(RefusalCode.OVER_DAILY_LIMIT)
    if committed + amount > CEILING:
        expected.add(RefusalCode.ABOVE_DECREE_CEILING)
    assert codes == expected


def test_every_refusal_is_a_sentence_naming_its_figures() -> None:
    """Refusal messages are full sentences carrying the numbers at fault."""
    decision = evaluate(POLICY, replace(SPEND, amount=PER_TX + 1), (), CONTEXT)
    (reason,) = decision.reasons
    assert reason.message.endswith(".")
    assert str(PER_TX + 1) in reason.message
    assert str(PER_TX) in reason.message


def test_the_policy_document_round_trips_canonically() -> None:
    """Parsing and re-serialising a document gives the same canonical JSON (so the same hash)."""
    assert canonical_json(parse_policy(DOCUMENT).to_json()) == canonical_json(DOCUMENT)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("quorum", "required"), 4, "quorum.required"),
        (("quorum", "institutions"), ["MOF", "MOF"], "quorum.institutions"),
        (("assets", "BTC", "per_tx_limit"), 1.5, "assets.BTC.per_tx_limit"),
        (("assets", "BTC", "daily_limit"), True, "assets.BTC.daily_limit"),
        (("allowlist", "required"), 0, "allowlist.required"),
        (("veto_window_seconds",), -1, "veto_window_seconds"),
    ],
)
def test_a_bad_policy_document_is_refused_naming_the_field(
    path: tuple[str, ...], value: object, message: str
) -> None:
    """Impossible quorums, float or bool limits, and negative delays name the field at fault."""
    document = copy.deepcopy(DOCUMENT)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(PolicyDocumentError, match=message.replace(".", r"\.")):
        parse_policy(document)


def test_a_missing_policy_field_is_named() -> None:
    """A document without a required field says which one."""
    document = copy.deepcopy(DOCUMENT)
    del document["allowlist"]["delay_seconds"]
    with pytest.raises(PolicyDocumentError, match=r"allowlist\.delay_seconds"):
        parse_policy(document)
