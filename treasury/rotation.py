"""Bitcoin vault rotation: a new vault for a new key set, a sweep through the workflow, retirement.

When a cosigner is replaced or compromised, its institution holds a new ceremony (a new name,
``custody.ceremony.run_ceremony``), and an admin starts a rotation: a new vault over the new key
set is created and one of its receive addresses is recorded as the sweep's destination. The
sweep is an ordinary spend proposal of every coin of the old vault (``propose_sweep``; the
amount is the balance less the fee, ``custody.bitcoin.spend.sweep_quote``), so it passes the
same policy, the officers' signed statements and the signers' own checks as any spend; the new
vault's address must be allowlisted like any destination, in the treasury and in the signed
roster chain, which is how the officers approve the new key set. The ledger books it as an
internal transfer (``internal_holdings``): the new vault's holdings are debited instead of the
paid-out account, so the reserve's total changes only by the fee. Once the sweep is confirmed
and the old vault holds nothing on chain, an admin retires it (``retire``).

Which vault pays spends follows (``spending_vaults``): while a rotation sweeps, the old vault
(the new one is not yet a spending vault); once it is retired, the new one. A deposit to a
retired vault is an alarm: the reconciler asks ``retired_rotation`` for the scope it books.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.bitcoin import create_vault, load_vault, next_receive_address
from custody.bitcoin.descriptor import Branch
from custody.bitcoin.rpc import BitcoinRPC
from custody.bitcoin.spend import SweepQuote, sweep_quote
from custody.clock import Clock, utc_now
from custody.records import VaultRecord
from treasury import audit
from treasury.audit import AuditKind
from treasury.ledger.accounts import BTC as BTC_SPEC
from treasury.officers import Officer, Role
from treasury.proposals import ProposalState, SpendProposalRow, VaultRotationRow
from treasury.proposals.actors import actor_name
from treasury.proposals.rotations import (
    Rotation,
    list_rotations,
    retired_rotation,
    rotation_view,
    spending_vaults,
    sweep_arrival,
)
from treasury.reconcile.accounts import ensure_accounts, holdings_account
from treasury.reconcile.bitcoin import btc_scope
from treasury.workflow_exceptions import WorkflowError

__all__ = [
    "Rotation",
    "RotationError",
    "internal_holdings",
    "list_rotations",
    "record_sweep",
    "retire",
    "retired_rotation",
    "spending_vaults",
    "start_rotation",
    "sweep_arrival",
    "sweep_purpose",
    "sweep_quote_for",
]

BTC = "BTC"


class RotationError(WorkflowError):
    """A rotation step refused: the message names what is missing or wrong; nothing changed."""


def _row(session: Session, rotation_id: int) -> VaultRotationRow:
    row = session.scalar(
        select(VaultRotationRow).where(VaultRotationRow.id == rotation_id).with_for_update()
    )
    if row is None:
        raise RotationError(f"No vault rotation has the id {rotation_id}.")
    return row


def start_rotation(
    session: Session,
    rpc: BitcoinRPC,
    actor: Officer,
    *,
    old_vault: str,
    new_vault: str,
    threshold: int,
    institutions: list[str] | tuple[str, ...],
    reason: str,
    clock: Clock = utc_now,
) -> Rotation:
    """Create ``new_vault`` over ``institutions``' ceremony keys and record the rotation (admin only).

    Refused, before anything is written, if the old vault is unknown, already rotated or retired,
    or the new vault would have exactly the old one's key set (a rotation replaces a key). The
    new vault's ledger accounts are opened, and its first receive address becomes the sweep's
    destination. The caller commits (bitcoind's new watch-only wallet stays if it does not).
    """
    actor.require(Role.ADMIN)
    reason = reason.strip()
    if not reason:
        raise RotationError("A rotation needs a reason (e.g. which cosigner was compromised).")
    old = session.scalar(select(VaultRecord).where(VaultRecord.name == old_vault))
    if old is None:
        raise RotationError(f"No Bitcoin vault is named {old_vault!r}.")
    if old_vault not in spending_vaults(session):
        raise RotationError(
            f"Vault {old_vault!r} is already retired or is the new vault of a rotation still "
            "sweeping; only a spending vault is rotated."
        )
    taken = session.scalar(
        select(VaultRotationRow.id).where(VaultRotationRow.old_vault == old_vault)
    )
    if taken is not None:
        raise RotationError(f"Vault {old_vault!r} is already being rotated (rotation {taken}).")
    old_keys = {c.ceremony.institution for c in old.cosigners}
    if set(institutions) == old_keys:
        raise RotationError(
            f"The new vault would have the same cosigners as {old_vault!r} "
            f"({', '.join(sorted(old_keys))}); a rotation replaces at least one key, whose "
            "institution holds a new ceremony under a new name first."
        )
    now = clock()
    vault = create_vault(session, rpc, new_vault, threshold, list(institutions), clock=clock)
    _, address = next_receive_address(session, rpc, vault.name)
    ensure_accounts(session, btc_scope(vault.name), BTC_SPEC, clock)
    row = VaultRotationRow(
        old_vault=old_vault,
        new_vault=vault.name,
        reason=reason,
        started_by=actor.id,
        started_at=now,
        sweep_address=address,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        kind=AuditKind.CEREMONY,
        actor=actor_name(actor),
        refs={"rotation_id": row.id},
        payload={
            "event": "vault_rotation_started",
            "old_vault": old_vault,
            "new_vault": vault.name,
            "cosigners": sorted(institutions),
            "threshold": threshold,
            "sweep_address": address,
            "reason": reason,
        },
        clock=clock,
    )
    return rotation_view(row)


def sweep_quote_for(
    session: Session, rpc: BitcoinRPC, rotation_id: int, fee_rate_sat_vb: Decimal
) -> SweepQuote:
    """What the sweep of the rotation's old vault to its new vault pays at this fee rate."""
    row = _row(session, rotation_id)
    if row.retired_at is not None:
        raise RotationError(f"Rotation {rotation_id} is finished: vault {row.old_vault!r} retired.")
    return sweep_quote(session, rpc, row.old_vault, row.sweep_address, fee_rate_sat_vb)


def sweep_purpose(rotation: Rotation) -> str:
    """The purpose a sweep proposal states."""
    return (
        f"Sweep of vault {rotation.old_vault} to vault {rotation.new_vault} "
        f"(rotation {rotation.id}: {rotation.reason})"
    )[:2000]


def record_sweep(session: Session, rotation_id: int, proposal_id: int) -> Rotation:
    """Name ``proposal_id`` as the rotation's sweep (a BTC proposal paying its sweep address).

    A sweep that failed or was rejected may be replaced by a new one; a live one may not.
    """
    row = _row(session, rotation_id)
    proposal = session.get(SpendProposalRow, proposal_id)
    if proposal is None:
        raise RotationError(f"No spend proposal has the id {proposal_id}.")
    if proposal.asset != BTC or proposal.destination != row.sweep_address:
        raise RotationError(
            f"Proposal {proposal_id} pays {proposal.asset} to {proposal.destination}, not BTC "
            f"to the sweep address {row.sweep_address} of rotation {rotation_id}."
        )
    if row.sweep_proposal_id is not None and row.sweep_proposal_id != proposal_id:
        current = session.get(SpendProposalRow, row.sweep_proposal_id)
        if current is not None and current.state not in _CLOSED:
            raise RotationError(
                f"Rotation {rotation_id}'s sweep is proposal {current.id}, which is "
                f"{current.state}; close it before naming another."
            )
    row.sweep_proposal_id = proposal_id
    session.flush()
    return rotation_view(row)


_CLOSED = frozenset(
    {ProposalState.REJECTED.value, ProposalState.EXPIRED.value, ProposalState.FAILED.value}
)


def retire(
    session: Session, rpc: BitcoinRPC, rotation_id: int, actor: Officer, *, clock: Clock = utc_now
) -> Rotation:
    """Retire the rotation's old vault (admin only): its sweep confirmed and it holds nothing.

    The chain is asked, not the books: the old vault's watch-only wallet must list no coin at
    all (confirmed or not). From then on spends come from the new vault and a deposit to the
    old one raises an alarm.
    """
    actor.require(Role.ADMIN)
    row = _row(session, rotation_id)
    if row.retired_at is not None:
        return rotation_view(row)
    sweep = (
        None
        if row.sweep_proposal_id is None
        else session.get(SpendProposalRow, row.sweep_proposal_id)
    )
    if sweep is None or sweep.state != ProposalState.CONFIRMED.value:
        raise RotationError(
            f"Rotation {rotation_id}'s sweep is "
            f"{'not proposed yet' if sweep is None else f'proposal {sweep.id}, {sweep.state}'}; "
            f"vault {row.old_vault!r} is retired only after its sweep is confirmed."
        )
    old = session.scalar(select(VaultRecord).where(VaultRecord.name == row.old_vault))
    if old is None:
        raise RotationError(f"No Bitcoin vault is named {row.old_vault!r}.")
    left = rpc.wallet(old.wallet_name).call("listunspent", 0, 9999999, [], True)
    if left:
        raise RotationError(
            f"Vault {row.old_vault!r} still holds {len(left)} coin(s) on chain (a deposit after "
            "the sweep?); sweep them too before it is retired."
        )
    row.retired_at = clock()
    row.retired_by = actor.id
    audit.append(
        session,
        kind=AuditKind.CEREMONY,
        actor=actor_name(actor),
        refs={"rotation_id": row.id, "proposal_id": sweep.id},
        payload={
            "event": "vault_retired",
            "old_vault": row.old_vault,
            "new_vault": row.new_vault,
            "sweep_txid": sweep.txid or "",
        },
        clock=clock,
    )
    session.flush()
    return rotation_view(row)


def internal_holdings(session: Session, asset: str, destination: str) -> str | None:
    """The holdings account of the reserve's own vault ``destination`` pays into, else ``None``.

    A rotation's sweep address is the new vault's: a spend to it is an internal transfer
    (``treasury.proposals.LedgerSpendHook``'s ``internal``). The address must also derive from
    the new vault's descriptor (one of the receive addresses handed out), so a rotation row
    written by hand cannot make a payment out of the reserve look like an internal transfer.
    """
    if asset != BTC:
        return None
    new_vault = session.scalar(
        select(VaultRotationRow.new_vault).where(VaultRotationRow.sweep_address == destination)
    )
    if new_vault is None:
        return None
    vault = load_vault(session, new_vault)
    handed_out = range(vault.next_receive_index)
    if not any(vault.descriptor.address(Branch.RECEIVE, i) == destination for i in handed_out):
        return None
    return holdings_account(btc_scope(new_vault), BTC)
