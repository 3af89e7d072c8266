"""Safe v1.4.1 on a devnet: the audited bytecode at its canonical addresses, deployed once.

The bytecode is the compiled artifacts shipped in ``safe-eth-py`` (a pinned dependency; its
``Safe_V1_4_1`` artifact is the SafeL2 build, which emits events). We do not take that on trust:
each contract is created through the Safe singleton factory with salt 0, exactly as the Safe team
deployed it on every public chain, and a CREATE2 address commits to the hash of the init code.
So the computed address equals the canonical one (from ``safe-deployments``) only if the
bytecode is byte-for-byte the audited v1.4.1 build; anything else is refused.

On a fresh anvil the singleton factory is missing: its well-known runtime code (the deterministic
deployment proxy) is placed at its canonical address with ``anvil_setCode``. Deployment is
idempotent: contracts already present with the expected code are left alone.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from custody.ethereum.chain import EthChain
from custody.exceptions import EvmRPCError, SafeDeploymentError

log = logging.getLogger(__name__)

SINGLETON_FACTORY_ADDRESS = "0x914d7Fec6aaC8cd542e72Bca78B30650d45643d7"
"""The Safe singleton factory (safe-singleton-factory), the CREATE2 deployer of all Safe contracts."""
SINGLETON_FACTORY_RUNTIME_CODE = bytes.fromhex(
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe036016000816020823780358282"
    "34f58015156039578182fd5b8082525050506014600cf3"
)
"""Runtime code of the factory: calldata is ``salt (32 bytes) || init code``, it returns the address."""
DEPLOYMENT_SALT = bytes(32)
"""The Safe team deploys every v1.4.1 contract with a zero salt."""

ARTIFACTS_PACKAGE = "safe_eth.eth.contracts.abis"


@dataclass(frozen=True)
class SafeContract:
    """One contract of the Safe v1.4.1 release: its artifact and canonical address."""

    name: str
    artifact: str
    canonical_address: str


SAFE_L2_SINGLETON = SafeContract(
    "SafeL2 singleton", "Safe_V1_4_1.json", "0x29fcB43b46531BcA003ddC8FCB67FFE91900C762"
)
PROXY_FACTORY = SafeContract(
    "SafeProxyFactory", "ProxyFactory_V1_4_1.json", "0x4e1DCf7AD4e460CfD30791CCC4F9c8a4f820ec67"
)
FALLBACK_HANDLER = SafeContract(
    "CompatibilityFallbackHandler",
    "CompatibilityFallbackHandler_V1_4_1.json",
    "0xfd0732Dc9E303f09fCEf3a7388Ad10A83459Ec99",
)
SAFE_CONTRACTS = (SAFE_L2_SINGLETON, PROXY_FACTORY, FALLBACK_HANDLER)


@dataclass(frozen=True)
class SafeDeployment:
    """Where the Safe contracts live on one chain."""

    chain_id: int
    singleton: str
    proxy_factory: str
    fallback_handler: str


@dataclass(frozen=True)
class DeploymentReport:
    deployment: SafeDeployment
    deployed: tuple[str, ...]
    """Names of the contracts this run created (empty when all were already there)."""


@cache
def _artifact(contract: SafeContract) -> tuple[bytes, bytes]:
    """(init code, runtime code) of ``contract`` from the shipped artifact."""
    raw = json.loads((files(ARTIFACTS_PACKAGE) / contract.artifact).read_text())
    return bytes.fromhex(raw["bytecode"][2:]), bytes.fromhex(raw["deployedBytecode"][2:])


def create2_address(deployer: str, salt: bytes, init_code: bytes) -> str:
    """EIP-1014: ``keccak(0xff || deployer || salt || keccak(init_code))[12:]``."""
    digest = keccak(b"\xff" + bytes.fromhex(deployer[2:]) + salt + keccak(init_code))
    return to_checksum_address(digest[12:])


def verified_init_code(contract: SafeContract) -> bytes:
    """The artifact's init code, after proving it is the audited build (its CREATE2 address)."""
    init_code, _runtime = _artifact(contract)
    address = create2_address(SINGLETON_FACTORY_ADDRESS, DEPLOYMENT_SALT, init_code)
    if address != contract.canonical_address:
        raise SafeDeploymentError(
            f"The {contract.name} bytecode shipped in {ARTIFACTS_PACKAGE}/{contract.artifact} "
            f"would deploy to {address}, not the canonical {contract.canonical_address}: it is "
            "not the audited Safe v1.4.1 build. Reinstall the pinned safe-eth-py."
        )
    return init_code


def _check_code(chain: EthChain, address: str, expected: bytes, what: str) -> bool:
    """True if ``expected`` is at ``address``, False if nothing is; other code is refused."""
    code = chain.code(address)
    if not code:
        return False
    if code != expected:
        raise SafeDeploymentError(
            f"The address {address} on chain {chain.chain_id} holds code that is not the "
            f"{what}; refusing to use it. Use a fresh devnet."
        )
    return True


def find_deployment(chain: EthChain) -> SafeDeployment | None:
    """The Safe deployment on ``chain`` if every contract is present with the audited code."""
    present = [
        _check_code(chain, c.canonical_address, _artifact(c)[1], f"audited {c.name} v1.4.1")
        for c in SAFE_CONTRACTS
    ]
    return _deployment(chain) if all(present) else None


def _deployment(chain: EthChain) -> SafeDeployment:
    return SafeDeployment(
        chain_id=chain.chain_id,
        singleton=SAFE_L2_SINGLETON.canonical_address,
        proxy_factory=PROXY_FACTORY.canonical_address,
        fallback_handler=FALLBACK_HANDLER.canonical_address,
    )


def require_deployment(chain: EthChain) -> SafeDeployment:
    """The deployment, or ``SafeDeploymentError`` telling how to create it."""
    deployment = find_deployment(chain)
    if deployment is None:
        raise SafeDeploymentError(
            f"The Safe v1.4.1 contracts are not deployed on chain {chain.chain_id}; "
            "run `treasury safe deploy` first."
        )
    return deployment


def deploy_safe_contracts(chain: EthChain, payer: str) -> DeploymentReport:
    """Deploy whatever is missing of the Safe v1.4.1 contracts; ``payer`` pays the gas."""
    factory_present = _check_code(
        chain, SINGLETON_FACTORY_ADDRESS, SINGLETON_FACTORY_RUNTIME_CODE, "Safe singleton factory"
    )
    if not factory_present:
        try:
            chain.set_code(SINGLETON_FACTORY_ADDRESS, SINGLETON_FACTORY_RUNTIME_CODE)
        except EvmRPCError:
            raise SafeDeploymentError(
                f"Chain {chain.chain_id} has no Safe singleton factory and does not accept "
                "anvil_setCode; only development chains can be set up this way."
            ) from None
        log.info("placed the Safe singleton factory", extra={"chain_id": chain.chain_id})
    deployed: list[str] = []
    for contract in SAFE_CONTRACTS:
        init_code = verified_init_code(contract)
        runtime = _artifact(contract)[1]
        if _check_code(chain, contract.canonical_address, runtime, f"audited {contract.name}"):
            continue
        chain.transact(
            payer,
            SINGLETON_FACTORY_ADDRESS,
            DEPLOYMENT_SALT + init_code,
            action=f"deploy the {contract.name}",
        )
        if not _check_code(chain, contract.canonical_address, runtime, f"audited {contract.name}"):
            raise SafeDeploymentError(
                f"Deploying the {contract.name} left no code at {contract.canonical_address}."
            )
        deployed.append(contract.name)
        log.info("deployed %s at %s", contract.name, contract.canonical_address)
    return DeploymentReport(deployment=_deployment(chain), deployed=tuple(deployed))
