"""A Safe's ether and ERC-20 balances at one block, read from the node.

Balances are read at a block given either by number (what a snapshot names) or by hash with
``requireCanonical`` (EIP-1898: the node refuses if that block left the best chain), so a caller
that read the block's hash first can tell a reorganisation from a balance change. Amounts are
integers in base units (wei, token units); the ``balanceOf`` call is encoded and its answer
decoded here, so nothing above custody handles ABI bytes.
"""

from __future__ import annotations

from typing import Any

from eth_abi.abi import decode
from eth_utils.address import to_checksum_address

from custody.blocks import BlockRef
from custody.ethereum.chain import EthChain
from custody.ethereum.erc20 import balance_of_calldata

BlockAt = int | BlockRef
"""A block by number, or by hash (EIP-1898, which must still be on the best chain)."""


def _block_parameter(at: BlockAt) -> str | dict[str, Any]:
    if isinstance(at, BlockRef):
        return {"blockHash": at.hash, "requireCanonical": True}
    return hex(at)


def ether_balance(chain: EthChain, holder: str, at: BlockAt) -> int:
    """``holder``'s ether in wei at block ``at``."""
    return int(chain.rpc.call("eth_getBalance", holder, _block_parameter(at)), 16)


def token_balance(chain: EthChain, token: str, holder: str, at: BlockAt) -> int:
    """``holder``'s balance of the ERC-20 at ``token`` at block ``at``, in base units."""
    call = {"to": to_checksum_address(token), "data": "0x" + balance_of_calldata(holder).hex()}
    answer = chain.rpc.call("eth_call", call, _block_parameter(at))
    (amount,) = decode(["uint256"], bytes.fromhex(answer[2:]))
    return int(amount)
