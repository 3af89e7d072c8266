"""The state ledger: double entry in integer base units, balanced per asset, append-only.

Call these with a SQLAlchemy ``Session`` inside the caller's transaction; they flush, never
commit. Every write takes an idempotency key (entries) or a code (assets, accounts).

One concept per module: ``models`` (tables), ``amounts`` (exact integers and their storage),
``accounts`` (assets and accounts), ``entries`` (entry values, validation, payload hash),
``journal`` (serialised, idempotent, checked writes), ``posting`` (recording entries),
``batch`` (recording many entries in bulk with the same checks),
``pending`` (two-phase post or void), ``reversal`` (correcting entries), ``entry_queries`` and
``balances`` (reads). This module is their public API.
"""

from treasury.ledger.accounts import (
    BTC,
    ETH,
    AccountRecord,
    AssetSpec,
    erc20_asset,
    get_account,
    get_asset,
    list_accounts,
    open_account,
    register_asset,
)
from treasury.ledger.amounts import AMOUNT_LIMIT, Amount, format_amount
from treasury.ledger.balances import (
    AssetTotals,
    Balance,
    Cutoff,
    Totals,
    balance,
    balances,
    trial_balance,
)
from treasury.ledger.batch import BatchResult, record_batch
from treasury.ledger.entries import (
    MAX_LEGS_PER_ENTRY,
    EntryRecord,
    EntryRequest,
    Leg,
    payload_hash,
)
from treasury.ledger.entry_queries import find_entry, get_entry, list_entries
from treasury.ledger.models import (
    LEDGER_TABLES,
    Account,
    AccountType,
    Asset,
    EntryKind,
    JournalEntry,
    Posting,
    Side,
)
from treasury.ledger.pending import PendingState, pending_state, post_pending, void_pending
from treasury.ledger.posting import record_entries, record_entry
from treasury.ledger.reversal import reverse

__all__ = [
    "AMOUNT_LIMIT",
    "BTC",
    "ETH",
    "LEDGER_TABLES",
    "MAX_LEGS_PER_ENTRY",
    "Account",
    "AccountRecord",
    "AccountType",
    "Amount",
    "Asset",
    "AssetSpec",
    "AssetTotals",
    "Balance",
    "BatchResult",
    "Cutoff",
    "EntryKind",
    "EntryRecord",
    "EntryRequest",
    "JournalEntry",
    "Leg",
    "PendingState",
    "Posting",
    "Side",
    "Totals",
    "balance",
    "balances",
    "erc20_asset",
    "find_entry",
    "format_amount",
    "get_account",
    "get_asset",
    "get_entry",
    "list_accounts",
    "list_entries",
    "open_account",
    "payload_hash",
    "pending_state",
    "post_pending",
    "record_batch",
    "record_entries",
    "record_entry",
    "register_asset",
    "reverse",
    "trial_balance",
    "void_pending",
]
