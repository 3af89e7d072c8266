"""A throwaway ERC-20 for devnets, compiled from our Vyper source with the PyPI ``vyper`` compiler.

Only tests and demos use it: real tokens are deployed by their issuers. ``vyper`` is a
development dependency, imported when a token is deployed.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.resources import files

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address

from custody.ethereum.chain import EthChain
from custody.ethereum.erc20 import balance_of_calldata

VYPER_VERSION = "0.4.3"
SOURCE = files("custody.ethereum") / "contracts" / "dev_token.vy"


@cache
def dev_token_init_code() -> bytes:
    """The compiled token's init code (constructor argument not included)."""
    vyper = importlib.import_module("vyper")
    compiled = vyper.compile_code(SOURCE.read_text(), output_formats=["bytecode"])
    return bytes.fromhex(str(compiled["bytecode"])[2:])


DEFAULT_NAME = "Test som token"
DEFAULT_SYMBOL = "KGST"
DEFAULT_DECIMALS = 18


def deploy_dev_token(
    chain: EthChain,
    deployer: str,
    supply: int,
    *,
    name: str = DEFAULT_NAME,
    symbol: str = DEFAULT_SYMBOL,
    decimals: int = DEFAULT_DECIMALS,
) -> str:
    """Deploy the token with ``supply`` base units credited to ``deployer``; return its address.

    ``name``, ``symbol`` and ``decimals`` are what the token answers on chain (ERC-20's optional
    metadata), so a test can deploy two tokens that an attestation tells apart.
    """
    receipt = chain.transact(
        deployer,
        None,
        dev_token_init_code()
        + encode(["uint256", "string", "string", "uint8"], [supply, name, symbol, decimals]),
        action="deploy the test ERC-20",
    )
    raw = chain.rpc.call("eth_getTransactionReceipt", receipt.tx_hash)
    return to_checksum_address(raw["contractAddress"])


def token_balance(chain: EthChain, token: str, holder: str) -> int:
    """``token.balanceOf(holder)`` in base units."""
    (amount,) = decode(
        ["uint256"], chain.call(token, balance_of_calldata(holder), action="read a token balance")
    )
    return int(amount)
