"""The review share holders read before signing: amounts in coin units, exactly, and the action
decoded from the SafeTx itself (a token by its tracked symbol and decimals, else base units)."""

from __future__ import annotations

import pytest

from custody.ethereum.erc20 import transfer_calldata
from custody.ethereum.safe_tx import Operation, SafeTx
from custody.ethereum.signer import SigningPolicy, approve
from treasury.cli.review import TokenUnits, action_line, btc, coin_units, eth, safe_lines

SAFE = "0x" + "5a" * 20
TOKEN = "0x" + "70" * 20
PAYEE = "0x" + "c1" * 20


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        (btc(25_000_000), "0.25 BTC (25000000 sat)"),
        (btc(200_000_000), "2 BTC (200000000 sat)"),
        (btc(1), "0.00000001 BTC (1 sat)"),
        (btc(0), "0 BTC (0 sat)"),
        (eth(1_500_000_000_000_000_000), "1.5 ETH (1500000000000000000 wei)"),
        (eth(10**40 + 1), f"{10**22}.000000000000000001 ETH ({10**40 + 1} wei)"),
        (coin_units(7, 0, "PTS", "points"), "7 PTS (7 points)"),
    ],
)
def test_amounts_are_shown_in_coin_units_and_base_units_exactly(shown: str, expected: str) -> None:
    """Integer arithmetic: no rounding however large or small the amount."""
    assert shown == expected


def _token_transfer(amount: int) -> SafeTx:
    return SafeTx(
        chain_id=31337,
        safe=SAFE,
        to=TOKEN,
        value=0,
        data=transfer_calldata(PAYEE, amount),
        operation=Operation.CALL,
        nonce=4,
    )


def test_a_token_transfer_is_shown_with_its_symbol_when_known_else_in_base_units() -> None:
    """The decoded transfer's amount uses the tracked decimals; unknown tokens stay in base units."""
    approval = approve(_token_transfer(100_500_000), SigningPolicy(frozenset({TOKEN})))
    payee, token = approval.action.to, approval.action.token  # type: ignore[union-attr]
    assert action_line(approval, TokenUnits("USDC", 6)) == (
        f"send 100.5 USDC (100500000 base units) of token {token} to {payee}"
    )
    assert action_line(approval, None) == (
        f"send 100500000 base units of token {token} (symbol and decimals unknown) to {payee}"
    )


def test_the_safe_review_names_the_safe_chain_nonce_and_hash() -> None:
    """What `safe sign` and `spend sign` print comes from the SafeTx and its own hash."""
    safe_tx = SafeTx(
        chain_id=31337,
        safe=SAFE,
        to=PAYEE,
        value=10**18,
        data=b"",
        operation=Operation.CALL,
        nonce=4,
    )
    lines = safe_lines(approve(safe_tx, SigningPolicy()), "reserve", None)
    assert lines[1] == f"action: send 1 ETH (1000000000000000000 wei) to {safe_tx.to}"
    assert f"from Safe {safe_tx.safe} on chain 31337, nonce 4" in lines[2]
    assert lines[3] == f"SafeTx hash: {safe_tx.hash_hex}"
