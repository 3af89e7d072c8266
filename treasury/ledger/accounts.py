"""Assets and accounts: the chart of accounts, registered once and never changed.

Both are keyed by a human-readable code, which doubles as the idempotency key: registering the
same code with the same attributes returns the existing record, different attributes conflict.
Registrations are recorded in the audit log in the same transaction.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.clock import Clock, utc_now
from treasury import audit
from treasury.audit import AuditKind
from treasury.db import begin_serialised_write
from treasury.exceptions import (
    IdempotencyConflictError,
    InvalidEntryError,
    UnknownAccountError,
    UnknownAssetError,
)
from treasury.ledger.models import (
    CODE_MAX_CHARS,
    MAX_DECIMALS,
    NAME_MAX_CHARS,
    Account,
    AccountType,
    Asset,
    Side,
)

CODE_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9:._/-]{{0,{CODE_MAX_CHARS - 1}}}$")
"""Asset and account codes: letters, digits and ``: . _ / -``, e.g. ``reserve:btc:vault-1``."""


@dataclass(frozen=True)
class AssetSpec:
    """An asset: its code, chain, base unit and how many base units make one whole unit."""

    code: str
    chain: str
    unit_name: str
    decimals: int


BTC = AssetSpec(code="BTC", chain="bitcoin", unit_name="sat", decimals=8)
ETH = AssetSpec(code="ETH", chain="ethereum", unit_name="wei", decimals=18)


def erc20_asset(contract_address: str, decimals: int, chain: str = "ethereum") -> AssetSpec:
    """An ERC-20 token keyed by its contract (``ERC20:<address>``), with the token's decimals."""
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", contract_address):
        raise InvalidEntryError(
            f"The contract_address {contract_address!r} is not a 0x-prefixed 20-byte hex address."
        )
    return AssetSpec(
        code=f"ERC20:{contract_address}", chain=chain, unit_name="base unit", decimals=decimals
    )


@dataclass(frozen=True)
class AccountRecord:
    """An account as callers see it: by code, with its asset's code."""

    code: str
    name: str
    type: AccountType
    asset_code: str
    no_overdraft: bool
    external_ref: str | None

    @property
    def normal_side(self) -> Side:
        """The side on which this account's balance grows."""
        return self.type.normal_side

    @classmethod
    def of(cls, row: Account) -> AccountRecord:
        """The value of a stored row."""
        return cls(
            code=row.code,
            name=row.name,
            type=row.type,
            asset_code=row.asset.code,
            no_overdraft=row.no_overdraft,
            external_ref=row.external_ref,
        )


def validate_code(value: object, field: str) -> str:
    """``value`` if it is a valid code, else ``InvalidEntryError`` naming ``field``."""
    if not isinstance(value, str) or not CODE_PATTERN.match(value):
        raise InvalidEntryError(
            f"The {field} {value!r} is not a code: use up to {CODE_MAX_CHARS} letters, digits "
            "and ':._/-', starting with a letter or digit."
        )
    return value


def _validate_text(value: object, field: str, max_chars: int, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_chars:
        raise InvalidEntryError(
            f"The {field} must be {'non-empty ' if required else ''}text of at most "
            f"{max_chars} characters."
        )
    return value


def register_asset(
    session: Session, spec: AssetSpec, *, actor: str, clock: Clock = utc_now
) -> AssetSpec:
    """Register ``spec`` (idempotent by code) and audit it, in the caller's transaction."""
    validate_code(spec.code, "asset code")
    _validate_text(spec.chain, "asset chain", 64)
    _validate_text(spec.unit_name, "asset unit_name", 32)
    if isinstance(spec.decimals, bool) or not isinstance(spec.decimals, int):
        raise InvalidEntryError(f"The asset decimals must be an int, not {spec.decimals!r}.")
    if not 0 <= spec.decimals <= MAX_DECIMALS:
        raise InvalidEntryError(
            f"The asset decimals must be between 0 and {MAX_DECIMALS}, not {spec.decimals}."
        )
    begin_serialised_write(session)
    existing = session.scalar(select(Asset).where(Asset.code == spec.code))
    if existing is not None:
        stored = AssetSpec(existing.code, existing.chain, existing.unit_name, existing.decimals)
        if stored != spec:
            raise IdempotencyConflictError(
                f"The asset {spec.code!r} is already registered as {stored}; assets never change."
            )
        return stored
    session.add(
        Asset(
            code=spec.code,
            chain=spec.chain,
            unit_name=spec.unit_name,
            decimals=spec.decimals,
            registered_at=clock(),
        )
    )
    session.flush()
    audit.append(
        session,
        kind=AuditKind.LEDGER_ASSET_REGISTERED,
        actor=actor,
        refs={"asset": spec.code},
        payload=asdict(spec),
        clock=clock,
    )
    return spec


def get_asset(session: Session, code: str) -> AssetSpec:
    """The registered asset ``code``, or ``UnknownAssetError``."""
    row = session.scalar(select(Asset).where(Asset.code == code))
    if row is None:
        raise UnknownAssetError(f"The asset code {code!r} names no registered asset.")
    return AssetSpec(row.code, row.chain, row.unit_name, row.decimals)


def open_account(
    session: Session,
    code: str,
    *,
    name: str,
    account_type: AccountType,
    asset_code: str,
    no_overdraft: bool = False,
    external_ref: str | None = None,
    actor: str,
    clock: Clock = utc_now,
) -> AccountRecord:
    """Open an account in one asset (idempotent by code) and audit it, in the caller's transaction.

    ``external_ref`` ties it to something outside the ledger, e.g. a vault id.
    """
    validate_code(code, "account code")
    _validate_text(name, "account name", NAME_MAX_CHARS)
    if not isinstance(account_type, AccountType):
        raise InvalidEntryError(f"The account_type {account_type!r} is not an AccountType.")
    if not isinstance(no_overdraft, bool):
        raise InvalidEntryError(f"The no_overdraft flag must be a bool, not {no_overdraft!r}.")
    if external_ref is not None:
        _validate_text(external_ref, "external_ref", NAME_MAX_CHARS)
    begin_serialised_write(session)
    asset = session.scalar(select(Asset).where(Asset.code == asset_code))
    if asset is None:
        raise UnknownAssetError(f"The asset_code {asset_code!r} names no registered asset.")
    wanted = AccountRecord(code, name, account_type, asset_code, no_overdraft, external_ref)
    existing = session.scalar(select(Account).where(Account.code == code))
    if existing is not None:
        stored = AccountRecord.of(existing)
        if stored != wanted:
            raise IdempotencyConflictError(
                f"The account {code!r} already exists with other attributes ({stored}); "
                "accounts never change."
            )
        return stored
    session.add(
        Account(
            code=code,
            name=name,
            type=account_type,
            asset_id=asset.id,
            no_overdraft=no_overdraft,
            external_ref=external_ref,
            opened_at=clock(),
        )
    )
    session.flush()
    audit.append(
        session,
        kind=AuditKind.LEDGER_ACCOUNT_OPENED,
        actor=actor,
        refs={"account": code},
        payload={
            "name": name,
            "type": account_type.value,
            "asset": asset_code,
            "no_overdraft": no_overdraft,
            "external_ref": external_ref,
        },
        clock=clock,
    )
    return wanted


def get_account(session: Session, code: str) -> AccountRecord:
    """The account ``code``, or ``UnknownAccountError``."""
    row = session.scalar(select(Account).where(Account.code == code))
    if row is None:
        raise UnknownAccountError(f"The account code {code!r} names no account.")
    return AccountRecord.of(row)


def list_accounts(session: Session, asset_code: str | None = None) -> list[AccountRecord]:
    """Every account (optionally of one asset), by code."""
    query = select(Account).join(Account.asset).order_by(Account.code)
    if asset_code is not None:
        query = query.where(Asset.code == asset_code)
    return [AccountRecord.of(row) for row in session.scalars(query)]
