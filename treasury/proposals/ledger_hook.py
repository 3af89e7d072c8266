"""``LedgerSpendHook``: the ``SpendLedger`` port implemented on the state ledger.

A broadcast spend is held as a pending entry, then posted when confirmed or voided when it
failed; this adapter is the one place that knows which accounts a spend moves between.

A spend to another of the reserve's own vaults (the sweep of a rotation, ``treasury.rotation``)
is an internal transfer: the receiving vault's holdings are debited instead of the paid-out
account, so the reserve's total changes only by the fee. ``internal`` says which destinations
are the reserve's own, read in the same database transaction as the hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from custody.clock import Clock, utc_now
from treasury import ledger
from treasury.proposals.actors import SYSTEM_ACTOR
from treasury.proposals.ports import SpendPosting
from treasury.workflow_exceptions import NotConfiguredError, UnknownRecordError


@dataclass(frozen=True)
class SpendAccounts:
    """The ledger accounts a spend of one asset moves between (all in that asset)."""

    holdings: str
    """The vault's holdings account, credited with amount plus fee."""
    payments: str
    """Where paid-out amounts go (debited with the amount)."""
    fees: str
    """The network-fee expense account (debited with the fee)."""


InternalDestinations = Callable[[Session, str, str], str | None]
"""``(session, asset, destination)`` -> the holdings account of the reserve's own vault that
``destination`` belongs to, or ``None`` for a payment out of the reserve."""


class LedgerSpendHook:
    """``SpendLedger`` on the state ledger: pending at broadcast, posted or voided at the end."""

    def __init__(
        self,
        accounts: Mapping[str, SpendAccounts],
        *,
        clock: Clock = utc_now,
        internal: InternalDestinations | None = None,
    ) -> None:
        self._accounts = dict(accounts)
        self._clock = clock
        self._internal = internal

    def _for(self, asset: str) -> SpendAccounts:
        found = self._accounts.get(asset)
        if found is None:
            raise NotConfiguredError(f"No ledger accounts are configured for spends of {asset}.")
        return found

    def ready(self, session: Session, asset: str) -> None:
        accounts = self._for(asset)
        for code in (accounts.holdings, accounts.payments, accounts.fees):
            ledger.get_account(session, code)

    def hold(self, session: Session, spend: SpendPosting) -> None:
        """Hold the spend once: it is held when its transaction is sealed, before the send, and
        a later record (or a re-seal under another txid) finds it held and leaves it as is."""
        if ledger.find_entry(session, spend.idempotency_key) is not None:
            return
        accounts = self._for(spend.asset)
        own = (
            None
            if self._internal is None
            else self._internal(session, spend.asset, spend.destination)
        )
        if own == accounts.holdings:
            raise NotConfiguredError(
                f"Spend proposal {spend.proposal_id} pays {spend.destination}, an address of the "
                "vault it is paid from; a vault's own address is no destination."
            )
        legs = [
            ledger.Leg.credit(accounts.holdings, spend.amount + spend.fee),
            ledger.Leg.debit(accounts.payments if own is None else own, spend.amount),
        ]
        if spend.fee:
            legs.append(ledger.Leg.debit(accounts.fees, spend.fee))
        what = "Spend" if own is None else "Internal transfer of spend"
        ledger.record_entry(
            session,
            spend.idempotency_key,
            legs,
            description=(
                f"{what} proposal {spend.proposal_id} to {spend.destination}, txid {spend.txid}"
            ),
            pending=True,
            clock=self._clock,
        )

    def _pending_id(self, session: Session, proposal_id: int) -> int:
        key = SpendPosting.key_for(proposal_id)
        entry = ledger.find_entry(session, key)
        if entry is None:
            raise UnknownRecordError(f"No pending ledger entry has the key {key!r}.")
        return entry.id

    def post(self, session: Session, proposal_id: int) -> None:
        pending_id = self._pending_id(session, proposal_id)
        key = f"{SpendPosting.key_for(proposal_id)}:post"
        ledger.post_pending(session, pending_id, key, clock=self._clock)

    def void(self, session: Session, proposal_id: int) -> None:
        pending_id = self._pending_id(session, proposal_id)
        if ledger.pending_state(session, pending_id) is not ledger.PendingState.PENDING:
            # Already posted (and perhaps reversed by a reorg, treasury.reconcile) or voided:
            # nothing is held any more, so there is nothing to void.
            return
        key = f"{SpendPosting.key_for(proposal_id)}:void"
        ledger.void_pending(
            session,
            pending_id,
            key,
            actor=SYSTEM_ACTOR,
            reason=f"Spend proposal {proposal_id}'s transaction failed on chain.",
            clock=self._clock,
        )
