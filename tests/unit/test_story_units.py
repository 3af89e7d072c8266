"""The demo's amounts and durations for people: exact, largest unit first, nothing rounded."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from treasury.story.cast import TOKEN_DECIMALS, TOKEN_SYMBOL
from treasury.story.units import human_duration, token_units

UNIT_SECONDS = {"day": 86_400, "hour": 3_600, "minute": 60, "second": 1}


def test_the_allowlist_wait_reads_as_days_and_hours() -> None:
    assert human_duration(timedelta(hours=49)) == "2 days 1 hour"
    assert human_duration(timedelta(minutes=1, seconds=5)) == "1 minute 5 seconds"
    assert human_duration(timedelta(0)) == "no time"


@given(st.integers(min_value=1, max_value=10**8))
def test_a_duration_reads_back_to_its_seconds(seconds: int) -> None:
    words = human_duration(timedelta(seconds=seconds)).split()
    pairs = list(zip(words[::2], words[1::2], strict=True))
    names = [name.removesuffix("s") for _count, name in pairs]
    assert names == sorted(names, key=lambda name: -UNIT_SECONDS[name])  # largest first
    assert all(int(count) > 0 for count, _ in pairs)
    assert (
        sum(int(count) * UNIT_SECONDS[name] for count, name in zip(words[::2], names, strict=True))
        == seconds
    )


@given(st.integers(min_value=0, max_value=10**30))
def test_token_units_keep_every_base_unit(amount: int) -> None:
    text = token_units(amount)
    whole, symbol, rest = text.split(" ", 2)
    assert symbol == TOKEN_SYMBOL
    assert Decimal(whole).scaleb(TOKEN_DECIMALS) == amount
    assert rest == f"({amount} base units)"
    assert not whole.endswith(".")
    assert "." not in whole or not whole.endswith("0")
