"""An anvil EVM devnet on a free port, for tests and the demo.

Three of them run side by side: the reserve's Ethereum devnet (anvil's default chain id), the
government's services chain, which carries proof-of-reserves anchors under its own chain id, and
a second reserve chain standing for BNB Chain (where the national stablecoin runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from custody.devnet.binaries import Binary
from custody.devnet.process import ManagedProcess, free_port
from custody.ethereum.rpc import EvmRPC
from custody.exceptions import EvmRPCError

RESERVE_CHAIN_ID = 31337
"""anvil's default chain id; the reserve's Ether and tokens live here."""
SERVICES_CHAIN_ID = 31338
"""The government's services chain (an EVM chain of its own) in the devnet."""
BNB_DEVNET_CHAIN_ID = 31339
"""The devnet's stand-in for BNB Chain: deliberately neither BNB Chain's 56 nor its public
testnet's 97, so nothing a devnet signs (a SafeTx, an EIP-1271 message: both commit to the chain
id) can be replayed on a real chain."""
BNB_DEVNET_NATIVE_ASSET = "BNB"
"""The asset code of the BNB devnet's native coin."""
DEV_MNEMONIC = "test test test test test test test test test test test junk"
"""anvil's public development mnemonic: its funded accounts are test money only, never custody."""


class EvmNode(ManagedProcess):
    """anvil on a free port with its own state dir and chain id."""

    name = "anvil"

    def __init__(
        self,
        anvil: Binary,
        *,
        chain_id: int = RESERVE_CHAIN_ID,
        datadir: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(datadir)
        self.binary = anvil
        self.chain_id = chain_id
        self.port = free_port()
        self._extra_args = tuple(extra_args)
        self.rpc = EvmRPC(self.rpc_url)

    def __repr__(self) -> str:
        return f"EvmNode(rpc_url={self.rpc_url!r}, chain_id={self.chain_id}, pid={self.pid})"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _argv(self) -> Sequence[str]:
        return self.binary.command(
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--mnemonic",
            DEV_MNEMONIC,
            "--config-out",
            str(self.datadir / "anvil.json"),
            *self._extra_args,
        )

    def _ready(self) -> bool:
        try:
            self.rpc.call("eth_chainId")
        except EvmRPCError as exc:
            if exc.code is None:
                return False
            raise
        return True

    def dev_accounts(self) -> list[str]:
        """anvil's funded development accounts (test money only)."""
        accounts: list[str] = self.rpc.call("eth_accounts")
        return accounts
