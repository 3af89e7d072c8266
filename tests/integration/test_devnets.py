"""The devnets are real: bitcoind mines and confirms, anvil executes and returns receipts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from custody.bitcoin.rpc import btc_to_sats, sats_to_btc
from custody.devnet import BitcoinNode, EvmNode, NodeBinaries
from custody.exceptions import BitcoinRPCError, NodeStartError

ANVIL_DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
"""anvil's first public development key (test money on a devnet, published by Foundry)."""


def test_bitcoind_mines_101_blocks_and_confirms_a_bech32_payment(bitcoin_node: BitcoinNode) -> None:
    """Mining 101 blocks matures a coinbase, which pays a bech32 address and confirms in one block."""
    rpc = bitcoin_node.rpc
    rpc.call("createwallet", "devnet-payee")
    payee = rpc.wallet("devnet-payee")
    address = payee.call("getnewaddress", "", "bech32")
    assert address.startswith("bcrt1q")
    start = rpc.call("getblockcount")
    bitcoin_node.mine(101)
    assert rpc.call("getblockcount") == start + 101

    amount_sats = 12_345_678
    txid = rpc.wallet("miner").call("sendtoaddress", address, sats_to_btc(amount_sats))
    bitcoin_node.sync_wallets()
    assert payee.call("gettransaction", txid)["confirmations"] == 0
    bitcoin_node.mine(1)
    tx = payee.call("gettransaction", txid)
    assert tx["confirmations"] == 1
    assert btc_to_sats(tx["amount"]) == amount_sats
    assert btc_to_sats(payee.call("getbalance")) == amount_sats


def test_bitcoin_rpc_errors_carry_code_and_message(bitcoin_node: BitcoinNode) -> None:
    """An RPC error surfaces bitcoind's own code, not a generic failure."""
    with pytest.raises(BitcoinRPCError) as info:
        bitcoin_node.rpc.call("getblockhash", 10**6)
    assert info.value.code == -8
    assert "out of range" in info.value.message


def test_anvil_transfers_eth_and_returns_a_receipt(evm_node: EvmNode) -> None:
    """A locally signed ETH transfer on anvil is mined and its receipt shows success."""
    w3 = Web3(Web3.HTTPProvider(evm_node.rpc_url))
    sender = Account.from_key(ANVIL_DEV_KEY_0)
    recipient = Account.create().address
    value_wei = 1_234_567_890_123_456_789
    tx = {
        "to": recipient,
        "value": value_wei,
        "gas": 21_000,
        "maxFeePerGas": 2 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "nonce": w3.eth.get_transaction_count(sender.address),
        "chainId": w3.eth.chain_id,
    }
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    assert w3.eth.get_balance(recipient) == value_wei


def test_services_chain_has_its_own_chain_id(evm_node: EvmNode, services_node: EvmNode) -> None:
    """The services chain is a separate EVM chain, not an alias of the reserve's."""
    assert evm_node.rpc.chain_id() == 31337
    assert services_node.rpc.chain_id() == 31338
    assert evm_node.rpc_url != services_node.rpc_url


def test_a_node_that_dies_at_start_reports_its_own_stderr(binaries: NodeBinaries) -> None:
    """A bitcoind given a bad flag fails fast with its own error text, and leaves no temp dir."""
    node = BitcoinNode(binaries.bitcoind, extra_args=["-nosuchoption=1"])
    with pytest.raises(NodeStartError, match="nosuchoption"):
        node.start(timeout_s=20)
    assert not node.running
    assert not node.datadir.exists()


def test_sigint_mid_run_leaves_no_node_and_no_datadir(tmp_path: Path) -> None:
    """SIGINT to a pytest run holding live nodes stops them and removes their temp dirs."""
    marker = tmp_path / "started"
    test_file = tmp_path / "test_hold.py"
    test_file.write_text(
        textwrap.dedent(
            f"""
            import pathlib, time

            def test_hold(bitcoin_node, evm_node):
                pathlib.Path({str(marker)!r}).write_text(
                    f"{{bitcoin_node.pid}} {{evm_node.pid}} {{bitcoin_node.datadir}} {{evm_node.datadir}}"
                )
                time.sleep(120)
            """
        )
    )
    tests = Path(__file__).resolve().parents[1]
    (tmp_path / "conftest.py").write_text((tests / "conftest.py").read_text())
    # The suite's conftest imports its helpers from tests/support (pyproject's pythonpath).
    support = os.pathsep.join(filter(None, [str(tests / "support"), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": support},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "nodes did not start in time"
        time.sleep(0.1)
    btc_pid, evm_pid, btc_dir, evm_dir = marker.read_text().split()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    for pid in (int(btc_pid), int(evm_pid)):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not Path(btc_dir).exists()
    assert not Path(evm_dir).exists()
