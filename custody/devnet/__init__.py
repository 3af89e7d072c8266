"""Real devnet nodes for development, tests and the demo: bitcoind in regtest and anvils."""

from custody.devnet.binaries import Binary, NodeBinaries, find_binaries
from custody.devnet.bitcoin import BitcoinNode
from custody.devnet.evm import (
    BNB_DEVNET_CHAIN_ID,
    BNB_DEVNET_NATIVE_ASSET,
    RESERVE_CHAIN_ID,
    SERVICES_CHAIN_ID,
    EvmNode,
)
from custody.devnet.process import install_signal_handlers, stop_all
from custody.devnet.stack import DevnetStack

__all__ = [
    "BNB_DEVNET_CHAIN_ID",
    "BNB_DEVNET_NATIVE_ASSET",
    "RESERVE_CHAIN_ID",
    "SERVICES_CHAIN_ID",
    "Binary",
    "BitcoinNode",
    "DevnetStack",
    "EvmNode",
    "NodeBinaries",
    "find_binaries",
    "install_signal_handlers",
    "stop_all",
]
