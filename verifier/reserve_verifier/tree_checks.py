"""Checks of the two trees: the holdings root rebuilt from the snapshot, the liability root, the
published accounts' proofs, and one account's inclusion, all with the verifier's own tree code.
"""

from __future__ import annotations

from reserve_verifier.context import Context
from reserve_verifier.exceptions import VerifierError
from reserve_verifier.fields import amounts, show
from reserve_verifier.holdings_tree import holdings_root
from reserve_verifier.inputs import LeafQuery
from reserve_verifier.liability_tree import (
    parse_leaf,
    verify_liability_package,
    verify_public_listing,
)
from reserve_verifier.tree import Tree, parse_root


def check_holdings_root(ctx: Context) -> str:
    """The snapshot's holdings rebuild the stated holdings root."""
    rebuilt = holdings_root(ctx.holdings())
    stated = parse_root(ctx.body["holdings"]["root"])
    if stated.tree is not Tree.HOLDINGS:
        raise VerifierError("The holdings root is not a holdings-tree root.")
    if rebuilt.digest() != stated.digest():
        raise VerifierError(
            f"The holdings root is altered or a holding was added or removed: the snapshot's {rebuilt.leaf_count} holdings rebuild to {rebuilt.digest().hex()}, the bundle states {stated.digest().hex()} over {stated.leaf_count}."
        )
    return f"{rebuilt.leaf_count} holdings rebuild to {rebuilt.digest().hex()}"


def check_holdings_totals(ctx: Context) -> str:
    """The stated holdings totals are the snapshot's, summed per asset."""
    computed = ctx.holdings_totals()
    stated = amounts(ctx.body["holdings"]["totals"], "holdings total")
    if computed != stated:
        raise VerifierError(
            f"The holdings totals do not add up: the listed holdings sum to {show(computed)} but the bundle states {show(stated)}."
        )
    return f"holdings sum to {show(computed)}"


def check_liability_root(ctx: Context) -> str:
    """The liability root parses, matches its digest, and its sums are the stated totals."""
    root = ctx.liability_root()
    stated = amounts(ctx.body["liabilities"]["totals"], "liability total")
    sums = dict(zip(root.assets, root.sums, strict=True))
    if stated != sums:
        raise VerifierError(
            f"The liability totals do not add up: the root's sums are {show(sums)} but the bundle states {show(stated)}."
        )
    return f"{root.leaf_count} accounts, sums {show(sums)}, root {root.digest().hex()}"


def check_public_listing(ctx: Context) -> str:
    """Every published account's proof leads to the liability root; a complete listing rebuilds it.

    Proofs alone do not show the leaves are in the canonical order (by salt): a forger can build
    a tree with two leaves swapped and give every leaf a valid proof of that tree. When every
    account is published, the verifier rebuilds the root from the leaves in canonical order, so
    only the honest tree verifies.
    """
    root = ctx.liability_root()
    entries = ctx.body["liabilities"]["public_listing"]
    complete = isinstance(entries, list) and len(entries) == root.leaf_count
    verify_public_listing(root, entries, complete=complete)
    if complete:
        return f"all {len(entries)} accounts are published; the root rebuilt from them in canonical order matches"
    return f"{len(entries)} of {root.leaf_count} accounts are published and each proof leads to the liability root"


def check_leaf(ctx: Context, query: LeafQuery) -> str:
    """The asked-for account is in the liability tree (by its package, or as published)."""
    root = ctx.liability_root()
    if query.package is not None:
        leaf = verify_liability_package(query.package, root_digest=root.digest())
    else:
        found = [
            entry
            for entry in ctx.body["liabilities"]["public_listing"]
            if entry["leaf"]["account_id"] == query.account_id
        ]
        if not found:
            raise VerifierError(
                f"The account {query.account_id!r} is not published in this bundle; check it with the proof file it was given (--proof)."
            )
        verify_public_listing(root, found)
        leaf = parse_leaf(found[0]["leaf"])
    if leaf.account_id != query.account_id:
        raise VerifierError(
            f"The proof is for account {leaf.account_id!r}, not {query.account_id!r}."
        )
    if query.salt is not None and leaf.salt != query.salt:
        raise VerifierError(
            f"The account {query.account_id!r} is included with another salt than the one given."
        )
    held = dict(zip(root.assets, leaf.amounts, strict=True))
    return f"account {leaf.account_id!r} is in the liability tree with {show(held)}"
