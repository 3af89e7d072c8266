"""Database rows of the Safe vaults: roster, proposed SafeTxs and the owner signatures on them.

Only public data is stored: addresses, fingerprints, SafeTx fields and signatures. The roster
links each owner address to its institution and seed fingerprint (the ceremony transcript's).
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Enum as SqlEnum
from sqlalchemy import ForeignKey, Integer, LargeBinary, Numeric, String, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, TypeEngine

from custody.schema import CustodyBase

ADDRESS_CHARS = 42
HASH_CHARS = 66
FINGERPRINT_CHARS = 8
INSTITUTION_CHARS = 200
UINT256_DIGITS = 78
"""2**256 has 78 decimal digits: wei amounts and gas fields fit ``Numeric(78, 0)``."""


class Uint256(TypeDecorator[int]):
    """A uint256 (wei, gas) read back as ``int``: ``NUMERIC(78, 0)``, or 78-digit text on SQLite.

    SQLite has no exact decimal type (its NUMERIC goes through float), so there the value is
    zero-padded text, which also sorts numerically.
    """

    impl = Numeric(UINT256_DIGITS, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(UINT256_DIGITS))
        return dialect.type_descriptor(Numeric(UINT256_DIGITS, 0))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Decimal | str | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return f"{value:0{UINT256_DIGITS}d}"
        return Decimal(value)

    def process_result_value(self, value: object, dialect: Dialect) -> int | None:
        return None if value is None else int(str(value))


class SafeTxState(Enum):
    """A proposed SafeTx collects signatures until it is executed on chain."""

    PROPOSED = "proposed"
    EXECUTED = "executed"


class SafeVaultRow(CustodyBase):
    __tablename__ = "safe_vaults"
    __table_args__ = (UniqueConstraint("chain_id", "address", name="uq_safe_vaults_chain_address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(INSTITUTION_CHARS), unique=True)
    chain_id: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    threshold: Mapped[int] = mapped_column(Integer)
    nonce: Mapped[int] = mapped_column(Integer)
    """The Safe nonce after the last SafeTx we executed; a different chain nonce is refused."""
    owners: Mapped[list[SafeOwnerRow]] = relationship(
        back_populates="vault", order_by="SafeOwnerRow.institution"
    )


class SafeOwnerRow(CustodyBase):
    __tablename__ = "safe_owners"
    __table_args__ = (
        UniqueConstraint("vault_id", "institution", name="uq_safe_owners_vault_institution"),
        UniqueConstraint("vault_id", "owner_address", name="uq_safe_owners_vault_address"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vault_id: Mapped[int] = mapped_column(ForeignKey("safe_vaults.id"), index=True)
    institution: Mapped[str] = mapped_column(String(INSTITUTION_CHARS))
    owner_address: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    fingerprint: Mapped[str] = mapped_column(String(FINGERPRINT_CHARS))
    vault: Mapped[SafeVaultRow] = relationship(back_populates="owners")


class SafeTxRow(CustodyBase):
    __tablename__ = "safe_transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vault_id: Mapped[int] = mapped_column(ForeignKey("safe_vaults.id"), index=True)
    safe_tx_hash: Mapped[str] = mapped_column(String(HASH_CHARS), unique=True)
    to_address: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    value: Mapped[int] = mapped_column(Uint256)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    operation: Mapped[int] = mapped_column(Integer)
    safe_tx_gas: Mapped[int] = mapped_column(Uint256)
    base_gas: Mapped[int] = mapped_column(Uint256)
    gas_price: Mapped[int] = mapped_column(Uint256)
    gas_token: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    refund_receiver: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    nonce: Mapped[int] = mapped_column(Integer)
    state: Mapped[SafeTxState] = mapped_column(
        SqlEnum(
            SafeTxState,
            native_enum=False,
            length=16,
            values_callable=lambda states: [s.value for s in states],
        )
    )
    executed_tx_hash: Mapped[str | None] = mapped_column(String(HASH_CHARS))
    new_owner_institution: Mapped[str | None] = mapped_column(String(INSTITUTION_CHARS))
    """For an owner rotation: whose roster entry changes once the receipt confirms it."""
    new_owner_fingerprint: Mapped[str | None] = mapped_column(String(FINGERPRINT_CHARS))
    signatures: Mapped[list[SafeSignatureRow]] = relationship(
        back_populates="safe_tx", order_by="SafeSignatureRow.owner_address"
    )


class SafeSignatureRow(CustodyBase):
    __tablename__ = "safe_signatures"
    __table_args__ = (
        UniqueConstraint("safe_tx_id", "owner_address", name="uq_safe_signatures_tx_owner"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    safe_tx_id: Mapped[int] = mapped_column(ForeignKey("safe_transactions.id"), index=True)
    institution: Mapped[str] = mapped_column(String(INSTITUTION_CHARS))
    owner_address: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    """r|s|v, 65 bytes: public, it proves the owner's approval of this SafeTx hash."""
    safe_tx: Mapped[SafeTxRow] = relationship(back_populates="signatures")


SAFE_TABLES = ("safe_vaults", "safe_owners", "safe_transactions", "safe_signatures")
