"""Which HTTP status answers each domain refusal, shared by the API and the console.

One table, so a console page answers with the code the API would for the same refusal. Kept
apart from ``app.py`` because ``app.py`` imports the console router (importing the table from
there would be circular).
"""

from __future__ import annotations

from fastapi import status

from treasury.exceptions import TreasuryError
from treasury.workflow_exceptions import (
    AuthenticationError,
    NotAuthorisedError,
    NotConfiguredError,
    PolicyRefusedError,
    ProposalTransitionError,
    TransactionMismatchError,
    UnknownRecordError,
    WorkflowInputError,
)

STATUS_OF: tuple[tuple[type[TreasuryError], int], ...] = (
    (AuthenticationError, status.HTTP_401_UNAUTHORIZED),
    (NotAuthorisedError, status.HTTP_403_FORBIDDEN),
    (UnknownRecordError, status.HTTP_404_NOT_FOUND),
    (WorkflowInputError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (PolicyRefusedError, status.HTTP_409_CONFLICT),
    (ProposalTransitionError, status.HTTP_409_CONFLICT),
    (TransactionMismatchError, status.HTTP_409_CONFLICT),
    (NotConfiguredError, status.HTTP_503_SERVICE_UNAVAILABLE),
)
"""Domain errors to HTTP statuses, first match wins; any other TreasuryError is a 409."""


def status_of(error: TreasuryError) -> int:
    """The HTTP status that answers ``error``."""
    return next(
        (code for kind, code in STATUS_OF if isinstance(error, kind)), status.HTTP_409_CONFLICT
    )
