"""``treasury devnet``: fetch, run and inspect the local devnets."""

from __future__ import annotations

import signal
import threading

import typer

from custody.bitcoin.rpc import BitcoinRPC
from custody.devnet import install_signal_handlers
from custody.devnet.binaries import find_binaries, nodes_dir
from custody.devnet.stack import DevnetStack, read_state
from custody.ethereum.rpc import EvmRPC
from custody.exceptions import CustodyError
from treasury.cli.context import fail

app = typer.Typer(
    help="Fetch, run and inspect the local Bitcoin and EVM devnets.", no_args_is_help=True
)


@app.command()
def install() -> None:
    """Find bitcoind and anvil ($BITCOIND/$BITCOIN_CLI/$ANVIL, PATH), fetching missing ones into .nodes/."""
    try:
        binaries = find_binaries(install=True, log=typer.echo)
    except CustodyError as exc:
        raise fail(exc) from None
    for binary in (binaries.bitcoind, binaries.bitcoin_cli, binaries.anvil):
        typer.echo(f"{binary.name:12} {binary.version():48} from {binary.source}")


@app.command()
def up() -> None:
    """Run bitcoind (regtest) and the reserve's, services chain's and BNB devnet's anvils until Ctrl-C."""
    install_signal_handlers()
    try:
        binaries = find_binaries(install=True, log=typer.echo)
        stack = DevnetStack(binaries)
        stack.start(typer.echo, publish_state=True)
    except CustodyError as exc:
        raise fail(exc) from None
    with stack:
        typer.echo(f"bitcoind (regtest)     {stack.bitcoin.rpc_url}  user {stack.bitcoin.rpc_user}")
        typer.echo(
            f"reserve chain (anvil)  {stack.reserve.rpc_url}  chain id {stack.reserve.chain_id}"
        )
        typer.echo(
            f"services chain (anvil) {stack.services.rpc_url}  chain id {stack.services.chain_id}"
        )
        typer.echo(f"BNB devnet (anvil)     {stack.bnb.rpc_url}  chain id {stack.bnb.chain_id}")
        typer.echo("Running; `treasury devnet status` in another shell; Ctrl-C stops them all.")
        stopped = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stopped.set())
        while not stopped.wait(1.0):
            if not all(node.running for node in (stack.bitcoin, *stack.evm_nodes)):
                typer.secho(
                    "a node exited on its own; stopping the others", err=True, fg=typer.colors.RED
                )
                raise typer.Exit(code=1)
        typer.echo("Stopping devnets.")


@app.command()
def status() -> None:
    """Show which node binaries would be used and whether a `treasury devnet up` is running."""
    try:
        binaries = find_binaries(install=False)
        for binary in (binaries.bitcoind, binaries.anvil):
            typer.echo(f"{binary.name:9} {binary.version():48} from {binary.source}")
    except CustodyError as exc:
        typer.echo(f"binaries: {exc}")
    info = read_state()
    if info is None:
        typer.echo(
            f"No devnet is running (no live `treasury devnet up` recorded in {nodes_dir()})."
        )
        raise typer.Exit(code=3)
    btc = BitcoinRPC(info.bitcoin_rpc_url, info.bitcoin_rpc_user, info.bitcoin_rpc_password)
    try:
        height = btc.call("getblockcount")
        typer.echo(f"bitcoind       {info.bitcoin_rpc_url}  height {height}")
        for label, url in (
            ("reserve", info.reserve_rpc_url),
            ("services", info.services_rpc_url),
            ("bnb", info.bnb_rpc_url),
        ):
            if url is None:
                continue
            evm = EvmRPC(url)
            typer.echo(f"{label:14} {url}  chain id {evm.chain_id()}  height {evm.block_number()}")
    except CustodyError as exc:
        raise fail(exc) from None
