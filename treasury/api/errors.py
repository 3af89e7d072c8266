"""Which HTTP status answers each package's errors, shared by the API and the console.

One table per package root, so a console page answers with the code the API would for the same
refusal, and no error of ``custody``, ``reporting`` or ``treasury`` surfaces as a bare 500: a
spender's ``CustodyError`` (a node down, a fee over the cap) or a ``ReportingError`` becomes a
JSON ``{"detail": "<the sentence>"}`` like every domain refusal. Kept apart from ``app.py``
because ``app.py`` imports the console router (importing the table from there would be circular).
"""

from __future__ import annotations

from fastapi import status

from custody.exceptions import CustodyError, DevnetError, KeyMaterialError, ProvisioningError
from reporting.exceptions import ReportingError
from treasury.exceptions import TreasuryError
from treasury.policy.rules import PolicyRefusedError
from treasury.policy.versions import StoredPolicyAlteredError
from treasury.workflow_exceptions import (
    AuthenticationError,
    NotAuthorisedError,
    NotConfiguredError,
    ProposalTransitionError,
    TransactionMismatchError,
    UnknownRecordError,
    WorkflowInputError,
)

DomainError = TreasuryError | CustodyError | ReportingError
"""The root of each package: every error the API answers with a JSON body."""
DOMAIN_ERRORS = (TreasuryError, CustodyError, ReportingError)

STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (AuthenticationError, status.HTTP_401_UNAUTHORIZED),
    (NotAuthorisedError, status.HTTP_403_FORBIDDEN),
    (UnknownRecordError, status.HTTP_404_NOT_FOUND),
    (WorkflowInputError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (PolicyRefusedError, status.HTTP_409_CONFLICT),
    (ProposalTransitionError, status.HTTP_409_CONFLICT),
    (TransactionMismatchError, status.HTTP_409_CONFLICT),
    (NotConfiguredError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (StoredPolicyAlteredError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (DevnetError, status.HTTP_502_BAD_GATEWAY),
    (ProvisioningError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (KeyMaterialError, status.HTTP_422_UNPROCESSABLE_CONTENT),
)
"""Errors to HTTP statuses, first match wins; any other error of a package root is a 409.

A ``DevnetError`` (a node did not answer, or answered with an error) is a 502: the treasury is
up, a node it relies on is not. Unusable shares are bad input (422); a custody or reporting
refusal of what was asked (fee over the cap, a spend in the wrong state) is a conflict (409). A
stored policy that fails its integrity check stops spending (503) until officers restore it.
"""


def status_of(error: DomainError) -> int:
    """The HTTP status that answers ``error``."""
    return next(
        (code for kind, code in STATUS_OF if isinstance(error, kind)), status.HTTP_409_CONFLICT
    )


__all__ = ["DOMAIN_ERRORS", "STATUS_OF", "DomainError", "status_of"]
