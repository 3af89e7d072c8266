"""Per-asset reconciliation and coverage, recomputed from the bundle's own figures.

Reconciliation: chain holdings, encumbered and available amounts, and the liability tree's total
equal to the state ledger's. Coverage: available holdings over liabilities; under-coverage is a
failed line of its own, stated plainly.
"""

from __future__ import annotations

from reserve_verifier.context import Context
from reserve_verifier.exceptions import VerifierError
from reserve_verifier.fields import amount, percent


def check_reconciliation(ctx: Context, asset: str) -> str:
    """The stated reconciliation figures of ``asset`` are the recomputed ones, and match."""
    holdings, encumbered, liabilities, ledger = ctx.figures(asset)
    line = ctx.body["reconciliation"][asset]
    expected = {
        "chain_holdings": holdings,
        "encumbered": encumbered,
        "available": holdings - encumbered,
        "liability_root_total": liabilities,
        "ledger_total": ledger,
    }
    for name, value in expected.items():
        if value < 0:
            raise VerifierError(
                f"The encumbrances of {asset} ({encumbered}) exceed its holdings ({holdings})."
            )
        stated = amount(line[name], f"reconciliation {name} of {asset}")
        if stated != value:
            raise VerifierError(
                f"The totals do not add up: the reconciliation states {name} = {stated} of {asset} but the bundle's own figures give {value}."
            )
    if line["liabilities_match_ledger"] is not (liabilities == ledger):
        raise VerifierError(f"The reconciliation's match flag for {asset} is wrong.")
    if liabilities != ledger:
        raise VerifierError(
            f"Three-way reconciliation fails for {asset}: the liability tree totals {liabilities} base units but the state ledger totals {ledger} (accounts left out of the tree, or books that differ)."
        )
    return (
        f"chain holdings {holdings} ({encumbered} encumbered), liability tree {liabilities}, "
        f"state ledger {ledger}"
    )


def check_coverage(ctx: Context, asset: str) -> str:
    """The stated coverage of ``asset`` is the recomputed one, and holdings cover liabilities."""
    holdings, encumbered, liabilities, _ = ctx.figures(asset)
    available = holdings - encumbered
    line = ctx.body["coverage"][asset]
    if (
        amount(line["numerator"], "coverage numerator") != available
        or amount(line["denominator"], "coverage denominator") != liabilities
    ):
        raise VerifierError(
            f"The coverage ratio of {asset} is misstated: it should be {available}/{liabilities}, the bundle states {line['numerator']}/{line['denominator']}."
        )
    covered = available >= liabilities
    shortfall = max(liabilities - available, 0)
    ratio = percent(available, liabilities) if liabilities else "no liabilities"
    if (
        line["covered"] is not covered
        or amount(line["shortfall"], "shortfall") != shortfall
        or line["ratio"] != ratio
    ):
        raise VerifierError(
            f"The coverage statement of {asset} is misstated: the figures give covered={covered}, ratio {ratio}, shortfall {shortfall}."
        )
    if not covered:
        raise VerifierError(
            f"UNDER-COVERED: available {asset} holdings of {available} base units cover only {ratio} of liabilities of {liabilities}; the shortfall is {shortfall} base units."
        )
    return f"covered: {ratio} ({available}/{liabilities})"
