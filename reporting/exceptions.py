"""Every error the reporting package raises.

Callers catch ``ReportingError`` to handle all of them; the tree::

    ReportingError
    └── MerkleError                  the holdings tree or the liability sum tree
        ├── LeafError                a leaf cannot be encoded (ValueError)
        │   ├── NegativeAmountError  an amount below zero
        │   ├── AmountOverflowError  an amount or a sum that does not fit in 128 bits
        │   ├── DuplicateLeafError   the same account or holding twice in one tree
        │   └── UnknownLeafError     no leaf for that account in this tree (KeyError)
        ├── AssetListError           the asset list is not canonical (ValueError)
        ├── NonceError               the snapshot nonce is too short (ValueError)
        ├── ProofFormatError         a proof, root or listing does not parse (ValueError)
        └── VerificationError        a well-formed proof or listing does not match the root
            ├── ProofInvalidError    the path is impossible for this root (shape, sign, padding)
            ├── RootMismatchError    the path or listing ends at another hash or digest
            └── TotalsMismatchError  the sums do not add up to the root's stated totals

Messages are full sentences that name the field at fault; they never carry a snapshot nonce.
"""

from __future__ import annotations


class ReportingError(Exception):
    """Root of every error raised by the reporting package."""


class MerkleError(ReportingError):
    """A Merkle tree, leaf or proof is unusable or does not check out."""


class LeafError(MerkleError, ValueError):
    """A leaf's fields cannot be encoded (bad account id, amount count, address...)."""


class NegativeAmountError(LeafError):
    """An amount is below zero; liabilities and holdings are zero or more base units."""


class AmountOverflowError(LeafError):
    """An amount, or a sum of amounts, does not fit the encoding's 128-bit field."""


class DuplicateLeafError(LeafError):
    """The same account (or the same holding) appears twice in one tree."""


class UnknownLeafError(MerkleError, KeyError):
    """The tree has no leaf for the account asked about."""

    def __str__(self) -> str:
        """Show the message as a sentence, not as KeyError's quoted repr."""
        return str(self.args[0]) if self.args else ""


class AssetListError(MerkleError, ValueError):
    """The asset list is empty where it must not be, unsorted, repeated or badly spelled."""


class NonceError(MerkleError, ValueError):
    """The per-snapshot salt nonce is too short to hide guessable allocations."""


class ProofFormatError(MerkleError, ValueError):
    """A serialised proof, root, leaf or listing is malformed (bytes or JSON-able dict)."""


class VerificationError(MerkleError):
    """A well-formed proof or listing does not match the root it is checked against."""


class ProofInvalidError(VerificationError):
    """The proof's path cannot belong to this root: wrong shape, negative sum, bad padding."""


class RootMismatchError(VerificationError):
    """Folding the proof (or rebuilding from the listing) ends at another hash or digest."""


class TotalsMismatchError(VerificationError):
    """The per-asset sums do not add up to the totals the root states."""
