"""Errors of the spend workflow: officers, policy, proposals and the REST API.

The tree::

    TreasuryError
    └── WorkflowError                 anything the spend workflow refuses
        ├── WorkflowInputError        bad input, naming the field (HTTP 422)
        │   └── PolicyDocumentError   a policy document that does not validate
        ├── UnknownRecordError        no such proposal, officer, institution, ... (HTTP 404)
        ├── AuthenticationError       missing, malformed, unknown, expired or revoked API token (HTTP 401)
        ├── NotAuthorisedError        the officer lacks the role for the action (HTTP 403)
        ├── ProposalTransitionError   the proposal's state does not allow the action (HTTP 409)
        ├── TransactionMismatchError  an approval or signature names another transaction (HTTP 409)
        ├── PolicyRefusedError        the policy engine refused; carries the recorded decision (HTTP 409);
        │                             defined in treasury.policy.rules beside the Decision it carries
        ├── NotConfiguredError        no policy set, or no chain spender for an asset (HTTP 503)
        │   └── RosterNotFoundedError no roster genesis: nothing can be signed (treasury.spenders)
        ├── DecisionReplayError       a recorded decision's policy or inputs no longer match their hashes
        └── StoredPolicyAlteredError  a stored policy version no longer hashes to its record (HTTP 503);
                                      defined in treasury.policy.versions

Every refusal changes nothing: services raise before they write, inside one transaction.
"""

from __future__ import annotations

from treasury.exceptions import TreasuryError


class WorkflowError(TreasuryError):
    """Root of every error the spend workflow raises."""


class WorkflowInputError(WorkflowError, ValueError):
    """An argument is malformed or out of range; the message names the field."""


class PolicyDocumentError(WorkflowInputError):
    """A policy document is missing a field or holds an impossible value."""


class UnknownRecordError(WorkflowError, LookupError):
    """The referenced proposal, officer, institution, legal basis or policy does not exist."""


class AuthenticationError(WorkflowError):
    """The API token is missing, malformed, unknown, revoked, or its officer is revoked."""


class NotAuthorisedError(WorkflowError, PermissionError):
    """The authenticated officer does not hold a role that permits the action."""


class ProposalTransitionError(WorkflowError):
    """The proposal's current state does not allow the requested transition."""


class TransactionMismatchError(WorkflowError):
    """The transaction hash given (or signed) is not the one prepared and approved."""


class NotConfiguredError(WorkflowError):
    """A prerequisite is not configured: no policy version yet, or no chain spender for an asset."""


class DecisionReplayError(WorkflowError):
    """A recorded policy decision cannot be replayed: its policy or inputs were altered."""
