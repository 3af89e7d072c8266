"""The approval workflow's chain spenders, built on the custody signers of both chains.

The workflow (``treasury.proposals``) only knows the narrow ``ChainSpender`` interface; these
adapters translate it into custody's own spend records, so that every spend the officers approve
is also a spend custody knows (the reconciler raises an alarm on any vault outflow custody does
not know). The approval hash is the PSBT's unsigned txid (equal to the final txid for segwit) or
the SafeTx hash; each adapter refuses a payload that does not hash to it.

Workflow institutions are known by code (``MOF``); custody knows them by the name their ceremony
recorded ("Ministry of Finance"): ``institutions`` maps one to the other.

Each prepared summary also records what an approval statement names about the chain (``chain``,
``vault_id``, the statement ``asset``, and ``max_fee_sats`` or the Safe ``nonce``), computed the
way custody's signers compute them from the transaction. ``sign`` always hands the signer the
stored roster records and the proposal's signed statements (``AuthorityEvidence``); the signer
verifies them itself before signing and names the approvers whose signatures it verified, which is
logged and, for a caller that shows it (the demo, a screen), handed to the spender's
``on_verified`` listener.

There is no unchecked path: with no roster genesis stored, ``sign`` refuses
(``RosterNotFoundedError``) before any share is read, so a database writer who deletes the roster
rows gets a refusal, not an unchecked signature. With a genesis but no statements for the
transaction, the (empty) evidence still goes to the signer, which refuses and signs nothing: the
spender never decides on its own that the officers' authority may be skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from custody.authority import RosterRecord, VerifiedAuthorization
from custody.authority.delay import SpendWindowReader
from custody.authority.gate import AuthorityEvidence, approvers_line
from custody.bitcoin import Payment, load_vault
from custody.bitcoin.psbt import parse_psbt, unsigned_txid
from custody.bitcoin.rpc import BitcoinRPC
from custody.bitcoin.signer import BITCOIN_ASSET, bitcoin_vault_id
from custody.bitcoin.spend import (
    Finalized,
    Outpoint,
    build_spend,
    finalize_spend,
    load_spend,
    mark_broadcast,
    send_finalized,
    sign_spend,
    spend_inputs,
)
from custody.ceremony import load_transcript
from custody.ethereum import EthChain, KeyQuorum, SafeVaults, SigningPolicy
from custody.ethereum.safe_vaults import SealedExecution
from custody.ethereum.signer import ERC20_ASSET_PREFIX, ETHER_ASSET
from custody.exceptions import BitcoinRPCError
from custody.keys import signing_keys
from custody.shamir import combine_shares, parse_shares
from treasury.authority.store import load_records, statements_for
from treasury.proposals import PreparedTx, SealedTx, SpendRequest
from treasury.proposals.tables import PreparedTxRow
from treasury.workflow_exceptions import NotConfiguredError, TransactionMismatchError

log = logging.getLogger(__name__)

RPC_NOT_FOUND_CODE = -5
"""bitcoind's "invalid or non-wallet transaction id" / "transaction not in mempool" code."""

BTC_INPUT_CLAIM = "btc-input:"
"""Prefix of a Bitcoin input's reservation claim: ``btc-input:<txid>:<vout>``."""
SAFE_NONCE_CLAIM = "safe-nonce:"
"""Prefix of a Safe nonce's reservation claim: ``safe-nonce:<chain id>:<safe>:<nonce>``."""


def input_claim(outpoint: Outpoint) -> str:
    """The reservation claim of one Bitcoin input."""
    return f"{BTC_INPUT_CLAIM}{outpoint.txid}:{outpoint.vout}"


def reserved_outpoints(reserved: frozenset[str]) -> frozenset[Outpoint]:
    """The Bitcoin inputs among reservation claims."""
    found: set[Outpoint] = set()
    for claim in reserved:
        if claim.startswith(BTC_INPUT_CLAIM):
            txid, vout = claim.removeprefix(BTC_INPUT_CLAIM).rsplit(":", 1)
            found.add(Outpoint(txid, int(vout)))
    return frozenset(found)


def nonce_claim(chain_id: int, safe: str, nonce: int) -> str:
    """The reservation claim of one Safe nonce."""
    return f"{SAFE_NONCE_CLAIM}{chain_id}:{safe.lower()}:{nonce}"


def reserved_nonces(reserved: frozenset[str], chain_id: int, safe: str) -> frozenset[int]:
    """The nonces of Safe ``safe`` among reservation claims."""
    prefix = nonce_claim(chain_id, safe, 0)[:-1]
    return frozenset(int(c.removeprefix(prefix)) for c in reserved if c.startswith(prefix))


VerifiedListener = Callable[[str, str, VerifiedAuthorization], None]
"""Told ``(institution code, transaction hash, authorization)`` each time a custody signer has
verified the officers' signed statements and signed; the authorization is the signer's own
result, not the database's account of the approvals."""


class RosterNotFoundedError(NotConfiguredError):
    """No roster genesis is stored, so no signer can know who the officers are.

    Raised before any share is read: the custody signers sign only on the officers' signed
    statements, verified against a roster chain anchored in the ceremonies.
    """


def require_roster_genesis(session: Session) -> tuple[RosterRecord, ...]:
    """The stored roster chain, genesis first; ``RosterNotFoundedError`` if there is none.

    A caller that asks for shares (the CLI's ``spend sign``) can call it before the holders type
    anything; ``sign`` calls it again in any case.
    """
    records = tuple(load_records(session))
    if not records:
        raise RosterNotFoundedError(
            "No roster genesis is stored, so nothing can be signed: the custody signers sign only "
            "on the officers' signed approval statements, verified against the roster chain. "
            "Found the roster genesis first (treasury roster ceremony-key, treasury roster "
            "genesis, treasury roster sign-genesis, treasury roster commit); the shares were not "
            "used and nothing was signed."
        )
    return records


def authority_evidence(
    sessions: sessionmaker[Session], tx_hash: str, services: SpendWindowReader | None = None
) -> AuthorityEvidence:
    """The roster chain and the signed statements of the proposal whose current transaction is
    ``tx_hash``.

    Refuses (``RosterNotFoundedError``) while no roster genesis is stored, and
    (``TransactionMismatchError``) when no proposal's current transaction is ``tx_hash``. No
    statements is not refused here: the empty evidence goes to the signer, which refuses it
    itself. Nothing else is checked: the signer replays and verifies all of it against its own
    seed and the transaction it decodes.
    """
    with sessions() as session:
        records = require_roster_genesis(session)
        proposal_id = session.scalar(
            select(PreparedTxRow.proposal_id).where(
                PreparedTxRow.tx_hash == tx_hash, PreparedTxRow.superseded_at.is_(None)
            )
        )
        if proposal_id is None:
            raise TransactionMismatchError(
                f"No proposal's current transaction is {tx_hash}; the officers' statements that "
                "authorise it cannot be found, so it is not signed."
            )
        return AuthorityEvidence(records, statements_for(session, proposal_id), services)


def log_verified(
    authorization: VerifiedAuthorization | None, institution: str, tx_hash: str
) -> None:
    """Say whose signatures the signer verified (nothing when it was given no evidence)."""
    if authorization is not None:
        log.info(
            "signatures verified: %s",
            approvers_line(authorization),
            extra={
                "proposal_id": authorization.proposal_id,
                "institution": institution,
                "tx_hash": tx_hash,
            },
        )


def _report_verified(
    listener: VerifiedListener | None,
    authorization: VerifiedAuthorization | None,
    institution: str,
    tx_hash: str,
) -> None:
    """Log whose signatures the signer verified, and tell ``listener`` (if any)."""
    log_verified(authorization, institution, tx_hash)
    if listener is not None and authorization is not None:
        listener(institution, tx_hash, authorization)


def _custody_name(institutions: Mapping[str, str], code: str) -> str:
    try:
        return institutions[code]
    except KeyError:
        raise TransactionMismatchError(
            f"Institution {code} has no custody cosigner mapped; known: {', '.join(institutions)}."
        ) from None


class BitcoinSpender:
    """Spends from one Bitcoin vault through custody's PSBT spends (built, signed, broadcast).

    ``on_verified`` is told whose signatures the signer verified each time it signs.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        rpc: BitcoinRPC,
        vault_name: str,
        institutions: Mapping[str, str],
        *,
        fee_rate_sat_vb: Decimal,
        max_fee_sats: int,
        on_verified: VerifiedListener | None = None,
        services: SpendWindowReader | None = None,
    ) -> None:
        self._services = services
        self._sessions = sessions
        self._rpc = rpc
        self._vault_name = vault_name
        self._institutions = dict(institutions)
        self._fee_rate = fee_rate_sat_vb
        self._max_fee = max_fee_sats
        self._on_verified = on_verified

    def __repr__(self) -> str:
        return f"BitcoinSpender(vault={self._vault_name!r}, rpc={self._rpc!r})"

    def _spend_id(self, prepared: PreparedTx) -> int:
        """The custody spend behind ``prepared``, after checking it is the approved transaction."""
        body: dict[str, Any] = json.loads(prepared.payload)
        spend_id = int(body["spend_id"])
        with self._sessions() as session:
            spend = load_spend(session, spend_id)
        actual = unsigned_txid(parse_psbt(spend.unsigned_psbt))
        if actual != prepared.tx_hash or spend.approval.unsigned_txid != prepared.tx_hash:
            raise TransactionMismatchError(
                f"Custody spend {spend_id} is transaction {actual}, not the approved {prepared.tx_hash}."
            )
        return spend_id

    def build(self, request: SpendRequest) -> PreparedTx:
        with self._sessions.begin() as session:
            spend = build_spend(
                session,
                self._rpc,
                self._vault_name,
                [Payment(request.destination, request.amount)],
                self._fee_rate,
                self._max_fee,
                avoid=reserved_outpoints(request.reserved),
            )
            descriptor = load_vault(session, self._vault_name).descriptor
        summary = {
            "vault": self._vault_name,
            "payments": [{"address": request.destination, "amount_sats": str(request.amount)}],
            "fee_sats": str(spend.fee_sats),
            "fee_rate_sat_vb": str(spend.fee_rate_sat_vb),
            "inputs": len(parse_psbt(spend.unsigned_psbt).inputs),
            "unsigned_txid": spend.approval.unsigned_txid,
            # What an approval statement names, as custody's signer derives it from the PSBT.
            "chain": f"bitcoin:{descriptor.network.value}",
            "vault_id": bitcoin_vault_id(descriptor),
            "asset": BITCOIN_ASSET,
            "max_fee_sats": str(spend.approval.max_fee_sats),
        }
        payload = json.dumps({"spend_id": spend.id, "psbt": spend.unsigned_psbt})
        claims = tuple(input_claim(o) for o in spend_inputs(spend.unsigned_psbt))
        return PreparedTx(spend.approval.unsigned_txid, summary, payload, spend.fee_sats, claims)

    def sign(
        self, prepared: PreparedTx, institution: str, shares: Sequence[str], passphrase: str
    ) -> PreparedTx:
        spend_id = self._spend_id(prepared)
        name = _custody_name(self._institutions, institution)
        # before any share is read
        authority = authority_evidence(self._sessions, prepared.tx_hash, self._services)
        with self._sessions.begin() as session:
            if name in load_spend(session, spend_id).signed_by:
                # Custody kept the signature but the workflow crashed before recording it: the
                # holders must still prove the key (recombine + fingerprint), nothing is re-signed.
                fingerprint = load_transcript(session, name).fingerprint
                with signing_keys(combine_shares(parse_shares(shares), passphrase), fingerprint):
                    return prepared
            signed = sign_spend(
                session, spend_id, name, parse_shares(shares), passphrase, authority=authority
            )
        _report_verified(self._on_verified, signed.authorization, institution, prepared.tx_hash)
        return prepared

    def seal(self, prepared: PreparedTx) -> SealedTx:
        spend_id = self._spend_id(prepared)
        with self._sessions() as session:
            final = finalize_spend(session, self._rpc, spend_id)
        if final.txid != prepared.tx_hash:  # segwit: the final txid is the unsigned one
            raise TransactionMismatchError(
                f"Spend {spend_id} finalizes to transaction {final.txid}, not the approved "
                f"{prepared.tx_hash}."
            )
        return SealedTx(final.txid, final.raw_hex)

    def send(self, prepared: PreparedTx, sealed: SealedTx) -> str:
        spend_id = self._spend_id(prepared)
        if sealed.txid != prepared.tx_hash:
            raise TransactionMismatchError(
                f"The sealed transaction {sealed.txid} is not the approved {prepared.tx_hash}."
            )
        with self._sessions.begin() as session:
            return send_finalized(session, self._rpc, spend_id, Finalized(sealed.txid, sealed.raw))

    def find_broadcast(self, prepared: PreparedTx, sealed: SealedTx | None) -> str | None:
        """The approved transaction's txid if the node has it; custody's spend is then marked
        broadcast (a crash may have come between the send and custody's own record)."""
        spend_id = self._spend_id(prepared)
        try:
            self._rpc.call("getrawtransaction", prepared.tx_hash)
        except BitcoinRPCError as exc:
            if exc.code != RPC_NOT_FOUND_CODE:
                raise
            if self._wallet_tx(prepared.tx_hash) is None:
                return None
        with self._sessions.begin() as session:
            mark_broadcast(session, spend_id, prepared.tx_hash)
        return prepared.tx_hash

    def _wallet_tx(self, txid: str) -> dict[str, Any] | None:
        with self._sessions() as session:
            wallet = self._rpc.wallet(load_vault(session, self._vault_name).wallet_name)
        try:
            found: dict[str, Any] = wallet.call("gettransaction", txid, True)
        except BitcoinRPCError as exc:
            if exc.code != RPC_NOT_FOUND_CODE:
                raise
            return None
        return found

    def confirmations(self, txid: str) -> int:
        found = self._wallet_tx(txid)
        if found is None:
            raise TransactionMismatchError(
                f"Transaction {txid} is unknown to vault {self._vault_name!r}."
            )
        return int(found["confirmations"])


class SafeSpender:
    """Spends a chain's native coin or one ERC-20 from a Safe vault through custody's SafeTx flow.

    ``native_asset`` is the code of the Safe's chain's native coin (``ETH``, ``BNB``): what the
    prepared summary and the statements name for a plain value transfer; ``policy`` must say the
    same (the wiring builds both from the chain's configuration). ``on_verified`` is told whose
    signatures the signer verified each time it signs.
    """

    def __init__(
        self,
        vaults: SafeVaults,
        vault_name: str,
        institutions: Mapping[str, str],
        *,
        sessions: sessionmaker[Session],
        relayer: str,
        token: str | None = None,
        policy: SigningPolicy | None = None,
        on_verified: VerifiedListener | None = None,
        services: SpendWindowReader | None = None,
        native_asset: str = ETHER_ASSET,
    ) -> None:
        self._services = services
        self._native_asset = native_asset
        self._vaults = vaults
        self._sessions = sessions
        self._vault_name = vault_name
        self._institutions = dict(institutions)
        self._relayer = relayer
        self._token = token
        self._policy = policy or SigningPolicy(
            frozenset({token}) if token else frozenset(), native_asset=native_asset
        )
        self._on_verified = on_verified

    def __repr__(self) -> str:
        return (
            f"SafeSpender(vault={self._vault_name!r}, asset={self._native_asset!r}, "
            f"token={self._token!r})"
        )

    @property
    def _chain(self) -> EthChain:
        return self._vaults.chain

    def _checked_hash(self, prepared: PreparedTx) -> str:
        body: dict[str, Any] = json.loads(prepared.payload)
        proposal = self._vaults.proposal(str(body["safe_tx_hash"]))
        if proposal.safe_tx.hash_hex != prepared.tx_hash:
            raise TransactionMismatchError(
                f"The stored SafeTx is {proposal.safe_tx.hash_hex}, not the approved {prepared.tx_hash}."
            )
        return prepared.tx_hash

    def build(self, request: SpendRequest) -> PreparedTx:
        """A SafeTx at the lowest nonce no other live proposal reserved (executions the database
        missed, after a crash, are recovered from the chain first)."""
        self._vaults.recover_executions(self._vault_name)
        vault = self._vaults.vault(self._vault_name)
        taken = reserved_nonces(request.reserved, vault.chain_id, vault.address)
        nonce = self._vaults.next_free_nonce(self._vault_name, taken)
        if self._token is None:
            safe_tx = self._vaults.propose_ether_transfer(
                self._vault_name, request.destination, request.amount, nonce=nonce
            )
        else:
            safe_tx = self._vaults.propose_token_transfer(
                self._vault_name, self._token, request.destination, request.amount, nonce=nonce
            )
        approval = self._vaults.approval(safe_tx.hash_hex, self._policy)
        summary = {
            "vault": self._vault_name,
            "action": approval.describe(),
            "safe": safe_tx.safe,
            "chain_id": safe_tx.chain_id,
            "nonce": safe_tx.nonce,
            "safe_tx_hash": safe_tx.hash_hex,
            # What an approval statement names, as custody's signer derives it from the SafeTx.
            "chain": f"eip155:{safe_tx.chain_id}",
            "vault_id": safe_tx.safe,
            "asset": self._native_asset
            if self._token is None
            else ERC20_ASSET_PREFIX + self._token,
        }
        payload = json.dumps({"safe_tx_hash": safe_tx.hash_hex})
        claims = (nonce_claim(safe_tx.chain_id, safe_tx.safe, safe_tx.nonce),)
        return PreparedTx(safe_tx.hash_hex, summary, payload, 0, claims)

    def sign(
        self, prepared: PreparedTx, institution: str, shares: Sequence[str], passphrase: str
    ) -> PreparedTx:
        safe_tx_hash = self._checked_hash(prepared)
        name = _custody_name(self._institutions, institution)
        # before any share is read
        authority = authority_evidence(self._sessions, safe_tx_hash, self._services)
        owner = self._vaults.vault(self._vault_name).owner(name)
        quorum = KeyQuorum(name, parse_shares(shares), passphrase, owner.fingerprint)
        signed = self._vaults.cosign(
            self._vaults.approval(safe_tx_hash, self._policy),
            quorum,
            self._policy,
            authority=authority,
        )
        _report_verified(self._on_verified, signed.authorization, institution, safe_tx_hash)
        return prepared

    def seal(self, prepared: PreparedTx) -> SealedTx:
        """The relayer's signed ``execTransaction``; its JSON body keeps the chain height, so a
        later search for the execution starts there."""
        sealed = self._vaults.seal_execution(self._checked_hash(prepared), self._relayer)
        body = {"raw": sealed.raw, "from_block": sealed.from_block}
        return SealedTx(sealed.tx_hash, json.dumps(body, sort_keys=True))

    def send(self, prepared: PreparedTx, sealed: SealedTx) -> str:
        body: dict[str, Any] = json.loads(sealed.raw)
        execution = SealedExecution(sealed.txid, str(body["raw"]), int(body["from_block"]))
        return self._vaults.send_sealed(self._checked_hash(prepared), execution).tx_hash

    def find_broadcast(self, prepared: PreparedTx, sealed: SealedTx | None) -> str | None:
        """This SafeTx's execution: recorded, found by its ``ExecutionSuccess`` event, or the
        sealed transaction still waiting in the mempool."""
        safe_tx_hash = self._checked_hash(prepared)
        from_block = 0 if sealed is None else int(json.loads(sealed.raw)["from_block"])
        executed = self._vaults.find_execution(safe_tx_hash, from_block)
        if executed is not None:
            return executed
        if sealed is not None:
            pending = self._chain.rpc.call("eth_getTransactionByHash", sealed.txid)
            if pending is not None and pending.get("blockNumber") is None:
                return sealed.txid
        return None

    def confirmations(self, txid: str) -> int:
        receipt = self._chain.rpc.call("eth_getTransactionReceipt", txid)
        if receipt is None:
            return 0
        if int(receipt["status"], 16) != 1:
            return -1
        return self._chain.rpc.block_number() - int(receipt["blockNumber"], 16) + 1
