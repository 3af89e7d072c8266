"""The devnets together: bitcoind (reserve BTC), anvil (reserve ETH), a second anvil for the
government's services chain, and a third anvil standing for BNB Chain (the reserve's second EVM
chain, under a chain id no real chain uses). ``treasury devnet up`` and the demo run this stack.

While a stack runs in the foreground it writes ``devnet.json`` to the nodes folder so that
``treasury devnet status`` (another process) can find it; the file is removed on stop.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from custody.devnet.binaries import NodeBinaries, nodes_dir
from custody.devnet.bitcoin import COINBASE_MATURITY_BLOCKS, BitcoinNode
from custody.devnet.evm import BNB_DEVNET_CHAIN_ID, RESERVE_CHAIN_ID, SERVICES_CHAIN_ID, EvmNode

Log = Callable[[str], None]


@dataclass(frozen=True)
class StackInfo:
    """What another process needs to reach a running stack (no secrets beyond the devnet's RPC)."""

    pid: int
    bitcoin_rpc_url: str
    bitcoin_rpc_user: str
    bitcoin_rpc_password: str = field(repr=False)
    reserve_rpc_url: str
    services_rpc_url: str
    bnb_rpc_url: str | None = None
    """The BNB devnet's node (``None`` in a state file written before it existed)."""


def state_file() -> Path:
    return nodes_dir() / "devnet.json"


def read_state() -> StackInfo | None:
    """The running stack's info, or ``None`` when none runs (a stale file from a dead pid is ignored)."""
    path = state_file()
    if not path.is_file():
        return None
    fields = set(StackInfo.__dataclass_fields__)
    info = StackInfo(**{k: v for k, v in json.loads(path.read_text()).items() if k in fields})
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return None
    return info


class DevnetStack:
    """Start, describe and stop the devnet nodes as one unit."""

    def __init__(self, binaries: NodeBinaries) -> None:
        self.bitcoin = BitcoinNode(binaries.bitcoind)
        self.reserve = EvmNode(binaries.anvil, chain_id=RESERVE_CHAIN_ID)
        self.services = EvmNode(binaries.anvil, chain_id=SERVICES_CHAIN_ID)
        self.bnb = EvmNode(binaries.anvil, chain_id=BNB_DEVNET_CHAIN_ID)
        self._publish_state = False

    @property
    def evm_nodes(self) -> tuple[EvmNode, ...]:
        """The anvils: the reserve's, the services chain's and the BNB devnet's."""
        return (self.reserve, self.services, self.bnb)

    def start(self, log: Log, *, publish_state: bool = False) -> None:
        """Start every node (stopping any already started if one fails) and mature some coins."""
        try:
            for node in (self.bitcoin, *self.evm_nodes):
                node.start()
                log(f"started {node!r}")
            self.bitcoin.mine(COINBASE_MATURITY_BLOCKS + 1)
        except BaseException:
            self.stop()
            raise
        if publish_state:
            self._publish_state = True
            info = StackInfo(
                pid=os.getpid(),
                bitcoin_rpc_url=self.bitcoin.rpc_url,
                bitcoin_rpc_user=self.bitcoin.rpc_user,
                bitcoin_rpc_password=self.bitcoin.rpc_password,
                reserve_rpc_url=self.reserve.rpc_url,
                services_rpc_url=self.services.rpc_url,
                bnb_rpc_url=self.bnb.rpc_url,
            )
            state_file().parent.mkdir(parents=True, exist_ok=True)
            state_file().write_text(json.dumps(asdict(info), indent=2))
            state_file().chmod(0o600)

    def stop(self) -> None:
        for node in (*reversed(self.evm_nodes), self.bitcoin):
            node.stop()
        if self._publish_state:
            with contextlib.suppress(FileNotFoundError):
                state_file().unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
