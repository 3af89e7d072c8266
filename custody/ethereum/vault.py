"""Safe vaults: create an M-of-N Safe of institutions' owner keys, then spend and rotate through it.

The database holds the roster (institution, owner address, seed fingerprint), the threshold and
the nonce we last executed at. Every operation first reads owners, threshold and nonce back from
the chain and refuses to go on if they differ: a vault changed behind our back is not operated.
Proposed SafeTxs and the owner signatures on them are stored so that institutions can sign at
different times and places; nothing secret is ever stored.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_abi.abi import decode, encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from custody.ethereum.chain import EthChain, Receipt
from custody.ethereum.deploy import SafeDeployment, require_deployment
from custody.ethereum.erc20 import transfer_calldata
from custody.ethereum.records import (
    SafeOwnerRow,
    SafeSignatureRow,
    SafeTxRow,
    SafeTxState,
    SafeVaultRow,
)
from custody.ethereum.safe_signature import OwnerSignature, pack_signatures
from custody.ethereum.safe_tx import ZERO_ADDRESS, Operation, SafeTx, checksum_address
from custody.ethereum.signer import (
    SWAP_OWNER_SELECTOR,
    Approval,
    KeyQuorum,
    SigningPolicy,
    approve,
    sign_approved,
)
from custody.exceptions import (
    ApprovalMismatchError,
    EthereumError,
    MissingSignaturesError,
    NotAnOwnerError,
    SafeTxHashMismatchError,
    StaleSafeTxError,
    VaultNotFoundError,
    VaultSetupError,
    VaultStateMismatchError,
    WrongChainError,
    WrongSafeError,
)
from custody.keys import CosignerKeys

log = logging.getLogger(__name__)

SENTINEL_OWNER = "0x0000000000000000000000000000000000000001"
"""Head of the Safe's owner linked list: the ``prevOwner`` of the first owner."""
SALT_NONCE_BYTES = 32

_GET_OWNERS = function_signature_to_4byte_selector("getOwners()")
_GET_THRESHOLD = function_signature_to_4byte_selector("getThreshold()")
_NONCE = function_signature_to_4byte_selector("nonce()")
_SAFE_TX_ARGS = "address,uint256,bytes,uint8,uint256,uint256,uint256,address,address"
_GET_TRANSACTION_HASH = function_signature_to_4byte_selector(
    f"getTransactionHash({_SAFE_TX_ARGS},uint256)"
)
_EXEC_TRANSACTION = function_signature_to_4byte_selector(f"execTransaction({_SAFE_TX_ARGS},bytes)")
_SETUP = function_signature_to_4byte_selector(
    "setup(address[],uint256,address,bytes,address,address,uint256,address)"
)
_CREATE_PROXY = function_signature_to_4byte_selector("createProxyWithNonce(address,bytes,uint256)")
EXECUTION_SUCCESS_TOPIC = keccak(text="ExecutionSuccess(bytes32,uint256)")


@dataclass(frozen=True)
class VaultOwner:
    """One roster entry: the institution, its Safe owner address and its seed's fingerprint."""

    institution: str
    address: str
    fingerprint: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", checksum_address(self.address, "owner address"))
        fingerprint = self.fingerprint.lower()
        if len(fingerprint) != 8 or any(c not in "0123456789abcdef" for c in fingerprint):
            raise VaultSetupError(
                f"The fingerprint of {self.institution!r} must be 8 hex characters, not "
                f"{self.fingerprint!r}."
            )
        object.__setattr__(self, "fingerprint", fingerprint)
        if not self.institution.strip():
            raise VaultSetupError("An owner's institution name must not be empty.")


def owners_from_cosigners(cosigners: Sequence[tuple[str, CosignerKeys]]) -> tuple[VaultOwner, ...]:
    """Roster entries from the ceremony's (institution, cosigner keys) pairs."""
    return tuple(VaultOwner(name, keys.eth_address, keys.fingerprint) for name, keys in cosigners)


@dataclass(frozen=True)
class Vault:
    """A Safe as the database knows it."""

    name: str
    chain_id: int
    address: str
    threshold: int
    nonce: int
    owners: tuple[VaultOwner, ...]

    def owner(self, institution: str) -> VaultOwner:
        for owner in self.owners:
            if owner.institution == institution:
                return owner
        raise VaultNotFoundError(
            f"Institution {institution!r} is not on the roster of vault {self.name!r} "
            f"(institutions: {', '.join(o.institution for o in self.owners)})."
        )

    def owner_at(self, address: str) -> VaultOwner:
        for owner in self.owners:
            if owner.address == address:
                return owner
        raise NotAnOwnerError(
            f"The address {address} is not an owner of vault {self.name!r} ({self.address})."
        )


@dataclass(frozen=True)
class SafeState:
    """Owners (in the Safe's linked-list order), threshold and nonce as read from the chain."""

    owners: tuple[str, ...]
    threshold: int
    nonce: int


@dataclass(frozen=True)
class Proposal:
    """A stored SafeTx, its state and the owner signatures collected so far."""

    vault_name: str
    safe_tx: SafeTx
    state: SafeTxState
    signatures: tuple[tuple[str, OwnerSignature], ...]
    """(institution, signature) pairs."""
    executed_tx_hash: str | None


def _vault(row: SafeVaultRow) -> Vault:
    return Vault(
        name=row.name,
        chain_id=row.chain_id,
        address=row.address,
        threshold=row.threshold,
        nonce=row.nonce,
        owners=tuple(VaultOwner(o.institution, o.owner_address, o.fingerprint) for o in row.owners),
    )


def _safe_tx(row: SafeTxRow, vault: SafeVaultRow) -> SafeTx:
    return SafeTx(
        chain_id=vault.chain_id,
        safe=vault.address,
        to=row.to_address,
        value=row.value,
        data=row.data,
        operation=Operation(row.operation),
        nonce=row.nonce,
        safe_tx_gas=row.safe_tx_gas,
        base_gas=row.base_gas,
        gas_price=row.gas_price,
        gas_token=row.gas_token,
        refund_receiver=row.refund_receiver,
    )


def _safe_tx_args(safe_tx: SafeTx) -> list[object]:
    return [
        safe_tx.to,
        safe_tx.value,
        safe_tx.data,
        int(safe_tx.operation),
        safe_tx.safe_tx_gas,
        safe_tx.base_gas,
        safe_tx.gas_price,
        safe_tx.gas_token,
        safe_tx.refund_receiver,
    ]


_SAFE_TX_TYPES = ["address", "uint256", "bytes", "uint8", "uint256", "uint256", "uint256"]
_SAFE_TX_TYPES += ["address", "address"]


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
        with self._sessions() as session:
            return _vault(self._vault_row(session, name))

    def vaults(self) -> list[Vault]:
        with self._sessions() as session:
            rows = session.scalars(select(SafeVaultRow).order_by(SafeVaultRow.name))
            return [_vault(row) for row in rows]

    @staticmethod
    def _vault_row(session: Session, name: str) -> SafeVaultRow:
        row = session.scalar(select(SafeVaultRow).where(SafeVaultRow.name == name))
        if row is None:
            raise VaultNotFoundError(f"No Safe vault named {name!r} is in the database.")
        return row

    def read_state(self, address: str) -> SafeState:
        """Owners, threshold and nonce of the Safe at ``address``, from the chain."""
        if not self.chain.code(address):
            raise VaultStateMismatchError(
                f"There is no contract at {address} on chain {self.chain.chain_id}."
            )
        read = "read the Safe's state"
        (owners,) = decode(["address[]"], self.chain.call(address, _GET_OWNERS, action=read))
        (threshold,) = decode(["uint256"], self.chain.call(address, _GET_THRESHOLD, action=read))
        (nonce,) = decode(["uint256"], self.chain.call(address, _NONCE, action=read))
        return SafeState(tuple(to_checksum_address(o) for o in owners), int(threshold), int(nonce))

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
        data = _GET_TRANSACTION_HASH + encode(
            [*_SAFE_TX_TYPES, "uint256"], [*_safe_tx_args(safe_tx), safe_tx.nonce]
        )
        return self.chain.call(safe_tx.safe, data, action="compute the SafeTx hash")

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
        with self._sessions() as session:
            if session.scalar(select(SafeVaultRow.id).where(SafeVaultRow.name == name)):
                raise VaultSetupError(f"A vault named {name!r} already exists.")
        deployment = self.deployment
        if salt_nonce is None:
            salt_nonce = int.from_bytes(self._random_bytes(SALT_NONCE_BYTES), "big")
        setup = _SETUP + encode(
            ["address[]", "uint256", "address", "bytes", "address", "address", "uint256", "address"],
            [[o.address for o in owners], threshold, ZERO_ADDRESS, b"",
             deployment.fallback_handler, ZERO_ADDRESS, 0, ZERO_ADDRESS],
        )  # fmt: skip
        create = _CREATE_PROXY + encode(
            ["address", "bytes", "uint256"], [deployment.singleton, setup, salt_nonce]
        )
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
        with self._sessions.begin() as session:
            row = SafeVaultRow(
                name=name, chain_id=vault.chain_id, address=address, threshold=threshold, nonce=0
            )
            row.owners = [
                SafeOwnerRow(
                    institution=o.institution, owner_address=o.address, fingerprint=o.fingerprint
                )
                for o in owners
            ]
            session.add(row)
        log.info("created Safe vault", extra={"vault": name, "safe": address})
        return vault

    # --- proposing ----------------------------------------------------------------------------

    def new_safe_tx(self, name: str, to: str, value: int, data: bytes = b"") -> SafeTx:
        """A CALL SafeTx from vault ``name`` at the Safe's current nonce (gas paid by the relayer)."""
        vault = self.vault(name)
        state = self.verify(vault)
        return SafeTx(
            chain_id=vault.chain_id,
            safe=vault.address,
            to=to,
            value=value,
            data=data,
            operation=Operation.CALL,
            nonce=state.nonce,
        )

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
        if safe_tx.nonce != state.nonce:
            raise StaleSafeTxError(
                f"The SafeTx field 'nonce' is {safe_tx.nonce}, but the Safe's nonce is "
                f"{state.nonce}: it was executed already or is not next."
            )
        self.check_hash(safe_tx)
        with self._sessions.begin() as session:
            existing = session.scalar(
                select(SafeTxRow).where(SafeTxRow.safe_tx_hash == safe_tx.hash_hex)
            )
            if existing is not None:
                return safe_tx
            session.add(
                SafeTxRow(
                    vault_id=self._vault_row(session, name).id,
                    safe_tx_hash=safe_tx.hash_hex,
                    to_address=safe_tx.to,
                    value=safe_tx.value,
                    data=safe_tx.data,
                    operation=int(safe_tx.operation),
                    safe_tx_gas=safe_tx.safe_tx_gas,
                    base_gas=safe_tx.base_gas,
                    gas_price=safe_tx.gas_price,
                    gas_token=safe_tx.gas_token,
                    refund_receiver=safe_tx.refund_receiver,
                    nonce=safe_tx.nonce,
                    state=SafeTxState.PROPOSED,
                    new_owner_institution=new_owner.institution if new_owner else None,
                    new_owner_fingerprint=new_owner.fingerprint if new_owner else None,
                )
            )
        log.info("proposed SafeTx", extra={"vault": name, "safe_tx_hash": safe_tx.hash_hex})
        return safe_tx

    def propose_ether_transfer(self, name: str, to: str, amount_wei: int) -> SafeTx:
        return self.propose(name, self.new_safe_tx(name, to, amount_wei))

    def propose_token_transfer(self, name: str, token: str, to: str, amount: int) -> SafeTx:
        """Propose ``token.transfer(to, amount)`` (amount in the token's base units)."""
        to = checksum_address(to, "to")
        return self.propose(name, self.new_safe_tx(name, token, 0, transfer_calldata(to, amount)))

    def propose_owner_swap(self, name: str, new_owner: VaultOwner) -> SafeTx:
        """Propose replacing ``new_owner.institution``'s owner key by ``new_owner.address``."""
        vault = self.vault(name)
        old = vault.owner(new_owner.institution)
        state = self.verify(vault)
        if new_owner.address in state.owners:
            raise VaultSetupError(
                f"The new owner {new_owner.address} is already an owner of vault {name!r}."
            )
        index = state.owners.index(old.address)
        prev = SENTINEL_OWNER if index == 0 else state.owners[index - 1]
        data = SWAP_OWNER_SELECTOR + encode(
            ["address", "address", "address"], [prev, old.address, new_owner.address]
        )
        return self.propose(
            name, self.new_safe_tx(name, vault.address, 0, data), new_owner=new_owner
        )

    # --- signing ------------------------------------------------------------------------------

    def _load(self, session: Session, safe_tx_hash: str) -> SafeTxRow:
        row = session.scalar(
            select(SafeTxRow).where(SafeTxRow.safe_tx_hash == safe_tx_hash.lower())
        )
        if row is None:
            raise VaultNotFoundError(f"No proposed SafeTx with hash {safe_tx_hash} is stored.")
        return row

    def proposal(self, safe_tx_hash: str) -> Proposal:
        with self._sessions() as session:
            row = self._load(session, safe_tx_hash)
            vault_row = session.get_one(SafeVaultRow, row.vault_id)
            safe_tx = _safe_tx(row, vault_row)
            signatures = tuple(
                (s.institution, OwnerSignature.decode(safe_tx.hash, s.signature))
                for s in row.signatures
            )
            return Proposal(vault_row.name, safe_tx, row.state, signatures, row.executed_tx_hash)

    def proposals(self, name: str) -> list[Proposal]:
        with self._sessions() as session:
            vault_row = self._vault_row(session, name)
            hashes = session.scalars(
                select(SafeTxRow.safe_tx_hash)
                .where(SafeTxRow.vault_id == vault_row.id)
                .order_by(SafeTxRow.id)
            ).all()
        return [self.proposal(h) for h in hashes]

    def approval(self, safe_tx_hash: str, policy: SigningPolicy) -> Approval:
        """The decoded action and hash of a stored SafeTx, for its reviewers (refusals first)."""
        proposal = self.proposal(safe_tx_hash)
        if proposal.safe_tx.hash_hex != safe_tx_hash.lower():
            raise ApprovalMismatchError(
                f"The stored SafeTx {safe_tx_hash} now hashes to {proposal.safe_tx.hash_hex}: "
                "its fields were altered after it was proposed."
            )
        return approve(proposal.safe_tx, policy)

    def sign(self, approval: Approval, quorum: KeyQuorum, policy: SigningPolicy) -> OwnerSignature:
        """Sign the stored SafeTx that ``approval`` names, with ``quorum``'s institution's key."""
        proposal = self.proposal("0x" + approval.safe_tx_hash.hex())
        if proposal.state is SafeTxState.EXECUTED:
            raise StaleSafeTxError(
                f"SafeTx {proposal.safe_tx.hash_hex} was executed already "
                f"(transaction {proposal.executed_tx_hash}); it cannot be signed again."
            )
        vault = self.vault(proposal.vault_name)
        state = self.verify(vault)
        if proposal.safe_tx.nonce != state.nonce:
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
        signature = sign_approved(proposal.safe_tx, approval, policy, quorum, owner.address)
        self._store_signature(proposal.safe_tx, owner, signature)
        return signature

    def add_signature(self, safe_tx_hash: str, raw: bytes) -> OwnerSignature:
        """Store a signature collected elsewhere, once it recovers to a current roster owner."""
        proposal = self.proposal(safe_tx_hash)
        signature = OwnerSignature.decode(proposal.safe_tx.hash, raw)
        owner = self.vault(proposal.vault_name).owner_at(signature.owner)
        self._store_signature(proposal.safe_tx, owner, signature)
        return signature

    def _store_signature(self, safe_tx: SafeTx, owner: VaultOwner, sig: OwnerSignature) -> None:
        with self._sessions.begin() as session:
            row = self._load(session, safe_tx.hash_hex)
            if any(s.owner_address == owner.address for s in row.signatures):
                return
            row.signatures.append(
                SafeSignatureRow(
                    institution=owner.institution,
                    owner_address=owner.address,
                    signature=sig.encode(),
                )
            )
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
        data = _EXEC_TRANSACTION + encode(
            [*_SAFE_TX_TYPES, "bytes"], [*_safe_tx_args(safe_tx), signatures]
        )
        receipt = self.chain.transact(
            relayer, safe_tx.safe, data, action=f"execute SafeTx {safe_tx.hash_hex}"
        )
        succeeded = any(
            entry.address == safe_tx.safe
            and entry.topics[:2] == (EXECUTION_SUCCESS_TOPIC, safe_tx.hash)
            for entry in receipt.logs
        )
        if not succeeded:
            raise EthereumError(
                f"SafeTx {safe_tx.hash_hex} was mined in {receipt.tx_hash} without an "
                "ExecutionSuccess event; its call failed and the nonce was used."
            )
        return receipt

    def execute(self, safe_tx_hash: str, relayer: str) -> Receipt:
        """Execute a stored SafeTx with its owners' signatures; update the roster on success."""
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
        if safe_tx.nonce != state.nonce:
            raise StaleSafeTxError(
                f"SafeTx {safe_tx.hash_hex} has nonce {safe_tx.nonce}, but the Safe is at nonce "
                f"{state.nonce}; it can never execute."
            )
        current = [sig for _inst, sig in proposal.signatures if sig.owner in state.owners]
        if len(current) < vault.threshold:
            raise MissingSignaturesError(
                f"SafeTx {safe_tx.hash_hex} has {len(current)} valid owner signature(s), but "
                f"vault {vault.name!r} needs {vault.threshold}."
            )
        receipt = self.submit(safe_tx, pack_signatures(current), relayer)
        self._record_execution(proposal, receipt)
        return receipt

    def _record_execution(self, proposal: Proposal, receipt: Receipt) -> None:
        safe_tx = proposal.safe_tx
        new_state = self.read_state(safe_tx.safe)
        with self._sessions.begin() as session:
            row = self._load(session, safe_tx.hash_hex)
            vault_row = session.get_one(SafeVaultRow, row.vault_id)
            row.state = SafeTxState.EXECUTED
            row.executed_tx_hash = receipt.tx_hash
            vault_row.nonce = new_state.nonce
            if row.new_owner_institution is not None:
                owner_row = next(
                    o for o in vault_row.owners if o.institution == row.new_owner_institution
                )
                new_address = to_checksum_address(safe_tx.data[-20:])
                if new_address not in new_state.owners:
                    raise VaultStateMismatchError(
                        f"SafeTx {safe_tx.hash_hex} executed, but {new_address} is not an owner "
                        "on chain; the roster was not changed."
                    )
                owner_row.owner_address = new_address
                owner_row.fingerprint = row.new_owner_fingerprint or owner_row.fingerprint
        log.info(
            "executed SafeTx",
            extra={"safe_tx_hash": safe_tx.hash_hex, "tx_hash": receipt.tx_hash},
        )
        self.verify(self.vault(proposal.vault_name))
