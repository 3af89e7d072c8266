"""The EVM reserve chains as configuration: each chain's name, id, node, depth and native coin.

The reserve holds Safes on more than one EVM chain (Ethereum, and BNB Chain where the national
stablecoin runs). Nothing below the edges branches on which chain it is: each chain is one
``EvmChainSettings`` value (``treasury.settings`` reads them), and the reconciler, the attestation,
the spenders and the verifier take the list. The reserve's first chain keeps its historic
settings (``TREASURY_RESERVE_RPC_URL``, ``TREASURY_RECONCILE_ETH_MIN_CONFIRMATIONS``, native coin
``ETH``); further chains are listed in ``TREASURY_EVM_CHAINS``.

A chain's configured id is checked against the node's own answer before anything is read or
signed on it: a URL pointing at another chain (a copy-paste slip, or a production node where a
devnet was meant) is refused, never read as the configured chain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eth_utils.address import is_checksum_address

from custody.ethereum.chain import EthChain
from custody.ethereum.rpc import EvmRPC
from custody.exceptions import CustodyError
from treasury.workflow_exceptions import NotConfiguredError

RESERVE_CHAIN_NAME = "reserve"
"""The name of the reserve's first EVM chain (configured by the historic variables)."""
DEFAULT_NATIVE_ASSET = "ETH"
NATIVE_DECIMALS = 18
"""Every EVM chain's native coin has 18 decimals (wei, or BNB's jager)."""
CHAIN_NAME_PATTERN = re.compile(r"[a-z][a-z0-9]{0,15}")
"""A chain's name: lowercase letters and digits, as it appears in variable names."""
ASSET_CODE_PATTERN = re.compile(r"[A-Z][A-Z0-9]{1,9}")
"""A native coin's asset code: 2-10 capital letters or digits (``ETH``, ``BNB``)."""
RESERVED_ASSET_CODES = frozenset({"BTC"})
"""Codes no EVM chain's native coin may take (they name another chain's asset)."""
DEFAULT_RELAYER_MIN_BALANCE = 5 * 10**16
"""Below this many base units (0.05 coin) the relayer's low-balance alarm opens: about ten Safe
executions at a busy mainnet's gas price, time enough to top it up."""
MAX_RELAYER_MIN_BALANCE = 10**24
"""The largest threshold accepted (a million coins): anything above is a slip of the decimals."""


class ChainConfigError(NotConfiguredError, ValueError):
    """The chain list is inconsistent (a name, id or native coin twice, or a malformed one)."""


class ChainMismatchError(NotConfiguredError):
    """A chain's node answers with another chain id than the one configured for it."""


@dataclass(frozen=True)
class EvmChainSettings:
    """One EVM reserve chain as configured."""

    name: str
    """Short name (``reserve``, ``bnb``): labels, variables, and the devnet's node."""
    rpc_url: str | None
    """The chain's JSON-RPC URL (``None``: no node configured; reading it raises)."""
    chain_id: int | None = None
    """The chain's EIP-155 id; ``None`` for the first chain when not stated (the node's answer)."""
    confirmations: int = 1
    """Blocks a movement or snapshot must be deep before it is booked or attested."""
    native_asset: str = DEFAULT_NATIVE_ASSET
    """The asset code of the chain's native coin in the ledger and the attestation registry."""
    relayer: str | None = None
    """The account that sends the Safes' executions and pays their gas, checksummed (``None``:
    the node's own first account, a devnet's convenience, which the reconciler does not watch)."""
    relayer_min_balance: int = DEFAULT_RELAYER_MIN_BALANCE
    """Base units of the native coin below which the relayer's low-balance alarm opens."""
    safe_vault: str | None = None
    """The name of the Safe that pays this chain's coin and tokens when the chain has several
    (``None``: the only one there is, or the one ``TREASURY_SAFE_VAULT`` names on this chain)."""

    def __post_init__(self) -> None:
        if not CHAIN_NAME_PATTERN.fullmatch(self.name):
            raise ChainConfigError(
                f"The chain name {self.name!r} must be 1-16 lowercase letters or digits, "
                "starting with a letter."
            )
        if not ASSET_CODE_PATTERN.fullmatch(self.native_asset) or (
            self.native_asset in RESERVED_ASSET_CODES
        ):
            raise ChainConfigError(
                f"The native asset {self.native_asset!r} of chain {self.name!r} must be 2-10 "
                f"capital letters or digits, and not {', '.join(sorted(RESERVED_ASSET_CODES))}."
            )
        if self.chain_id is not None and (isinstance(self.chain_id, bool) or self.chain_id < 1):
            raise ChainConfigError(f"The chain id of {self.name!r} must be a positive integer.")
        if self.confirmations < 1:
            raise ChainConfigError(f"The confirmations of {self.name!r} must be at least 1.")
        if self.relayer is not None and (
            not is_checksum_address(self.relayer) or int(self.relayer, 16) == 0
        ):
            raise ChainConfigError(
                f"The relayer of {self.name!r} must be a checksummed Ethereum address other than "
                f"zero, not {self.relayer!r}."
            )
        if (
            isinstance(self.relayer_min_balance, bool)
            or not isinstance(self.relayer_min_balance, int)
            or not 0 <= self.relayer_min_balance <= MAX_RELAYER_MIN_BALANCE
        ):
            raise ChainConfigError(
                f"The relayer's minimum balance of {self.name!r} must be a whole number of base "
                f"units from 0 to {MAX_RELAYER_MIN_BALANCE}, not {self.relayer_min_balance!r}."
            )

    def client(self) -> EthChain:
        """A client of the chain's node, checked to serve the configured chain id."""
        if self.rpc_url is None:
            raise NotConfiguredError(f"No node is configured for the EVM chain {self.name!r}.")
        chain = EthChain(EvmRPC(self.rpc_url))
        try:
            served = chain.chain_id
        except CustodyError as exc:
            raise NotConfiguredError(
                f"The node of the EVM chain {self.name!r} at {self.rpc_url} did not answer "
                f"its chain id: {exc}"
            ) from None
        if self.chain_id is not None and served != self.chain_id:
            raise ChainMismatchError(
                f"The node configured for the EVM chain {self.name!r} at {self.rpc_url} serves "
                f"chain {served}, not the configured chain {self.chain_id}."
            )
        return chain


def check_chains(chains: Sequence[EvmChainSettings]) -> tuple[EvmChainSettings, ...]:
    """``chains`` as a tuple, refusing a name, a chain id or a native coin listed twice.

    Two chains with one native code would add two coins into one ledger asset and one registry
    entry; two entries of one chain id would reconcile its Safes twice.
    """
    for what, values in (
        ("name", [c.name for c in chains]),
        ("chain id", [str(c.chain_id) for c in chains if c.chain_id is not None]),
        ("native asset", [c.native_asset for c in chains]),
    ):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ChainConfigError(
                f"The EVM chains list the {what} {', '.join(repeated)} more than once."
            )
    return tuple(chains)


@dataclass(frozen=True)
class ConnectedChain:
    """A configured chain with a client of its node (whose chain id has been checked)."""

    settings: EvmChainSettings
    chain: EthChain

    @property
    def chain_id(self) -> int:
        return self.chain.chain_id

    @property
    def native_asset(self) -> str:
        return self.settings.native_asset


def connect(chains: Iterable[EvmChainSettings]) -> tuple[ConnectedChain, ...]:
    """A checked client of every chain with a node (chains without one are left out)."""
    connected = tuple(
        ConnectedChain(chain, chain.client()) for chain in chains if chain.rpc_url is not None
    )
    ids = [c.chain_id for c in connected]
    if len(set(ids)) != len(ids):
        raise ChainConfigError(
            "Two configured EVM chains' nodes serve the same chain id "
            f"({', '.join(str(i) for i in sorted({i for i in ids if ids.count(i) > 1}))})."
        )
    return connected


def chain_for(chains: Sequence[EvmChainSettings], chain_id: int) -> EthChain:
    """A checked client of the configured chain ``chain_id`` (a Safe's), or what to configure.

    A chain configured without an id (the first) is asked for its id, so a Safe of chain 31337
    finds the reserve node that serves 31337 and is refused one that serves another chain.
    """
    for settings in chains:
        if settings.chain_id == chain_id:
            return settings.client()
    for settings in chains:
        if settings.chain_id is None and settings.rpc_url is not None:
            chain = settings.client()
            if chain.chain_id == chain_id:
                return chain
    names = (
        ", ".join(
            f"{c.name} ({c.chain_id or 'id from its node'}"
            f"{'' if c.rpc_url else ', no node configured'})"
            for c in chains
        )
        or "none"
    )
    raise NotConfiguredError(
        f"No node of EVM chain {chain_id} is configured (chains: {names}); set the chain's RPC "
        "URL (TREASURY_RESERVE_RPC_URL for the first, else TREASURY_EVM_<NAME>_RPC_URL with "
        "the chain in TREASURY_EVM_CHAINS), or start `treasury devnet up`."
    )


__all__ = [
    "DEFAULT_NATIVE_ASSET",
    "DEFAULT_RELAYER_MIN_BALANCE",
    "MAX_RELAYER_MIN_BALANCE",
    "NATIVE_DECIMALS",
    "RESERVE_CHAIN_NAME",
    "ChainConfigError",
    "ChainMismatchError",
    "ConnectedChain",
    "EvmChainSettings",
    "chain_for",
    "check_chains",
    "connect",
]
