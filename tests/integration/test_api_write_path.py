"""The API's write path reads each thing once and holds the asset's limit lock only briefly.

Issue 18: a write was 33 SQL statements (the officer, the policy and the legal basis each read
two or three times); it is now at most ``PROPOSE_MAX_STATEMENTS`` / ``APPROVE_MAX_STATEMENTS``,
counted here on both databases with a ``before_cursor_execute`` listener, so a regression that
reads something twice again fails. On PostgreSQL the statements sent while the asset's limit
lock is held are counted too, and the limit lock must come before the audit chain's (the order
every writer takes them in, so concurrent writers cannot deadlock).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from workflow_support import World, proposal_body

pytestmark = pytest.mark.integration

PROPOSE_MAX_STATEMENTS = 15
"""Measured on PostgreSQL with the tests' reconciliation gate (one query; the configured gate of
``treasury api serve`` reads two, so the server sends 16); SQLite sends one less."""
APPROVE_MAX_STATEMENTS = 19
"""The statements of an approval that reaches the quorum (the first approval sends one less)."""
PROPOSE_MAX_LOCKED_STATEMENTS = 8
"""From the limit lock on: the lock, the committed amounts, the decision, the state, the audit
chain's lock, its head and the two events (drafted, submitted)."""
APPROVE_MAX_LOCKED_STATEMENTS = 8
"""The lock, the committed amounts, the decision, the approval, the state, the audit chain's
lock, its head and the event."""
LIMIT_LOCK = "hashtext"
"""Only the asset's limit lock is keyed by ``hashtext(asset)`` (``judging.lock_asset_limits``)."""
AUDIT_LOCK = "pg_advisory_xact_lock(%(pg_advisory_xact_lock_2)s::BIGINT)"


class Statements:
    """Every statement the world's engine sends, while recording."""

    def __init__(self, world: World) -> None:
        self.sent: list[str] = []
        self.recording = False
        event.listen(world.engine, "before_cursor_execute", self._sent)

    def _sent(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.recording:
            self.sent.append(" ".join(statement.split()))

    def of(self, call: Any) -> tuple[Any, list[str]]:
        """``call()``'s result and the statements it sent."""
        self.sent = []
        self.recording = True
        try:
            return call(), self.sent
        finally:
            self.recording = False


def _locked(sent: list[str]) -> list[str]:
    """The statements from the limit lock on; checks it is taken once, before the audit lock."""
    limit = [i for i, s in enumerate(sent) if LIMIT_LOCK in s and "pg_advisory_xact_lock" in s]
    audit = [i for i, s in enumerate(sent) if AUDIT_LOCK in s]
    assert len(limit) == 1, f"the limit lock was taken {len(limit)} times"
    assert len(audit) == 1, f"the audit chain's lock was taken {len(audit)} times"
    assert limit[0] < audit[0], "the audit chain's lock was taken before the limit lock"
    return sent[limit[0] :]


def test_a_proposal_and_its_approvals_send_few_statements(world: World, db_url: str) -> None:
    """Propose, then approve by two institutions over HTTP: each within its statement budget;
    on PostgreSQL, few of them under the limit lock, taken before the audit chain's lock."""
    client = world.api()
    statements = Statements(world)
    client.post("/proposals", json=proposal_body(), headers=world.bearer("proposer"))  # warm caches
    created, proposing = statements.of(
        lambda: client.post("/proposals", json=proposal_body(), headers=world.bearer("proposer"))
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    tx_hash = client.post(f"/proposals/{pid}/prepare", headers=world.bearer("proposer")).json()[
        "tx_hash"
    ]
    approvals = []
    for officer in ("cb_approver", "parl_approver"):
        answer, sent = statements.of(
            lambda officer=officer: client.post(
                f"/proposals/{pid}/approve",
                json={"tx_hash": tx_hash},
                headers=world.bearer(officer),
            )
        )
        assert answer.status_code == 200, answer.text
        approvals.append(sent)
    assert answer.json()["state"] == "approved"
    assert len(proposing) <= PROPOSE_MAX_STATEMENTS, "\n".join(proposing)
    for sent in approvals:
        assert len(sent) <= APPROVE_MAX_STATEMENTS, "\n".join(sent)
    if db_url.startswith("postgresql"):
        assert len(_locked(proposing)) <= PROPOSE_MAX_LOCKED_STATEMENTS, "\n".join(proposing)
        for sent in approvals:
            assert len(_locked(sent)) <= APPROVE_MAX_LOCKED_STATEMENTS, "\n".join(sent)
