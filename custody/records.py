"""Database rows of custody: ceremony transcripts, vaults and their spends.

Only public material is stored here (fingerprints, xpubs, descriptors, unsigned and partially
signed PSBTs); shares, seeds and private keys never reach the database.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship

from custody.schema import CustodyBase

NAME_LENGTH_CHARS = 200
TXID_LENGTH_CHARS = 64


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite forgets the zone; this restores it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("Custody times must be timezone-aware (UTC).")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CeremonyRecord(CustodyBase):
    """The transcript of one institution's key ceremony (one cosigner seed)."""

    __tablename__ = "custody_ceremonies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution: Mapped[str] = mapped_column(String(NAME_LENGTH_CHARS), unique=True)
    threshold: Mapped[int] = mapped_column(Integer)
    share_count: Mapped[int] = mapped_column(Integer)
    identifier: Mapped[int] = mapped_column(Integer)
    """SLIP-39 identifier shared by all of this seed's shares (15 bits)."""
    iteration_exponent: Mapped[int] = mapped_column(Integer)
    extendable: Mapped[bool]
    passphrase_protected: Mapped[bool]
    fingerprint: Mapped[str] = mapped_column(String(8))
    account_path: Mapped[str] = mapped_column(String(40))
    account_xpub: Mapped[str] = mapped_column(String(120))
    eth_address: Mapped[str] = mapped_column(String(42))
    witnesses: Mapped[list[str]] = mapped_column(JSON)
    performed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    holders: Mapped[list[ShareHolderRecord]] = relationship(
        back_populates="ceremony", order_by="ShareHolderRecord.member_index", lazy="selectin"
    )


class ShareHolderRecord(CustodyBase):
    """Which officer holds which member share of a ceremony (never the share itself)."""

    __tablename__ = "custody_share_holders"
    __table_args__ = (
        UniqueConstraint("ceremony_id", "member_index", name="uq_custody_share_holders_member"),
        UniqueConstraint("ceremony_id", "holder_name", name="uq_custody_share_holders_holder"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ceremony_id: Mapped[int] = mapped_column(ForeignKey("custody_ceremonies.id"))
    holder_name: Mapped[str] = mapped_column(String(NAME_LENGTH_CHARS))
    member_index: Mapped[int] = mapped_column(Integer)

    ceremony: Mapped[CeremonyRecord] = relationship(back_populates="holders")


class VaultRecord(CustodyBase):
    """An M-of-N P2WSH vault, registered in bitcoind as a watch-only descriptor wallet."""

    __tablename__ = "custody_btc_vaults"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH_CHARS), unique=True)
    threshold: Mapped[int] = mapped_column(Integer)
    wallet_name: Mapped[str] = mapped_column(String(NAME_LENGTH_CHARS), unique=True)
    receive_descriptor: Mapped[str] = mapped_column(Text)
    change_descriptor: Mapped[str] = mapped_column(Text)
    next_receive_index: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    cosigners: Mapped[list[VaultCosignerRecord]] = relationship(
        order_by="VaultCosignerRecord.position", lazy="selectin"
    )


class VaultCosignerRecord(CustodyBase):
    """One cosigner key of a vault, by the ceremony that produced it."""

    __tablename__ = "custody_btc_vault_cosigners"
    __table_args__ = (
        UniqueConstraint("vault_id", "ceremony_id", name="uq_custody_btc_vault_cosigners_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vault_id: Mapped[int] = mapped_column(ForeignKey("custody_btc_vaults.id"))
    ceremony_id: Mapped[int] = mapped_column(ForeignKey("custody_ceremonies.id"))
    position: Mapped[int] = mapped_column(Integer)

    ceremony: Mapped[CeremonyRecord] = relationship(lazy="selectin")


class SpendState(enum.Enum):
    """A spend's life: built and approved, broadcast, or replaced by a fee bump."""

    BUILT = "built"
    BROADCAST = "broadcast"
    REPLACED = "replaced"


def _enum_values(enum_type: type[enum.Enum]) -> list[str]:
    """Store an Enum by its value (stable text), not by its Python member name."""
    return [str(member.value) for member in enum_type]


class SpendRecord(CustodyBase):
    """An approved spend: the unsigned PSBT and the approval bound to its transaction's hash."""

    __tablename__ = "custody_btc_spends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vault_id: Mapped[int] = mapped_column(ForeignKey("custody_btc_vaults.id"))
    state: Mapped[SpendState] = mapped_column(
        Enum(SpendState, native_enum=False, length=20, values_callable=_enum_values)
    )
    unsigned_psbt: Mapped[str] = mapped_column(Text)
    unsigned_txid: Mapped[str] = mapped_column(String(TXID_LENGTH_CHARS))
    payments: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """Approved destinations: ``[{"address": ..., "amount_sats": ...}]``."""
    fee_sats: Mapped[int] = mapped_column(BigInteger)
    max_fee_sats: Mapped[int] = mapped_column(BigInteger)
    fee_rate_sat_vb: Mapped[Decimal] = mapped_column(Numeric(12, 3))
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("custody_btc_spends.id"))
    txid: Mapped[str | None] = mapped_column(String(TXID_LENGTH_CHARS))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    broadcast_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    vault: Mapped[VaultRecord] = relationship(lazy="selectin")
    signatures: Mapped[list[SpendSignatureRecord]] = relationship(
        order_by="SpendSignatureRecord.id", lazy="selectin"
    )


class SpendSignatureRecord(CustodyBase):
    """One institution's partial signatures on a spend, as a PSBT (public data)."""

    __tablename__ = "custody_btc_spend_signatures"
    __table_args__ = (
        UniqueConstraint("spend_id", "ceremony_id", name="uq_custody_btc_spend_signatures_signer"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spend_id: Mapped[int] = mapped_column(ForeignKey("custody_btc_spends.id"))
    ceremony_id: Mapped[int] = mapped_column(ForeignKey("custody_ceremonies.id"))
    signed_psbt: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    ceremony: Mapped[CeremonyRecord] = relationship(lazy="selectin")


CUSTODY_TABLES = (
    "custody_ceremonies",
    "custody_share_holders",
    "custody_btc_vaults",
    "custody_btc_vault_cosigners",
    "custody_btc_spends",
    "custody_btc_spend_signatures",
)
"""The tables migration 0002 creates."""
