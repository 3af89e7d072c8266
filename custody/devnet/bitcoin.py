"""A bitcoind in regtest and its JSON-RPC client.

RPC JSON is parsed with ``Decimal`` so that BTC amounts never pass through ``float``; callers turn
them into integer satoshis with ``btc_to_sats`` at once.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from custody.devnet.binaries import Binary
from custody.devnet.process import ManagedProcess, free_port
from custody.exceptions import BitcoinRPCError

SATS_PER_BTC = 100_000_000
RPC_TIMEOUT_S = 60.0
"""Upper bound for one RPC call (``generatetoaddress`` of a few hundred blocks stays far below)."""
RPC_WARMUP_CODE = -28
"""bitcoind's "loading block index / verifying blocks" code: the node is alive but not ready."""
COINBASE_MATURITY_BLOCKS = 100


def btc_to_sats(amount: Decimal | int | str) -> int:
    """Exact BTC -> satoshi conversion; refuses sub-satoshi precision instead of rounding."""
    sats = Decimal(amount) * SATS_PER_BTC
    if sats != sats.to_integral_value():
        raise ValueError(f"Amount {amount} BTC is not a whole number of satoshis.")
    return int(sats)


def sats_to_btc(sats: int) -> Decimal:
    """Exact satoshi -> BTC as a Decimal, for RPC arguments."""
    return Decimal(sats) / SATS_PER_BTC


def _decimal_as_text(value: Any) -> Any:
    """bitcoind accepts amounts as JSON strings, which keeps Decimals exact on the wire."""
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"Cannot encode {type(value).__name__} as JSON.")


class BitcoinRPC:
    """A JSON-RPC client for one bitcoind (optionally bound to one wallet)."""

    def __init__(self, url: str, user: str, password: str, *, wallet: str | None = None) -> None:
        self.url = url
        self.wallet_name = wallet
        self._auth = (user, password)
        self._endpoint = f"{url}/wallet/{wallet}" if wallet is not None else url
        self._client = httpx.Client(auth=self._auth, timeout=RPC_TIMEOUT_S)
        self._ids = 0

    def __repr__(self) -> str:
        return f"BitcoinRPC(url={self.url!r}, wallet={self.wallet_name!r})"

    def wallet(self, name: str) -> BitcoinRPC:
        """A client whose calls go to wallet ``name``."""
        return BitcoinRPC(self.url, *self._auth, wallet=name)

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method``; raise ``BitcoinRPCError`` with bitcoind's code and message on error."""
        self._ids += 1
        body = json.dumps(
            {"jsonrpc": "1.0", "id": self._ids, "method": method, "params": list(params)},
            default=_decimal_as_text,
        )
        try:
            response = self._client.post(
                self._endpoint, content=body, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise BitcoinRPCError(
                method, None, f"bitcoind at {self.url} is unreachable: {exc}"
            ) from None
        try:
            payload = json.loads(response.text, parse_float=Decimal)
        except json.JSONDecodeError:
            raise BitcoinRPCError(
                method,
                response.status_code,
                f"bitcoind answered HTTP {response.status_code}: {response.text[:200]}",
            ) from None
        error = payload.get("error")
        if error:
            raise BitcoinRPCError(method, error.get("code"), error.get("message", ""))
        return payload["result"]

    def close(self) -> None:
        self._client.close()


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
