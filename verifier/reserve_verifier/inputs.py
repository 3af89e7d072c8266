"""What the auditor brings besides the bundle: the nodes to ask, and an account holder's question."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RPC_TIMEOUT_S = 30.0
"""Upper bound for one RPC call to a node the auditor names."""


@dataclass(frozen=True)
class Nodes:
    """RPC endpoints the auditor trusts: a bitcoind (URL with user:password), EVM nodes."""

    bitcoin: str | None = None
    evm: str | None = None
    services: str | None = None


@dataclass(frozen=True)
class LeafQuery:
    """An account holder's question: is my account in the liability tree (with my salt)?"""

    account_id: str
    salt: bytes | None = None
    package: Mapping[str, Any] | None = None
