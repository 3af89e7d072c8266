"""Owner rotation: replacing one institution's Safe owner key by a new one, through the Safe.

A rotation is an ordinary SafeTx calling the Safe's own ``swapOwner``; what is particular to it
is finding the old owner's predecessor in the Safe's linked list, and, once executed, confirming
on chain that the new key really is an owner before the roster is changed.
"""

from __future__ import annotations

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address

from custody.ethereum.safe_tx import SafeTx
from custody.ethereum.signer import SWAP_OWNER_SELECTOR
from custody.exceptions import VaultStateMismatchError

SENTINEL_OWNER = "0x0000000000000000000000000000000000000001"
"""Head of the Safe's owner linked list: the ``prevOwner`` of the first owner."""


def swap_owner_data(owners_on_chain: tuple[str, ...], old: str, new: str) -> bytes:
    """Calldata of ``swapOwner(prevOwner, old, new)``, ``prevOwner`` found in the chain's order."""
    index = owners_on_chain.index(old)
    prev = SENTINEL_OWNER if index == 0 else owners_on_chain[index - 1]
    return SWAP_OWNER_SELECTOR + encode(["address", "address", "address"], [prev, old, new])


def rotated_owner(safe_tx: SafeTx, owners_on_chain: tuple[str, ...]) -> str:
    """The new owner an executed swap installed, refused unless the chain now lists it."""
    new_address = to_checksum_address(safe_tx.data[-20:])
    if new_address not in owners_on_chain:
        raise VaultStateMismatchError(
            f"SafeTx {safe_tx.hash_hex} executed, but {new_address} is not an owner "
            "on chain; the roster was not changed."
        )
    return new_address
