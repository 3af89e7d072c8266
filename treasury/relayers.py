"""Which account relays a Safe's execution on a chain: its configured relayer, else the node's.

Each EVM reserve chain has its own relayer (``EvmChainSettings.relayer``): the first chain's is
``TREASURY_ETH_RELAYER``, a further chain's ``TREASURY_EVM_<NAME>_RELAYER``. Gas is paid in the
chain's own coin, so one account for every chain would need ether on BNB Chain and BNB on
Ethereum, and one chain's top-ups would be lost in the other's books. The reconciler watches
each configured relayer's float (``treasury.reconcile.relayers``); the node's own first account,
the fallback on a devnet, is not watched, as a devnet uses it for everything.
"""

from __future__ import annotations

from collections.abc import Sequence

from custody.ethereum.chain import EthChain
from custody.ethereum.relayer import node_gas_payer
from treasury.chains import RESERVE_CHAIN_NAME, EvmChainSettings
from treasury.settings import ETH_RELAYER_ENV, evm_chain_env
from treasury.workflow_exceptions import NotConfiguredError


def chain_settings_of(
    chains: Sequence[EvmChainSettings], chain_id: int | None
) -> EvmChainSettings | None:
    """The configured chain of a Safe on ``chain_id``: the one configured with that id, else the
    first chain configured without one (which serves whatever its node serves); ``chain_id``
    ``None`` means the first chain. Asks no node: a configured relayer is used without one."""
    if chain_id is not None:
        for settings in chains:
            if settings.chain_id == chain_id:
                return settings
    for settings in chains:
        if settings.chain_id is None:
            return settings
    return None


def relayer_variable(settings: EvmChainSettings) -> str:
    """The variable that names ``settings``' relayer."""
    if settings.name == RESERVE_CHAIN_NAME:
        return ETH_RELAYER_ENV
    return evm_chain_env(settings.name, "RELAYER")


def relayer_for(
    chain: EthChain, chains: Sequence[EvmChainSettings], chain_id: int | None = None
) -> str:
    """The account that sends Safe executions on the chain ``chain_id`` (``None``: the first),
    whose node is ``chain``: that chain's configured relayer, else the node's own first account;
    ``NotConfiguredError`` names the variable to set if neither. The node is asked only for its
    accounts, and only when no relayer is configured."""
    settings = chain_settings_of(chains, chain_id)
    if settings is not None and settings.relayer is not None:
        return settings.relayer
    payer = node_gas_payer(chain)
    if payer is None:
        variable = ETH_RELAYER_ENV if settings is None else relayer_variable(settings)
        raise NotConfiguredError(
            f"The node at {chain.rpc.url} signs for no account to pay the Safe's gas; set "
            f"{variable} to an address it signs for."
        )
    return payer


__all__ = ["chain_settings_of", "relayer_for", "relayer_variable"]
