"""Who the audit trail and the ledger name as the actor of a workflow step.

Shared by the workflow's phases and the ledger adapter, so that a step no officer took
(broadcast, confirmation tracking, expiry, voiding a failed spend) is named the same everywhere.
"""

from __future__ import annotations

from treasury.officers import Officer

SYSTEM_ACTOR = "system"
"""Audit actor of steps that need no officer: broadcast, confirmation tracking, expiry."""


def actor_name(actor: Officer | None) -> str:
    """The audit actor of a step: ``officer:<id>``, or ``SYSTEM_ACTOR`` when no officer took it."""
    return SYSTEM_ACTOR if actor is None else f"officer:{actor.id}"
