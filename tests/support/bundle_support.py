"""Test support for attestation bundles that needs no node: liabilities and report reading.

Shared by the offline tamper tests, the live verifier tests and the site's tests, so each builds
its liability tree and states its ledger totals the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reserve_verifier import CheckStatus, Report

from reporting.sumtree import LiabilityTree


def liabilities(
    assets: Sequence[str], rows: Mapping[str, Sequence[int]], nonce: bytes
) -> tuple[LiabilityTree, dict[str, int]]:
    """The tree of ``rows`` (account -> amount per asset, in ``assets`` order) and its per-asset
    totals, which an honest ledger states as its own."""
    tree = LiabilityTree.from_rows(assets, list(rows.items()), nonce)
    totals = {asset: sum(row[i] for row in rows.values()) for i, asset in enumerate(assets)}
    return tree, totals


def failed(report: Report) -> dict[str, str]:
    """The report's failed checks: name -> reason."""
    return {
        check.name: check.reason for check in report.checks if check.status is CheckStatus.FAILED
    }
