"""Pure pieces of the ledger: exact amounts, their storage encoding, request validation, hashing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from treasury.exceptions import InvalidAmountError, InvalidEntryError, LedgerError, TreasuryError
from treasury.ledger import (
    AMOUNT_LIMIT,
    AccountType,
    Amount,
    EntryKind,
    Leg,
    Side,
    erc20_asset,
    format_amount,
    payload_hash,
)
from treasury.ledger.amounts import SQLITE_SLICES, combine_sums, validate_amount
from treasury.ledger.entries import validate_key as _validate_key
from treasury.ledger.entries import validate_legs as _validate_legs

AMOUNTS = st.integers(min_value=1, max_value=AMOUNT_LIMIT - 1)


@pytest.mark.parametrize("bad", [1.0, Decimal("5"), Decimal("1.5"), True, "7", None])
def test_amounts_must_be_ints(bad: object) -> None:
    """Floats, Decimals, bools and strings are refused as amounts, naming the field."""
    with pytest.raises(InvalidAmountError, match="leg 1 amount must be an int"):
        validate_amount(bad, "leg 1 amount")


@pytest.mark.parametrize("bad", [0, -1, AMOUNT_LIMIT])
def test_amounts_must_be_positive_and_fit(bad: int) -> None:
    """Zero, negative and 79-digit amounts are refused."""
    with pytest.raises(InvalidAmountError):
        validate_amount(bad, "amount")


def test_amount_errors_are_treasury_value_errors() -> None:
    """Amount errors can be caught as the package root, the ledger branch or ValueError."""
    assert issubclass(InvalidAmountError, TreasuryError)
    assert issubclass(InvalidAmountError, LedgerError)
    assert issubclass(InvalidAmountError, ValueError)


@given(AMOUNTS)
def test_amount_column_round_trips_exactly_on_both_databases(amount: int) -> None:
    """Every amount below 10**78 survives the column type's bind and result processing exactly."""
    column = Amount()
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        stored = column.process_bind_param(amount, dialect)
        assert not isinstance(stored, float)
        assert column.process_result_value(stored, dialect) == amount


def test_sqlite_stores_fixed_width_digits() -> None:
    """On SQLite an amount is 78 zero-padded digits, so text order is numeric order."""
    assert Amount().process_bind_param(10**20 + 1, sqlite.dialect()) == f"{10**20 + 1:078d}"


@pytest.mark.parametrize("bad", [2.5, Decimal(3), -4])
def test_amount_column_refuses_non_integers(bad: object) -> None:
    """The column type itself refuses floats, Decimals and negatives, whatever the caller does."""
    with pytest.raises(InvalidAmountError):
        Amount().process_bind_param(bad, postgresql.dialect())


@given(st.lists(AMOUNTS, min_size=1, max_size=40))
def test_sqlite_slice_sums_combine_to_the_exact_total(amounts: list[int]) -> None:
    """Summing 9-digit slices of the stored text separately and recombining gives the exact sum."""
    texts = [f"{amount:078d}" for amount in amounts]
    slice_sums = [
        sum(int(text[start - 1 : start - 1 + length]) for text in texts)
        for start, length, _ in SQLITE_SLICES
    ]
    assert combine_sums(slice_sums, "sqlite") == sum(amounts)


def test_format_amount_is_exact() -> None:
    """Display conversion is exact for satoshi and for wei beyond float precision."""
    assert format_amount(1, 8) == "0.00000001"
    assert format_amount(-150_000_000, 8) == "-1.50000000"
    assert format_amount(10**27 + 1, 18) == "1000000000.000000000000000001"
    assert format_amount(42, 0) == "42"


def test_normal_sides_follow_account_types() -> None:
    """Assets and expenses grow on the debit side; liabilities, equity and income on the credit side."""
    debit_normal = {t for t in AccountType if t.normal_side is Side.DEBIT}
    assert debit_normal == {AccountType.ASSET, AccountType.EXPENSE}


def test_payload_hash_ignores_leg_order_but_not_content() -> None:
    """The same legs in another order are the same request; any changed amount or side is not."""
    legs = (Leg.debit("a", 5), Leg.credit("b", 5))
    same = payload_hash(EntryKind.POSTED, legs, "x")
    assert payload_hash(EntryKind.POSTED, tuple(reversed(legs)), "x") == same
    assert payload_hash(EntryKind.POSTED, (Leg.debit("a", 6), Leg.credit("b", 6)), "x") != same
    assert payload_hash(EntryKind.PENDING, legs, "x") != same
    assert payload_hash(EntryKind.POSTED, legs, "y") != same


@pytest.mark.parametrize(
    ("legs", "message"),
    [
        ((Leg.debit("a", 5),), "between 2 and"),
        ((Leg.debit("a", 5), Leg.credit("b", 5.0)), "amount of leg 2 \\(b\\) must be an int"),  # type: ignore[arg-type]
        ((Leg.debit("a", 5), Leg("b", "credit", 5)), "side of leg 2"),  # type: ignore[arg-type]
        ((Leg.debit("a b", 5), Leg.credit("b", 5)), "account of leg 1"),
    ],
)
def test_malformed_legs_are_refused_by_field(legs: tuple[Leg, ...], message: str) -> None:
    """A malformed leg is refused with a message naming which leg and which field."""
    with pytest.raises(LedgerError, match=message):
        _validate_legs(legs)


@pytest.mark.parametrize("key", ["", "   ", "x" * 129, "tab\tkey", 7])
def test_idempotency_keys_must_be_printable_text(key: object) -> None:
    """Blank, overlong, non-printable or non-string idempotency keys are refused."""
    with pytest.raises(InvalidEntryError, match="idempotency key"):
        _validate_key(key)


def test_erc20_asset_codes_name_the_contract() -> None:
    """An ERC-20 asset is keyed by its contract address and keeps the token's decimals."""
    spec = erc20_asset("0x" + "ab" * 20, decimals=6)
    assert (spec.code, spec.decimals) == ("ERC20:0x" + "ab" * 20, 6)
    with pytest.raises(InvalidEntryError, match="contract_address"):
        erc20_asset("0x1234", decimals=6)
