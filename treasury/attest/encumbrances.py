"""Holdings that are not freely available at the snapshot: approved spends not yet broadcast.

A Bitcoin spend built and approved but not broadcast still sits on coins the snapshot lists; a
proposed Safe transaction at the Safe's current nonce still has its ether or tokens in the Safe.
Both are stated as ``pending_spend`` encumbrances, so coverage counts only what remains free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ethereum.erc20 import decode_transfer
from custody.ethereum.records import SafeTxRow, SafeTxState, SafeVaultRow
from custody.ethereum.safe_tx import Operation
from custody.ethereum.vault import Vault as SafeVault
from custody.records import SpendRecord, SpendState
from reporting.attestation import Encumbrance, EncumbranceKind

BITCOIN_ASSET = "BTC"
ETHER_ASSET = "ETH"


def bitcoin_encumbrances(session: Session) -> list[Encumbrance]:
    """Every built, approved Bitcoin spend: its payments and fee leave the vault once broadcast."""
    records = session.scalars(
        select(SpendRecord).where(SpendRecord.state == SpendState.BUILT).order_by(SpendRecord.id)
    )
    return [
        Encumbrance(
            asset=BITCOIN_ASSET,
            amount=sum(int(p["amount_sats"]) for p in record.payments) + record.fee_sats,
            kind=EncumbranceKind.PENDING_SPEND,
            reference=f"btc-spend:{record.id}",
            description=(
                f"Approved spend {record.id} from vault {record.vault.name} "
                f"(unsigned txid {record.unsigned_txid}), not yet broadcast."
            ),
        )
        for record in records
    ]


def safe_encumbrances(
    session: Session,
    safes: Sequence[SafeVault],
    tokens: Mapping[str, str],
    native_asset: str = ETHER_ASSET,
) -> list[Encumbrance]:
    """Every proposed, executable Safe transfer of the chain's native coin (``native_asset``) or
    a tracked token."""
    by_token = {address.lower(): asset for asset, address in tokens.items()}
    found = []
    for safe in safes:
        rows = session.scalars(
            select(SafeTxRow)
            .join(SafeVaultRow, SafeVaultRow.id == SafeTxRow.vault_id)
            .where(
                SafeVaultRow.name == safe.name,
                SafeTxRow.state == SafeTxState.PROPOSED,
                SafeTxRow.nonce == safe.nonce,
                SafeTxRow.operation == int(Operation.CALL),
            )
            .order_by(SafeTxRow.id)
        )
        for row in rows:
            transfer = decode_transfer(row.data) if row.data else None
            moves = []
            if row.value:
                moves.append((native_asset, row.value))
            if transfer is not None and row.to_address.lower() in by_token:
                moves.append((by_token[row.to_address.lower()], transfer[1]))
            for asset, amount in moves:
                found.append(
                    Encumbrance(
                        asset=asset,
                        amount=amount,
                        kind=EncumbranceKind.PENDING_SPEND,
                        reference=f"safe-tx:{row.safe_tx_hash}",
                        description=(
                            f"Proposed transaction {row.safe_tx_hash} of Safe vault {safe.name} "
                            f"at nonce {row.nonce}, not yet executed."
                        ),
                    )
                )
    return found
