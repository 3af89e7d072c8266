"""Amounts in the statements officers read: coin units for people, base units beside them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from treasury.authority.statements import coin_units


def test_bitcoin_and_ether_read_in_coins_with_their_base_units() -> None:
    assert coin_units("BTC", 25_000_000) == "0.25 BTC (25000000 sat)"
    assert coin_units("ETH", 15 * 10**17) == "1.5 ETH (1500000000000000000 wei)"


def test_a_further_evm_chains_coin_reads_in_coins_on_its_chain_only() -> None:
    """BNB on an eip155 chain has ether's 18 decimals; named without its chain, or on a chain
    that is not EVM, its decimals are not guessed."""
    assert coin_units("BNB", 15 * 10**17, "eip155:31339") == "1.5 BNB (1500000000000000000 wei)"
    assert coin_units("BNB", 15 * 10**17) == "1500000000000000000 BNB base units"
    assert coin_units("BNB", 7, "bitcoin:regtest") == "7 BNB base units"


def test_a_tokens_decimals_are_never_guessed() -> None:
    """A token's decimals are its contract's; the statement shows base units, not 18 assumed."""
    token = "ERC20:0x" + "ab" * 20
    assert coin_units(token, 10**18, "eip155:31337") == f"{10**18} {token} base units"


@given(st.integers(min_value=0, max_value=10**30))
def test_the_coin_figure_is_exact(amount: int) -> None:
    """The coin figure is the base units moved by the decimals, exactly: no float rounding."""
    shown = coin_units("BNB", amount, "eip155:31339")
    coins, rest = shown.split(" BNB (")
    assert rest == f"{amount} wei)"
    whole, _, fraction = coins.partition(".")
    assert int(whole) * 10**18 + int(fraction.ljust(18, "0") or "0") == amount
