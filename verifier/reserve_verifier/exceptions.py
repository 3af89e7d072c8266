"""Every error the verifier raises; one root, so a caller catches ``VerifierError`` for all.

::

    VerifierError                a check cannot pass: the message is the report line's reason
    ├── BundleFormatError        the bytes or fields are not a v1 bundle (ValueError)
    ├── TreeError                a tree root, leaf, proof or listing is malformed (ValueError)
    │   └── TreeMismatchError    a well-formed proof or listing does not lead to its root
    ├── NodeError                a node did not answer, or answered with an error
    └── UsageError               the command line names a file that cannot be used
        └── TrustFileError       the auditor's trust file is unreadable or not valid (trust.py)

Messages are full sentences naming the field at fault, as the report prints them.
"""

from __future__ import annotations


class VerifierError(Exception):
    """A check cannot pass: the reason is the message (caught into a failed report line)."""


class BundleFormatError(VerifierError, ValueError):
    """A bundle or one of its fields is malformed: not JSON, a float, a missing part."""


class TreeError(VerifierError, ValueError):
    """A Merkle root, leaf, proof or listing cannot be read, or holds an impossible value."""


class TreeMismatchError(TreeError):
    """A proof or listing parses but does not lead to the root it is checked against."""


class NodeError(VerifierError):
    """A node did not answer, or answered with an error."""


class UsageError(VerifierError):
    """A file named on the command line cannot be read or parsed (exit code 2)."""
