"""Whether the officers' own signatures authorise an outflow the chain shows, and nothing else.

A row in the database proves nothing: whoever can write a table (or run custody's CLI) can make a
custody spend, a Safe transaction, a proposal or a prepared transaction that names any
transaction. So an outflow counts as authorised only when, for the proposal whose CURRENT
prepared transaction is the one observed:

1. the stored transaction is provably the observed one: its PSBT's unsigned txid (segwit: the
   txid, which commits to every input and output) or its SafeTx's EIP-712 hash (which commits to
   chain, Safe, call, value, data, operation, gas fields and nonce) equals the chain's. What it
   pays is then decoded by custody's own signer code (``spend_under_review``), never read from a
   row; a Bitcoin fee is taken from what the wallet saw leave the vault, since a PSBT's input
   amounts are not covered by the txid;
2. the roster chain verifies from its genesis (``treasury.authority.verify.verify_roster``: custody's
   ``replay``, which checks each institution's ceremony signature on the genesis against the
   ceremony key it lists and every later change's required signatures; the genesis against the
   ceremony transcripts; the chain against the hash-chained audit log). The reconciler holds no
   seed, so it cannot make the signers' ``verify_genesis_for`` check; that is the one anchor left
   to the signers and to ``treasury audit verify`` against the published audit head;
3. the proposal's stored approval statements that name this transaction, with every veto of the
   proposal, pass custody's ``verify_authorization`` against that roster: signed by active keys of
   approvers of at least ``approval_institutions`` institutions, naming this chain, vault, asset,
   amount, destination, hash, fee and policy, citing a decree of the chain, paying an allowlisted
   destination, and no genuine veto.

Expiry is judged at the moment just before the first of those statements or cited decrees expired,
which, since neither has a start time, is the same as not checking expiry. Why: the reconciler
sees a transaction after it was mined, and nothing on chain says when it was SIGNED; the block
time is only an upper bound, and a spend signed (by the signers, which refuse an expired
statement) shortly before expiry and mined after it is a legitimate spend. The transaction hash
binds the statements to this one payment, so an old statement cannot authorise anything else;
what expiry protects -- that no one signs on stale approvals -- is the signers' check, made at
signing time. The roster is the one in force now: a spend whose approver was removed, or whose
policy was replaced, before the run saw it is alarmed, and the officers clear that alarm.

An outflow no statements authorise but that break-glass signatures name (the share holders'
emergency path, ``treasury.reconcile.break_glass``) is judged ``BREAK_GLASS``: booked, never silently
authorised -- it always keeps a break-glass alarm open until officers clear it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from embit.base import EmbitError
from embit.psbt import PSBT
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.authority import (
    AuthorityError,
    RosterState,
    SignedStatement,
    SpendUnderReview,
    StatementKind,
    VerifiedApprover,
    verify_authorization,
)
from custody.authority.statement import BITCOIN_CHAIN_PREFIX, EVM_CHAIN_PREFIX
from custody.bitcoin import load_vault
from custody.bitcoin.psbt import parse_psbt, unsigned_txid
from custody.bitcoin.recovery import spend_under_review as recovery_spend_under_review
from custody.bitcoin.signer import spend_under_review as bitcoin_spend_under_review
from custody.ethereum.records import SafeTxRow, SafeVaultRow
from custody.ethereum.signer import ETHER_ASSET, SigningPolicy, decode_action
from custody.ethereum.signer import spend_under_review as safe_spend_under_review
from custody.ethereum.vault_store import safe_tx_of
from custody.exceptions import CustodyError
from custody.records import VaultRecord
from treasury.authority.store import statements_for
from treasury.authority.verify import verify_roster
from treasury.proposals.tables import PreparedTxRow
from treasury.reconcile.bitcoin import btc_scope
from treasury.reconcile.break_glass import break_glass_signatures_for
from treasury.reconcile.errors import ReconcileError
from treasury.reconcile.ethereum import eth_scope
from treasury.reconcile.observation import SpendEvent
from treasury.recovery_vaults import (
    RecoveryVaultRow,
    StoredRecoveryVault,
    load_recovery_vault,
    locate_address,
)

__all__ = [
    "Authoriser",
    "BreakGlassLookup",
    "BreakGlassRecord",
    "Judgement",
    "Verdict",
    "stored_break_glass",
]

EXPIRY_MARGIN = timedelta(seconds=1)
"""Statements are judged this long before the first expiry among them (expiries are whole
seconds, and a statement counts for nothing AT its expiry)."""


class Verdict(StrEnum):
    """What the officers' signatures (or the share holders' break-glass) say about an outflow."""

    AUTHORISED = "authorised"
    """A verified quorum of approval statements names exactly this transaction."""
    BREAK_GLASS = "break_glass"
    """No statements do, but break-glass signatures name it: booked, and alarmed."""
    UNAUTHORISED = "unauthorised"
    """Nothing the officers or the share holders signed explains it: keys were used outside."""


class BreakGlassRecord(Protocol):
    """What the reconciler reads of one break-glass signature (``treasury.reconcile.break_glass``)."""

    @property
    def institution(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def signed_at(self) -> datetime: ...


BreakGlassLookup = Callable[[Session, str, str], Sequence[BreakGlassRecord]]
"""``(session, chain, tx_hash)`` -> the break-glass signatures stored for that transaction."""


def stored_break_glass(session: Session, chain: str, tx_hash: str) -> Sequence[BreakGlassRecord]:
    """The break-glass signatures recorded for ``tx_hash`` on ``chain`` (``break_glass``)."""
    return break_glass_signatures_for(session, chain, tx_hash)


@dataclass(frozen=True)
class Judgement:
    """The verdict on one outflow, and a sentence saying why for the alarm and the logs."""

    verdict: Verdict
    explanation: str
    proposal_id: int | None = None
    approvers: tuple[VerifiedApprover, ...] = ()
    break_glass: tuple[BreakGlassRecord, ...] = ()

    @property
    def authorised(self) -> bool:
        return self.verdict is Verdict.AUTHORISED


class _UnprovenError(ReconcileError):
    """The stored transaction does not hash to the observed one, or cannot be decoded."""


class Authoriser:
    """Judges the outflows of one vault in one booking transaction (the roster verified once)."""

    def __init__(
        self, session: Session, *, break_glass: BreakGlassLookup = stored_break_glass
    ) -> None:
        self._session = session
        self._break_glass = break_glass
        self._roster: RosterState | str | None = None

    def _roster_state(self) -> RosterState | str:
        """The verified roster state, or why there is none (a sentence)."""
        if self._roster is None:
            verdict = verify_roster(self._session)
            if verdict.brk is not None:
                self._roster = f"the roster chain does not verify ({verdict.brk.message})"
            elif verdict.state is None:
                self._roster = "no roster genesis is stored, so no officer's signature can count"
            else:
                self._roster = verdict.state
        return self._roster

    def judge(self, scope: str, chain: str, event: SpendEvent) -> Judgement:
        """The verdict on ``event``, an outflow of vault ``scope`` on ``chain``."""
        if event.evidence is None:
            return Judgement(
                Verdict.UNAUTHORISED,
                "no Safe execution moved it, so no statement can name it",
            )
        reasons: list[str] = []
        for proposal_id, prepared in self._candidates(event.evidence):
            try:
                return self._verified(scope, chain, event, proposal_id, prepared)
            except (_UnprovenError, AuthorityError, CustodyError, EmbitError) as exc:
                reasons.append(f"proposal {proposal_id}: {exc}")
        if not reasons:
            reasons.append("no proposal's current prepared transaction is this one")
        why = "; ".join(reasons)
        chain_name = self._chain_name(scope, chain)
        signatures = (
            tuple(self._break_glass(self._session, chain_name, event.evidence))
            if chain_name is not None
            else ()
        )
        if signatures:
            return Judgement(Verdict.BREAK_GLASS, why, break_glass=signatures)
        return Judgement(Verdict.UNAUTHORISED, why)

    def _btc_vault_name(self, scope: str) -> str | None:
        """The Bitcoin vault reconciled as ``scope`` (``btc:<name>``), if there is one."""
        name = self._session.scalar(
            select(VaultRecord.name).where(VaultRecord.name == scope.removeprefix("btc:"))
        )
        return name if name is not None and btc_scope(name) == scope else None

    def _recovery_vault(self, scope: str) -> StoredRecoveryVault | None:
        """The recovery vault reconciled as ``scope`` (``btc:<name>``), if there is one."""
        name = self._session.scalar(
            select(RecoveryVaultRow.name).where(RecoveryVaultRow.name == scope.removeprefix("btc:"))
        )
        if name is None or btc_scope(name) != scope:
            return None
        return load_recovery_vault(self._session, name)

    def _chain_name(self, scope: str, chain: str) -> str | None:
        """The chain as statements and break-glass records name it (``bitcoin:regtest``,
        ``eip155:31337``), for the vault reconciled as ``scope``."""
        if chain == "bitcoin":
            name = self._btc_vault_name(scope)
            if name is None:
                recovery = self._recovery_vault(scope)
                if recovery is None:
                    return None
                return f"{BITCOIN_CHAIN_PREFIX}{recovery.policy.network.value}"
            network = load_vault(self._session, name).descriptor.network.value
            return f"{BITCOIN_CHAIN_PREFIX}{network}"
        parts = scope.split(":", 2)
        if chain == "ethereum" and len(parts) == 3 and parts[0] == "eth" and parts[1].isdigit():
            return f"{EVM_CHAIN_PREFIX}{parts[1]}"
        return None

    def _candidates(self, evidence: str) -> list[tuple[int, PreparedTxRow]]:
        rows = self._session.scalars(
            select(PreparedTxRow)
            .where(
                func.lower(PreparedTxRow.tx_hash) == evidence.lower(),
                PreparedTxRow.superseded_at.is_(None),
            )
            .order_by(PreparedTxRow.id)
        )
        return [(row.proposal_id, row) for row in rows]

    def _verified(
        self, scope: str, chain: str, event: SpendEvent, proposal_id: int, prepared: PreparedTxRow
    ) -> Judgement:
        state = self._roster_state()
        if isinstance(state, str):
            raise _UnprovenError(state)
        spend = self._decoded(scope, chain, event, prepared)
        statements = self._statements(proposal_id, spend.tx_hash)
        authorization = verify_authorization(
            state, statements, spend, _judged_at(state, statements)
        )
        names = ", ".join(f"{a.name} ({a.institution})" for a in authorization.approvers)
        return Judgement(
            Verdict.AUTHORISED,
            f"proposal {proposal_id}, approved by {names}",
            proposal_id=proposal_id,
            approvers=authorization.approvers,
        )

    def _statements(self, proposal_id: int, tx_hash: str) -> tuple[SignedStatement, ...]:
        """The approvals that name this transaction, and every veto of the proposal.

        Approvals of an earlier transaction of the proposal say nothing about this one; a veto
        stops the proposal whatever transaction it named.
        """
        try:
            stored = statements_for(self._session, proposal_id)
        except ValueError as exc:  # custody's EncodingError: a row that is not a statement
            raise _UnprovenError(str(exc)) from None
        return tuple(
            s
            for s in stored
            if s.statement.kind is StatementKind.VETO or s.statement.tx_hash == tx_hash
        )

    def _decoded(
        self, scope: str, chain: str, event: SpendEvent, prepared: PreparedTxRow
    ) -> SpendUnderReview:
        if chain == "bitcoin":
            return self._bitcoin(scope, event, prepared)
        if chain == "ethereum":
            return self._safe(scope, event)
        raise _UnprovenError(f"the reconciler knows no chain {chain!r}")

    def _bitcoin(self, scope: str, event: SpendEvent, prepared: PreparedTxRow) -> SpendUnderReview:
        name = self._btc_vault_name(scope)
        if name is None:
            recovery = self._recovery_vault(scope)
            if recovery is not None:
                return self._recovery(recovery, event, prepared)
            raise _UnprovenError(f"no Bitcoin vault is reconciled as {scope}")
        psbt = _prepared_psbt(prepared)
        txid = unsigned_txid(psbt)
        if txid != event.evidence:
            raise _UnprovenError(
                f"its stored PSBT is transaction {txid}, not the observed {event.evidence}"
            )
        spend = bitcoin_spend_under_review(psbt, load_vault(self._session, name).descriptor)
        if event.outflow is None:
            raise _UnprovenError("the chain reader gave no net outflow to take the fee from")
        return replace(spend, fee=event.outflow - spend.amount)

    def _recovery(
        self, vault: StoredRecoveryVault, event: SpendEvent, prepared: PreparedTxRow
    ) -> SpendUnderReview:
        """A recovery vault's spend, decoded by its own signer code. A refresh pays one of the
        vault's own addresses, so only the fee left the vault: the whole net outflow is the fee."""
        psbt = _prepared_psbt(prepared)
        txid = unsigned_txid(psbt)
        if txid != event.evidence:
            raise _UnprovenError(
                f"its stored PSBT is transaction {txid}, not the observed {event.evidence}"
            )
        spend = recovery_spend_under_review(psbt, vault.policy)
        if event.outflow is None:
            raise _UnprovenError("the chain reader gave no net outflow to take the fee from")
        # The address row is only a hint: the vault's own policy must derive the destination.
        located = locate_address(self._session, vault.id, spend.destination)
        internal = located is not None and vault.policy.address(*located) == spend.destination
        return replace(spend, fee=event.outflow if internal else event.outflow - spend.amount)

    def _safe(self, scope: str, event: SpendEvent) -> SpendUnderReview:
        found = self._session.execute(
            select(SafeTxRow, SafeVaultRow)
            .join(SafeVaultRow, SafeVaultRow.id == SafeTxRow.vault_id)
            .where(func.lower(SafeTxRow.safe_tx_hash) == str(event.evidence).lower())
        ).all()
        for row, vault in found:
            if eth_scope(vault.chain_id, vault.name) != scope:
                continue
            safe_tx = safe_tx_of(row, vault)
            if safe_tx.hash_hex != str(event.evidence).lower():
                raise _UnprovenError(
                    f"its stored SafeTx hashes to {safe_tx.hash_hex}, not the executed "
                    f"{event.evidence}"
                )
            # Any contract may be the token: the statements, not a signer's allowlist, decide.
            native = event.native_asset or ETHER_ASSET
            policy = SigningPolicy(frozenset({safe_tx.to}), native_asset=native)
            action = decode_action(safe_tx, policy)
            return safe_spend_under_review(safe_tx, action)
        raise _UnprovenError(f"no SafeTx of {scope} is stored with that hash")


def _prepared_psbt(prepared: PreparedTxRow) -> PSBT:
    try:
        body = json.loads(prepared.payload)
        return parse_psbt(str(body["psbt"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise _UnprovenError(f"its prepared payload holds no readable PSBT ({exc})") from None


def _judged_at(state: RosterState, statements: Sequence[SignedStatement]) -> datetime:
    """Just before the first expiry among the statements and the decrees they cite.

    See the module docstring: the reconciler cannot know when the transaction was signed, so it
    asks whether there was a moment when all of them were in force together.
    """
    expiries = [s.statement.expires_at for s in statements]
    for signed in statements:
        decree = state.decrees.get(signed.statement.legal_basis)
        if decree is not None:
            expiries.append(decree.expires_at)
    if not expiries:  # no statements: verify_authorization refuses them whatever the time
        return datetime(1970, 1, 1, tzinfo=UTC)
    return min(expiries) - EXPIRY_MARGIN
