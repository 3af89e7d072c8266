"""Who pays a Safe transaction's gas when no relayer is named: an account the node signs for.

A Safe pays no gas itself: an externally owned account sends its ``execTransaction`` and pays
for it. The treasury names that account in its settings; without one, the node's own first
account is used, which on a devnet is a funded development account. Choosing it is an EVM
concern, so it lives here and the treasury only asks.
"""

from __future__ import annotations

from custody.ethereum.chain import EthChain


def node_gas_payer(chain: EthChain) -> str | None:
    """The first account the node signs for, or ``None`` when it signs for none."""
    accounts = chain.accounts()
    return accounts[0] if accounts else None


__all__ = ["node_gas_payer"]
