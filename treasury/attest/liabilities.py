"""The liabilities side of an attestation: the ledger's fund accounts and an optional CSV.

Fund accounts are the ledger's liability accounts (what the state's reserve backs: budget lines,
the national fund); each is one leaf of the liability sum tree, its account id the account code,
its amount the posted balance in its asset. An external list (CSV rows ``account id, asset,
amount in base units``, e.g. the holders of a reserve-backed token, up to millions of rows) is
streamed into numpy columns chunk by chunk and pivoted with numpy, so no Python object per row is
kept; only amounts above 64 bits (rare: wei) are carried as Python ints.

If the CSV itemises one ledger fund account (``itemises``), that account's own leaf is left out of
the tree, so the three-way reconciliation compares the CSV's total with the account's balance.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from reporting.exceptions import MerkleError
from reporting.merkle.assets import canonical_assets
from reporting.sumtree import Column, LiabilityTree
from treasury.attest.errors import LiabilityInputError
from treasury.ledger import AccountType, balances, list_accounts
from treasury.ledger.balances import NOW, Cutoff

CSV_CHUNK_ROWS = 1 << 18
"""Rows parsed per numpy conversion: bounds the transient per-row objects of one chunk."""
UINT64_SAFE_DIGITS = 19
"""Decimal strings this short always fit a uint64 (10**19 - 1 < 2**64)."""
CSV_HEADER = ("account_id", "asset", "amount")


@dataclass(frozen=True)
class FundBalance:
    """One ledger fund account's posted balance in its asset, in base units."""

    account: str
    asset: str
    amount: int


def fund_balances(session: Session, cutoff: Cutoff = NOW) -> tuple[FundBalance, ...]:
    """Every liability account of the ledger with its posted balance, by account code."""
    codes = [a.code for a in list_accounts(session) if a.type is AccountType.LIABILITY]
    if not codes:
        return ()
    found = []
    for balance in balances(session, codes, cutoff):
        if balance.posted < 0:
            raise LiabilityInputError(
                f"The fund account {balance.account!r} has a negative balance of "
                f"{balance.posted} {balance.asset}; a liability cannot be attested below zero."
            )
        found.append(FundBalance(balance.account, balance.asset, balance.posted))
    return tuple(found)


def ledger_totals(funds: Iterable[FundBalance]) -> dict[str, int]:
    """The ledger's total of the fund accounts per asset."""
    totals: dict[str, int] = {}
    for fund in funds:
        totals[fund.asset] = totals.get(fund.asset, 0) + fund.amount
    return totals


@dataclass(frozen=True)
class CsvLiabilities:
    """A liabilities CSV pivoted to one row per account and one amount column per asset."""

    account_ids: npt.NDArray[np.str_]
    assets: tuple[str, ...]
    columns: tuple[Column, ...]
    row_count: int

    def totals(self) -> dict[str, int]:
        """The CSV's total per asset."""
        return {
            asset: _exact_sum(column) if isinstance(column, np.ndarray) else sum(column)
            for asset, column in zip(self.assets, self.columns, strict=True)
        }


def _exact_sum(column: npt.NDArray[Any]) -> int:
    """Sum a uint64 column exactly (numpy's own sum would wrap around)."""
    low = column & np.uint64(0xFFFFFFFF)
    high = column >> np.uint64(32)
    return int(low.sum(dtype=np.uint64)) + (int(high.sum(dtype=np.uint64)) << 32)


def _chunks(path: Path) -> Iterator[tuple[int, list[list[str]]]]:
    """Yield ``(first line number, rows)`` chunks of the CSV, skipping a header line."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise LiabilityInputError(
            f"The liabilities CSV {path} cannot be read ({exc.strerror})."
        ) from None
    with handle:
        reader = csv.reader(handle)
        chunk: list[list[str]] = []
        start = 1
        try:
            for row in reader:
                if reader.line_num == 1 and tuple(c.strip().lower() for c in row) == CSV_HEADER:
                    start = 2
                    continue
                chunk.append(row)
                if len(chunk) == CSV_CHUNK_ROWS:
                    yield start, chunk
                    start += len(chunk)
                    chunk = []
        except (csv.Error, UnicodeDecodeError) as exc:
            raise LiabilityInputError(
                f"The liabilities CSV {path} is not UTF-8 CSV near line {reader.line_num} ({exc})."
            ) from None
        if chunk:
            yield start, chunk


def read_liabilities_csv(path: Path) -> CsvLiabilities:
    """Read ``account id, asset, amount`` rows into numpy columns, one leaf per account.

    Refuses, naming the line: a row without exactly three fields, an empty account id, a bad
    asset code, an amount that is not a non-negative integer of base units (a negative one is
    refused as such), and the same account listed twice for one asset.
    """
    asset_index: dict[str, int] = {}
    ids_parts: list[npt.NDArray[np.str_]] = []
    asset_parts: list[npt.NDArray[np.uint16]] = []
    amount_parts: list[npt.NDArray[np.uint64]] = []
    big: dict[int, int] = {}
    offset = 0
    for start, rows in _chunks(path):
        for line, row in enumerate(rows, start):
            if len(row) != 3 or not row[0]:
                raise LiabilityInputError(
                    f"Line {line} of {path} must be 'account id, asset, amount' with a non-empty "
                    f"account id; it has {len(row)} field(s)."
                )
        ids = np.array([row[0] for row in rows], dtype=np.str_)
        codes = []
        for line, row in enumerate(rows, start):
            code = row[1].strip()
            if code not in asset_index:
                try:
                    canonical_assets([code])
                except MerkleError as exc:
                    raise LiabilityInputError(f"Line {line} of {path}: {exc}") from None
                asset_index[code] = len(asset_index)
            codes.append(asset_index[code])
        amounts_text = np.char.strip(np.array([row[2] for row in rows], dtype=np.str_))
        digits = np.char.isdigit(amounts_text)
        if not digits.all():
            bad = int(np.argmin(digits))
            text = str(amounts_text[bad])
            kind = (
                "a negative amount; liabilities are zero or more base units"
                if text.startswith("-") and text[1:].isdigit()
                else "not a whole number of base units"
            )
            raise LiabilityInputError(
                f"Line {start + bad} of {path}: the amount {text!r} of account {str(ids[bad])!r} "
                f"is {kind}."
            )
        lengths = np.char.str_len(amounts_text)
        small = lengths <= UINT64_SAFE_DIGITS
        values = np.zeros(len(rows), dtype=np.uint64)
        values[small] = amounts_text[small].astype(np.uint64)
        for position in np.flatnonzero(~small).tolist():
            big[offset + position] = int(str(amounts_text[position]))
        ids_parts.append(ids)
        asset_parts.append(np.array(codes, dtype=np.uint16))
        amount_parts.append(values)
        offset += len(rows)
    if not offset:
        raise LiabilityInputError(f"The liabilities CSV {path} has no rows.")
    return _pivot(
        path,
        np.concatenate(ids_parts),
        np.concatenate(asset_parts),
        np.concatenate(amount_parts),
        big,
        tuple(asset_index),
    )


def _pivot(
    path: Path,
    ids: npt.NDArray[np.str_],
    asset_of: npt.NDArray[np.uint16],
    amounts: npt.NDArray[np.uint64],
    big: dict[int, int],
    codes: tuple[str, ...],
) -> CsvLiabilities:
    """One row per account, one column per asset (assets in canonical byte order)."""
    accounts, account_of = np.unique(ids, return_inverse=True)
    pairs = account_of.astype(np.int64) * len(codes) + asset_of
    unique_pairs, first = np.unique(pairs, return_index=True)
    if unique_pairs.size != pairs.size:
        seen = np.zeros(pairs.size, dtype=bool)
        seen[first] = True
        repeat = int(np.argmin(seen))
        raise LiabilityInputError(
            f"The liabilities CSV {path} lists account {str(ids[repeat])!r} twice for asset "
            f"{codes[int(asset_of[repeat])]}; give one row per account and asset."
        )
    order = sorted(range(len(codes)), key=lambda i: codes[i].encode())
    columns: list[Column] = []
    for index in order:
        rows = np.flatnonzero(asset_of == index)
        column = np.zeros(accounts.size, dtype=np.uint64)
        column[account_of[rows]] = amounts[rows]
        overflow = [row for row in rows.tolist() if row in big] if big else []
        if overflow:
            wide: list[int] = column.tolist()
            for row in overflow:
                wide[int(account_of[row])] = big[row]
            columns.append(wide)
        else:
            columns.append(column)
    return CsvLiabilities(
        account_ids=accounts,
        assets=tuple(codes[i] for i in order),
        columns=tuple(columns),
        row_count=int(ids.size),
    )


def _column(values: Sequence[int]) -> Column:
    """A numpy uint64 column if every value fits, else the Python ints themselves."""
    if all(0 <= value < 1 << 64 for value in values):
        return np.array(values, dtype=np.uint64)
    return list(values)


def liability_tree(
    funds: Sequence[FundBalance],
    csv_rows: CsvLiabilities | None,
    nonce: bytes,
    *,
    extra_assets: Iterable[str] = (),
    itemises: str | None = None,
) -> LiabilityTree:
    """The liability sum tree over the fund accounts (less ``itemises``) and the CSV's accounts."""
    if itemises is not None:
        if csv_rows is None:
            raise LiabilityInputError("Only a liabilities CSV can itemise a fund account.")
        if itemises not in {fund.account for fund in funds}:
            raise LiabilityInputError(
                f"The account {itemises!r} the CSV itemises is not a ledger fund account."
            )
    leaves = [fund for fund in funds if fund.account != itemises]
    assets = sorted(
        {*(fund.asset for fund in funds), *(csv_rows.assets if csv_rows else ()), *extra_assets},
        key=str.encode,
    )
    if not assets:
        raise LiabilityInputError(
            "There is nothing to attest: no fund account, no CSV row and no holdings asset."
        )
    ledger_ids = np.array([fund.account for fund in leaves], dtype=np.str_)
    columns: list[Column] = []
    for asset in assets:
        ledger_part = [fund.amount if fund.asset == asset else 0 for fund in leaves]
        if csv_rows is None:
            columns.append(_column(ledger_part))
            continue
        csv_part = (
            csv_rows.columns[csv_rows.assets.index(asset)]
            if asset in csv_rows.assets
            else np.zeros(csv_rows.account_ids.size, dtype=np.uint64)
        )
        head = _column(ledger_part)
        if isinstance(head, np.ndarray) and isinstance(csv_part, np.ndarray):
            columns.append(np.concatenate([head, csv_part]))
        else:
            columns.append([*ledger_part, *(int(x) for x in csv_part)])
    account_ids = (
        np.concatenate([ledger_ids, csv_rows.account_ids]) if csv_rows is not None else ledger_ids
    )
    return LiabilityTree.build(assets, account_ids, columns, nonce)  # type: ignore[arg-type]
