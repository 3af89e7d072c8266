"""The treasury's settings: read once from the environment at an edge, then passed down as values.

The edges are the CLI (``treasury.cli``, once per command), the API server (``treasury api
serve``) and the scheduled jobs (``treasury.scheduler``, ``treasury.attest.job``). Each
calls ``Settings.from_env(os.environ)`` once; everything below receives the ``Settings``, or the
part it needs, as an argument. No other module reads a variable, and a test states its settings
as a plain mapping.

Each kind of value has one parser (a bounded whole number, an exact decimal, an http(s) URL, a
database URL, an Ethereum address, an enum member, a name) and every parser's error is a
``SettingsError`` naming the variable and what it must hold. Node endpoints are resolved here, in
one place: the variable if set, else the running ``treasury devnet up``'s state file, else none;
asking for a missing node raises ``NodeNotConfiguredError``, which says what to set or start.

The EVM reserve chains are a list (``treasury.chains``): the first is the historic reserve chain
(``TREASURY_RESERVE_RPC_URL``, its depth ``TREASURY_RECONCILE_ETH_MIN_CONFIRMATIONS``, native
``ETH``); ``TREASURY_EVM_CHAINS`` names further ones (``bnb``), each with
``TREASURY_EVM_<NAME>_CHAIN_ID``, ``_RPC_URL``, ``_CONFIRMATIONS`` (default 1),
``_NATIVE_ASSET`` (default the name in capitals), ``_RELAYER`` (the account that pays the chain's
Safe gas) and ``_RELAYER_MIN_BALANCE`` (base units below which its low-balance warning opens,
default 0.05 coin). Unset, it is the running devnet's BNB node. The first chain's relayer is
``TREASURY_ETH_RELAYER``, its threshold ``TREASURY_ETH_RELAYER_MIN_BALANCE``.

``treasury settings`` prints ``read_settings(os.environ).rows``: every variable with its value
(passwords and tokens masked) and its source. The errors, as a tree::

    NotConfiguredError (treasury.workflow_exceptions; HTTP 503)
    ├── SettingsError            a variable holds a value that cannot be used (ValueError)
    └── NodeNotConfiguredError   no URL set for a chain's node and no devnet running

The database URL keeps its own ``DatabaseConfigError`` (``treasury.db`` checks it).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from eth_utils.address import is_address, to_checksum_address

from custody.bitcoin.approval import DEFAULT_MAX_FEE_RATE_SAT_VB, DEFAULT_MAX_FEE_SATS
from custody.bitcoin_network import BitcoinNetwork
from custody.devnet.binaries import (
    ANVIL_ENV,
    BITCOIN_CLI_ENV,
    BITCOIND_ENV,
    NODES_DIR_ENV,
    project_root,
)
from custody.devnet.evm import BNB_DEVNET_CHAIN_ID, BNB_DEVNET_NATIVE_ASSET
from custody.devnet.stack import read_state
from custody.nodes import BitcoinEndpoint, NodeEndpoints, devnet_endpoints
from treasury.chains import (
    CHAIN_NAME_PATTERN,
    DEFAULT_RELAYER_MIN_BALANCE,
    MAX_RELAYER_MIN_BALANCE,
    RESERVE_CHAIN_NAME,
    ChainConfigError,
    EvmChainSettings,
    check_chains,
)
from treasury.custody_health import DEFAULT_INTERVAL_DAYS as DEFAULT_KEY_HEALTH_INTERVAL_DAYS
from treasury.db import (
    DATABASE_URL_ENV,
    default_database_url,
    masked_database_url,
    parse_database_url,
)
from treasury.exceptions import DatabaseConfigError, TreasuryError
from treasury.proposals import DEFAULT_CONFIRMATIONS_REQUIRED
from treasury.reconcile.drops import DropPolicy
from treasury.reconcile.service import ReconcileSettings
from treasury.workflow_exceptions import NotConfiguredError

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)
Parser = Callable[[str, str], T]
"""Turns a variable's raw text into its value: ``parse(variable, raw)``, or ``SettingsError``."""

BITCOIN_RPC_URL_ENV = "TREASURY_BITCOIN_RPC_URL"
RESERVE_RPC_URL_ENV = "TREASURY_RESERVE_RPC_URL"
SERVICES_RPC_URL_ENV = "TREASURY_SERVICES_RPC_URL"
EVM_CHAINS_ENV = "TREASURY_EVM_CHAINS"
"""The further EVM reserve chains, by name (``bnb,polygon``); each one's values in
``TREASURY_EVM_<NAME>_<FIELD>`` (``evm_chain_env``)."""
EVM_CHAIN_FIELDS = (
    "CHAIN_ID",
    "RPC_URL",
    "CONFIRMATIONS",
    "NATIVE_ASSET",
    "RELAYER",
    "RELAYER_MIN_BALANCE",
    "SAFE_VAULT",
)
DEVNET_BNB_CHAIN = "bnb"
"""The name the running devnet's BNB node takes when ``TREASURY_EVM_CHAINS`` is unset."""
BITCOIN_NETWORK_ENV = "TREASURY_BITCOIN_NETWORK"
BTC_VAULT_ENV = "TREASURY_BTC_VAULT"
SAFE_VAULT_ENV = "TREASURY_SAFE_VAULT"
ETH_RELAYER_ENV = "TREASURY_ETH_RELAYER"
ETH_RELAYER_MIN_BALANCE_ENV = "TREASURY_ETH_RELAYER_MIN_BALANCE"
"""Wei below which the first chain's relayer's low-balance warning opens."""
BTC_FEE_RATE_ENV = "TREASURY_BTC_FEE_RATE_SAT_VB"
BTC_MAX_FEE_ENV = "TREASURY_BTC_MAX_FEE_SATS"
CONFIRMATIONS_ENV = {"BTC": "TREASURY_CONFIRMATIONS_BTC", "ETH": "TREASURY_CONFIRMATIONS_ETH"}
RECONCILE_BTC_MIN_CONF_ENV = "TREASURY_RECONCILE_BTC_MIN_CONFIRMATIONS"
RECONCILE_ETH_MIN_CONF_ENV = "TREASURY_RECONCILE_ETH_MIN_CONFIRMATIONS"
RECONCILE_MAX_AGE_ENV = "TREASURY_RECONCILE_MAX_AGE_SECONDS"
RECONCILE_DROP_TIMEOUT_ENV = "TREASURY_RECONCILE_DROPPED_SPEND_TIMEOUT_SECONDS"
RECONCILE_DROP_POLICY_ENV = "TREASURY_RECONCILE_DROPPED_SPEND_POLICY"
RECONCILE_REFRESH_ALARM_ENV = "TREASURY_RECONCILE_REFRESH_ALARM_PERCENT_LEFT"
KEY_HEALTH_INTERVAL_ENV = "TREASURY_KEY_HEALTH_INTERVAL_DAYS"
WINDOW_REGISTRY_ENV = "TREASURY_WINDOW_REGISTRY"
WINDOW_FROM_BLOCK_ENV = "TREASURY_WINDOW_FROM_BLOCK"
API_TOKEN_ENV = "TREASURY_API_TOKEN"  # noqa: S105 - the name of an environment variable, not a secret
API_TOKEN_FILE_ENV = "TREASURY_API_TOKEN_FILE"  # noqa: S105 - the name of an environment variable

DEFAULT_BITCOIN_NETWORK = BitcoinNetwork.REGTEST
DEFAULT_BTC_FEE_RATE_SAT_VB = Decimal(2)
DEFAULT_BTC_MAX_FEE_SATS = 50_000
"""What one spend may pay in fees unless ``TREASURY_BTC_MAX_FEE_SATS`` says otherwise."""
MASK = "***"
"""Shown in place of a password or a token."""


# --- Errors -------------------------------------------------------------------------------------


class SettingsError(NotConfiguredError, ValueError):
    """A variable holds a value that cannot be used; the message names it and what it must be."""


class NodeNotConfiguredError(NotConfiguredError):
    """No node is configured for a chain and no devnet is running."""

    def __init__(self, variable: str) -> None:
        super().__init__(
            f"No node configured: set {variable}, or start the local devnets with "
            "`treasury devnet up` in another shell."
        )
        self.variable = variable


# --- One parser per kind of value ---------------------------------------------------------------


def masked_url(url: str) -> str:
    """``url`` with its password, if it has one, replaced by ``***`` (all of it if unparsable)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}:{MASK}@{hostport}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def text(_variable: str, raw: str) -> str:
    """A name as given (a vault's, a path's): any non-blank text."""
    return raw


def whole_number(*, minimum: int, maximum: int | None = None, must_be: str) -> Parser[int]:
    """A whole number from ``minimum`` to ``maximum``; ``must_be`` says so in the error."""

    def parse(variable: str, raw: str) -> int:
        value = int(raw) if raw.isascii() and raw.isdigit() else None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise SettingsError(f"{variable} must be {must_be}, not {raw!r}.")
        return value

    return parse


def exact_decimal(*, above: Decimal, at_most: Decimal, must_be: str) -> Parser[Decimal]:
    """A finite decimal in (``above``, ``at_most``], kept exact (never a float)."""

    def parse(variable: str, raw: str) -> Decimal:
        try:
            value = Decimal(raw)
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or not above < value <= at_most:
            raise SettingsError(f"{variable} must be {must_be}, not {raw!r}.")
        return value

    return parse


def http_url(*, example: str) -> Parser[str]:
    """An ``http://`` or ``https://`` URL with a host (and a numeric port, if it has one)."""

    def parse(variable: str, raw: str) -> str:
        try:
            parts = urlsplit(raw)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a malformed IPv6 host, or a port that is not a number
            usable = False
        if not usable:
            raise SettingsError(
                f"{variable} must be an http(s) URL such as {example}, not {masked_url(raw)!r}."
            )
        return raw

    return parse


def evm_address(variable: str, raw: str) -> str:
    """An Ethereum address, returned in its EIP-55 checksummed form."""
    if not is_address(raw):
        raise SettingsError(f"{variable} must be an Ethereum address, not {raw!r}.")
    return str(to_checksum_address(raw))


def relayer_address(variable: str, raw: str) -> str:
    """A relayer's address: an Ethereum address (checksummed) other than the zero address."""
    address = evm_address(variable, raw)
    if int(address, 16) == 0:
        raise SettingsError(
            f"{variable} must be the address of an account that pays gas, not the zero address."
        )
    return address


def member(kind: type[E]) -> Parser[E]:
    """A member of the enum ``kind``, by its value."""

    def parse(variable: str, raw: str) -> E:
        try:
            return kind(raw)
        except ValueError:
            names = ", ".join(str(m.value) for m in kind)
            raise SettingsError(f"{variable} must be one of {names}, not {raw!r}.") from None

    return parse


def database(_variable: str, raw: str) -> str:
    """A database URL of a supported backend (``treasury.db`` checks it)."""
    parse_database_url(raw)
    return raw


def chain_names(variable: str, raw: str) -> tuple[str, ...]:
    """Comma-separated chain names: lowercase letters and digits, each once, not ``reserve``."""
    names = tuple(part.strip() for part in raw.split(","))
    for name in names:
        if not CHAIN_NAME_PATTERN.fullmatch(name) or name == RESERVE_CHAIN_NAME:
            raise SettingsError(
                f"{variable} must be comma-separated chain names of 1-16 lowercase letters or "
                f"digits (not {RESERVE_CHAIN_NAME!r}, the first chain), not {raw!r}."
            )
    if len(set(names)) != len(names):
        raise SettingsError(f"{variable} must name each chain once, not {raw!r}.")
    return names


def asset_code(variable: str, raw: str) -> str:
    """A native coin's asset code (``BNB``)."""
    if not (raw.isascii() and raw.isalnum() and raw.isupper() and 2 <= len(raw) <= 10):
        raise SettingsError(
            f"{variable} must be an asset code of 2-10 capital letters or digits, not {raw!r}."
        )
    return raw


relayer_min_balance = whole_number(
    minimum=0,
    maximum=MAX_RELAYER_MIN_BALANCE,
    must_be=(
        "a whole number of base units (wei: 50000000000000000 is 0.05 coin) from 0 to "
        f"{MAX_RELAYER_MIN_BALANCE}"
    ),
)
"""A relayer's low-balance threshold, in the chain coin's base units (never a decimal coin)."""


def evm_chain_env(name: str, field: str) -> str:
    """The variable holding ``field`` (``CHAIN_ID``, ``RPC_URL``...) of the EVM chain ``name``."""
    return f"TREASURY_EVM_{name.upper()}_{field}"


def devnet_chains() -> tuple[EvmChainSettings, ...]:
    """The running devnet's further EVM chains (its BNB node), or none."""
    state = read_state()
    if state is None or state.bnb_rpc_url is None:
        return ()
    return (
        EvmChainSettings(
            DEVNET_BNB_CHAIN,
            state.bnb_rpc_url,
            BNB_DEVNET_CHAIN_ID,
            native_asset=BNB_DEVNET_NATIVE_ASSET,
        ),
    )


def _bitcoin_endpoint(variable: str, raw: str) -> BitcoinEndpoint:
    url = http_url(example="http://user:password@127.0.0.1:18443")(variable, raw)
    return BitcoinEndpoint.from_url(url)


def _shown_endpoint(endpoint: BitcoinEndpoint) -> str:
    scheme, _, rest = endpoint.url.partition("://")
    credentials = f"{endpoint.user}:{MASK}@" if endpoint.user or endpoint.password else ""
    return f"{scheme}://{credentials}{rest}"


# --- The values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpendSettings:
    """How spends are wired: the paying vaults, the Safe's gas payer, fees and confirmations."""

    btc_vault: str | None = None
    """The Bitcoin vault spends are paid from (``None``: the only one in the database)."""
    safe_vault: str | None = None
    """The Safe spends are paid from (``None``: the only one in the database)."""
    eth_relayer: str | None = None
    """The account that pays the first EVM chain's Safe gas (``None``: the node's own first
    account); a further chain's is its ``EvmChainSettings.relayer``."""
    eth_relayer_min_balance: int = DEFAULT_RELAYER_MIN_BALANCE
    """Wei below which the first chain's relayer's low-balance warning opens."""
    btc_fee_rate_sat_vb: Decimal = DEFAULT_BTC_FEE_RATE_SAT_VB
    btc_max_fee_sats: int = DEFAULT_BTC_MAX_FEE_SATS
    confirmations_btc: int = DEFAULT_CONFIRMATIONS_REQUIRED
    confirmations_eth: int = DEFAULT_CONFIRMATIONS_REQUIRED
    window_registry: str | None = None
    """The spend window registry on the services chain, where large spends are announced and
    vetoed (``None``: no window can be read, so the signers refuse spends the policy delays)."""
    window_from_block: int = 0
    """The services-chain block the registry was deployed at: where reading its events starts."""

    def confirmations_required(self) -> dict[str, int]:
        """Blocks after which a broadcast spend of each asset counts as confirmed."""
        return {"BTC": self.confirmations_btc, "ETH": self.confirmations_eth}


@dataclass(frozen=True)
class Settings:
    """Everything the treasury is configured with; built by ``from_env`` at an edge."""

    database_url: str = field(default_factory=default_database_url, repr=False)
    """The database's URL; kept out of repr, as it may carry a password."""
    nodes: NodeEndpoints = field(default_factory=NodeEndpoints)
    bitcoin_network: BitcoinNetwork = DEFAULT_BITCOIN_NETWORK
    spends: SpendSettings = field(default_factory=SpendSettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    evm_chains: tuple[EvmChainSettings, ...] = ()
    """The further EVM reserve chains (``TREASURY_EVM_CHAINS``); the first is ``reserve_chain``."""
    key_health_interval_days: int = DEFAULT_KEY_HEALTH_INTERVAL_DAYS
    """Days after which an institution's last key health check is overdue (an alarm opens)."""

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        devnet: Callable[[], NodeEndpoints] = devnet_endpoints,
    ) -> Settings:
        """The settings ``environ`` holds (nodes it leaves out from ``devnet()``), or the first
        ``SettingsError``/``DatabaseConfigError`` of a variable that cannot be used."""
        reading = read_settings(environ, devnet=devnet)
        if reading.errors:
            raise reading.errors[0]
        return reading.settings

    def bitcoin_endpoint(self) -> BitcoinEndpoint:
        """The configured bitcoind, or ``NodeNotConfiguredError``."""
        if self.nodes.bitcoin is None:
            raise NodeNotConfiguredError(BITCOIN_RPC_URL_ENV)
        return self.nodes.bitcoin

    def reserve_rpc_url(self) -> str:
        """JSON-RPC URL of the reserve's EVM chain, or ``NodeNotConfiguredError``."""
        if self.nodes.reserve_rpc_url is None:
            raise NodeNotConfiguredError(RESERVE_RPC_URL_ENV)
        return self.nodes.reserve_rpc_url

    def reserve_chain(self) -> EvmChainSettings:
        """The reserve's first EVM chain, as its historic variables configure it."""
        return EvmChainSettings(
            RESERVE_CHAIN_NAME,
            self.nodes.reserve_rpc_url,
            confirmations=self.reconcile.eth_min_confirmations,
            relayer=self.spends.eth_relayer,
            relayer_min_balance=self.spends.eth_relayer_min_balance,
        )

    def reserve_chains(self) -> tuple[EvmChainSettings, ...]:
        """Every EVM reserve chain, the first one first (one with no node is listed too)."""
        return check_chains((self.reserve_chain(), *self.evm_chains))

    def services_rpc_url(self) -> str:
        """JSON-RPC URL of the government's services chain, or ``NodeNotConfiguredError``."""
        if self.nodes.services_rpc_url is None:
            raise NodeNotConfiguredError(SERVICES_RPC_URL_ENV)
        return self.nodes.services_rpc_url


# --- Reading ------------------------------------------------------------------------------------


class Source(enum.Enum):
    """Where a setting's value came from."""

    ENV = "env"
    DEVNET = "devnet state"
    DEFAULT = "default"


@dataclass(frozen=True)
class SettingRow:
    """One line of ``treasury settings``: a variable, its value as shown, and its source."""

    variable: str
    shown: str
    source: Source
    problem: str | None = None
    """Why the variable's value cannot be used (its default stands in)."""


@dataclass(frozen=True)
class SettingsReading:
    """One pass over an environment: the settings, every variable's row, and what was unusable."""

    settings: Settings
    rows: tuple[SettingRow, ...]
    errors: tuple[TreasuryError, ...]


class _Reader:
    """Reads variables from one environment, noting each one's row; collects unusable values."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.rows: list[SettingRow] = []
        self.errors: list[TreasuryError] = []

    def value(
        self, variable: str, parse: Parser[T], default: T, *, show: Callable[[T], str] = str
    ) -> T:
        """The parsed value of ``variable``, else ``default`` (also when it cannot be used)."""
        found = self.optional(variable, parse, show=show)
        if found is not None:
            return found
        if self.rows[-1].problem is None:
            self.rows[-1] = SettingRow(variable, show(default), Source.DEFAULT)
        return default

    def optional(
        self,
        variable: str,
        parse: Parser[T],
        *,
        fallback: Callable[[], T | None] | None = None,
        show: Callable[[T], str] = str,
    ) -> T | None:
        """The parsed value of ``variable``, else ``fallback()`` (the devnet's), else ``None``."""
        raw = self._environ.get(variable, "").strip()
        if raw:
            try:
                parsed = parse(variable, raw)
            except (SettingsError, DatabaseConfigError) as exc:
                self.errors.append(exc)
                self.rows.append(SettingRow(variable, masked_url(raw), Source.ENV, str(exc)))
                return None
            self.rows.append(SettingRow(variable, show(parsed), Source.ENV))
            return parsed
        found = fallback() if fallback is not None else None
        if found is not None:
            self.rows.append(SettingRow(variable, show(found), Source.DEVNET))
            return found
        self.rows.append(SettingRow(variable, "(none)", Source.DEFAULT))
        return None

    def note(self, variable: str, default: str) -> None:
        """List a variable another layer reads (the devnet harness's), without using it."""
        raw = self._environ.get(variable, "").strip()
        self.rows.append(
            SettingRow(variable, raw, Source.ENV)
            if raw
            else SettingRow(variable, default, Source.DEFAULT)
        )


def _given(value: T) -> Callable[[], T]:
    """A fallback that gives ``value`` (the devnet's, already read)."""
    return lambda: value


def _evm_chains(
    env: _Reader, fallback: Callable[[], tuple[EvmChainSettings, ...]]
) -> tuple[EvmChainSettings, ...]:
    """The further EVM chains ``TREASURY_EVM_CHAINS`` names, each from its own variables; unset,
    the running devnet's (whose values the variables may still override)."""
    found: list[tuple[EvmChainSettings, ...]] = []

    def devnet_names() -> tuple[str, ...] | None:
        found.append(fallback())
        return tuple(c.name for c in found[0]) or None

    names = env.optional(EVM_CHAINS_ENV, chain_names, fallback=devnet_names, show=",".join) or ()
    from_devnet = {c.name: c for c in (found[0] if found else ())}
    chains: list[EvmChainSettings] = []
    for name in names:
        devnet = from_devnet.get(name)
        chain_id = env.optional(
            evm_chain_env(name, "CHAIN_ID"),
            whole_number(minimum=1, must_be="a positive whole number (the chain's EIP-155 id)"),
            fallback=None if devnet is None else _given(devnet.chain_id),
        )
        url = env.optional(
            evm_chain_env(name, "RPC_URL"),
            http_url(example="http://127.0.0.1:8547"),
            fallback=None if devnet is None else _given(devnet.rpc_url),
            show=masked_url,
        )
        depth = env.value(
            evm_chain_env(name, "CONFIRMATIONS"),
            whole_number(minimum=1, must_be="a whole number of blocks of at least 1"),
            1,
        )
        native = env.value(
            evm_chain_env(name, "NATIVE_ASSET"),
            asset_code,
            devnet.native_asset if devnet is not None else name.upper(),
        )
        relayer = env.optional(evm_chain_env(name, "RELAYER"), relayer_address)
        threshold = env.value(
            evm_chain_env(name, "RELAYER_MIN_BALANCE"),
            relayer_min_balance,
            DEFAULT_RELAYER_MIN_BALANCE,
        )
        safe = env.optional(evm_chain_env(name, "SAFE_VAULT"), text)
        if chain_id is None:
            env.errors.append(
                SettingsError(
                    f"{evm_chain_env(name, 'CHAIN_ID')} must be set: {EVM_CHAINS_ENV} lists the "
                    f"chain {name!r}, and a chain is known by its id."
                )
            )
            continue
        try:
            chains.append(
                EvmChainSettings(
                    name, url, chain_id, depth, native, relayer, threshold, safe_vault=safe
                )
            )
        except ChainConfigError as exc:
            env.errors.append(SettingsError(f"{EVM_CHAINS_ENV}: {exc}"))
    try:
        return check_chains(chains)
    except ChainConfigError as exc:
        env.errors.append(SettingsError(f"{EVM_CHAINS_ENV}: {exc}"))
        return ()


def read_settings(
    environ: Mapping[str, str],
    *,
    devnet: Callable[[], NodeEndpoints] = devnet_endpoints,
    devnet_evm: Callable[[], tuple[EvmChainSettings, ...]] | None = None,
) -> SettingsReading:
    """Read every variable of ``environ``; an unusable one is reported and its default used.

    ``devnet_evm`` gives the running devnet's further EVM chains; by default the state file's,
    when ``devnet`` is the state file's too (a caller that states its devnet states both).
    """
    if devnet_evm is None:
        devnet_evm = devnet_chains if devnet is devnet_endpoints else tuple
    env = _Reader(environ)
    devnet_nodes: list[NodeEndpoints] = []

    def running() -> NodeEndpoints:
        if not devnet_nodes:
            devnet_nodes.append(devnet())
        return devnet_nodes[0]

    database_url = env.value(
        DATABASE_URL_ENV, database, default_database_url(), show=masked_database_url
    )
    nodes = NodeEndpoints(
        env.optional(
            BITCOIN_RPC_URL_ENV,
            _bitcoin_endpoint,
            fallback=lambda: running().bitcoin,
            show=_shown_endpoint,
        ),
        env.optional(
            RESERVE_RPC_URL_ENV,
            http_url(example="http://127.0.0.1:8545"),
            fallback=lambda: running().reserve_rpc_url,
            show=masked_url,
        ),
        env.optional(
            SERVICES_RPC_URL_ENV,
            http_url(example="http://127.0.0.1:8546"),
            fallback=lambda: running().services_rpc_url,
            show=masked_url,
        ),
    )
    evm_chains = _evm_chains(env, devnet_evm)
    network = env.value(
        BITCOIN_NETWORK_ENV, member(BitcoinNetwork), DEFAULT_BITCOIN_NETWORK, show=_value_of
    )
    confirmations = whole_number(minimum=1, must_be="a whole number of blocks of at least 1")
    spends = SpendSettings(
        btc_vault=env.optional(BTC_VAULT_ENV, text),
        safe_vault=env.optional(SAFE_VAULT_ENV, text),
        eth_relayer=env.optional(ETH_RELAYER_ENV, relayer_address),
        eth_relayer_min_balance=env.value(
            ETH_RELAYER_MIN_BALANCE_ENV, relayer_min_balance, DEFAULT_RELAYER_MIN_BALANCE
        ),
        btc_fee_rate_sat_vb=env.value(
            BTC_FEE_RATE_ENV,
            exact_decimal(
                above=Decimal(0),
                at_most=Decimal(DEFAULT_MAX_FEE_RATE_SAT_VB),
                must_be=(f"a number of sat/vB above 0 and at most {DEFAULT_MAX_FEE_RATE_SAT_VB}"),
            ),
            DEFAULT_BTC_FEE_RATE_SAT_VB,
        ),
        btc_max_fee_sats=env.value(
            BTC_MAX_FEE_ENV,
            whole_number(
                minimum=1,
                maximum=DEFAULT_MAX_FEE_SATS,
                must_be=f"a whole number of satoshis from 1 to {DEFAULT_MAX_FEE_SATS}",
            ),
            DEFAULT_BTC_MAX_FEE_SATS,
        ),
        confirmations_btc=env.value(
            CONFIRMATIONS_ENV["BTC"], confirmations, DEFAULT_CONFIRMATIONS_REQUIRED
        ),
        confirmations_eth=env.value(
            CONFIRMATIONS_ENV["ETH"], confirmations, DEFAULT_CONFIRMATIONS_REQUIRED
        ),
        window_registry=env.optional(WINDOW_REGISTRY_ENV, evm_address),
        window_from_block=env.value(
            WINDOW_FROM_BLOCK_ENV,
            whole_number(minimum=0, must_be="a block number (a whole number, 0 or more)"),
            0,
        ),
    )
    positive = whole_number(minimum=1, must_be="a positive whole number")
    defaults = ReconcileSettings()

    reconcile = ReconcileSettings(
        env.value(RECONCILE_BTC_MIN_CONF_ENV, positive, defaults.btc_min_confirmations),
        env.value(RECONCILE_ETH_MIN_CONF_ENV, positive, defaults.eth_min_confirmations),
        env.value(RECONCILE_MAX_AGE_ENV, positive, defaults.max_cursor_age_s),
        env.value(RECONCILE_DROP_TIMEOUT_ENV, positive, defaults.dropped_spend_timeout_s),
        env.value(
            RECONCILE_DROP_POLICY_ENV,
            member(DropPolicy),
            defaults.dropped_spend_policy,
            show=_value_of,
        ),
        env.value(
            RECONCILE_REFRESH_ALARM_ENV,
            whole_number(minimum=0, maximum=100, must_be="a whole number of percent, 0-100"),
            defaults.refresh_alarm_percent_left,
        ),
    )
    key_health_interval_days = env.value(
        KEY_HEALTH_INTERVAL_ENV, positive, DEFAULT_KEY_HEALTH_INTERVAL_DAYS
    )
    # Listed, not kept: the CLI reads the token from one of these (never from its arguments, which
    # show in `ps` and shell history), and no settings object should carry it.
    env.optional(API_TOKEN_ENV, text, show=lambda _token: MASK)
    env.optional(API_TOKEN_FILE_ENV, text)
    # Read by the devnet harness (custody.devnet) itself when it finds and runs node binaries.
    env.note(NODES_DIR_ENV, str(project_root() / ".nodes"))
    for variable in (BITCOIND_ENV, BITCOIN_CLI_ENV, ANVIL_ENV):
        env.note(variable, "(PATH, else the copy `treasury devnet install` fetched)")
    settings = Settings(
        database_url, nodes, network, spends, reconcile, evm_chains, key_health_interval_days
    )
    try:
        settings.reserve_chains()
    except ChainConfigError as exc:  # a further chain repeats the first's native coin
        env.errors.append(SettingsError(f"{EVM_CHAINS_ENV}: {exc}"))
        settings = replace(settings, evm_chains=())
    return SettingsReading(settings, tuple(env.rows), tuple(env.errors))


def _value_of(chosen: enum.Enum) -> str:
    return str(chosen.value)


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """The database URL ``environ`` (default: this process's) configures, else the default.

    For edges that need this one setting only, such as Alembic's ``migrations/env.py``.
    """
    env = _Reader(os.environ if environ is None else environ)
    url = env.value(DATABASE_URL_ENV, database, default_database_url())
    if env.errors:
        raise env.errors[0]
    return url


__all__ = [
    "API_TOKEN_ENV",
    "API_TOKEN_FILE_ENV",
    "BITCOIN_NETWORK_ENV",
    "BITCOIN_RPC_URL_ENV",
    "BTC_FEE_RATE_ENV",
    "BTC_MAX_FEE_ENV",
    "BTC_VAULT_ENV",
    "CONFIRMATIONS_ENV",
    "DATABASE_URL_ENV",
    "ETH_RELAYER_ENV",
    "ETH_RELAYER_MIN_BALANCE_ENV",
    "EVM_CHAINS_ENV",
    "RECONCILE_BTC_MIN_CONF_ENV",
    "RECONCILE_DROP_POLICY_ENV",
    "RECONCILE_DROP_TIMEOUT_ENV",
    "RECONCILE_ETH_MIN_CONF_ENV",
    "RECONCILE_MAX_AGE_ENV",
    "RESERVE_RPC_URL_ENV",
    "SAFE_VAULT_ENV",
    "SERVICES_RPC_URL_ENV",
    "NodeNotConfiguredError",
    "SettingRow",
    "Settings",
    "SettingsError",
    "SettingsReading",
    "Source",
    "SpendSettings",
    "database_url",
    "devnet_chains",
    "evm_chain_env",
    "masked_url",
    "read_settings",
]
