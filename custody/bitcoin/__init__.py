"""Bitcoin specifics of custody: vault descriptors, watch-only wallets, PSBT checks and signing."""

from custody.bitcoin.approval import ApprovedSpend, FeePolicy, Payment
from custody.bitcoin.descriptor import Branch, VaultDescriptor
from custody.bitcoin.psbt import estimate_vsize, parse_psbt, unsigned_txid
from custody.bitcoin.signer import CheckedSpend, check_psbt, sign_psbt
from custody.bitcoin.spend import (
    Spend,
    broadcast_spend,
    build_spend,
    bump_spend,
    list_spends,
    load_spend,
    sign_spend,
)
from custody.bitcoin.vault import (
    Vault,
    VaultBalance,
    checked_address,
    create_vault,
    export_vault,
    load_vault,
    next_receive_address,
    vault_balance,
)

__all__ = [
    "ApprovedSpend",
    "Branch",
    "CheckedSpend",
    "FeePolicy",
    "Payment",
    "Spend",
    "Vault",
    "VaultBalance",
    "VaultDescriptor",
    "broadcast_spend",
    "build_spend",
    "bump_spend",
    "check_psbt",
    "checked_address",
    "create_vault",
    "estimate_vsize",
    "export_vault",
    "list_spends",
    "load_spend",
    "load_vault",
    "next_receive_address",
    "parse_psbt",
    "sign_psbt",
    "sign_spend",
    "unsigned_txid",
    "vault_balance",
]
