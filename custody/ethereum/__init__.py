"""Safe (v1.4.1) multisig vaults on Ethereum, owned by the institutions' cosigner keys.

Split as in safe-eth-py: ``deploy`` (the audited contracts at canonical addresses), ``safe_tx``
(the value object and our own EIP-712 hash), ``safe_signature`` (r|s|v in owner order),
``signer`` (decode, compare with the approval, sign), ``vault`` (the roster and proposal
values), ``safe_vaults`` (create, propose, sign, execute), ``vault_store`` (their rows),
``safe_contract`` (the calls to a deployed Safe), ``owner_rotation`` (``swapOwner``) and
``errors`` (the Safe's GS0xx revert codes as typed exceptions).
"""

from custody.ethereum.chain import EthChain, Receipt
from custody.ethereum.deploy import (
    DeploymentReport,
    SafeDeployment,
    deploy_safe_contracts,
    find_deployment,
    require_deployment,
)
from custody.ethereum.safe_contract import SafeState
from custody.ethereum.safe_signature import OwnerSignature, pack_signatures, sign_safe_tx_hash
from custody.ethereum.safe_tx import Operation, SafeTx
from custody.ethereum.safe_vaults import SafeVaults
from custody.ethereum.signer import (
    Action,
    Approval,
    EtherTransfer,
    KeyQuorum,
    OwnerSwap,
    SigningPolicy,
    TokenTransfer,
    approve,
    decode_action,
    sign_approved,
)
from custody.ethereum.vault import Proposal, Vault, VaultOwner, owners_from_cosigners

__all__ = [
    "Action",
    "Approval",
    "DeploymentReport",
    "EthChain",
    "EtherTransfer",
    "KeyQuorum",
    "Operation",
    "OwnerSignature",
    "OwnerSwap",
    "Proposal",
    "Receipt",
    "SafeDeployment",
    "SafeState",
    "SafeTx",
    "SafeVaults",
    "SigningPolicy",
    "TokenTransfer",
    "Vault",
    "VaultOwner",
    "approve",
    "decode_action",
    "deploy_safe_contracts",
    "find_deployment",
    "owners_from_cosigners",
    "pack_signatures",
    "require_deployment",
    "sign_approved",
    "sign_safe_tx_hash",
]
