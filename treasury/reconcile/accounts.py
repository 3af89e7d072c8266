"""The ledger accounts the reconciler books into, opened idempotently on first use.

Per vault and asset, the holdings account (an asset) is what the chain balance is compared with;
per asset, deposits are credited to unallocated reserve inflows (equity) until allocated, and
outflows are debited to approved outflows or, when nothing in the system explains them, to a
suspense account that auditors must clear. Network fees of spends are debited to a fees expense.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from custody.clock import Clock
from treasury import ledger
from treasury.ledger import AccountType, AssetSpec
from treasury.ledger.accounts import CODE_PATTERN
from treasury.reconcile.errors import ReconcileConfigError

ACTOR = "reconciler"
"""The audit actor of everything the reconciler books."""


def holdings_account(scope: str, asset_code: str) -> str:
    """The holdings account of one vault (``scope``) in one asset, e.g. ``vault:btc:reserve:BTC``.

    Wire the spend workflow's ``SpendAccounts.holdings`` to this code, so that spends and deposits
    move the same balance the reconciler compares with the chain.
    """
    code = f"vault:{scope}:{asset_code}"
    if not CODE_PATTERN.match(code):
        raise ReconcileConfigError(
            f"The vault scope {scope!r} does not make a valid account code ({code!r}); vault "
            "names must use letters, digits and ':._/-' only."
        )
    return code


def inflows_account(asset_code: str) -> str:
    """Where deposits are credited until the treasury allocates them."""
    return f"reserve:unallocated-inflows:{asset_code}"


def approved_outflows_account(asset_code: str) -> str:
    """Outflows approved in custody but not booked by a spend proposal."""
    return f"reserve:approved-outflows:{asset_code}"


def suspense_account(asset_code: str) -> str:
    """Outflows nothing in the system explains: booked so the books match the chain, and alarmed."""
    return f"reserve:suspense-outflows:{asset_code}"


def fees_account(asset_code: str) -> str:
    """Network fees that spends pay from the vault (``SpendAccounts.fees``)."""
    return f"fees:{asset_code}"


def ensure_accounts(session: Session, scope: str, asset: AssetSpec, clock: Clock) -> str:
    """Register the asset and open the five accounts (idempotent); returns the holdings code."""
    ledger.register_asset(session, asset, actor=ACTOR, clock=clock)
    holdings = holdings_account(scope, asset.code)
    wanted = (
        (holdings, f"Holdings of vault {scope}", AccountType.ASSET),
        (inflows_account(asset.code), "Unallocated reserve inflows", AccountType.EQUITY),
        (approved_outflows_account(asset.code), "Approved outflows", AccountType.EXPENSE),
        (suspense_account(asset.code), "Unexplained outflows (suspense)", AccountType.EXPENSE),
        (fees_account(asset.code), f"Network fees ({asset.code})", AccountType.EXPENSE),
    )
    for code, name, kind in wanted:
        ledger.open_account(
            session,
            code,
            name=name[:200],
            account_type=kind,
            asset_code=asset.code,
            external_ref=scope if code == holdings else None,
            actor=ACTOR,
            clock=clock,
        )
    return holdings
