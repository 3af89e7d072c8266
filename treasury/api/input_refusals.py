"""Recording a request refused for text no database can store, so the refusal leaves a trace.

Text with a NUL byte once answered 500 on PostgreSQL and left nothing behind, while SQLite
stored it (issue 13). Now such text is refused at the edge with 422 naming the field, before
the workflow runs: the policy is never asked about malformed input, so no policy decision is
taken, and no proposal, approval or ledger row is written. What is kept is the refusal itself,
as one audit event in a transaction of its own, when an officer sent it:

    kind   spend.proposal (a route under /proposals) or policy.change (one under /officers,
           where officer changes are audited)
    actor  officer:<id>
    refs   {"proposal_id": <id>} when the route names a proposal
    payload {"event": "input_refused", "method": "POST", "route": "/proposals/{proposal_id}/reject",
             "fields": ["reason"], "found": ["U+0000"]}

The offending text itself is never stored (only the code points found), so the event is valid
on both databases and a hostile string is not copied into the permanent record. Other 422s
(a malformed amount, a missing field) remain refusals with nothing written: a control character
is never an officer's typo but a broken or hostile client, which is what the audit log is for.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from custody.clock import Clock
from treasury import audit
from treasury.audit import AuditKind
from treasury.officers import Officer
from treasury.proposals.actors import actor_name

INPUT_REFUSED_EVENT = "input_refused"
"""The ``event`` of the audit payload that records a refused request."""
OFFICER_ROUTES_PREFIX = "/officers"


def record_input_refusal(
    sessions: sessionmaker[Session],
    officer: Officer,
    *,
    method: str,
    route: str,
    fields: Sequence[str],
    found: Sequence[str],
    proposal_id: int | None,
    clock: Clock,
) -> None:
    """Append the ``input_refused`` audit event of ``officer``'s request, committed at once."""
    kind = (
        AuditKind.POLICY_CHANGE if route.startswith(OFFICER_ROUTES_PREFIX) else AuditKind.PROPOSAL
    )
    refs: dict[str, str | int] = {} if proposal_id is None else {"proposal_id": proposal_id}
    with sessions.begin() as session:
        audit.append(
            session,
            kind=kind,
            actor=actor_name(officer),
            refs=refs,
            payload={
                "event": INPUT_REFUSED_EVENT,
                "method": method,
                "route": route,
                "fields": sorted(set(fields)),
                "found": sorted(set(found)),
            },
            clock=clock,
        )


__all__ = ["INPUT_REFUSED_EVENT", "record_input_refusal"]
