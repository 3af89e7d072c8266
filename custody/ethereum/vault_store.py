"""The Safe vaults' bookkeeping: roster, proposed SafeTxs and owner signatures in the database.

Stored so that institutions can sign at different times and places, and so that every
operation can compare what we recorded with what the chain says. Only public data is kept
(addresses, fingerprints, SafeTx fields, signatures); this module maps those rows to the values
of ``custody.ethereum.vault`` and back, each method in its own short transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from custody.ethereum.owner_rotation import rotated_owner
from custody.ethereum.records import (
    SafeOwnerRow,
    SafeSignatureRow,
    SafeTxRow,
    SafeTxState,
    SafeVaultRow,
)
from custody.ethereum.safe_contract import SafeState
from custody.ethereum.safe_signature import OwnerSignature
from custody.ethereum.safe_tx import Operation, SafeTx
from custody.ethereum.vault import Proposal, Vault, VaultOwner
from custody.exceptions import VaultNotFoundError


def _vault(row: SafeVaultRow) -> Vault:
    return Vault(
        name=row.name,
        chain_id=row.chain_id,
        address=row.address,
        threshold=row.threshold,
        nonce=row.nonce,
        owners=tuple(VaultOwner(o.institution, o.owner_address, o.fingerprint) for o in row.owners),
    )


def safe_tx_of(row: SafeTxRow, vault: SafeVaultRow) -> SafeTx:
    """The SafeTx a stored row describes (the inverse of :func:`_safe_tx_row`)."""
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


def _safe_tx_row(vault_id: int, safe_tx: SafeTx, new_owner: VaultOwner | None) -> SafeTxRow:
    """A new, proposed row for ``safe_tx`` (the inverse of :func:`_safe_tx`)."""
    return SafeTxRow(
        vault_id=vault_id,
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


def _vault_row(session: Session, name: str) -> SafeVaultRow:
    row = session.scalar(select(SafeVaultRow).where(SafeVaultRow.name == name))
    if row is None:
        raise VaultNotFoundError(f"No Safe vault named {name!r} is in the database.")
    return row


def _load(session: Session, safe_tx_hash: str) -> SafeTxRow:
    row = session.scalar(select(SafeTxRow).where(SafeTxRow.safe_tx_hash == safe_tx_hash.lower()))
    if row is None:
        raise VaultNotFoundError(f"No proposed SafeTx with hash {safe_tx_hash} is stored.")
    return row


class VaultStore:
    """Reads and writes the Safe vault rows; knows nothing of the chain."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # --- vaults -------------------------------------------------------------------------------

    def vault(self, name: str) -> Vault:
        with self._sessions() as session:
            return _vault(_vault_row(session, name))

    def vaults(self) -> list[Vault]:
        with self._sessions() as session:
            rows = session.scalars(select(SafeVaultRow).order_by(SafeVaultRow.name))
            return [_vault(row) for row in rows]

    def exists(self, name: str) -> bool:
        """Whether a vault named ``name`` is recorded."""
        with self._sessions() as session:
            return bool(session.scalar(select(SafeVaultRow.id).where(SafeVaultRow.name == name)))

    def add_vault(
        self, name: str, chain_id: int, address: str, threshold: int, owners: Sequence[VaultOwner]
    ) -> None:
        """Record a new vault at nonce 0 with its roster (in the order given)."""
        with self._sessions.begin() as session:
            row = SafeVaultRow(
                name=name, chain_id=chain_id, address=address, threshold=threshold, nonce=0
            )
            row.owners = [
                SafeOwnerRow(
                    institution=o.institution, owner_address=o.address, fingerprint=o.fingerprint
                )
                for o in owners
            ]
            session.add(row)

    # --- proposals ----------------------------------------------------------------------------

    def add_proposal(self, name: str, safe_tx: SafeTx, new_owner: VaultOwner | None) -> bool:
        """Record ``safe_tx`` as proposed from vault ``name``; False if it was recorded already."""
        with self._sessions.begin() as session:
            existing = session.scalar(
                select(SafeTxRow).where(SafeTxRow.safe_tx_hash == safe_tx.hash_hex)
            )
            if existing is not None:
                return False
            session.add(_safe_tx_row(_vault_row(session, name).id, safe_tx, new_owner))
        return True

    def proposal(self, safe_tx_hash: str) -> Proposal:
        with self._sessions() as session:
            row = _load(session, safe_tx_hash)
            vault_row = session.get_one(SafeVaultRow, row.vault_id)
            safe_tx = safe_tx_of(row, vault_row)
            signatures = tuple(
                (s.institution, OwnerSignature.decode(safe_tx.hash, s.signature))
                for s in row.signatures
            )
            return Proposal(vault_row.name, safe_tx, row.state, signatures, row.executed_tx_hash)

    def proposal_hashes(self, name: str) -> list[str]:
        """The SafeTx hashes proposed from vault ``name``, oldest first."""
        with self._sessions() as session:
            vault_row = _vault_row(session, name)
            return list(
                session.scalars(
                    select(SafeTxRow.safe_tx_hash)
                    .where(SafeTxRow.vault_id == vault_row.id)
                    .order_by(SafeTxRow.id)
                ).all()
            )

    def add_signature(self, safe_tx: SafeTx, owner: VaultOwner, sig: OwnerSignature) -> bool:
        """Record ``owner``'s signature on ``safe_tx``; False if that owner had signed already."""
        with self._sessions.begin() as session:
            row = _load(session, safe_tx.hash_hex)
            if any(s.owner_address == owner.address for s in row.signatures):
                return False
            row.signatures.append(
                SafeSignatureRow(
                    institution=owner.institution,
                    owner_address=owner.address,
                    signature=sig.encode(),
                )
            )
        return True

    def record_execution(self, safe_tx: SafeTx, tx_hash: str, new_state: SafeState) -> None:
        """Mark ``safe_tx`` executed, store the Safe's new nonce and apply an owner rotation."""
        with self._sessions.begin() as session:
            row = _load(session, safe_tx.hash_hex)
            vault_row = session.get_one(SafeVaultRow, row.vault_id)
            row.state = SafeTxState.EXECUTED
            row.executed_tx_hash = tx_hash
            vault_row.nonce = new_state.nonce
            if row.new_owner_institution is not None:
                owner_row = next(
                    o for o in vault_row.owners if o.institution == row.new_owner_institution
                )
                owner_row.owner_address = rotated_owner(safe_tx, new_state.owners)
                owner_row.fingerprint = row.new_owner_fingerprint or owner_row.fingerprint
