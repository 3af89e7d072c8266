"""Liabilities for attestations: the CSV is pivoted with numpy into the same tree an independent
row-by-row build gives; bad rows are refused by line; the ledger's fund accounts become leaves.
(Node-free: only the file system; it sits here because it belongs to the attestation suite.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reporting.exceptions import DuplicateLeafError
from reporting.sumtree import LiabilityTree
from treasury.attest.errors import LiabilityInputError
from treasury.attest.liabilities import FundBalance, liability_tree, read_liabilities_csv

NONCE = bytes(range(32))
BIG_WEI = 3 * 2**64 + 5


def write(path: Path, rows: list[tuple[str, str, str]], header: bool = True) -> Path:
    lines = (["account_id,asset,amount"] if header else []) + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_pivot_gives_the_same_root_as_a_row_by_row_build(tmp_path: Path) -> None:
    """Accounts over several assets, and a wei amount above 64 bits, rebuild the reference root."""
    rows = [("a", "ETH", str(BIG_WEI)), ("b", "BTC", "7"), ("a", "BTC", "3"), ("c", "ETH", "0")]
    csv = read_liabilities_csv(write(tmp_path / "l.csv", rows))
    assert csv.assets == ("BTC", "ETH")
    assert csv.row_count == 4
    assert csv.totals() == {"BTC": 10, "ETH": BIG_WEI}
    funds = [FundBalance("fund:btc", "BTC", 100)]
    tree = liability_tree(funds, csv, NONCE)
    reference = LiabilityTree.from_rows(
        ("BTC", "ETH"),
        [("fund:btc", (100, 0)), ("a", (3, BIG_WEI)), ("b", (7, 0)), ("c", (0, 0))],
        NONCE,
    )
    assert tree.root.digest() == reference.root.digest()


@settings(max_examples=30, deadline=None)
@given(
    st.dictionaries(
        st.text("abcxyz:0123456789", min_size=1, max_size=12),
        st.tuples(st.integers(0, 2**70), st.integers(0, 2**63)),
        min_size=1,
        max_size=40,
    )
)
def test_any_csv_matches_the_reference_tree(
    tmp_path_factory: pytest.TempPathFactory, accounts: dict[str, tuple[int, int]]
) -> None:
    """For any accounts and amounts, the streamed CSV tree's root equals the row-by-row tree's."""
    rows = [(a, "ETH", str(e)) for a, (e, _) in accounts.items()]
    rows += [(a, "BTC", str(b)) for a, (_, b) in accounts.items()]
    csv = read_liabilities_csv(write(tmp_path_factory.mktemp("h") / "l.csv", rows, header=False))
    tree = liability_tree([], csv, NONCE)
    reference = LiabilityTree.from_rows(
        ("BTC", "ETH"), [(a, (b, e)) for a, (e, b) in accounts.items()], NONCE
    )
    assert tree.root.digest() == reference.root.digest()
    assert isinstance(csv.columns[0], np.ndarray)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("a", "BTC", "-5")], "Line 2 .* negative amount"),
        ([("a", "BTC", "1.5")], "Line 2 .* not a whole number"),
        ([("a", "BTC", "1"), ("a", "BTC", "2")], "lists account 'a' twice for asset BTC"),
        ([("a", "BTC")], "Line 2 .* 2 field"),
        ([("a", "B TC", "1")], "Line 2"),
    ],
)
def test_bad_rows_are_refused_by_line(
    tmp_path: Path, rows: list[tuple[str, ...]], message: str
) -> None:
    """A negative, fractional, repeated, short or badly coded row is refused with its line."""
    path = tmp_path / "bad.csv"
    path.write_text("account_id,asset,amount\n" + "".join(",".join(r) + "\n" for r in rows))
    with pytest.raises(LiabilityInputError, match=message):
        read_liabilities_csv(path)


def test_account_in_both_ledger_and_csv_is_refused(tmp_path: Path) -> None:
    """A CSV account id equal to a ledger fund account would be counted twice: refused."""
    csv = read_liabilities_csv(write(tmp_path / "l.csv", [("fund:btc", "BTC", "1")]))
    with pytest.raises(DuplicateLeafError, match="fund:btc"):
        liability_tree([FundBalance("fund:btc", "BTC", 5)], csv, NONCE)


def test_itemised_account_is_left_out(tmp_path: Path) -> None:
    """The fund account a CSV itemises is not a leaf; an unknown one is refused."""
    csv = read_liabilities_csv(write(tmp_path / "l.csv", [("h1", "ETH", "4"), ("h2", "ETH", "6")]))
    funds = [FundBalance("fund:holders", "ETH", 10), FundBalance("fund:eth", "ETH", 1)]
    tree = liability_tree(funds, csv, NONCE, itemises="fund:holders")
    assert tree.root.leaf_count == 3
    assert tree.root.sums == (11,)
    with pytest.raises(LiabilityInputError, match="not a ledger fund account"):
        liability_tree(funds, csv, NONCE, itemises="fund:nope")
