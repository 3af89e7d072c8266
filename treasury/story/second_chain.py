"""The story's second EVM reserve chain: BNB Chain (on the devnet, an anvil under chain id 31339).

The reserve holds BNB in a Safe of its own on that chain, owned by the same three institutions'
ceremony keys, 2-of-3, like the Safe on the first chain. Nothing in the treasury is written for
BNB Chain: the chain is one more entry of the EVM chain list (``treasury.chains``), so the
reconciler reads its Safe with its own reader, the attestation snapshots it beside the first
chain in the same bundle, and the auditor's verifier checks it against the node named for it.

``open_second_chain`` is the act; ``reconcile_chains``, ``attest_chains`` and ``verifier_nodes``
give the other acts the chain list they take. It takes the story's ``Reserve`` through the two
things it reads (``StoryReserve``), so ``reserve.py`` may hold a ``SecondChain`` without an
import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from reserve_verifier import Nodes
from sqlalchemy.orm import Session, sessionmaker

from custody.ceremony import Transcript
from custody.devnet import BNB_DEVNET_CHAIN_ID, BNB_DEVNET_NATIVE_ASSET, EvmNode
from custody.ethereum import SafeVaults, VaultOwner, deploy_safe_contracts
from custody.ethereum.relayer import node_gas_payer
from custody.ethereum.vault import Vault as SafeVault
from custody.exceptions import DevnetError
from treasury.chains import NATIVE_DECIMALS, ConnectedChain, EvmChainSettings, connect
from treasury.ledger import format_amount
from treasury.settings import Settings
from treasury.story.cast import INSTITUTIONS, VAULT_THRESHOLD

Echo = Callable[[str], None]

BNB_CHAIN_NAME = "bnb"
"""The chain's name in the configuration (``TREASURY_EVM_CHAINS=bnb``)."""
BNB_SAFE_VAULT = "reserve-bnb"
"""The Safe vault's name on the BNB chain."""
BNB_DEPOSIT_WEI = 40 * 10**18
"""What the devnet's test money pays into the BNB Safe (40 BNB)."""


class StoryReserve(Protocol):
    """What the act reads of the story's ``Reserve``: its database and the ceremonies held."""

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def transcripts(self) -> Mapping[str, Transcript]: ...


@dataclass(frozen=True)
class SecondChain:
    """The BNB chain as configured, its node, and the reserve's Safe on it."""

    node: EvmNode
    settings: EvmChainSettings
    safe: SafeVault
    relayer: str
    """The chain's funded devnet account that pays the Safe's gas (deployment, executions)."""

    def connected(self) -> tuple[ConnectedChain, ...]:
        """The chain list the reconciler and the attestation take (its node checked)."""
        return connect([self.settings])


def bnb_chain(node: EvmNode) -> EvmChainSettings:
    """The BNB devnet as the settings list it: its id, node, one confirmation, native BNB."""
    return EvmChainSettings(
        BNB_CHAIN_NAME, node.rpc_url, BNB_DEVNET_CHAIN_ID, native_asset=BNB_DEVNET_NATIVE_ASSET
    )


def open_second_chain(reserve: StoryReserve, node: EvmNode, echo: Echo) -> SecondChain:
    """Safe v1.4.1 at its canonical addresses on the BNB chain, a 2-of-3 Safe owned by the same
    institutions' ceremony keys, and a BNB deposit into it (after ``hold_ceremonies``)."""
    settings = bnb_chain(node)
    chain = settings.client()
    payer = node_gas_payer(chain)
    if payer is None:
        raise DevnetError("The BNB devnet signs for no account to pay gas with.")
    report = deploy_safe_contracts(chain, payer)
    echo(
        f"   chain {chain.chain_id} ({BNB_CHAIN_NAME}): Safe v1.4.1 singleton at "
        f"{report.deployment.singleton} (the canonical address, as on the first chain)"
    )
    owners = tuple(
        VaultOwner(
            i.name, reserve.transcripts[i.code].eth_address, reserve.transcripts[i.code].fingerprint
        )
        for i in INSTITUTIONS
    )
    safe = SafeVaults(chain, reserve.sessions).create(
        BNB_SAFE_VAULT, owners, VAULT_THRESHOLD, payer=payer
    )
    echo(
        f"   Safe vault {safe.name!r} on chain {safe.chain_id}: {safe.address}, "
        f"{safe.threshold}-of-{len(owners)} (the same institutions' keys)"
    )
    chain.transact(payer, safe.address, b"", action="fund the BNB Safe", value=BNB_DEPOSIT_WEI)
    coins = format_amount(BNB_DEPOSIT_WEI, NATIVE_DECIMALS).rstrip("0").rstrip(".")
    echo(f"   {coins} BNB ({BNB_DEPOSIT_WEI} wei) paid into the BNB Safe")
    return SecondChain(node, settings, safe, payer)


def attest_chains(second: SecondChain | None) -> tuple[ConnectedChain, ...]:
    """The further chains an attestation snapshots (none before the second chain is open)."""
    return () if second is None else second.connected()


def reconcile_chains(second: SecondChain | None) -> Sequence[EvmChainSettings]:
    """The further chains a reconciliation run reads (none before the second chain is open)."""
    return () if second is None else (second.settings,)


def story_settings(second: SecondChain | None) -> Settings:
    """The settings the story's workflow runs on: every default, and the second chain listed, so
    its Safe is known as that chain's and never taken for the Safe that pays ether."""
    return Settings(evm_chains=tuple(reconcile_chains(second)))


def verifier_nodes(nodes: Nodes, second: SecondChain | None) -> Nodes:
    """``nodes`` with the auditor's node of the BNB chain named for its chain id."""
    if second is None:
        return nodes
    named = (*nodes.evm_chains, (BNB_DEVNET_CHAIN_ID, second.node.rpc_url))
    return replace(nodes, evm_chains=named)


__all__ = [
    "BNB_CHAIN_NAME",
    "BNB_DEPOSIT_WEI",
    "BNB_SAFE_VAULT",
    "SecondChain",
    "StoryReserve",
    "attest_chains",
    "bnb_chain",
    "open_second_chain",
    "reconcile_chains",
    "story_settings",
    "verifier_nodes",
]
