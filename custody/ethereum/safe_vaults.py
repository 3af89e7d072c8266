"""Safe vaults: create an M-of-N Safe of institutions' owner keys, then spend and rotate through it.

The database holds the roster (institution, owner address, seed fingerprint), the threshold and
the nonce we last executed at. Every operation first reads owners, threshold and nonce back from
the chain and refuses to go on if they differ: a vault changed behind our back is not operated.
Proposed SafeTxs and the owner signatures on them are stored so that institutions can sign at
different times and places; nothing secret is ever stored.

This module holds the operations and their order of checks; the values are in
``custody.ethereum.vault``, the rows in ``custody.ethereum.vault_store``, the contract calls in
``custody.ethereum.safe_contract`` and the ``swapOwner`` specifics in
``custody.ethereum.owner_rotation``.

A SafeTx may be proposed and signed at a nonce ahead of the Safe's (a caller that reserves nonces
for several pending spends: the treasury's proposals); it executes only when the Safe reaches
that nonce (``SafeTxNotNextError`` before then). A caller that records what it sends before
sending (write-ahead) uses ``seal_execution`` (the relayer's signed ``execTransaction``, not sent)
and ``send_sealed``. ``find_execution`` finds an executed SafeTx by its hash (the Safe's
``ExecutionSuccess`` event) and records it, so a crash between the send and the record, which
leaves the stored nonce behind the Safe's, is repaired from the chain (``recover_executions``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy.orm import Session, sessionmaker

from custody.authority.gate import Authority, IncompleteBreakGlassError
from custody.clock import Clock, utc_now
from custody.ethereum.chain import EthChain, Receipt
from custody.ethereum.deploy import SafeDeployment, require_deployment
from custody.ethereum.erc20 import transfer_calldata
from custody.ethereum.events import EXECUTION_SUCCESS_TOPIC
from custody.ethereum.owner_rotation import swap_owner_data
from custody.ethereum.records import SafeTxState
from custody.ethereum.safe_contract import (
    SafeState,
    contract_tx_hash,
    create_proxy_data,
    exec_transaction_data,
    execution_succeeded,
    read_safe_state,
)
from custody.ethereum.safe_signature import OwnerSignature, pack_signatures
from custody.ethereum.safe_tx import Operation, SafeTx, checksum_address
from custody.ethereum.signer import (
    Approval,
    KeyQuorum,
    SignedSafeTx,
    SigningPolicy,
    approve,
    cosign_safe_tx,
)
from custody.ethereum.vault import Proposal, Vault, VaultOwner
from custody.ethereum.vault_store import VaultStore
from custody.exceptions import (
    ApprovalMismatchError,
    EthereumError,
    EvmRPCError,
    MissingSignaturesError,
    NotAnOwnerError,
    SafeTxHashMismatchError,
    StaleSafeTxError,
    VaultSetupError,
    VaultStateMismatchError,
    WrongChainError,
    WrongSafeError,
)

log = logging.getLogger(__name__)

SALT_NONCE_BYTES = 32
"""Random bytes of a new Safe's ``saltNonce`` (it picks the proxy's address)."""
SEAL_GAS_MARGIN_PERCENT = 20
"""Headroom over ``eth_estimateGas`` for a sealed ``execTransaction`` (it cannot be re-estimated
once signed)."""


class SafeTxNotNextError(StaleSafeTxError):
    """The SafeTx's nonce is ahead of the Safe's: an earlier SafeTx must execute first."""


@dataclass(frozen=True)
class SealedExecution:
    """The relayer's signed ``execTransaction`` of a SafeTx, not yet sent, and its hash."""

    tx_hash: str
    raw: str
    """The signed Ethereum transaction, ``0x`` hex."""
    from_block: int
    """The chain's height when it was sealed: its execution cannot be in an earlier block."""


class SafeVaults:
    """Create, check, spend from and rotate owners of Safe vaults on one chain."""

    def __init__(
        self,
        chain: EthChain,
        sessions: sessionmaker[Session],
        *,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.chain = chain
        self._sessions = sessions
        self._store = VaultStore(sessions)
        self._random_bytes = random_bytes
        self._deployment: SafeDeployment | None = None

    def __repr__(self) -> str:
        return f"SafeVaults(chain={self.chain!r})"

    @property
    def deployment(self) -> SafeDeployment:
        if self._deployment is None:
            self._deployment = require_deployment(self.chain)
        return self._deployment

    # --- reading ------------------------------------------------------------------------------

    def vault(self, name: str) -> Vault:
        return self._store.vault(name)

    def vaults(self) -> list[Vault]:
        return self._store.vaults()

    def read_state(self, address: str) -> SafeState:
        """Owners, threshold and nonce of the Safe at ``address``, from the chain."""
        return read_safe_state(self.chain, address)

    def verify(self, vault: Vault) -> SafeState:
        """The chain's state if it matches the database; ``VaultStateMismatchError`` otherwise."""
        if self.chain.chain_id != vault.chain_id:
            raise WrongChainError(
                f"Vault {vault.name!r} lives on chain {vault.chain_id}, but the node is chain "
                f"{self.chain.chain_id}; point the CLI at the right node."
            )
        state = self.read_state(vault.address)
        on_chain, in_db = sorted(state.owners), sorted(o.address for o in vault.owners)
        problems = []
        if on_chain != in_db:
            problems.append(f"owners on chain {on_chain} but in the database {in_db}")
        if state.threshold != vault.threshold:
            problems.append(f"threshold {state.threshold} on chain but {vault.threshold} stored")
        if state.nonce != vault.nonce:
            problems.append(f"nonce {state.nonce} on chain but {vault.nonce} stored")
        if problems:
            raise VaultStateMismatchError(
                f"Vault {vault.name!r} ({vault.address}) differs from the database: "
                f"{'; '.join(problems)}. Refusing to operate until this is investigated."
            )
        return state

    def contract_hash(self, safe_tx: SafeTx) -> bytes:
        """The Safe contract's own ``getTransactionHash`` for ``safe_tx``."""
        return contract_tx_hash(self.chain, safe_tx)

    def check_hash(self, safe_tx: SafeTx) -> None:
        """Refuse unless our EIP-712 hash equals the contract's."""
        theirs = self.contract_hash(safe_tx)
        if theirs != safe_tx.hash:
            raise SafeTxHashMismatchError(
                f"Our SafeTx hash {safe_tx.hash_hex} differs from the Safe's 0x{theirs.hex()}; "
                "refusing to sign or execute."
            )

    # --- creating -----------------------------------------------------------------------------

    def create(
        self,
        name: str,
        owners: Sequence[VaultOwner],
        threshold: int,
        *,
        payer: str,
        salt_nonce: int | None = None,
    ) -> Vault:
        """Create a ``threshold``-of-``len(owners)`` Safe and record its roster once it is on chain."""
        if not 1 <= threshold <= len(owners):
            raise VaultSetupError(
                f"The threshold must be between 1 and the number of owners ({len(owners)}), "
                f"not {threshold}."
            )
        for label, values in (
            ("institution", [o.institution for o in owners]),
            ("owner address", [o.address for o in owners]),
        ):
            if len(set(values)) != len(values):
                raise VaultSetupError(f"Each {label} may appear once among the owners.")
        if self._store.exists(name):
            raise VaultSetupError(f"A vault named {name!r} already exists.")
        deployment = self.deployment
        if salt_nonce is None:
            salt_nonce = int.from_bytes(self._random_bytes(SALT_NONCE_BYTES), "big")
        create = create_proxy_data(deployment, [o.address for o in owners], threshold, salt_nonce)
        action = f"create Safe vault {name!r}"
        (address,) = decode(
            ["address"],
            self.chain.call(deployment.proxy_factory, create, action=action, sender=payer),
        )
        address = to_checksum_address(address)
        self.chain.transact(payer, deployment.proxy_factory, create, action=action)
        vault = Vault(
            name=name,
            chain_id=self.chain.chain_id,
            address=address,
            threshold=threshold,
            nonce=0,
            owners=tuple(sorted(owners, key=lambda o: o.institution)),
        )
        self.verify(vault)
        self._store.add_vault(name, vault.chain_id, address, threshold, owners)
        log.info("created Safe vault", extra={"vault": name, "safe": address})
        return vault

    # --- proposing ----------------------------------------------------------------------------

    def new_safe_tx(
        self, name: str, to: str, value: int, data: bytes = b"", *, nonce: int | None = None
    ) -> SafeTx:
        """A CALL SafeTx from vault ``name`` at ``nonce`` (default: the Safe's current nonce;
        gas paid by the relayer)."""
        vault = self.vault(name)
        state = self.verify(vault)
        if nonce is not None and nonce < state.nonce:
            raise StaleSafeTxError(
                f"The nonce {nonce} was used already: vault {name!r} is at nonce {state.nonce}."
            )
        return SafeTx(
            chain_id=vault.chain_id,
            safe=vault.address,
            to=to,
            value=value,
            data=data,
            operation=Operation.CALL,
            nonce=state.nonce if nonce is None else nonce,
        )

    def next_free_nonce(self, name: str, taken: frozenset[int]) -> int:
        """The lowest nonce from the Safe's current one on that is not in ``taken``."""
        nonce = self.verify(self.vault(name)).nonce
        while nonce in taken:
            nonce += 1
        return nonce

    def propose(self, name: str, safe_tx: SafeTx, *, new_owner: VaultOwner | None = None) -> SafeTx:
        """Record ``safe_tx`` for signing once it is shown to be for this vault, now, and hashed right."""
        vault = self.vault(name)
        state = self.verify(vault)
        if safe_tx.chain_id != vault.chain_id:
            raise WrongChainError(
                f"The SafeTx field 'chain_id' is {safe_tx.chain_id}, but vault {name!r} is on "
                f"chain {vault.chain_id}."
            )
        if safe_tx.safe != vault.address:
            raise WrongSafeError(
                f"The SafeTx field 'safe' is {safe_tx.safe}, but vault {name!r} is {vault.address}."
            )
        if safe_tx.nonce < state.nonce:
            raise StaleSafeTxError(
                f"The SafeTx field 'nonce' is {safe_tx.nonce}, but the Safe's nonce is "
                f"{state.nonce}: a SafeTx at that nonce was executed already."
            )
        self.check_hash(safe_tx)
        if self._store.add_proposal(name, safe_tx, new_owner):
            log.info("proposed SafeTx", extra={"vault": name, "safe_tx_hash": safe_tx.hash_hex})
        return safe_tx

    def propose_ether_transfer(
        self, name: str, to: str, amount_wei: int, *, nonce: int | None = None
    ) -> SafeTx:
        return self.propose(name, self.new_safe_tx(name, to, amount_wei, nonce=nonce))

    def propose_token_transfer(
        self, name: str, token: str, to: str, amount: int, *, nonce: int | None = None
    ) -> SafeTx:
        """Propose ``token.transfer(to, amount)`` (amount in the token's base units)."""
        to = checksum_address(to, "to")
        data = transfer_calldata(to, amount)
        return self.propose(name, self.new_safe_tx(name, token, 0, data, nonce=nonce))

    def propose_owner_swap(self, name: str, new_owner: VaultOwner) -> SafeTx:
        """Propose replacing ``new_owner.institution``'s owner key by ``new_owner.address``."""
        vault = self.vault(name)
        old = vault.owner(new_owner.institution)
        state = self.verify(vault)
        if new_owner.address in state.owners:
            raise VaultSetupError(
                f"The new owner {new_owner.address} is already an owner of vault {name!r}."
            )
        data = swap_owner_data(state.owners, old.address, new_owner.address)
        return self.propose(
            name, self.new_safe_tx(name, vault.address, 0, data), new_owner=new_owner
        )

    # --- signing ------------------------------------------------------------------------------

    def proposal(self, safe_tx_hash: str) -> Proposal:
        return self._store.proposal(safe_tx_hash)

    def proposals(self, name: str) -> list[Proposal]:
        return [self.proposal(h) for h in self._store.proposal_hashes(name)]

    def approval(self, safe_tx_hash: str, policy: SigningPolicy) -> Approval:
        """The decoded action and hash of a stored SafeTx, for its reviewers (refusals first)."""
        proposal = self.proposal(safe_tx_hash)
        if proposal.safe_tx.hash_hex != safe_tx_hash.lower():
            raise ApprovalMismatchError(
                f"The stored SafeTx {safe_tx_hash} now hashes to {proposal.safe_tx.hash_hex}: "
                "its fields were altered after it was proposed."
            )
        return approve(proposal.safe_tx, policy)

    def sign(
        self,
        approval: Approval,
        quorum: KeyQuorum,
        policy: SigningPolicy,
        *,
        authority: Authority,
        clock: Clock = utc_now,
    ) -> OwnerSignature:
        """Sign the stored SafeTx that ``approval`` names, with ``quorum``'s institution's key.

        ``authority`` (required) is handled as ``cosign`` describes.
        """
        return self.cosign(approval, quorum, policy, authority=authority, clock=clock).signature

    def cosign(
        self,
        approval: Approval,
        quorum: KeyQuorum,
        policy: SigningPolicy,
        *,
        authority: Authority,
        clock: Clock = utc_now,
    ) -> SignedSafeTx:
        """Sign the stored SafeTx that ``approval`` names; say what was signed and who authorised it.

        ``authority`` is required. With ``AuthorityEvidence`` (the roster chain and the
        officers' signed statements), the signer verifies after recombining the seed and before
        signing that the genesis is this institution's ceremony's, that the chain replays and
        that a quorum of statements names the transfer decoded from the stored SafeTx
        (``custody.ethereum.signer.cosign_safe_tx``). With ``BreakGlass`` it signs without
        statements, logs a warning and returns the reason; the caller records it, and the
        SafeTx then executes only with every owner's signature (``execute``).
        """
        proposal = self.proposal("0x" + approval.safe_tx_hash.hex())
        if proposal.state is SafeTxState.EXECUTED:
            raise StaleSafeTxError(
                f"SafeTx {proposal.safe_tx.hash_hex} was executed already "
                f"(transaction {proposal.executed_tx_hash}); it cannot be signed again."
            )
        vault = self.vault(proposal.vault_name)
        state = self.verify(vault)
        if proposal.safe_tx.nonce < state.nonce:
            raise StaleSafeTxError(
                f"SafeTx {proposal.safe_tx.hash_hex} has nonce {proposal.safe_tx.nonce}, but the "
                f"Safe is at nonce {state.nonce}; it can never execute."
            )
        owner = vault.owner(quorum.institution)
        if quorum.fingerprint != owner.fingerprint:
            raise NotAnOwnerError(
                f"The key with fingerprint {quorum.fingerprint} is not {quorum.institution!r}'s "
                f"owner key on vault {vault.name!r} (the roster has {owner.fingerprint})."
            )
        signed = cosign_safe_tx(
            proposal.safe_tx,
            approval,
            policy,
            quorum,
            owner.address,
            authority=authority,
            clock=clock,
        )
        self._store_signature(proposal.safe_tx, owner, signed.signature)
        return signed

    def add_signature(self, safe_tx_hash: str, raw: bytes) -> OwnerSignature:
        """Store a signature collected elsewhere, once it recovers to a current roster owner."""
        proposal = self.proposal(safe_tx_hash)
        signature = OwnerSignature.decode(proposal.safe_tx.hash, raw)
        owner = self.vault(proposal.vault_name).owner_at(signature.owner)
        self._store_signature(proposal.safe_tx, owner, signature)
        return signature

    def _store_signature(self, safe_tx: SafeTx, owner: VaultOwner, sig: OwnerSignature) -> None:
        if self._store.add_signature(safe_tx, owner, sig):
            log.info(
                "stored owner signature",
                extra={"safe_tx_hash": safe_tx.hash_hex, "institution": owner.institution},
            )

    # --- executing ----------------------------------------------------------------------------

    def submit(self, safe_tx: SafeTx, signatures: bytes, relayer: str) -> Receipt:
        """Execute ``safe_tx`` with packed ``signatures`` (no database checks: the Safe's own).

        Reverts (``GS0xx``) surface from the simulation as typed exceptions before broadcast.
        """
        self.check_hash(safe_tx)
        data = exec_transaction_data(safe_tx, signatures)
        receipt = self.chain.transact(
            relayer, safe_tx.safe, data, action=f"execute SafeTx {safe_tx.hash_hex}"
        )
        if not execution_succeeded(receipt, safe_tx):
            raise EthereumError(
                f"SafeTx {safe_tx.hash_hex} was mined in {receipt.tx_hash} without an "
                "ExecutionSuccess event; its call failed and the nonce was used."
            )
        return receipt

    def execute(
        self, safe_tx_hash: str, relayer: str, *, require_every_owner: bool = False
    ) -> Receipt:
        """Execute a stored SafeTx with its owners' signatures; update the roster on success.

        ``require_every_owner``: the SafeTx was signed under break-glass (the caller knows it
        from the treasury's append-only record), so it executes only with a signature of every
        current owner, not just the threshold; ``IncompleteBreakGlassError`` names who is
        missing, before anything is sent.
        """
        proposal, signatures = self._executable(safe_tx_hash, require_every_owner)
        receipt = self.submit(proposal.safe_tx, signatures, relayer)
        self._record_execution(proposal, receipt.tx_hash)
        return receipt

    def _executable(self, safe_tx_hash: str, require_every_owner: bool) -> tuple[Proposal, bytes]:
        """The stored SafeTx and its packed signatures, once it may execute now."""
        proposal = self.proposal(safe_tx_hash)
        safe_tx = proposal.safe_tx
        if proposal.state is SafeTxState.EXECUTED:
            raise StaleSafeTxError(
                f"SafeTx {safe_tx.hash_hex} was executed already in transaction "
                f"{proposal.executed_tx_hash}; a replay is refused."
            )
        if safe_tx.hash_hex != safe_tx_hash.lower():
            raise SafeTxHashMismatchError(
                f"The stored SafeTx {safe_tx_hash} now hashes to {safe_tx.hash_hex}: its fields "
                "were altered after it was proposed."
            )
        vault = self.vault(proposal.vault_name)
        state = self.verify(vault)
        if safe_tx.nonce > state.nonce:
            raise SafeTxNotNextError(
                f"SafeTx {safe_tx.hash_hex} has nonce {safe_tx.nonce}, but the Safe is at nonce "
                f"{state.nonce}: the SafeTx reserved at nonce {state.nonce} must execute first. "
                "Nothing was sent."
            )
        if safe_tx.nonce != state.nonce:
            raise StaleSafeTxError(
                f"SafeTx {safe_tx.hash_hex} has nonce {safe_tx.nonce}, but the Safe is at nonce "
                f"{state.nonce}; it can never execute."
            )
        current = [sig for _inst, sig in proposal.signatures if sig.owner in state.owners]
        if require_every_owner:
            signed = {sig.owner for sig in current}
            missing = tuple(o.institution for o in vault.owners if o.address not in signed)
            if missing:
                raise IncompleteBreakGlassError(
                    f"SafeTx {safe_tx.hash_hex} was signed under break-glass, so it needs the "
                    f"signature of every owner of vault {vault.name!r}, not just "
                    f"{vault.threshold}; missing: {', '.join(missing)}. Each must sign with "
                    "`treasury safe sign --break-glass`; nothing was executed.",
                    missing,
                )
        if len(current) < vault.threshold:
            raise MissingSignaturesError(
                f"SafeTx {safe_tx.hash_hex} has {len(current)} valid owner signature(s), but "
                f"vault {vault.name!r} needs {vault.threshold}."
            )
        return proposal, pack_signatures(current)

    # --- write-ahead execution ----------------------------------------------------------------

    def seal_execution(
        self, safe_tx_hash: str, relayer: str, *, require_every_owner: bool = False
    ) -> SealedExecution:
        """The relayer's signed ``execTransaction`` of a stored SafeTx and its hash, NOT sent.

        The same checks as ``execute`` (and the Safe's own, by simulation) come first; the node
        signs for the relayer (``eth_signTransaction``) at the relayer's next nonce, so the
        caller can record the transaction and its hash before ``send_sealed`` sends it.
        """
        proposal, signatures = self._executable(safe_tx_hash, require_every_owner)
        safe_tx = proposal.safe_tx
        self.check_hash(safe_tx)
        action = f"execute SafeTx {safe_tx.hash_hex}"
        data = exec_transaction_data(safe_tx, signatures)
        self.chain.call(safe_tx.safe, data, action=action, sender=relayer)
        call: dict[str, Any] = {"from": relayer, "to": safe_tx.safe, "data": "0x" + data.hex()}
        rpc = self.chain.rpc
        try:
            estimate = int(rpc.call("eth_estimateGas", call), 16)
        except EvmRPCError as exc:
            raise EthereumError(
                f"The node refused to estimate gas to {action}: {exc.message}"
            ) from None
        call |= {
            "gas": hex(estimate * (100 + SEAL_GAS_MARGIN_PERCENT) // 100),
            "gasPrice": rpc.call("eth_gasPrice"),
            "nonce": rpc.call("eth_getTransactionCount", relayer, "pending"),
            "chainId": hex(self.chain.chain_id),
            "value": "0x0",
        }
        raw = str(rpc.call("eth_signTransaction", call))
        tx_hash = "0x" + keccak(bytes.fromhex(raw.removeprefix("0x"))).hex()
        return SealedExecution(tx_hash, raw, self.chain.block_number())

    def send_sealed(self, safe_tx_hash: str, sealed: SealedExecution) -> Receipt:
        """Send a sealed execution (the node already having it is not an error), wait for it to
        be mined and record it; ``EthereumError`` if it was mined without executing the SafeTx."""
        proposal = self.proposal(safe_tx_hash)
        safe_tx = proposal.safe_tx
        try:
            sent = str(self.chain.rpc.call("eth_sendRawTransaction", sealed.raw))
        except EvmRPCError as exc:
            if "already" not in exc.message.lower():
                raise EthereumError(
                    f"The node refused the sealed execution of SafeTx {safe_tx.hash_hex}: "
                    f"{exc.message}"
                ) from None
            sent = sealed.tx_hash
        if sent.lower() != sealed.tx_hash.lower():
            raise EthereumError(f"The node accepted {sent}, not the sealed {sealed.tx_hash}.")
        receipt = self.chain.wait_for_receipt(sealed.tx_hash)
        if not receipt.succeeded or not execution_succeeded(receipt, safe_tx):
            raise EthereumError(
                f"SafeTx {safe_tx.hash_hex} was mined in {receipt.tx_hash} without an "
                "ExecutionSuccess event; its call failed."
            )
        self._record_execution(proposal, receipt.tx_hash)
        return receipt

    def find_execution(self, safe_tx_hash: str, from_block: int = 0) -> str | None:
        """The transaction that executed this SafeTx (its ``ExecutionSuccess`` event), recorded
        if it was not yet; ``None`` if the Safe never executed it."""
        proposal = self.proposal(safe_tx_hash)
        if proposal.executed_tx_hash is not None:
            return proposal.executed_tx_hash
        safe_tx = proposal.safe_tx
        logs: list[dict[str, Any]] = self.chain.rpc.call(
            "eth_getLogs",
            {
                "fromBlock": hex(from_block),
                "toBlock": "latest",
                "address": safe_tx.safe,
                "topics": ["0x" + EXECUTION_SUCCESS_TOPIC.hex(), safe_tx.hash_hex],
            },
        )
        found = [log for log in logs if not log.get("removed")]
        if not found:
            return None
        tx_hash = str(found[0]["transactionHash"])
        self._record_execution(proposal, tx_hash)
        return tx_hash

    def recover_executions(self, name: str) -> None:
        """Record the executions of stored SafeTxs that the chain has but the database missed.

        A crash between a send and its record leaves the stored nonce behind the Safe's; each
        stored, unexecuted SafeTx at a nonce the Safe has passed is looked up by its hash, and
        those found are recorded (which stores the Safe's nonce). A nonce that moved for any
        other reason is left for ``verify`` to refuse.
        """
        vault = self.vault(name)
        chain_nonce = self.read_state(vault.address).nonce
        if chain_nonce == vault.nonce:
            return
        for safe_tx_hash in self._store.proposal_hashes(name):
            proposal = self.proposal(safe_tx_hash)
            if (
                proposal.state is not SafeTxState.EXECUTED
                and vault.nonce <= proposal.safe_tx.nonce < chain_nonce
            ):
                self.find_execution(safe_tx_hash)

    def _record_execution(self, proposal: Proposal, tx_hash: str) -> None:
        safe_tx = proposal.safe_tx
        self._store.record_execution(safe_tx, tx_hash, self.read_state(safe_tx.safe))
        log.info("executed SafeTx", extra={"safe_tx_hash": safe_tx.hash_hex, "tx_hash": tx_hash})
        self.verify(self.vault(proposal.vault_name))
