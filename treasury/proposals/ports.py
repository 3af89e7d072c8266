"""The only ways the workflow reaches a chain and the ledger: the ``ChainSpender`` and
``SpendLedger`` protocols and the values that cross them.

Custody's signers and the state ledger are adapted to these at the edges (``treasury.spenders``,
``treasury.proposals.ledger_hook``), so the workflow can be tested without either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class SpendRequest:
    """What a chain spender needs to build the transaction of a proposal."""

    proposal_id: int
    asset: str
    amount: int
    destination: str
    reserved: frozenset[str] = frozenset()
    """Claims other live proposals hold (``PreparedTx.claims``): the build must use none of them."""


@dataclass(frozen=True)
class PreparedTx:
    """A transaction prepared for a proposal, with the signatures gathered so far.

    ``tx_hash`` is what approvals bind to and must not change while signatures are added:
    the unsigned-transaction hash of a PSBT, or the SafeTx hash.
    """

    tx_hash: str
    summary: Mapping[str, Any]
    """The decoded transaction approvers review: outputs, amounts, fee, nonce."""
    payload: str
    """Serialised PSBT or SafeTx plus signatures; public data, never key material."""
    fee: int
    """Fee paid from the vault in the asset's base units (0 when a relayer pays gas)."""
    claims: tuple[str, ...] = ()
    """The chain-level resources the transaction consumes (its Safe nonce, its Bitcoin inputs),
    reserved for the proposal when it is prepared so no other proposal's transaction can use
    them; only ``build`` fills it (a stored transaction's claims are in its reservations)."""


@dataclass(frozen=True)
class SealedTx:
    """A fully signed transaction, ready to send, and the id the chain will know it by.

    Recorded before it is sent (write-ahead), so whoever finds ``txid`` on the chain after a
    crash knows which proposal it is.
    """

    txid: str
    raw: str
    """The signed transaction as sent (public data): raw hex, or a JSON body for a relayer."""


class ChainSpender(Protocol):
    """The narrow interface the approval path needs from a chain's custody signer."""

    def build(self, request: SpendRequest) -> PreparedTx:
        """Prepare the unsigned transaction paying ``request`` from the vault."""
        ...

    def sign(
        self, prepared: PreparedTx, institution: str, shares: Sequence[str], passphrase: str
    ) -> PreparedTx:
        """Add ``institution``'s signature, recovering its key from ``shares``; same ``tx_hash``.

        Must refuse a ``prepared`` whose payload does not hash to ``prepared.tx_hash``.
        """
        ...

    def seal(self, prepared: PreparedTx) -> SealedTx:
        """The fully signed transaction and its id, NOT sent: the workflow records it first."""
        ...

    def send(self, prepared: PreparedTx, sealed: SealedTx) -> str:
        """Send ``sealed`` (already recorded); returns its txid. Sending a transaction the chain
        already has is not an error."""
        ...

    def find_broadcast(self, prepared: PreparedTx, sealed: SealedTx | None) -> str | None:
        """The txid under which THIS prepared transaction is in the mempool or on the chain
        (``sealed``, the last one recorded, or another execution of the same SafeTx), else
        ``None``. Never another transaction's: a match is by the prepared hash."""
        ...

    def confirmations(self, txid: str) -> int:
        """Blocks on top of the transaction (0 in the mempool); negative if it failed or was
        replaced (Bitcoin Core's convention for conflicted transactions)."""
        ...


@dataclass(frozen=True)
class SpendPosting:
    """What the ledger records for a broadcast spend: vault -> destination, vault -> fees."""

    proposal_id: int
    asset: str
    amount: int
    fee: int
    destination: str
    txid: str

    @property
    def idempotency_key(self) -> str:
        """One ledger entry per proposal, however often a step is retried."""
        return self.key_for(self.proposal_id)

    @staticmethod
    def key_for(proposal_id: int) -> str:
        return f"spend-proposal:{proposal_id}"


class SpendLedger(Protocol):
    """The ledger operations a spend needs, each inside the caller's transaction."""

    def ready(self, session: Session, asset: str) -> None:
        """Raise unless spends of ``asset`` can be booked (checked before anything is sent)."""
        ...

    def hold(self, session: Session, spend: SpendPosting) -> None:
        """Record a pending entry for a broadcast spend (idempotent by its key)."""
        ...

    def post(self, session: Session, proposal_id: int) -> None:
        """Post the pending entry of a confirmed spend."""
        ...

    def void(self, session: Session, proposal_id: int) -> None:
        """Void the pending entry of a failed spend."""
        ...
