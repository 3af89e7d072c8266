"""Offline checks of the asset registry: every asset code the bundle uses is one it defines.

The body's ``assets`` says what each code is: its chain (``bitcoin:<network>`` or
``evm:<chain id>``), whether it is the chain's native coin or an ERC-20 contract (and which), its
decimals and symbol. Without it a code is only a label: a Safe's token balance could be stated as
``ETH`` and pass a check that compares ``balanceOf(token)`` with the amount. So every code in the
holdings, the liability root, the ledger totals, the encumbrances, the reconciliation and the
coverage must be registered; every balance must be read where its asset lives (the registry's
contract, or the native coin); and the reconciliation and coverage must state exactly the assets
the bundle's figures have, no more (an asset in no tree) and no fewer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from reserve_verifier.context import Context
from reserve_verifier.exceptions import VerifierError

BITCOIN_ASSET = "BTC"
"""The asset of every vault UTXO (SPEC-merkle, holdings leaves)."""

_BITCOIN_CHAIN = re.compile(r"bitcoin:([a-z0-9]+)")
_EVM_CHAIN = re.compile(r"evm:(0|[1-9][0-9]*)")


def evm_chain(chain_id: int) -> str:
    """The registry's name of EVM chain ``chain_id``."""
    return f"evm:{chain_id}"


def _used(ctx: Context) -> dict[str, str]:
    """Every asset code the bundle uses, with where it first appears (for the reason)."""
    places: dict[str, str] = {}

    def note(codes: Iterable[str], where: str) -> None:
        for code in codes:
            places.setdefault(code, where)

    note((holding.asset for holding in ctx.holdings()), "holdings")
    note(ctx.liability_root().assets, "liability root")
    note(ctx.ledger_totals(), "ledger totals")
    note((item["asset"] for item in ctx.body["encumbrances"]), "encumbrances")
    note(ctx.body["reconciliation"], "reconciliation")
    note(ctx.body["coverage"], "coverage")
    return places


def _check_entry(code: str, entry: Mapping[str, Any]) -> None:
    """One registry entry's chain name and kind agree with its contract."""
    chain, kind, contract = entry["chain"], entry["kind"], entry["contract"]
    if _BITCOIN_CHAIN.fullmatch(chain):
        if kind != "native":
            raise VerifierError(f"The asset {code} on {chain} is a {kind} token; Bitcoin has none.")
    elif not _EVM_CHAIN.fullmatch(chain):
        raise VerifierError(
            f"The asset {code}'s chain {chain!r} is neither bitcoin:<network> nor evm:<chain id>."
        )
    if kind == "native" and contract is not None:
        raise VerifierError(f"The native asset {code} names a contract {contract}.")
    if kind == "erc20" and contract is None:
        raise VerifierError(f"The ERC-20 asset {code} names no contract.")


def check_registry(ctx: Context) -> str:
    """Every entry is well formed, one native coin per chain, and every used code is registered."""
    registry = ctx.asset_registry()
    natives: dict[str, str] = {}
    contracts: dict[tuple[str, str], str] = {}
    for code, entry in registry.items():
        _check_entry(code, entry)
        if entry["kind"] == "native":
            if entry["chain"] in natives:
                raise VerifierError(
                    f"The registry names two native coins of {entry['chain']}: {natives[entry['chain']]} and {code}."
                )
            natives[entry["chain"]] = code
        else:
            key = (entry["chain"], str(entry["contract"]).lower())
            if key in contracts:
                raise VerifierError(
                    f"The registry names the contract {entry['contract']} twice: as {contracts[key]} and {code}."
                )
            contracts[key] = code
    for code, where in sorted(_used(ctx).items()):
        if code not in registry:
            raise VerifierError(
                f"The asset {code} appears in the {where} but not in the asset registry: nothing says which chain or contract it is."
            )
    return f"{len(registry)} asset(s) registered; every asset used is registered"


def check_balance_assets(ctx: Context) -> str:
    """Each holding is of its registered asset: UTXOs the network's coin, each Safe balance read
    from its asset's contract (none for a native coin) on its asset's chain."""
    registry = ctx.asset_registry()
    network = ctx.body["snapshot"]["bitcoin"]["network"]
    if ctx.utxos():
        entry = registry.get(BITCOIN_ASSET)
        if entry is None:
            raise VerifierError(f"The UTXOs' asset {BITCOIN_ASSET} is not in the asset registry.")
        if entry["chain"] != f"bitcoin:{network}" or entry["kind"] != "native":
            raise VerifierError(
                f"The registry puts {BITCOIN_ASSET} on {entry['chain']} ({entry['kind']}), but the UTXOs are bitcoin:{network}'s native coin."
            )
    count = 0
    for snapshot in ctx.body["snapshot"]["evm"]:
        chain = evm_chain(snapshot["chain_id"])
        for balance in snapshot["balances"]:
            code, token = balance["asset"], balance["token_address"]
            entry = registry.get(code)
            if entry is None:
                raise VerifierError(f"The balance's asset {code} is not in the asset registry.")
            where = f"The balance of {code} in Safe {balance['safe_address']}"
            if entry["chain"] != chain:
                raise VerifierError(
                    f"{where} is on {chain}, but the registry puts {code} on {entry['chain']}."
                )
            if entry["kind"] == "native" and token is not None:
                raise VerifierError(
                    f"{where} is read from the token contract {token}, but {code} is {chain}'s native coin: a token balance relabelled as the native coin."
                )
            if entry["kind"] == "erc20" and (
                token is None or str(token).lower() != str(entry["contract"]).lower()
            ):
                raise VerifierError(
                    f"{where} is read from {token or 'the native coin'}, not from {code}'s registered contract {entry['contract']}."
                )
            count += 1
    return f"{len(ctx.utxos())} UTXO(s) and {count} Safe balance(s) match their registered assets"


def _asset_set(ctx: Context, section: str) -> str:
    """``section`` (reconciliation or coverage) states exactly the assets the figures have."""
    computed = set(ctx.assets())
    stated = set(ctx.body[section])
    extra = sorted(stated - computed, key=str.encode)
    if extra:
        raise VerifierError(
            f"The {section} lists {', '.join(extra)}, which no holding, liability, ledger total or encumbrance has: an asset outside every tree."
        )
    missing = sorted(computed - stated, key=str.encode)
    if missing:
        raise VerifierError(
            f"The {section} omits {', '.join(missing)}, which the bundle's holdings, liabilities, ledger or encumbrances have."
        )
    return f"exactly the {len(computed)} asset(s) of the bundle's figures"


def check_reconciliation_assets(ctx: Context) -> str:
    """The reconciliation's assets are exactly the computed ones."""
    return _asset_set(ctx, "reconciliation")


def check_coverage_assets(ctx: Context) -> str:
    """The coverage's assets are exactly the computed ones."""
    return _asset_set(ctx, "coverage")
