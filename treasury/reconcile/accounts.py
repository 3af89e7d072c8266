"""The ledger accounts the reconciler books into, opened idempotently on first use.

Per vault and asset, the holdings account (an asset) is what the chain balance is compared with;
per asset, deposits are credited to unallocated reserve inflows (equity) until allocated, and
outflows are debited to approved outflows or, when nothing in the system explains them, to a
suspense account that auditors must clear. Network fees of spends are debited to a fees expense.

Per chain and relayer, the relayer's float (an asset, in the chain's native coin) is what its
chain balance is compared with: funded from ``operations:relayer-funding:<asset>`` (equity: the
treasury's operating money, not the reserve's inflows), spent on Safe executions' gas into the same
``fees:<asset>`` as the spends' fees, and on anything else into
``operations:relayer-unexplained:<asset>`` (an expense that raises an alarm).
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


def relayer_scope(chain_id: int, relayer: str) -> str:
    """The scope of a chain's relayer in alarms and bookings: ``relayer:<chain id>:<address>``."""
    return f"relayer:{chain_id}:{relayer}"


def relayer_account(chain_id: int, relayer: str, asset_code: str) -> str:
    """The relayer's float: ``relayer:<chain id>:<address>:<asset>`` (an asset account)."""
    code = f"{relayer_scope(chain_id, relayer)}:{asset_code}"
    if not CODE_PATTERN.match(code):
        raise ReconcileConfigError(f"The relayer {relayer!r} does not make a valid account code.")
    return code


def relayer_funding_account(asset_code: str) -> str:
    """Where top-ups of a relayer come from: the treasury's operating funds (equity)."""
    return f"operations:relayer-funding:{asset_code}"


def relayer_unexplained_account(asset_code: str) -> str:
    """What a relayer spent on anything but a reserve Safe's execution (alarmed)."""
    return f"operations:relayer-unexplained:{asset_code}"


def ensure_relayer_accounts(
    session: Session, chain_id: int, relayer: str, asset: AssetSpec, clock: Clock
) -> str:
    """Register the asset and open the relayer's four accounts (idempotent); returns the float."""
    ledger.register_asset(session, asset, actor=ACTOR, clock=clock)
    float_code = relayer_account(chain_id, relayer, asset.code)
    wanted = (
        (float_code, f"Relayer {relayer} on chain {chain_id}", AccountType.ASSET),
        (relayer_funding_account(asset.code), "Relayer funding", AccountType.EQUITY),
        (fees_account(asset.code), f"Network fees ({asset.code})", AccountType.EXPENSE),
        (
            relayer_unexplained_account(asset.code),
            "Unexplained relayer outflows",
            AccountType.EXPENSE,
        ),
    )
    for code, name, kind in wanted:
        ledger.open_account(
            session,
            code,
            name=name[:200],
            account_type=kind,
            asset_code=asset.code,
            external_ref=relayer_scope(chain_id, relayer) if code == float_code else None,
            actor=ACTOR,
            clock=clock,
        )
    return float_code
