"""Errors of the treasury's side of the officers' authority: storing and building the roster.

They hang under the workflow's tree, so the CLI prints each as one line and the API maps each to
its HTTP answer like any other workflow refusal::

    WorkflowError
    ├── WorkflowInputError
    │   └── RosterInputError          a genesis or statement request that cannot be built or stored
    ├── NotConfiguredError
    │   └── NoRosterError             no roster genesis is stored yet
    └── StatementConflictError        a statement already stored for the proposal with another
                                      signature

Whether a record or a signature is *valid* is custody's verdict (``custody.authority`` errors,
raised unchanged): the treasury stores only what custody's own replay accepts.
"""

from __future__ import annotations

from treasury.workflow_exceptions import NotConfiguredError, WorkflowError, WorkflowInputError

__all__ = ["NoRosterError", "RosterInputError", "StatementConflictError"]


class RosterInputError(WorkflowInputError):
    """A genesis, key or statement request is malformed or names what the treasury lacks."""


class NoRosterError(NotConfiguredError):
    """No roster genesis is stored: nothing can be signed under a roster yet."""


class StatementConflictError(WorkflowError):
    """The same statement is already stored for the proposal, with a different signature."""
