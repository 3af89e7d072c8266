"""Settings: read once from a plain mapping, one parser per kind of value, nodes resolved in one
place, secrets masked in ``treasury settings``."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custody.bitcoin_network import BitcoinNetwork
from custody.devnet.binaries import ANVIL_ENV, BITCOIN_CLI_ENV, BITCOIND_ENV, NODES_DIR_ENV
from custody.nodes import BitcoinEndpoint, NodeEndpoints
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV
from treasury.exceptions import DatabaseConfigError
from treasury.reconcile import ReconcileSettings
from treasury.settings import (
    API_TOKEN_ENV,
    API_TOKEN_FILE_ENV,
    BITCOIN_NETWORK_ENV,
    BITCOIN_RPC_URL_ENV,
    BTC_FEE_RATE_ENV,
    BTC_MAX_FEE_ENV,
    BTC_VAULT_ENV,
    CONFIRMATIONS_ENV,
    ETH_RELAYER_ENV,
    ETH_RELAYER_MIN_BALANCE_ENV,
    EVM_CHAINS_ENV,
    KEY_HEALTH_INTERVAL_ENV,
    RECONCILE_BTC_MIN_CONF_ENV,
    RECONCILE_DROP_POLICY_ENV,
    RECONCILE_DROP_TIMEOUT_ENV,
    RECONCILE_ETH_MIN_CONF_ENV,
    RECONCILE_MAX_AGE_ENV,
    RECONCILE_REFRESH_ALARM_ENV,
    RESERVE_RPC_URL_ENV,
    SAFE_VAULT_ENV,
    SERVICES_RPC_URL_ENV,
    WINDOW_FROM_BLOCK_ENV,
    WINDOW_REGISTRY_ENV,
    NodeNotConfiguredError,
    Settings,
    SettingsError,
    Source,
    SpendSettings,
    database_url,
    read_settings,
)
from treasury.workflow_exceptions import NotConfiguredError

BITCOIN_URL = "http://alice:s3cret-pw@127.0.0.1:18443"
DATABASE_URL = "postgresql+psycopg://treasurer:hunter2-pw@db.internal:5432/reserve"
TOKEN = "trs_0123456789abcdef_deadbeefcafe"  # a token's shape; no officer holds it
DEVNET = NodeEndpoints(
    BitcoinEndpoint("http://127.0.0.1:28443", "devnet", "devnet-pw"),
    "http://127.0.0.1:28545",
    "http://127.0.0.1:28546",
)
EVERY_VARIABLE = (
    DATABASE_URL_ENV,
    BITCOIN_RPC_URL_ENV,
    RESERVE_RPC_URL_ENV,
    SERVICES_RPC_URL_ENV,
    EVM_CHAINS_ENV,
    BITCOIN_NETWORK_ENV,
    BTC_VAULT_ENV,
    SAFE_VAULT_ENV,
    ETH_RELAYER_ENV,
    ETH_RELAYER_MIN_BALANCE_ENV,
    BTC_FEE_RATE_ENV,
    BTC_MAX_FEE_ENV,
    *CONFIRMATIONS_ENV.values(),
    WINDOW_REGISTRY_ENV,
    WINDOW_FROM_BLOCK_ENV,
    RECONCILE_BTC_MIN_CONF_ENV,
    RECONCILE_ETH_MIN_CONF_ENV,
    RECONCILE_MAX_AGE_ENV,
    RECONCILE_DROP_TIMEOUT_ENV,
    RECONCILE_DROP_POLICY_ENV,
    RECONCILE_REFRESH_ALARM_ENV,
    KEY_HEALTH_INTERVAL_ENV,
    API_TOKEN_ENV,
    API_TOKEN_FILE_ENV,
    NODES_DIR_ENV,
    BITCOIND_ENV,
    BITCOIN_CLI_ENV,
    ANVIL_ENV,
)


def _no_devnet() -> NodeEndpoints:
    return NodeEndpoints()


def test_an_empty_environment_gives_every_documented_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Nothing set: embedded SQLite under the working folder, regtest, 2 sat/vB, 50000 sats, one
    confirmation, the reconciler's own defaults, and no node."""
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({}, devnet=_no_devnet)
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'treasury.sqlite3'}"
    assert settings.bitcoin_network is BitcoinNetwork.REGTEST
    assert settings.spends == SpendSettings()
    assert settings.spends.btc_fee_rate_sat_vb == Decimal(2)
    assert settings.spends.btc_max_fee_sats == 50_000
    assert settings.spends.confirmations_required() == {"BTC": 1, "ETH": 1}
    assert settings.reconcile == ReconcileSettings()
    assert settings.nodes == NodeEndpoints()


def test_every_variable_is_read_into_its_typed_value() -> None:
    """Each variable lands in its field as its own type: exact Decimal, int, checksummed address,
    enum member, endpoint with credentials split off."""
    settings = Settings.from_env(
        {
            DATABASE_URL_ENV: DATABASE_URL,
            BITCOIN_RPC_URL_ENV: BITCOIN_URL,
            RESERVE_RPC_URL_ENV: "http://127.0.0.1:8545",
            SERVICES_RPC_URL_ENV: "https://services.example:8546/rpc",
            BITCOIN_NETWORK_ENV: "signet",
            BTC_VAULT_ENV: "reserve",
            SAFE_VAULT_ENV: "safe-reserve",
            ETH_RELAYER_ENV: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            BTC_FEE_RATE_ENV: " 1.25 ",
            BTC_MAX_FEE_ENV: "1234",
            CONFIRMATIONS_ENV["ETH"]: "12",
            RECONCILE_BTC_MIN_CONF_ENV: "6",
            RECONCILE_ETH_MIN_CONF_ENV: "64",
            RECONCILE_MAX_AGE_ENV: "600",
        },
        devnet=_no_devnet,
    )
    assert settings.database_url == DATABASE_URL
    assert settings.bitcoin_endpoint() == BitcoinEndpoint(
        "http://127.0.0.1:18443", "alice", "s3cret-pw"
    )
    assert settings.reserve_rpc_url() == "http://127.0.0.1:8545"
    assert settings.services_rpc_url() == "https://services.example:8546/rpc"
    assert settings.bitcoin_network is BitcoinNetwork.SIGNET
    assert settings.spends == SpendSettings(
        btc_vault="reserve",
        safe_vault="safe-reserve",
        eth_relayer="0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        btc_fee_rate_sat_vb=Decimal("1.25"),
        btc_max_fee_sats=1234,
        confirmations_btc=1,
        confirmations_eth=12,
    )
    assert settings.reconcile == ReconcileSettings(6, 64, 600)


@pytest.mark.parametrize(
    ("variable", "raw", "must_be"),
    [
        (BTC_FEE_RATE_ENV, "fast", "a number of sat/vB above 0 and at most 500"),
        (BTC_MAX_FEE_ENV, "0", "a whole number of satoshis from 1 to 1000000"),
        (CONFIRMATIONS_ENV["BTC"], "1.5", "a whole number of blocks of at least 1"),
        (RECONCILE_MAX_AGE_ENV, "-5", "a positive whole number"),
        (RECONCILE_BTC_MIN_CONF_ENV, "٣", "a positive whole number"),  # a non-ASCII digit
        (ETH_RELAYER_ENV, "0x1234", "an Ethereum address"),
        (BITCOIN_NETWORK_ENV, "mainnet", "one of main, test, signet, regtest"),
        (RESERVE_RPC_URL_ENV, "127.0.0.1:8545", "an http(s) URL such as http://127.0.0.1:8545"),
        (SERVICES_RPC_URL_ENV, "http://host:port", "an http(s) URL"),
        (BITCOIN_RPC_URL_ENV, "ftp://u:p@host", "an http(s) URL such as http://user:password@"),
    ],
)
def test_an_unusable_value_is_a_typed_error_naming_its_variable(
    variable: str, raw: str, must_be: str
) -> None:
    """Each kind of value has one parser, and its error names the variable and what it must be."""
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({variable: raw}, devnet=_no_devnet)
    assert str(refused.value).startswith(f"{variable} must be {must_be}")
    assert isinstance(refused.value, NotConfiguredError)
    assert isinstance(refused.value, ValueError)


def test_a_bad_database_url_keeps_its_own_error() -> None:
    """The database URL is checked by the database layer's parser, with its message."""
    with pytest.raises(DatabaseConfigError, match="unsupported backend 'mysql'"):
        Settings.from_env({DATABASE_URL_ENV: "mysql://u@h/db"}, devnet=_no_devnet)
    with pytest.raises(DatabaseConfigError, match="unsupported backend 'mysql'"):
        database_url({DATABASE_URL_ENV: "mysql://u@h/db"})
    assert database_url({DATABASE_URL_ENV: DATABASE_URL}) == DATABASE_URL


def test_a_url_with_a_password_is_refused_without_showing_it() -> None:
    """The error about an unusable node URL masks the password it carries."""
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({BITCOIN_RPC_URL_ENV: "ftp://alice:s3cret-pw@host"}, devnet=_no_devnet)
    assert "s3cret-pw" not in str(refused.value)
    assert "alice:***@host" in str(refused.value)


def test_nodes_come_from_the_setting_else_the_devnet_else_the_error_says_what_to_do() -> None:
    """A set variable wins; an unset one takes the running devnet's node; with neither, asking
    for the node names the variable and `treasury devnet up`."""
    asked: list[int] = []

    def devnet() -> NodeEndpoints:
        asked.append(1)
        return DEVNET

    mixed = Settings.from_env({BITCOIN_RPC_URL_ENV: BITCOIN_URL}, devnet=devnet)
    assert mixed.bitcoin_endpoint().user == "alice"
    assert mixed.reserve_rpc_url() == "http://127.0.0.1:28545"
    assert mixed.services_rpc_url() == "http://127.0.0.1:28546"
    assert asked == [1]  # the state file is read once, however many nodes it supplies

    everything_set = {
        BITCOIN_RPC_URL_ENV: BITCOIN_URL,
        RESERVE_RPC_URL_ENV: "http://127.0.0.1:8545",
        SERVICES_RPC_URL_ENV: "http://127.0.0.1:8546",
    }
    Settings.from_env(everything_set, devnet=devnet)
    assert asked == [1]  # nothing to fall back on: the devnet is not consulted

    nothing = Settings.from_env({}, devnet=_no_devnet)
    for ask, variable in (
        (nothing.bitcoin_endpoint, BITCOIN_RPC_URL_ENV),
        (nothing.reserve_rpc_url, RESERVE_RPC_URL_ENV),
        (nothing.services_rpc_url, SERVICES_RPC_URL_ENV),
    ):
        with pytest.raises(NodeNotConfiguredError) as missing:
            ask()
        assert str(missing.value) == (
            f"No node configured: set {variable}, or start the local devnets with "
            "`treasury devnet up` in another shell."
        )


def test_every_variable_is_listed_with_its_source_and_no_secret() -> None:
    """The listing has one row per variable, says env / devnet state / default, and shows no
    password or token (nor does the settings' repr)."""
    environ = {
        DATABASE_URL_ENV: DATABASE_URL,
        RESERVE_RPC_URL_ENV: "http://127.0.0.1:8545",
        API_TOKEN_ENV: TOKEN,
        BTC_MAX_FEE_ENV: "lots",
    }
    reading = read_settings(environ, devnet=lambda: DEVNET)
    rows = {row.variable: row for row in reading.rows}
    assert tuple(rows) == EVERY_VARIABLE
    assert rows[DATABASE_URL_ENV].source is Source.ENV
    assert rows[DATABASE_URL_ENV].shown == DATABASE_URL.replace("hunter2-pw", "***")
    assert rows[BITCOIN_RPC_URL_ENV].source is Source.DEVNET
    assert rows[BITCOIN_RPC_URL_ENV].shown == "http://devnet:***@127.0.0.1:28443"
    assert rows[RESERVE_RPC_URL_ENV].source is Source.ENV
    assert rows[SERVICES_RPC_URL_ENV].source is Source.DEVNET
    assert (rows[BTC_FEE_RATE_ENV].source, rows[BTC_FEE_RATE_ENV].shown) == (Source.DEFAULT, "2")
    assert rows[API_TOKEN_ENV].shown == "***"
    assert rows[BTC_MAX_FEE_ENV].problem is not None
    assert [str(error) for error in reading.errors] == [rows[BTC_MAX_FEE_ENV].problem]
    shown = repr(reading) + "".join(f"{row.shown} {row.problem}" for row in reading.rows)
    for secret in ("hunter2-pw", "devnet-pw", TOKEN):
        assert secret not in shown


def test_treasury_settings_prints_every_variable_and_exits_2_on_an_unusable_one(
    tmp_path: Path,
) -> None:
    """`treasury settings` shows each variable, its source (the running devnet's state file
    included) and its masked value; an unusable value is marked and the command fails with one
    error line."""
    nodes_dir = tmp_path / "nodes"
    nodes_dir.mkdir()
    (nodes_dir / "devnet.json").write_text(
        json.dumps(
            {
                "pid": os.getpid(),  # a live process: the state is current
                "bitcoin_rpc_url": "http://127.0.0.1:28443",
                "bitcoin_rpc_user": "devnet",
                "bitcoin_rpc_password": "devnet-pw",
                "reserve_rpc_url": "http://127.0.0.1:28545",
                "services_rpc_url": "http://127.0.0.1:28546",
            }
        )
    )
    env = {name: None for name in EVERY_VARIABLE if name not in (NODES_DIR_ENV, DATABASE_URL_ENV)}
    env |= {NODES_DIR_ENV: str(nodes_dir), DATABASE_URL_ENV: DATABASE_URL, API_TOKEN_ENV: TOKEN}
    result = CliRunner().invoke(app, ["settings"], env=env)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split(maxsplit=1)[1] for line in result.stdout.splitlines()}
    assert set(lines) == set(EVERY_VARIABLE)
    assert lines[BITCOIN_RPC_URL_ENV].split() == [
        "devnet",
        "state",
        "http://devnet:***@127.0.0.1:28443",
    ]
    assert lines[DATABASE_URL_ENV].split()[0] == "env"
    assert lines[BTC_FEE_RATE_ENV].split() == ["default", "2"]
    assert lines[API_TOKEN_ENV].split() == ["env", "***"]
    for secret in ("hunter2-pw", "devnet-pw", TOKEN):
        assert secret not in result.output

    result = CliRunner().invoke(app, ["settings"], env={**env, BTC_FEE_RATE_ENV: "free"})
    assert result.exit_code == 2
    fee = next(line for line in result.stdout.splitlines() if line.startswith(BTC_FEE_RATE_ENV))
    assert fee.split() == [BTC_FEE_RATE_ENV, "env", "free", "(unusable)"]
    assert result.stderr == (
        f"error: {BTC_FEE_RATE_ENV} must be a number of sat/vB above 0 and at most 500, "
        "not 'free'.\n"
    )


def test_a_command_meets_an_unusable_setting_as_one_error_line(tmp_path: Path) -> None:
    """A command that reads the settings stops with exit 2 and the variable's error, while
    `--help` works whatever the environment holds."""
    env = {
        DATABASE_URL_ENV: f"sqlite:///{tmp_path / 'treasury.sqlite3'}",
        CONFIRMATIONS_ENV["ETH"]: "soon",
    }
    result = CliRunner().invoke(app, ["ledger", "balances"], env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {CONFIRMATIONS_ENV['ETH']} must be a whole number of blocks of at least 1, "
        "not 'soon'.\n"
    )
    assert CliRunner().invoke(app, ["ledger", "balances", "--help"], env=env).exit_code == 0


def test_the_window_registry_refresh_alarm_and_health_interval_are_read_and_bounded() -> None:
    """The spend window registry (checksummed), where its events start, the recovery refresh
    alarm's share of N (0-100) and the key health interval (positive) are typed settings; a
    value out of bounds is refused with its variable's name."""
    settings = Settings.from_env(
        {
            WINDOW_REGISTRY_ENV: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            WINDOW_FROM_BLOCK_ENV: "17",
            RECONCILE_REFRESH_ALARM_ENV: "35",
            KEY_HEALTH_INTERVAL_ENV: "30",
        },
        devnet=_no_devnet,
    )
    assert settings.spends.window_registry == "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    assert settings.spends.window_from_block == 17
    assert settings.reconcile.refresh_alarm_percent_left == 35
    assert settings.key_health_interval_days == 30
    for variable, raw in (
        (RECONCILE_REFRESH_ALARM_ENV, "101"),
        (KEY_HEALTH_INTERVAL_ENV, "0"),
        (WINDOW_REGISTRY_ENV, "0x1234"),
        (WINDOW_FROM_BLOCK_ENV, "-1"),
    ):
        with pytest.raises(SettingsError, match=variable):
            Settings.from_env({variable: raw}, devnet=_no_devnet)
