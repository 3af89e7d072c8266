"""On anvil, a funded Safe's signer refuses every token call but a registered ``transfer``.

Each refused SafeTx is really proposed to the vault (stored, with the Safe's own hash checked
against the contract); the reviewers' approval is refused with the call's own error, and a signing
attempt with an approval forged to claim a plain transfer is refused too: no owner signature is
stored and neither the Safe's state nor its balances move.
"""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from test_safe_vault import (  # the vault fixtures and snapshots of the Safe tests
    INSTITUTIONS,
    MECHANICS_ONLY,
    RECIPIENT,
    Institution,
    chain,
    chain_snapshot,
    db_snapshot,
    deployment,
    institutions,
    payer,
    token,
    vault,
    vaults,
)

from custody.ethereum import SafeVaults, SigningPolicy
from custody.ethereum.dev_token import deploy_dev_token
from custody.ethereum.erc20 import (
    APPROVE_SELECTOR,
    INCREASE_ALLOWANCE_SELECTOR,
    TRANSFER_FROM_SELECTOR,
    TokenApproveRefusedError,
    TokenIncreaseAllowanceRefusedError,
    TokenNotInRegistryError,
    TokenTransferFromRefusedError,
    TokenValueRefusedError,
    UnknownTokenSelectorError,
    transfer_calldata,
)
from custody.ethereum.safe_tx import SafeTx
from custody.ethereum.signer import Approval, TokenTransfer
from custody.ethereum.vault import Vault
from custody.exceptions import CustodyError

__all__ = ["chain", "deployment", "institutions", "payer", "token", "vault", "vaults"]

THIEF = "0x000000000000000000000000000000000000dEaD"
AMOUNT = 10**18


def _calls(
    vaults: SafeVaults, token: str, outsider: str
) -> list[tuple[str, SafeTx, type[CustodyError]]]:
    """Each refused call as a real proposal of the vault ``reserve``."""
    words = ["address", "uint256"]

    def propose(to: str, data: bytes, value: int = 0) -> SafeTx:
        return vaults.propose("reserve", vaults.new_safe_tx("reserve", to, value, data))

    return [
        ("approve", propose(token, APPROVE_SELECTOR + encode(words, [THIEF, 2**256 - 1])),
         TokenApproveRefusedError),
        ("transferFrom", propose(token, TRANSFER_FROM_SELECTOR + encode(
            ["address", "address", "uint256"], [RECIPIENT, THIEF, AMOUNT])),
         TokenTransferFromRefusedError),
        ("increaseAllowance", propose(
            token, INCREASE_ALLOWANCE_SELECTOR + encode(words, [THIEF, AMOUNT])),
         TokenIncreaseAllowanceRefusedError),
        ("unknown selector", propose(token, bytes.fromhex("a9059cbc") + encode(words, [THIEF, 1])),
         UnknownTokenSelectorError),
        ("value on transfer", propose(token, transfer_calldata(RECIPIENT, AMOUNT), value=1),
         TokenValueRefusedError),
        ("token outside the registry", propose(outsider, transfer_calldata(RECIPIENT, AMOUNT)),
         TokenNotInRegistryError),
    ]  # fmt: skip


def test_each_refused_token_call_gets_its_own_error_and_no_signature(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    payer: str,
    token: str,
) -> None:
    """approve, transferFrom, increaseAllowance, an unknown selector, ether on a transfer and a
    registered-looking transfer to an unregistered token: each refused by name, nothing signed."""
    outsider = deploy_dev_token(vaults.chain, payer, 10**24, symbol="OUT")
    registry = SigningPolicy(frozenset({token}))
    calls = _calls(vaults, token, outsider)
    before = (db_snapshot(vaults), chain_snapshot(vaults, vault, token))
    for name, safe_tx, error in calls:
        with pytest.raises(error) as refused:
            vaults.approval(safe_tx.hash_hex, registry)
        assert type(refused.value) is error, name
        forged = Approval(safe_tx, safe_tx.hash, TokenTransfer(safe_tx.to, RECIPIENT, AMOUNT))
        with pytest.raises(error):
            vaults.cosign(
                forged, institutions[INSTITUTIONS[0]].quorum(), registry, authority=MECHANICS_ONLY
            )
    assert (db_snapshot(vaults), chain_snapshot(vaults, vault, token)) == before
