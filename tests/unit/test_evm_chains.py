"""The EVM reserve chains as configuration: read from the settings (or the running devnet), checked
for repeats, and named on the verifier's command line one node per chain."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from reserve_verifier import Nodes, UsageError
from reserve_verifier.cli import main as reserve_verify
from reserve_verifier.cli import nodes_of

from custody.devnet import BNB_DEVNET_CHAIN_ID
from custody.devnet.binaries import NODES_DIR_ENV
from custody.nodes import NodeEndpoints
from treasury.chains import ChainConfigError, EvmChainSettings, chain_for, check_chains
from treasury.settings import (
    EVM_CHAINS_ENV,
    RECONCILE_ETH_MIN_CONF_ENV,
    RESERVE_RPC_URL_ENV,
    Settings,
    SettingsError,
    Source,
    devnet_chains,
    evm_chain_env,
    read_settings,
)
from treasury.workflow_exceptions import NotConfiguredError

BNB_URL = "http://127.0.0.1:28547"
BNB = {
    EVM_CHAINS_ENV: "bnb",
    evm_chain_env("bnb", "CHAIN_ID"): str(BNB_DEVNET_CHAIN_ID),
    evm_chain_env("bnb", "RPC_URL"): BNB_URL,
}


def _no_devnet() -> NodeEndpoints:
    return NodeEndpoints()


def test_a_further_chain_is_read_with_its_id_node_depth_and_native_coin() -> None:
    """TREASURY_EVM_CHAINS lists the chain; its id, URL, depth and native code come from its own
    variables (depth 1 and the name in capitals by default); the first chain keeps ETH and the
    reconciler's depth."""
    settings = Settings.from_env(
        {
            **BNB,
            evm_chain_env("bnb", "CONFIRMATIONS"): "3",
            RESERVE_RPC_URL_ENV: "http://127.0.0.1:8545",
            RECONCILE_ETH_MIN_CONF_ENV: "2",
        },
        devnet=_no_devnet,
    )
    assert settings.reserve_chains() == (
        EvmChainSettings("reserve", "http://127.0.0.1:8545", None, 2, "ETH"),
        EvmChainSettings("bnb", BNB_URL, BNB_DEVNET_CHAIN_ID, 3, "BNB"),
    )
    assert Settings.from_env({}, devnet=_no_devnet).evm_chains == ()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({EVM_CHAINS_ENV: "bnb,BNB"}, f"{EVM_CHAINS_ENV} must be comma-separated chain names"),
        ({EVM_CHAINS_ENV: "reserve"}, f"{EVM_CHAINS_ENV} must be comma-separated chain names"),
        ({EVM_CHAINS_ENV: "bnb,bnb"}, f"{EVM_CHAINS_ENV} must name each chain once"),
        ({EVM_CHAINS_ENV: "bnb"}, f"{evm_chain_env('bnb', 'CHAIN_ID')} must be set"),
        ({**BNB, evm_chain_env("bnb", "CHAIN_ID"): "0"}, "must be a positive whole number"),
        ({**BNB, evm_chain_env("bnb", "RPC_URL"): "ftp://x"}, "must be an http(s) URL"),
        ({**BNB, evm_chain_env("bnb", "NATIVE_ASSET"): "bnb"}, "must be an asset code"),
        ({**BNB, evm_chain_env("bnb", "NATIVE_ASSET"): "ETH"}, "native asset ETH more than once"),
        ({**BNB, evm_chain_env("bnb", "NATIVE_ASSET"): "BTC"}, "and not BTC"),
    ],
)
def test_an_unusable_chain_setting_is_refused_naming_it(
    environ: dict[str, str], message: str
) -> None:
    """A malformed list, a missing chain id, a bad URL or a native code that another asset
    already names is a settings error, and no chain is configured from it."""
    reading = read_settings(environ, devnet=_no_devnet)
    assert any(message in str(error) for error in reading.errors), reading.errors
    assert all(isinstance(error, SettingsError) for error in reading.errors)
    with pytest.raises(SettingsError):
        Settings.from_env(environ, devnet=_no_devnet)


def test_two_chains_with_one_id_or_native_coin_are_refused() -> None:
    """One chain id twice would reconcile its Safes twice; one native code on two chains would add
    two coins into one ledger asset."""
    eth = EvmChainSettings("reserve", "http://a", 1)
    with pytest.raises(ChainConfigError, match="chain id 1 more than once"):
        check_chains([eth, EvmChainSettings("other", "http://b", 1, native_asset="OTH")])
    with pytest.raises(ChainConfigError, match="native asset ETH"):
        check_chains([eth, EvmChainSettings("other", "http://b", 2)])


def test_a_chain_without_a_node_is_named_when_its_safe_needs_it() -> None:
    """A Safe of a chain no node serves gets an error naming the chains and what to set; it is
    never handed another chain's node."""
    chains = (EvmChainSettings("reserve", None), EvmChainSettings("bnb", None, 31339, 1, "BNB"))
    with pytest.raises(NotConfiguredError, match="No node of EVM chain 56 is configured"):
        chain_for(chains, 56)
    with pytest.raises(NotConfiguredError, match="No node is configured for the EVM chain 'bnb'"):
        chain_for(chains, 31339)


def test_the_running_devnets_bnb_node_is_the_default_further_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With TREASURY_EVM_CHAINS unset, `treasury devnet up`'s BNB node is the chain `bnb` (its
    variables still override it); a state file from before the BNB node gives none."""
    state = {
        "pid": os.getpid(),
        "bitcoin_rpc_url": "http://127.0.0.1:28443",
        "bitcoin_rpc_user": "devnet",
        "bitcoin_rpc_password": "devnet-pw",
        "reserve_rpc_url": "http://127.0.0.1:28545",
        "services_rpc_url": "http://127.0.0.1:28546",
    }
    (tmp_path / "devnet.json").write_text(json.dumps(state))
    monkeypatch.setenv(NODES_DIR_ENV, str(tmp_path))
    assert devnet_chains() == ()
    (tmp_path / "devnet.json").write_text(json.dumps({**state, "bnb_rpc_url": BNB_URL}))
    reading = read_settings({evm_chain_env("bnb", "CONFIRMATIONS"): "4"})
    assert reading.errors == ()
    assert reading.settings.evm_chains == (
        EvmChainSettings("bnb", BNB_URL, BNB_DEVNET_CHAIN_ID, 4, "BNB"),
    )
    rows = {row.variable: row for row in reading.rows}
    assert rows[EVM_CHAINS_ENV].source is Source.DEVNET
    assert rows[evm_chain_env("bnb", "RPC_URL")].source is Source.DEVNET
    assert rows[evm_chain_env("bnb", "CONFIRMATIONS")].source is Source.ENV


def test_the_verifier_takes_a_node_per_chain_and_keeps_the_bare_form() -> None:
    """`--evm-rpc CHAIN_ID=URL` repeated names each chain's node; one bare `--evm-rpc URL` is
    still a node of whichever chain it serves."""
    assert nodes_of(None, ["http://a:8545"], None) == Nodes(evm="http://a:8545")
    nodes = nodes_of(
        "http://u:p@b", ["31337=http://a:8545", f"{BNB_DEVNET_CHAIN_ID}=http://c"], None
    )
    assert nodes.evm is None
    assert nodes.evm_endpoints() == ((31337, "http://a:8545"), (BNB_DEVNET_CHAIN_ID, "http://c"))
    assert nodes_of(None, ["http://x?y=1"], None).evm == "http://x?y=1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["http://a", "http://b"], "may be given once"),
        (["1=http://a", "1=http://b"], "names a chain id twice"),
        (["0=http://a"], "positive chain id"),
        (["bnb=http://a"], "CHAIN_ID=URL"),
        (["5="], "CHAIN_ID=URL"),
    ],
)
def test_the_verifier_refuses_an_ambiguous_node_list(options: list[str], message: str) -> None:
    """Two bare nodes, a chain named twice or a malformed chain id are usage errors (exit 2)."""
    with pytest.raises(UsageError, match=message):
        nodes_of(None, options, None)


def test_reserve_verify_exits_2_on_a_malformed_evm_rpc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command names the bad option and checks nothing."""
    bundle = tmp_path / "b.json"
    bundle.write_text("{}")
    assert reserve_verify([str(bundle), "--evm-rpc", "x=http://a"]) == 2
    assert "--evm-rpc x=..." in capsys.readouterr().err
