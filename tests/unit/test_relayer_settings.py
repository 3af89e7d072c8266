"""Each EVM chain's relayer as configuration: its address and low-balance threshold per chain,
typed, bounded, listed by `treasury settings`, and chosen per chain for the Safe's spends."""

from __future__ import annotations

import pytest

from custody.devnet import BNB_DEVNET_CHAIN_ID
from custody.nodes import NodeEndpoints
from treasury.chains import (
    DEFAULT_RELAYER_MIN_BALANCE,
    MAX_RELAYER_MIN_BALANCE,
    ChainConfigError,
    EvmChainSettings,
)
from treasury.reconcile.relayers import relayer_watches
from treasury.relayers import relayer_for, relayer_variable
from treasury.settings import (
    ETH_RELAYER_ENV,
    ETH_RELAYER_MIN_BALANCE_ENV,
    EVM_CHAINS_ENV,
    RESERVE_RPC_URL_ENV,
    Settings,
    SettingsError,
    Source,
    evm_chain_env,
    read_settings,
)
from treasury.workflow_exceptions import NotConfiguredError

ETH_RELAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BNB_RELAYER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
BNB = {
    EVM_CHAINS_ENV: "bnb",
    evm_chain_env("bnb", "CHAIN_ID"): str(BNB_DEVNET_CHAIN_ID),
    evm_chain_env("bnb", "RPC_URL"): "http://127.0.0.1:28547",
}


def _no_devnet() -> NodeEndpoints:
    return NodeEndpoints()


def test_each_chain_has_its_own_relayer_and_threshold() -> None:
    """The first chain's relayer and threshold come from TREASURY_ETH_RELAYER(_MIN_BALANCE), a
    further chain's from TREASURY_EVM_<NAME>_RELAYER(_MIN_BALANCE); addresses are checksummed."""
    settings = Settings.from_env(
        {
            **BNB,
            RESERVE_RPC_URL_ENV: "http://127.0.0.1:8545",
            ETH_RELAYER_ENV: ETH_RELAYER.lower(),
            ETH_RELAYER_MIN_BALANCE_ENV: "123",
            evm_chain_env("bnb", "RELAYER"): BNB_RELAYER,
            evm_chain_env("bnb", "RELAYER_MIN_BALANCE"): "0",
        },
        devnet=_no_devnet,
    )
    reserve, bnb = settings.reserve_chains()
    assert (reserve.relayer, reserve.relayer_min_balance) == (ETH_RELAYER, 123)
    assert (bnb.relayer, bnb.relayer_min_balance) == (BNB_RELAYER, 0)
    assert settings.spends.eth_relayer == ETH_RELAYER
    assert settings.spends.eth_relayer_min_balance == 123


def test_unset_relayers_are_none_with_the_default_threshold_and_listed() -> None:
    """No relayer set: none per chain, 0.05 coin as threshold, every variable listed."""
    reading = read_settings(BNB, devnet=_no_devnet)
    assert reading.errors == ()
    for chain in reading.settings.reserve_chains():
        assert chain.relayer is None
        assert chain.relayer_min_balance == DEFAULT_RELAYER_MIN_BALANCE == 5 * 10**16
    rows = {row.variable: row for row in reading.rows}
    for variable in (
        ETH_RELAYER_ENV,
        ETH_RELAYER_MIN_BALANCE_ENV,
        evm_chain_env("bnb", "RELAYER"),
        evm_chain_env("bnb", "RELAYER_MIN_BALANCE"),
    ):
        assert rows[variable].source is Source.DEFAULT
    assert rows[ETH_RELAYER_MIN_BALANCE_ENV].shown == str(DEFAULT_RELAYER_MIN_BALANCE)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({ETH_RELAYER_MIN_BALANCE_ENV: "0.05"}, "must be a whole number of base units"),
        ({ETH_RELAYER_MIN_BALANCE_ENV: "-1"}, "must be a whole number of base units"),
        (
            {ETH_RELAYER_MIN_BALANCE_ENV: str(MAX_RELAYER_MIN_BALANCE + 1)},
            f"from 0 to {MAX_RELAYER_MIN_BALANCE}",
        ),
        ({**BNB, evm_chain_env("bnb", "RELAYER"): "0x1234"}, "must be an Ethereum address"),
        ({**BNB, evm_chain_env("bnb", "RELAYER_MIN_BALANCE"): "1e18"}, "whole number"),
        ({**BNB, evm_chain_env("bnb", "RELAYER"): "0x" + "0" * 40}, "not the zero address"),
    ],
)
def test_a_bad_relayer_value_is_refused_naming_its_variable(
    environ: dict[str, str], message: str
) -> None:
    """A decimal coin amount, a negative or absurd threshold, a malformed or zero address: each a
    SettingsError naming what must be set, never silently replaced."""
    with pytest.raises(SettingsError, match=message) as caught:
        Settings.from_env(environ, devnet=_no_devnet)
    assert "RELAYER" in str(caught.value)


def test_the_chain_value_refuses_an_unchecksummed_relayer_or_a_bool_threshold() -> None:
    """The dataclass itself refuses values no parser would give (a caller building it in code)."""
    with pytest.raises(ChainConfigError, match="checksummed"):
        EvmChainSettings("bnb", None, 97, relayer=BNB_RELAYER.lower())
    with pytest.raises(ChainConfigError, match="minimum balance"):
        EvmChainSettings("bnb", None, 97, relayer_min_balance=True)


class _Chain:
    """A stand-in for a node: the accounts it signs for (its chain id is never asked)."""

    def __init__(self, accounts: list[str]) -> None:
        self._accounts = accounts
        self.rpc = type("Rpc", (), {"url": "http://node"})()

    def accounts(self) -> list[str]:
        return self._accounts


def test_relayer_for_picks_the_chains_own_relayer_else_the_nodes_account() -> None:
    """Each chain's Safe spends are relayed by that chain's relayer, chosen by the Safe's chain id
    without asking the node; the first chain (configured without an id) serves any id no other
    chain is configured with; with no relayer, the node's first account; with neither, the error
    names the chain's variable."""
    chains = (
        EvmChainSettings("reserve", "http://a", relayer=ETH_RELAYER),
        EvmChainSettings("bnb", "http://b", BNB_DEVNET_CHAIN_ID, native_asset="BNB"),
    )
    node = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    with_node, without = _Chain([node]), _Chain([])
    assert relayer_for(without, chains) == ETH_RELAYER  # type: ignore[arg-type]
    assert relayer_for(without, chains, 31337) == ETH_RELAYER  # type: ignore[arg-type]
    assert relayer_for(with_node, chains, BNB_DEVNET_CHAIN_ID) == node  # type: ignore[arg-type]
    with pytest.raises(NotConfiguredError, match=evm_chain_env("bnb", "RELAYER")):
        relayer_for(without, chains, BNB_DEVNET_CHAIN_ID)  # type: ignore[arg-type]
    bnb_relayed = (
        chains[0],
        EvmChainSettings("bnb", None, BNB_DEVNET_CHAIN_ID, relayer=BNB_RELAYER),
    )
    assert relayer_for(without, bnb_relayed, BNB_DEVNET_CHAIN_ID) == BNB_RELAYER  # type: ignore[arg-type]
    assert relayer_variable(chains[0]) == ETH_RELAYER_ENV


def test_only_chains_with_a_node_and_a_configured_relayer_are_watched() -> None:
    """The reconciler watches a configured relayer of a chain it can read; the node's own account
    (no relayer set) is never watched, as a devnet uses it for everything."""
    chains = (
        EvmChainSettings("reserve", "http://a", relayer=ETH_RELAYER, relayer_min_balance=7),
        EvmChainSettings("bnb", "http://b", BNB_DEVNET_CHAIN_ID, native_asset="BNB"),
        EvmChainSettings("opbnb", None, 204, native_asset="OPBNB", relayer=BNB_RELAYER),
    )
    (watch,) = relayer_watches(chains)
    assert (watch.relayer, watch.min_balance) == (ETH_RELAYER, 7)
    assert watch.reader.native.code == "ETH"
