"""The Safe signer applies the public delay window end to end: a real Safe on the reserve's anvil,
the window registry on the services-chain anvil, real SLIP-39 quorums. A large ether spend is
refused inside its window (no owner signature is made) and signed and executed after it; a vetoed
one is never signed, window over or not."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from authority_support import Deployment
from eth_utils.address import to_checksum_address
from test_signer_authority_safe import (  # the Safe signer's fixtures, shared
    CODES,
    ETHER_WEI,
    Institution,
    chain,
    deployment,
    institutions,
    payer,
    reviewed,
    sign,
    signing_calls,
    statements,
    token,
    vault,
    vaults,
)

from custody.authority import AuthorityEvidence, PolicySet, RecordKind, StatementKind
from custody.authority.delay import SpendAnnouncement, VetoedOnChainError, WindowOpenError
from custody.authority.roster import policy_hash_of
from custody.devnet import EvmNode
from custody.ethereum import EthChain, SafeTx, SafeVaults, SigningPolicy, Vault
from custody.ethereum.announcements import (
    ServicesChainWindow,
    announce_spend,
    deploy_window_registry,
    submit_veto,
)

__all__ = [  # fixtures imported for pytest, not called here
    "chain",
    "deployment",
    "institutions",
    "payer",
    "signing_calls",
    "token",
    "vault",
    "vaults",
]

WINDOW_SECONDS = 7_200
WINDOW_POLICY = json.dumps(
    {"assets": {"ETH": {"veto_threshold": ETHER_WEI}}, "veto_window_seconds": WINDOW_SECONDS},
    sort_keys=True,
    separators=(",", ":"),
)
RECIPIENT = to_checksum_address("0x" + "ab" * 20)


@pytest.fixture(scope="module")
def services(services_node: EvmNode) -> ServicesChainWindow:
    chain = EthChain(services_node.rpc)
    publisher = chain.accounts()[0]
    return ServicesChainWindow(chain, deploy_window_registry(chain, publisher, publisher))


@pytest.fixture(scope="module")
def windowed(deployment: Deployment) -> Deployment:
    """The Safe tests' roster with the window policy signed in by two institutions' admins."""
    if deployment.state().policy_hash != policy_hash_of(WINDOW_POLICY):
        deployment.append(
            RecordKind.POLICY_SET,
            PolicySet(policy_hash_of(WINDOW_POLICY), WINDOW_POLICY),
            ["cb-admin", "mof-admin"],
        )
    return deployment


def _evidence(
    d: Deployment, vaults: SafeVaults, safe_tx: SafeTx, services: ServicesChainWindow, proposal: str
) -> tuple[AuthorityEvidence, SpendAnnouncement]:
    spend = reviewed(vaults, safe_tx, "ETH", 2 * ETHER_WEI, RECIPIENT)
    approvals = [
        replace(s, proposal_id=proposal, policy_hash=policy_hash_of(WINDOW_POLICY))
        for s in statements(d, spend)
    ]
    plain = d.evidence(*approvals)
    return (
        AuthorityEvidence(plain.records, plain.statements, services),
        SpendAnnouncement.for_spend(proposal, spend),
    )


def _advance(services: ServicesChainWindow, seconds: int) -> None:
    services.chain.rpc.call("evm_increaseTime", seconds)
    services.chain.rpc.call("evm_mine")


def test_a_large_safe_spend_is_signed_only_after_its_window(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    windowed: Deployment,
    services: ServicesChainWindow,
    payer: str,
    signing_calls: list[bytes],
) -> None:
    """Inside the window every owner is refused (and told when it opens); after it, both sign
    and the Safe pays."""
    safe_tx = vaults.propose_ether_transfer("reserve", RECIPIENT, 2 * ETHER_WEI)
    evidence, announcement = _evidence(windowed, vaults, safe_tx, services, "31")
    announce_spend(services.chain, services.registry, services.chain.accounts()[0], announcement)
    for name in CODES.values():
        with pytest.raises(WindowOpenError, match="runs until"):
            sign(vaults, safe_tx, institutions[name], evidence, SigningPolicy())
    assert signing_calls == []
    _advance(services, WINDOW_SECONDS)
    for name in ("Central Bank", "Ministry of Finance"):
        sign(vaults, safe_tx, institutions[name], evidence, SigningPolicy())
    assert signing_calls == [safe_tx.hash, safe_tx.hash]
    before = vaults.chain.balance(RECIPIENT)
    vaults.execute(safe_tx.hash_hex, payer)
    assert vaults.chain.balance(RECIPIENT) - before == 2 * ETHER_WEI


def test_a_vetoed_safe_spend_is_never_signed(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    windowed: Deployment,
    services: ServicesChainWindow,
    signing_calls: list[bytes],
) -> None:
    """The audit office's oversight officer vetoes on the services chain: no owner signs, even
    once the window is long over."""
    safe_tx = vaults.propose_ether_transfer("reserve", RECIPIENT, 2 * ETHER_WEI)
    evidence, announcement = _evidence(windowed, vaults, safe_tx, services, "32")
    announce_spend(services.chain, services.registry, services.chain.accounts()[0], announcement)
    veto = windowed.statement("sao-olga", kind=StatementKind.VETO, proposal_id="32")
    submit_veto(
        services.chain, services.registry, services.chain.accounts()[9], windowed.signed(veto)
    )
    _advance(services, 2 * WINDOW_SECONDS)
    for name in CODES.values():
        with pytest.raises(VetoedOnChainError, match="sao-olga"):
            sign(vaults, safe_tx, institutions[name], evidence, SigningPolicy())
    assert signing_calls == []
