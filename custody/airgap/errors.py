"""The refusals of air-gapped signing, all under ``custody.exceptions.CustodyError``::

    AirgapError                  a signing request or a signed file that cannot be used
    ├── RequestFileError         the file is unreadable, malformed, or of an unknown format
    ├── TamperedRequestError     its parts disagree (the PSBT is not the transaction named, the
    │                            typed data does not hash to the SafeTx hash named)
    └── SignedFileError          a signed file that does not sign this transaction for this key

The signer's own refusals (a foreign input, statements that do not authorise the spend, wrong
shares) keep their custody types; the command prints each as one line and writes nothing.
"""

from __future__ import annotations

from custody.exceptions import CustodyError


class AirgapError(CustodyError):
    """A signing request or signed file that cannot be used as given."""


class RequestFileError(AirgapError, ValueError):
    """The file cannot be read, is not JSON/PSBT, or is of an unknown format or version."""


class TamperedRequestError(AirgapError, ValueError):
    """The request's parts disagree with each other: it was altered after it was exported."""


class SignedFileError(AirgapError, ValueError):
    """The signed file does not carry a valid signature of this transaction by the expected key."""
