"""Spends from a recovery vault through the approval workflow, and the refresh's booking.

``RecoveryVaultSpender`` is the workflow's ``ChainSpender`` for a stored recovery vault
(``treasury.recovery_vaults``): it builds a primary-path PSBT spending every confirmed coin of
the vault (so a refresh restarts every coin's window), hands each institution's signer the
officers' statements (``authority_evidence``, before any share is read) and signs through
``custody.bitcoin.recovery.cosign_recovery_psbt``, which decodes the PSBT and verifies the
statements itself; the signatures gathered so far travel in the prepared payload (public data),
and ``seal`` finalises with the miniscript satisfier.

A refresh is such a spend whose destination is an address the treasury issued for the same vault.
On the books it is an internal movement: the coins never leave the vault, so
``RefreshLedgerHook`` holds only the fee (vault holdings to the fees expense) under the
proposal's usual key, and the reconciler settles that entry when the transaction confirms (its
net outflow from the vault is exactly the fee). Every other spend goes to the wrapped hook.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from embit.psbt import PSBT
from sqlalchemy.orm import Session, sessionmaker

from custody.bitcoin.approval import ApprovedSpend, FeePolicy, Payment
from custody.bitcoin.descriptor import Branch
from custody.bitcoin.psbt import parse_psbt, unsigned_txid
from custody.bitcoin.recovery import (
    SpendPath,
    VaultCoin,
    build_psbt,
    cosign_recovery_psbt,
    extract_transaction,
    finalize_psbt,
    recovery_vault_id,
)
from custody.bitcoin.recovery.cosign import BITCOIN_ASSET
from custody.bitcoin.rpc import BitcoinRPC, btc_to_sats
from custody.bitcoin.spend import Outpoint
from custody.ceremony import load_transcript
from custody.clock import Clock, utc_now
from custody.exceptions import AbsurdFeeError, BitcoinRPCError
from custody.keys import signing_keys
from custody.shamir import combine_shares, parse_shares
from treasury import ledger
from treasury.proposals import PreparedTx, SealedTx, SpendRequest
from treasury.proposals.ledger_hook import SpendAccounts
from treasury.proposals.ports import SpendLedger, SpendPosting
from treasury.recovery_vaults import (
    StoredRecoveryVault,
    issue_address,
    load_recovery_vault,
    locate_address,
    vault_of_address,
)
from treasury.spenders import (
    RPC_NOT_FOUND_CODE,
    VerifiedListener,
    authority_evidence,
    input_claim,
    log_verified,
    reserved_outpoints,
)
from treasury.workflow_exceptions import TransactionMismatchError

log = logging.getLogger(__name__)

ALREADY_KNOWN = ("already in block chain", "txn-already-known", "txn-already-in-mempool")
"""bitcoind's words for a transaction it already has: sending it again is not an error."""


class RecoveryVaultSpender:
    """Spends from one recovery vault through the primary quorum, on the officers' statements."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        rpc: BitcoinRPC,
        vault_name: str,
        institutions: Mapping[str, str],
        *,
        fee_rate_sat_vb: int,
        max_fee_sats: int,
        fee_policy: FeePolicy | None = None,
        on_verified: VerifiedListener | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._rpc = rpc
        self._vault_name = vault_name
        self._institutions = dict(institutions)
        self._fee_rate = fee_rate_sat_vb
        self._max_fee = max_fee_sats
        self._fee_policy = fee_policy or FeePolicy()
        self._on_verified = on_verified
        self._clock = clock

    def __repr__(self) -> str:
        return f"RecoveryVaultSpender(vault={self._vault_name!r}, rpc={self._rpc!r})"

    def _vault(self) -> StoredRecoveryVault:
        with self._sessions() as session:
            return load_recovery_vault(session, self._vault_name)

    def _coins(self, vault: StoredRecoveryVault, avoid: frozenset[Outpoint]) -> list[VaultCoin]:
        """Every confirmed coin of the vault at an address the treasury issued, less ``avoid``."""
        unspent = self._rpc.wallet(vault.wallet_name).call("listunspent", 1)
        coins: list[VaultCoin] = []
        with self._sessions() as session:
            for coin in unspent:
                outpoint = Outpoint(str(coin["txid"]), int(coin["vout"]))
                if outpoint in avoid:
                    continue
                located = locate_address(session, vault.id, str(coin["address"]))
                if located is None:
                    log.warning(
                        "recovery vault %s: coin %s:%d at an address the treasury never issued "
                        "is left out", vault.name, outpoint.txid, outpoint.vout,
                        extra={"vault": vault.name},
                    )  # fmt: skip
                    continue
                branch, index = located
                amount = btc_to_sats(coin["amount"])
                coins.append(VaultCoin(outpoint.txid, outpoint.vout, amount, branch, index))
        return coins

    def build(self, request: SpendRequest) -> PreparedTx:
        vault = self._vault()
        coins = self._coins(vault, reserved_outpoints(request.reserved))
        with self._sessions.begin() as session:
            change_index, _ = issue_address(session, vault.name, Branch.CHANGE, clock=self._clock)
        psbt = build_psbt(
            vault.policy,
            coins,
            [Payment(request.destination, request.amount)],
            path=SpendPath.PRIMARY,
            fee_rate_sat_vb=self._fee_rate,
            change_index=change_index,
        )
        fee = int(psbt.fee())
        if fee > self._max_fee:
            raise AbsurdFeeError(
                f"The spend's fee of {fee} sats exceeds the maximum of {self._max_fee} sats."
            )
        txid = unsigned_txid(psbt)
        payments = [{"address": request.destination, "amount_sats": str(request.amount)}]
        summary = {
            "vault": vault.name,
            "kind": "recovery_vault",
            "payments": payments,
            "fee_sats": str(fee),
            "fee_rate_sat_vb": str(self._fee_rate),
            "inputs": len(coins),
            "unsigned_txid": txid,
            "recovery_delay_blocks": vault.delay_blocks,
            # What an approval statement names, as the recovery vault's signer derives it.
            "chain": f"bitcoin:{vault.policy.network.value}",
            "vault_id": recovery_vault_id(vault.policy),
            "asset": BITCOIN_ASSET,
            "max_fee_sats": str(self._max_fee),
        }
        payload = json.dumps(
            {"vault": vault.name, "psbt": psbt.to_string(), "payments": payments}, sort_keys=True
        )
        claims = tuple(input_claim(Outpoint(c.txid, c.vout)) for c in coins)
        return PreparedTx(txid, summary, payload, fee, claims)

    def _psbt(self, prepared: PreparedTx) -> tuple[dict[str, Any], PSBT]:
        """The payload and its PSBT, after checking the PSBT is the approved transaction."""
        body: dict[str, Any] = json.loads(prepared.payload)
        if body.get("vault") != self._vault_name:
            raise TransactionMismatchError(
                f"The prepared transaction is of vault {body.get('vault')!r}, not "
                f"{self._vault_name!r}."
            )
        psbt = parse_psbt(str(body["psbt"]))
        actual = unsigned_txid(psbt)
        if actual != prepared.tx_hash:
            raise TransactionMismatchError(
                f"The stored PSBT is transaction {actual}, not the approved {prepared.tx_hash}."
            )
        return body, psbt

    def sign(
        self, prepared: PreparedTx, institution: str, shares: Sequence[str], passphrase: str
    ) -> PreparedTx:
        body, _ = self._psbt(prepared)
        try:
            name = self._institutions[institution]
        except KeyError:
            raise TransactionMismatchError(
                f"Institution {institution} has no ceremony mapped for recovery vault "
                f"{self._vault_name!r}."
            ) from None
        authority = authority_evidence(self._sessions, prepared.tx_hash)  # before any share
        vault = self._vault()
        if name not in vault.primary_ceremonies:
            raise TransactionMismatchError(
                f"{name} holds no primary key of recovery vault {vault.name!r}."
            )
        with self._sessions() as session:
            fingerprint = load_transcript(session, name).fingerprint
        approval = ApprovedSpend(
            vault.name,
            tuple(Payment(p["address"], int(p["amount_sats"])) for p in body["payments"]),
            self._max_fee,
            prepared.tx_hash,
        )
        with signing_keys(combine_shares(parse_shares(shares), passphrase), fingerprint) as keys:
            signed = cosign_recovery_psbt(
                str(body["psbt"]),
                vault.policy,
                approval,
                keys,
                self._fee_policy,
                authority=authority,
                clock=self._clock,
            )
        log_verified(signed.authorization, institution, prepared.tx_hash)
        if self._on_verified is not None:
            self._on_verified(institution, prepared.tx_hash, signed.authorization)
        body["psbt"] = signed.psbt
        return PreparedTx(
            prepared.tx_hash,
            prepared.summary,
            json.dumps(body, sort_keys=True),
            prepared.fee,
            prepared.claims,
        )

    def seal(self, prepared: PreparedTx) -> SealedTx:
        _, psbt = self._psbt(prepared)
        finalize_psbt(psbt, self._vault().policy)
        tx = extract_transaction(psbt)
        txid = str(tx.txid().hex())
        if txid != prepared.tx_hash:  # segwit: the final txid is the unsigned one
            raise TransactionMismatchError(
                f"The finalised transaction is {txid}, not the approved {prepared.tx_hash}."
            )
        return SealedTx(txid, str(tx.to_string()))

    def send(self, prepared: PreparedTx, sealed: SealedTx) -> str:
        if sealed.txid != prepared.tx_hash:
            raise TransactionMismatchError(
                f"The sealed transaction {sealed.txid} is not the approved {prepared.tx_hash}."
            )
        try:
            return str(self._rpc.call("sendrawtransaction", sealed.raw))
        except BitcoinRPCError as exc:
            if any(words in str(exc) for words in ALREADY_KNOWN):
                return sealed.txid
            raise

    def _wallet_tx(self, txid: str) -> dict[str, Any] | None:
        wallet = self._rpc.wallet(self._vault().wallet_name)
        try:
            found: dict[str, Any] = wallet.call("gettransaction", txid, True)
        except BitcoinRPCError as exc:
            if exc.code != RPC_NOT_FOUND_CODE:
                raise
            return None
        return found

    def find_broadcast(self, prepared: PreparedTx, sealed: SealedTx | None) -> str | None:
        try:
            self._rpc.call("getrawtransaction", prepared.tx_hash)
        except BitcoinRPCError as exc:
            if exc.code != RPC_NOT_FOUND_CODE:
                raise
            if self._wallet_tx(prepared.tx_hash) is None:
                return None
        return prepared.tx_hash

    def confirmations(self, txid: str) -> int:
        found = self._wallet_tx(txid)
        if found is None:
            raise TransactionMismatchError(
                f"Transaction {txid} is unknown to recovery vault {self._vault_name!r}."
            )
        return int(found["confirmations"])


class RefreshLedgerHook:
    """``SpendLedger`` that books a refresh (a spend back into the paying recovery vault) as an
    internal movement: only the fee leaves the holdings. Everything else goes to ``inner``."""

    def __init__(
        self,
        inner: SpendLedger,
        accounts: Mapping[str, SpendAccounts],
        holdings_of: Mapping[str, str],
        *,
        clock: Clock = utc_now,
    ) -> None:
        """``holdings_of`` maps a recovery vault's name to its holdings account code."""
        self._inner = inner
        self._accounts = dict(accounts)
        self._holdings_of = dict(holdings_of)
        self._clock = clock

    def _refresh_of(self, session: Session, spend: SpendPosting) -> str | None:
        """The holdings account a refresh stays in, if ``spend`` is one."""
        vault = vault_of_address(session, spend.destination)
        accounts = self._accounts.get(spend.asset)
        if vault is None or accounts is None:
            return None
        holdings = self._holdings_of.get(vault)
        return holdings if holdings == accounts.holdings else None

    def ready(self, session: Session, asset: str) -> None:
        self._inner.ready(session, asset)

    def hold(self, session: Session, spend: SpendPosting) -> None:
        holdings = self._refresh_of(session, spend)
        if holdings is None:
            self._inner.hold(session, spend)
            return
        if ledger.find_entry(session, spend.idempotency_key) is not None:
            return
        fees = self._accounts[spend.asset].fees
        ledger.record_entry(
            session,
            spend.idempotency_key,
            [ledger.Leg.credit(holdings, spend.fee), ledger.Leg.debit(fees, spend.fee)],
            description=(
                f"Refresh proposal {spend.proposal_id}: {spend.amount} back into the vault at "
                f"{spend.destination}, txid {spend.txid}; only the fee leaves"
            ),
            pending=True,
            clock=self._clock,
        )

    def post(self, session: Session, proposal_id: int) -> None:
        self._inner.post(session, proposal_id)

    def void(self, session: Session, proposal_id: int) -> None:
        self._inner.void(session, proposal_id)
