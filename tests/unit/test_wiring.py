"""The spend wiring without nodes: settings, vault choice, ledger accounts, institution mapping."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from custody.ceremony import CeremonyPlan, ShareFiles, run_ceremony
from custody.devnet.binaries import NODES_DIR_ENV
from custody.ethereum import EthChain
from custody.ethereum.announcements import ServicesChainWindow
from custody.ethereum.records import SafeVaultRow
from custody.ethereum.rpc import EvmRPC
from custody.nodes import NodeEndpoints
from custody.records import VaultRecord
from treasury import ledger, migrate
from treasury.db import make_engine, session_factory
from treasury.ledger import BTC, AccountType
from treasury.officers import Founding, add_institution
from treasury.proposals import ProposalState, ProposalView
from treasury.reconcile import btc_scope, eth_scope, holdings_account
from treasury.reconcile.accounts import ensure_accounts, fees_account
from treasury.settings import (
    BITCOIN_RPC_URL_ENV,
    BTC_FEE_RATE_ENV,
    BTC_MAX_FEE_ENV,
    BTC_VAULT_ENV,
    CONFIRMATIONS_ENV,
    ETH_RELAYER_ENV,
    RESERVE_RPC_URL_ENV,
    SAFE_VAULT_ENV,
    SERVICES_RPC_URL_ENV,
    WINDOW_REGISTRY_ENV,
    Settings,
)
from treasury.spenders import BitcoinSpender
from treasury.wiring import (
    btc_vault_name,
    configured_spenders,
    configured_workflow,
    custody_institutions,
    eth_relayer,
    institution_transcript,
    safe_vault,
    spend_accounts,
    spender_for,
    spender_for_proposal,
    spender_setup,
    window_reader,
)
from treasury.workflow_exceptions import NotConfiguredError

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CHAIN_ID = 31337
SETTINGS = (
    BTC_VAULT_ENV,
    SAFE_VAULT_ENV,
    ETH_RELAYER_ENV,
    BTC_FEE_RATE_ENV,
    BTC_MAX_FEE_ENV,
    BITCOIN_RPC_URL_ENV,
    RESERVE_RPC_URL_ENV,
    *CONFIRMATIONS_ENV.values(),
)


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the developer's shell, nor a running `treasury devnet up`."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(NODES_DIR_ENV, str(tmp_path / "no-devnet"))


def _settings() -> Settings:
    """The settings an edge (the CLI, the API server) would read from the environment now."""
    return Settings.from_env(os.environ)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'wiring.sqlite3'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


def _btc_vault(sessions: sessionmaker[Session], name: str) -> None:
    """A vault row: the wiring reads only its name (the descriptors matter to custody alone)."""
    with sessions.begin() as session:
        session.add(
            VaultRecord(
                name=name,
                threshold=2,
                wallet_name=f"vault-{name}",
                receive_descriptor="wsh(sortedmulti(...))",
                change_descriptor="wsh(sortedmulti(...))",
                next_receive_index=0,
                created_at=NOW,
            )
        )


def _safe(sessions: sessionmaker[Session], name: str, address: str) -> None:
    with sessions.begin() as session:
        session.add(
            SafeVaultRow(name=name, chain_id=CHAIN_ID, address=address, threshold=2, nonce=0)
        )


def _view(vault: str) -> ProposalView:
    return ProposalView(
        id=7, state=ProposalState.APPROVED, asset="BTC", amount=1000, destination="bcrt1qpayee",
        purpose="test", legal_basis="DECREE", proposer_id=1, created_at=NOW, tx_hash="ab" * 32,
        tx_summary={"vault": vault}, fee=200, approvals=(), signed_by=(), quorum_reached_at=NOW,
        veto_window_ends_at=None, txid=None, closed_reason=None,
    )  # fmt: skip


# --- Settings ---------------------------------------------------------------------------------


def test_fee_and_confirmation_settings_have_documented_defaults() -> None:
    """Without settings, BTC spends pay 2 sat/vB, at most 50000 sats, and one block confirms."""
    spends = _settings().spends
    assert spends.btc_fee_rate_sat_vb == Decimal(2)
    assert spends.btc_max_fee_sats == 50_000
    assert spends.confirmations_required() == {"BTC": 1, "ETH": 1}


def test_settings_are_read_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fractional fee rate stays an exact Decimal; whole numbers are read as given."""
    monkeypatch.setenv(BTC_FEE_RATE_ENV, "1.25")
    monkeypatch.setenv(BTC_MAX_FEE_ENV, "1234")
    monkeypatch.setenv(CONFIRMATIONS_ENV["ETH"], "12")
    spends = _settings().spends
    assert spends.btc_fee_rate_sat_vb == Decimal("1.25")
    assert spends.btc_max_fee_sats == 1234
    assert spends.confirmations_required() == {"BTC": 1, "ETH": 12}


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "NaN", "Infinity", "501", "1e9"])
def test_a_bad_fee_rate_names_its_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """A fee rate that is not a number in (0, 500] sat/vB is refused with the variable's name."""
    monkeypatch.setenv(BTC_FEE_RATE_ENV, raw)
    with pytest.raises(NotConfiguredError, match=f"{BTC_FEE_RATE_ENV} must be a number"):
        _settings()


@given(st.integers(min_value=-(10**7), max_value=10**7))
def test_the_max_fee_accepts_exactly_whole_sats_within_the_signer_cap(value: int) -> None:
    """Any whole number from 1 to custody's 1,000,000-sat cap is accepted as is; anything else is refused."""
    with mock.patch.dict(os.environ, {BTC_MAX_FEE_ENV: str(value)}):
        if 1 <= value <= 1_000_000:
            assert _settings().spends.btc_max_fee_sats == value
        else:
            with pytest.raises(NotConfiguredError, match=BTC_MAX_FEE_ENV):
                _settings()


@pytest.mark.parametrize("raw", ["0", "two", "1.5", "-3"])
def test_a_bad_confirmation_count_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    """Confirmations must be a whole number of blocks of at least one."""
    monkeypatch.setenv(CONFIRMATIONS_ENV["BTC"], raw)
    with pytest.raises(NotConfiguredError, match="TREASURY_CONFIRMATIONS_BTC must be a whole"):
        _settings()


def test_the_relayer_setting_is_checked_and_checksummed(monkeypatch: pytest.MonkeyPatch) -> None:
    """TREASURY_ETH_RELAYER must be an address; a valid one wins over asking the node."""
    unreachable = EthChain(EvmRPC("http://127.0.0.1:9"))  # never called when the setting is given
    eip55 = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # the EIP-55 specification's vector
    monkeypatch.setenv(ETH_RELAYER_ENV, eip55.lower())
    assert eth_relayer(unreachable, _settings()) == eip55
    monkeypatch.setenv(ETH_RELAYER_ENV, "not-an-address")
    with pytest.raises(NotConfiguredError, match=f"{ETH_RELAYER_ENV} must be an Ethereum address"):
        eth_relayer(unreachable, _settings())


# --- Vaults and accounts ----------------------------------------------------------------------


def test_without_a_vault_there_are_no_accounts_and_the_error_says_how_to_create_one(
    sessions: sessionmaker[Session],
) -> None:
    """An empty database wires no spend accounts; asking for the vault says which command makes one."""
    with sessions() as session:
        assert spend_accounts(session, _settings()) == {}
        with pytest.raises(NotConfiguredError, match="`treasury btc vault create`"):
            btc_vault_name(session, _settings())
        with pytest.raises(NotConfiguredError, match="`treasury safe create`"):
            safe_vault(session, _settings())


def test_the_only_vaults_book_into_the_reconcilers_accounts(
    sessions: sessionmaker[Session],
) -> None:
    """With one vault per chain, spends credit the holdings the reconciler debits for deposits."""
    _btc_vault(sessions, "reserve")
    _safe(sessions, "safe-reserve", "0x" + "11" * 20)
    with sessions() as session:
        accounts = spend_accounts(session, _settings())
    assert accounts["BTC"].holdings == holdings_account(btc_scope("reserve"), "BTC")
    assert accounts["BTC"].payments == "reserve:approved-outflows:BTC"
    assert accounts["BTC"].fees == "fees:BTC"
    assert accounts["ETH"].holdings == holdings_account(eth_scope(CHAIN_ID, "safe-reserve"), "ETH")
    assert accounts["ETH"].fees == fees_account("ETH")


def test_several_vaults_need_the_setting_that_names_one(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two vaults and no setting is an error naming the variable; the setting picks one, and an
    unknown name is refused with the known ones."""
    _btc_vault(sessions, "alpha")
    _btc_vault(sessions, "beta")
    with sessions() as session:
        with pytest.raises(NotConfiguredError, match=f"set {BTC_VAULT_ENV} to the one"):
            btc_vault_name(session, _settings())
        assert "BTC" not in spend_accounts(session, _settings())
        monkeypatch.setenv(BTC_VAULT_ENV, "beta")
        assert btc_vault_name(session, _settings()) == "beta"
        assert spend_accounts(session, _settings())["BTC"].holdings == "vault:btc:beta:BTC"
        monkeypatch.setenv(BTC_VAULT_ENV, "gamma")
        with pytest.raises(NotConfiguredError, match=r"names the Bitcoin vault 'gamma'.*'alpha'"):
            btc_vault_name(session, _settings())


def test_the_workflow_is_built_even_when_no_asset_can_be_spent(
    sessions: sessionmaker[Session],
) -> None:
    """Propose and approve need no vault: the workflow builds, and every asset says what is missing."""
    _btc_vault(sessions, "alpha")
    _btc_vault(sessions, "beta")
    configured_workflow(sessions, _settings())
    setup = spender_setup(sessions, _settings())
    assert setup.spenders == {}
    assert BTC_VAULT_ENV in setup.problems["BTC"]
    assert "No Safe vault is in the database yet" in setup.problems["ETH"]
    assert configured_spenders(sessions, _settings()) == {}


def test_a_bitcoin_spender_needs_a_node_setting(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a node the error names TREASURY_BITCOIN_RPC_URL; with one, the vault's spender is built."""
    _btc_vault(sessions, "reserve")
    with pytest.raises(
        NotConfiguredError, match=f"need bitcoind. No node configured: set {BITCOIN_RPC_URL_ENV}"
    ):
        spender_for(sessions, "BTC", _settings())
    monkeypatch.setenv(BITCOIN_RPC_URL_ENV, "http://user:pw@127.0.0.1:18443")
    spender = spender_for(sessions, "BTC", _settings())
    assert isinstance(spender, BitcoinSpender)
    assert "reserve" in repr(spender)
    assert "pw" not in repr(spender)
    with pytest.raises(NotConfiguredError, match="No chain spender exists for DOGE"):
        spender_for(sessions, "DOGE", _settings())


def test_a_proposal_prepared_from_another_vault_is_not_signed_through_this_one(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing or broadcasting through the configured vault is refused when the proposal's
    transaction spends from a different vault (it would be booked against the wrong holdings)."""
    _btc_vault(sessions, "alpha")
    _btc_vault(sessions, "beta")
    monkeypatch.setenv(BITCOIN_RPC_URL_ENV, "http://user:pw@127.0.0.1:18443")
    monkeypatch.setenv(BTC_VAULT_ENV, "beta")
    with pytest.raises(
        NotConfiguredError, match=f"spends from vault 'alpha'.*set {BTC_VAULT_ENV}=alpha"
    ):
        spender_for_proposal(sessions, _view("alpha"), _settings())
    assert isinstance(spender_for_proposal(sessions, _view("beta"), _settings()), BitcoinSpender)


def test_the_reconciler_opens_the_fees_account(sessions: sessionmaker[Session]) -> None:
    """Opening a vault's accounts also opens ``fees:<asset>`` as an expense in that asset."""
    with sessions.begin() as session:
        ensure_accounts(session, btc_scope("reserve"), BTC, lambda: NOW)
        account = ledger.get_account(session, fees_account("BTC"))
    assert account.type is AccountType.EXPENSE
    assert account.asset_code == "BTC"


# --- Institutions -----------------------------------------------------------------------------


def test_institutions_map_to_ceremonies_by_their_registered_name(
    sessions: sessionmaker[Session], tmp_path: Path, test_seed: int
) -> None:
    """Only institutions whose registered name has a ceremony are mapped; for another, the error
    names the institution and the name that found no ceremony."""
    rng = random.Random(test_seed)  # noqa: S311 - a reproducible test seed, not real key material
    with sessions.begin() as session:
        transcript = run_ceremony(
            session,
            CeremonyPlan("National Bank", ("Dan", "Erin", "Frank"), 2),
            ShareFiles(tmp_path / "shares"),
            random_bytes=rng.randbytes,
            rng=rng,
            clock=lambda: NOW,
        )
        add_institution(session, "NBKR", "National Bank", actor=Founding("test"), now=NOW)
        add_institution(session, "PARL", "Parliament", actor=Founding("test"), now=NOW)
    with sessions() as session:
        assert custody_institutions(session) == {"NBKR": "National Bank"}
        assert institution_transcript(session, "NBKR").fingerprint == transcript.fingerprint
        with pytest.raises(
            NotConfiguredError,
            match="Institution PARL is registered as 'Parliament', but no key ceremony",
        ):
            institution_transcript(session, "PARL")


def test_the_signers_read_the_window_registry_the_settings_name_or_none() -> None:
    """With a registry and a services node configured, the spenders' signers are given their own
    reader of that registry on that node; without either, none (so they refuse delayed spends
    rather than trust the database)."""

    def no_devnet() -> NodeEndpoints:
        return NodeEndpoints()

    registry = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
    both = Settings.from_env(
        {SERVICES_RPC_URL_ENV: "http://127.0.0.1:9", WINDOW_REGISTRY_ENV: registry},
        devnet=no_devnet,
    )
    reader = window_reader(both)
    assert isinstance(reader, ServicesChainWindow)
    assert reader.registry.lower() == registry
    assert reader.chain.rpc.url == "http://127.0.0.1:9"
    only_node = Settings.from_env({SERVICES_RPC_URL_ENV: "http://127.0.0.1:9"}, devnet=no_devnet)
    assert window_reader(only_node) is None
    only_registry = Settings.from_env({WINDOW_REGISTRY_ENV: registry}, devnet=no_devnet)
    assert window_reader(only_registry) is None
