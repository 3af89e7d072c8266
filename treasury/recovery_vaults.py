"""Recovery vaults stored in the treasury: a miniscript vault over ceremony keys, and its addresses.

A recovery vault (``custody.bitcoin.recovery``) is the institutions' quorum at any time, or the
recovery bodies' quorum once a coin has ``N`` confirmations. Its keys are never typed in: each
comes from a stored key ceremony (``custody.ceremony``), the institutions' as for every vault
and the recovery bodies' from their own SLIP-39 ceremonies, so the recovery keys are split
among their holders exactly like the institutions' and checked by the same key health checks.

``create_recovery_vault`` stores the policy (its key origins, thresholds and ``N``), registers a
watch-only descriptor wallet in bitcoind from the export (the multipath descriptor, full
miniscript), and appends an audit event, all in the caller's transaction. Addresses are issued
through ``issue_address`` and remembered (``recovery_vault_addresses``), so a coin's branch and
index (which its PSBT input needs) and whether a destination is one of the vault's own (a
refresh) are lookups, not searches. The reconciler reads these vaults like any Bitcoin vault
(scope ``btc:<name>``) and watches their recovery windows (``treasury.reconcile.refresh``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from custody.bitcoin.descriptor import Branch
from custody.bitcoin.recovery import RecoveryVaultPolicy, descriptor_export
from custody.bitcoin.rpc import BitcoinRPC
from custody.bitcoin_network import BitcoinNetwork
from custody.ceremony import load_transcript
from custody.clock import Clock, utc_now
from custody.exceptions import BitcoinRPCError
from custody.records import VaultRecord
from treasury import audit
from treasury.audit import AuditKind
from treasury.db import Base, UtcDateTime
from treasury.exceptions import TreasuryError

__all__ = [
    "WATCH_RANGE_END",
    "RecoveryVaultAddressRow",
    "RecoveryVaultError",
    "RecoveryVaultRow",
    "StoredRecoveryVault",
    "create_recovery_vault",
    "issue_address",
    "list_recovery_vaults",
    "load_recovery_vault",
    "locate_address",
    "vault_of_address",
]

log = logging.getLogger(__name__)

NAME_MAX_CHARS = 200
NETWORK_MAX_CHARS = 16
ADDRESS_MAX_CHARS = 128
WALLET_PREFIX = "recovery-"
WATCH_RANGE_END = 999
"""bitcoind's watch-only wallet derives (and watches) indexes 0..this on both branches."""
ACTOR_MAX_CHARS = 200
RPC_WALLET_EXISTS_CODE = -4
"""bitcoind's code when a wallet of that name already exists on disk."""


class RecoveryVaultError(TreasuryError, ValueError):
    """A recovery vault that cannot be stored, found or addressed as asked."""


class RecoveryVaultRow(Base):
    """One recovery vault: its policy as key origins, and its watch-only wallet."""

    __tablename__ = "recovery_vaults"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_CHARS), unique=True)
    wallet_name: Mapped[str] = mapped_column(String(NAME_MAX_CHARS), unique=True)
    network: Mapped[str] = mapped_column(String(NETWORK_MAX_CHARS))
    primary_threshold: Mapped[int] = mapped_column(Integer)
    primary_ceremonies: Mapped[list[str]] = mapped_column(JSON)
    """The institutions' ceremony names, in script order."""
    primary_keys: Mapped[list[str]] = mapped_column(JSON)
    recovery_threshold: Mapped[int] = mapped_column(Integer)
    recovery_ceremonies: Mapped[list[str]] = mapped_column(JSON)
    """The recovery bodies' ceremony names, in script order."""
    recovery_keys: Mapped[list[str]] = mapped_column(JSON)
    recovery_delay_blocks: Mapped[int] = mapped_column(Integer)
    receive_descriptor: Mapped[str] = mapped_column(Text)
    """The receive descriptor with its checksum: what approval statements name as ``vault_id``."""
    next_receive_index: Mapped[int] = mapped_column(Integer)
    next_change_index: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RecoveryVaultAddressRow(Base):
    """An address the treasury issued for a recovery vault (receive) or its spends (change)."""

    __tablename__ = "recovery_vault_addresses"
    __table_args__ = (
        UniqueConstraint("vault_id", "branch", "index", name="uq_recovery_vault_addresses_slot"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vault_id: Mapped[int] = mapped_column(ForeignKey("recovery_vaults.id"))
    branch: Mapped[int] = mapped_column(Integer)
    index: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(ADDRESS_MAX_CHARS), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())


@dataclass(frozen=True)
class StoredRecoveryVault:
    """A stored recovery vault as callers see it."""

    id: int
    name: str
    wallet_name: str
    policy: RecoveryVaultPolicy
    primary_ceremonies: tuple[str, ...]
    recovery_ceremonies: tuple[str, ...]

    @property
    def delay_blocks(self) -> int:
        return self.policy.recovery_delay_blocks


def _view(row: RecoveryVaultRow) -> StoredRecoveryVault:
    policy = RecoveryVaultPolicy(
        primary_threshold=row.primary_threshold,
        primary_keys=tuple(row.primary_keys),
        recovery_threshold=row.recovery_threshold,
        recovery_keys=tuple(row.recovery_keys),
        recovery_delay_blocks=row.recovery_delay_blocks,
        network=BitcoinNetwork(row.network),
    )
    if policy.text_with_checksum(Branch.RECEIVE) != row.receive_descriptor:
        raise RecoveryVaultError(
            f"Recovery vault {row.name!r}: its stored keys no longer make its recorded receive "
            "descriptor; the row was altered."
        )
    return StoredRecoveryVault(
        row.id,
        row.name,
        row.wallet_name,
        policy,
        tuple(row.primary_ceremonies),
        tuple(row.recovery_ceremonies),
    )


def _row(session: Session, name: str) -> RecoveryVaultRow:
    row = session.scalar(select(RecoveryVaultRow).where(RecoveryVaultRow.name == name))
    if row is None:
        raise RecoveryVaultError(f"No recovery vault is named {name!r}.")
    return row


def load_recovery_vault(session: Session, name: str) -> StoredRecoveryVault:
    return _view(_row(session, name))


def list_recovery_vaults(session: Session) -> list[StoredRecoveryVault]:
    return [
        _view(row)
        for row in session.scalars(select(RecoveryVaultRow).order_by(RecoveryVaultRow.id))
    ]


def create_recovery_vault(
    session: Session,
    rpc: BitcoinRPC,
    name: str,
    *,
    primary: Sequence[str],
    primary_threshold: int,
    recovery: Sequence[str],
    recovery_threshold: int,
    recovery_delay_blocks: int,
    network: BitcoinNetwork = BitcoinNetwork.REGTEST,
    actor: str,
    clock: Clock = utc_now,
) -> StoredRecoveryVault:
    """Store a recovery vault over the named ceremonies and register its watch-only wallet.

    ``primary`` are the institutions' ceremony names, ``recovery`` the recovery bodies'; the
    policy refuses a ceremony on both sides. The wallet is created only after every check.
    """
    if not name or len(name) > NAME_MAX_CHARS - len(WALLET_PREFIX) or not name.isprintable():
        raise RecoveryVaultError("A recovery vault needs a printable name of 1-180 characters.")
    if session.scalar(select(RecoveryVaultRow.id).where(RecoveryVaultRow.name == name)):
        raise RecoveryVaultError(f"A recovery vault named {name!r} already exists.")
    if session.scalar(select(VaultRecord.id).where(VaultRecord.name == name)):
        raise RecoveryVaultError(
            f"A Bitcoin vault named {name!r} exists; the reconciler would read both as btc:{name}."
        )
    primary_keys = tuple(load_transcript(session, c).key_origin for c in primary)
    recovery_keys = tuple(load_transcript(session, c).key_origin for c in recovery)
    policy = RecoveryVaultPolicy(
        primary_threshold=primary_threshold,
        primary_keys=primary_keys,
        recovery_threshold=recovery_threshold,
        recovery_keys=recovery_keys,
        recovery_delay_blocks=recovery_delay_blocks,
        network=network,
    )
    now = clock()
    row = RecoveryVaultRow(
        name=name,
        wallet_name=f"{WALLET_PREFIX}{name}",
        network=network.value,
        primary_threshold=primary_threshold,
        primary_ceremonies=list(primary),
        primary_keys=list(primary_keys),
        recovery_threshold=recovery_threshold,
        recovery_ceremonies=list(recovery),
        recovery_keys=list(recovery_keys),
        recovery_delay_blocks=recovery_delay_blocks,
        receive_descriptor=policy.text_with_checksum(Branch.RECEIVE),
        next_receive_index=0,
        next_change_index=0,
        created_at=now,
    )
    session.add(row)
    session.flush()
    _watch(rpc, row.wallet_name, policy)
    audit.append(
        session,
        kind=AuditKind.CEREMONY,
        actor=actor[:ACTOR_MAX_CHARS],
        refs={"recovery_vault_id": row.id},
        payload={
            "event": "recovery_vault_created",
            "name": name,
            "descriptor": policy.multipath_text(),
            "primary": list(primary),
            "recovery": list(recovery),
            "recovery_delay_blocks": recovery_delay_blocks,
        },
        clock=lambda: now,
    )
    log.info(
        "recovery vault %s created: %d-of-%d, recovery %d-of-%d after %d blocks",
        name, primary_threshold, len(primary), recovery_threshold, len(recovery),
        recovery_delay_blocks, extra={"recovery_vault_id": row.id},
    )  # fmt: skip
    return _view(row)


def _watch(rpc: BitcoinRPC, wallet_name: str, policy: RecoveryVaultPolicy) -> None:
    """A blank, key-less descriptor wallet importing the export's multipath descriptor."""
    if wallet_name not in rpc.call("listwallets"):
        try:
            rpc.call("createwallet", wallet_name, True, True, "", False, True, True)
        except BitcoinRPCError as exc:
            if exc.code != RPC_WALLET_EXISTS_CODE:
                raise
            rpc.call("loadwallet", wallet_name)  # left on disk by an earlier, uncommitted try
    multipath = descriptor_export(policy).splitlines()[0]
    results = rpc.wallet(wallet_name).call(
        "importdescriptors",
        [{"desc": multipath, "active": True, "range": [0, WATCH_RANGE_END], "timestamp": "now"}],
    )
    if not all(result.get("success") for result in results):
        raise RecoveryVaultError(
            f"bitcoind refused the recovery vault's descriptor in wallet {wallet_name!r}: {results}"
        )


def issue_address(
    session: Session, name: str, branch: Branch = Branch.RECEIVE, *, clock: Clock = utc_now
) -> tuple[int, str]:
    """The vault's next unused address on ``branch`` (remembered), and its index."""
    row = _row(session, name)
    vault = _view(row)
    index = row.next_receive_index if branch is Branch.RECEIVE else row.next_change_index
    if index > WATCH_RANGE_END:
        raise RecoveryVaultError(
            f"Recovery vault {name!r} has used every watched {branch.name.lower()} address."
        )
    address = vault.policy.address(branch, index)
    if branch is Branch.RECEIVE:
        row.next_receive_index = index + 1
    else:
        row.next_change_index = index + 1
    session.add(
        RecoveryVaultAddressRow(
            vault_id=row.id, branch=int(branch), index=index, address=address, issued_at=clock()
        )
    )
    session.flush()
    return index, address


def locate_address(session: Session, vault_id: int, address: str) -> tuple[Branch, int] | None:
    """The branch and index of an address the treasury issued for vault ``vault_id``."""
    found = session.execute(
        select(RecoveryVaultAddressRow.branch, RecoveryVaultAddressRow.index).where(
            RecoveryVaultAddressRow.vault_id == vault_id,
            RecoveryVaultAddressRow.address == address,
        )
    ).first()
    return None if found is None else (Branch(found[0]), int(found[1]))


def vault_of_address(session: Session, address: str) -> str | None:
    """The name of the recovery vault the treasury issued ``address`` for, if any."""
    return session.scalar(
        select(RecoveryVaultRow.name)
        .join(RecoveryVaultAddressRow, RecoveryVaultAddressRow.vault_id == RecoveryVaultRow.id)
        .where(RecoveryVaultAddressRow.address == address)
    )
