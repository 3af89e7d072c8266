"""Exact amounts: Python ints in an asset's base unit, stored without ever passing through float.

PostgreSQL stores them as ``NUMERIC(78, 0)`` (every uint256 fits). SQLite cannot: its NUMERIC
affinity turns an integer literal beyond 64 bits into a REAL and keeps 15 significant digits, so
10**20 + 1 wei would silently become 10**20. On SQLite an amount is therefore stored as exactly
``AMOUNT_DIGITS`` zero-padded decimal digits (text), and sums are computed exactly in SQL from
9-digit slices (``sqlite_slice_sums``), each slice sum fitting a 64-bit integer.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Dialect, Integer, Numeric, SQLColumnExpression, String, cast, func
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from treasury.exceptions import InvalidAmountError

AMOUNT_DIGITS = 78
"""Decimal digits of the largest amount; ``NUMERIC(78, 0)`` holds every unsigned 256-bit int."""

AMOUNT_LIMIT = 10**AMOUNT_DIGITS
"""Amounts are strictly below this (in base units)."""

SQLITE_SLICE_DIGITS = 9
"""Digits per slice when SQLite sums amounts: a 64-bit sum of 9-digit slices overflows only
after 9.2 billion rows."""


def _slices() -> tuple[tuple[int, int, int], ...]:
    """(1-based start, length, power of ten) of each slice of the zero-padded text, high first."""
    slices: list[tuple[int, int, int]] = []
    end = AMOUNT_DIGITS
    while end > 0:
        start = max(0, end - SQLITE_SLICE_DIGITS)
        slices.append((start + 1, end - start, AMOUNT_DIGITS - end))
        end = start
    return tuple(reversed(slices))


SQLITE_SLICES = _slices()


def validate_amount(value: object, field: str) -> int:
    """``value`` as a positive int below ``AMOUNT_LIMIT``, or ``InvalidAmountError`` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmountError(
            f"The {field} must be an int in base units (satoshi, wei), not the "
            f"{type(value).__name__} {value!r}."
        )
    if value <= 0:
        raise InvalidAmountError(
            f"The {field} must be positive (the side says the direction), not {value}."
        )
    if value >= AMOUNT_LIMIT:
        raise InvalidAmountError(f"The {field} {value} does not fit in {AMOUNT_DIGITS} digits.")
    return value


def format_amount(amount: int, decimals: int) -> str:
    """A base-unit amount in whole units for display, exactly (``1, 8 -> '0.00000001'``)."""
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**decimals)
    if decimals == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{decimals}d}"


class Amount(TypeDecorator[int]):
    """An int amount: ``NUMERIC(78, 0)`` on PostgreSQL, 78-digit text on SQLite; never a float."""

    impl = Numeric(AMOUNT_DIGITS, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(AMOUNT_DIGITS))
        return dialect.type_descriptor(Numeric(AMOUNT_DIGITS, 0))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value == 0 and isinstance(value, int) and not isinstance(value, bool):
            amount = 0
        else:
            amount = validate_amount(value, "amount")
        if dialect.name == "sqlite":
            return f"{amount:0{AMOUNT_DIGITS}d}"
        return Decimal(amount)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int_from_database(value)


def int_from_database(value: Any) -> int:
    """An exact int from what a driver returns for an amount or a sum of amounts."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise InvalidAmountError(f"The database returned the non-integer amount {value!r}.")


def sum_columns(column: SQLColumnExpression[Any], dialect_name: str) -> list[ColumnElement[Any]]:
    """Aggregate expressions whose values ``combine_sums`` turns into the exact sum of ``column``."""
    if dialect_name == "sqlite":
        return [
            func.sum(cast(func.substr(column, start, length), Integer))
            for start, length, _ in SQLITE_SLICES
        ]
    return [func.sum(cast(column, Numeric(AMOUNT_DIGITS + 10, 0)))]


def combine_sums(values: Sequence[Any], dialect_name: str) -> int:
    """The exact sum from ``sum_columns``' values (``None`` when no rows matched means 0)."""
    if dialect_name != "sqlite":
        (value,) = values
        return 0 if value is None else int_from_database(value)
    total = 0
    for (_, _, power), value in zip(SQLITE_SLICES, values, strict=True):
        total += (0 if value is None else int(value)) * 10**power
    return total
