"""What the auditor brings besides the bundle: the nodes to ask, and an account holder's question."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RPC_TIMEOUT_S = 30.0
"""Upper bound for one RPC call to a node the auditor names."""


@dataclass(frozen=True)
class Nodes:
    """RPC endpoints the auditor trusts: a bitcoind (URL with user:password), EVM nodes.

    The reserve's Safes may live on several EVM chains; the auditor names a node per chain in
    ``evm_chains`` (chain id, URL), and each is checked to serve the chain it is named for.
    ``evm`` is a node of whichever chain it serves (it is asked), as before chains were named.
    """

    bitcoin: str | None = None
    evm: str | None = None
    services: str | None = None
    evm_chains: tuple[tuple[int, str], ...] = ()
    """(chain id, URL) of the auditor's node of each EVM chain."""

    def evm_endpoints(self) -> tuple[tuple[int | None, str], ...]:
        """Every EVM node named: (the chain id it must serve, or ``None`` for any; URL)."""
        bare: tuple[tuple[int | None, str], ...] = ((None, self.evm),) if self.evm else ()
        return (*bare, *self.evm_chains)


@dataclass(frozen=True)
class LeafQuery:
    """An account holder's question: is my account in the liability tree (with my salt)?"""

    account_id: str
    salt: bytes | None = None
    package: Mapping[str, Any] | None = None
