"""Bitcoin vault rotations as the workflow, the wiring and the reconciler read them.

A rotation (``treasury.rotation`` starts and retires them) replaces a vault by a new one; while
its sweep runs, spends still come from the old vault, and once the old vault is retired, from the
new one (``spending_vaults``). The reconciler asks two questions of it: is this deposit the sweep
arriving in the new vault (``sweep_arrival``: already booked by the sweep's internal transfer),
and is this vault retired (``retired_rotation``: a deposit to it is an alarm). These reads live
beside the workflow's tables so the reconciler, which reads proposals, can ask them without
importing the rotation service (which opens the reconciler's ledger accounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.records import VaultRecord
from treasury.proposals.tables import SpendProposalRow, VaultRotationRow

__all__ = [
    "Rotation",
    "list_rotations",
    "retired_rotation",
    "rotation_view",
    "spending_vaults",
    "sweep_arrival",
    "sweep_arrivals",
]

BTC_SCOPE_PREFIX = "btc:"
"""Reconciliation scopes of Bitcoin vaults are ``btc:<vault name>`` (``treasury.reconcile.btc_scope``)."""


@dataclass(frozen=True)
class Rotation:
    """One rotation as recorded: old and new vault, the sweep, and whether the old one retired."""

    id: int
    old_vault: str
    new_vault: str
    reason: str
    started_at: datetime
    sweep_address: str
    sweep_proposal_id: int | None
    retired_at: datetime | None

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


def rotation_view(row: VaultRotationRow) -> Rotation:
    return Rotation(
        row.id,
        row.old_vault,
        row.new_vault,
        row.reason,
        row.started_at,
        row.sweep_address,
        row.sweep_proposal_id,
        row.retired_at,
    )


def list_rotations(session: Session) -> list[Rotation]:
    """Every rotation, oldest first."""
    return [
        rotation_view(r)
        for r in session.scalars(select(VaultRotationRow).order_by(VaultRotationRow.id))
    ]


def spending_vaults(session: Session) -> list[str]:
    """The Bitcoin vaults spends may be paid from, by name: every vault but the retired ones and
    the new vaults of rotations still sweeping (they become spending vaults at retirement)."""
    names = session.scalars(select(VaultRecord.name).order_by(VaultRecord.name)).all()
    rows = session.scalars(select(VaultRotationRow)).all()
    retired = {r.old_vault for r in rows if r.retired_at is not None}
    incoming = {r.new_vault for r in rows if r.retired_at is None}
    return [n for n in names if n not in retired and n not in incoming]


def _vault_of_scope(scope: str) -> str | None:
    return scope[len(BTC_SCOPE_PREFIX) :] if scope.startswith(BTC_SCOPE_PREFIX) else None


def sweep_arrival(session: Session, scope: str, tx_ref: str) -> int | None:
    """The sweep proposal whose transaction ``tx_ref`` arrives in the vault of ``scope``, if any.

    For the reconciler: such a deposit is already booked, by the sweep's own internal-transfer
    entry (its pending entry, posted at confirmation), so it settles that proposal like the old
    vault's outflow does instead of being booked again as an inflow.
    """
    vault = _vault_of_scope(scope)
    if vault is None:
        return None
    found: int | None = session.scalar(
        select(SpendProposalRow.id)
        .join(VaultRotationRow, VaultRotationRow.sweep_proposal_id == SpendProposalRow.id)
        .where(VaultRotationRow.new_vault == vault, SpendProposalRow.txid == tx_ref.lower())
    )
    return found


def sweep_arrivals(session: Session, scope: str) -> frozenset[str]:
    """The transactions (lowercase txids) of every sweep into the vault of ``scope``: read once
    per reconciliation of the scope, so its deposits are told from sweep arrivals without a
    query each (``sweep_arrival`` asks for one transaction)."""
    vault = _vault_of_scope(scope)
    if vault is None:
        return frozenset()
    txids = session.scalars(
        select(SpendProposalRow.txid)
        .join(VaultRotationRow, VaultRotationRow.sweep_proposal_id == SpendProposalRow.id)
        .where(VaultRotationRow.new_vault == vault, SpendProposalRow.txid.is_not(None))
    )
    return frozenset(txid for txid in txids if txid is not None)


def retired_rotation(session: Session, scope: str) -> Rotation | None:
    """The rotation that retired the vault of reconciliation ``scope``, if it is retired.

    For the reconciler: a deposit booked into a retired vault raises an alarm (its keys include
    a replaced, perhaps compromised, one; the coins must be swept).
    """
    vault = _vault_of_scope(scope)
    if vault is None:
        return None
    row = session.scalar(
        select(VaultRotationRow).where(
            VaultRotationRow.old_vault == vault, VaultRotationRow.retired_at.is_not(None)
        )
    )
    return None if row is None else rotation_view(row)
