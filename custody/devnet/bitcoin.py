"""A bitcoind in regtest on free ports in a temp data dir: started, mined and stopped for tests and the demo."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from pathlib import Path

from custody.bitcoin.rpc import BitcoinRPC
from custody.devnet.binaries import Binary
from custody.devnet.process import ManagedProcess, free_port
from custody.exceptions import BitcoinRPCError

RPC_WARMUP_CODE = -28
"""bitcoind's "loading block index / verifying blocks" code: the node is alive but not ready."""
COINBASE_MATURITY_BLOCKS = 100


class BitcoinNode(ManagedProcess):
    """bitcoind in regtest on free ports in a temp data dir, with a random RPC password."""

    name = "bitcoind"

    def __init__(
        self,
        bitcoind: Binary,
        *,
        datadir: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(datadir)
        self.binary = bitcoind
        self.rpc_port = free_port()
        self.p2p_port = free_port()
        self.rpc_user = "treasury"
        self._rpc_password = secrets.token_hex(16)
        self._extra_args = tuple(extra_args)
        self.rpc = BitcoinRPC(self.rpc_url, self.rpc_user, self._rpc_password)

    def __repr__(self) -> str:
        return f"BitcoinNode(rpc_url={self.rpc_url!r}, pid={self.pid})"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def rpc_password(self) -> str:
        """The RPC password, for clients that must connect on their own (never logged)."""
        return self._rpc_password

    def _argv(self) -> Sequence[str]:
        return self.binary.command(
            "-regtest",
            f"-datadir={self.datadir}",
            f"-rpcport={self.rpc_port}",
            f"-port={self.p2p_port}",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            f"-rpcuser={self.rpc_user}",
            f"-rpcpassword={self._rpc_password}",
            "-listen=0",
            "-server=1",
            "-printtoconsole=0",
            "-fallbackfee=0.0002",
            "-addresstype=bech32",
            "-changetype=bech32",
            "-rpcworkqueue=64",
            *self._extra_args,
        )

    def _ready(self) -> bool:
        try:
            self.rpc.call("getblockchaininfo")
        except BitcoinRPCError as exc:
            if exc.code is None or exc.code == RPC_WARMUP_CODE:
                return False
            raise
        return True

    def stop(self) -> None:
        """Ask bitcoind to stop over RPC first (clean shutdown), then fall back to signals."""
        if self.running:
            with contextlib.suppress(BitcoinRPCError):  # signals below take over
                self.rpc.call("stop")
        super().stop()

    def mine(self, blocks: int, address: str | None = None) -> list[str]:
        """Mine ``blocks`` blocks to ``address`` (a throwaway wallet address by default)."""
        if address is None:
            address = self.miner_address()
        hashes: list[str] = self.rpc.call("generatetoaddress", blocks, address)
        self.sync_wallets()
        return hashes

    def sync_wallets(self) -> None:
        """Wait until every wallet has processed the blocks and transactions the node has seen.

        bitcoind tells its wallets about new blocks and mempool transactions asynchronously; a
        wallet queried right after ``generatetoaddress`` or another wallet's send may not know
        yet. This is the hidden RPC Bitcoin Core's own functional tests use for the same wait.
        """
        self.rpc.call("syncwithvalidationinterfacequeue")

    def miner_address(self) -> str:
        """A bech32 address in the node's own ``miner`` wallet, created on first use."""
        wallets = self.rpc.call("listwallets")
        if "miner" not in wallets:
            self.rpc.call("createwallet", "miner")
        address: str = self.rpc.wallet("miner").call("getnewaddress", "", "bech32")
        return address
