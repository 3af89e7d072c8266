"""The spend wiring with a second EVM reserve chain: the Safe that pays ether is the first chain's,
never the Safe of a further chain; a Safe's spender needs its own chain's node.

(Depends on the wiring changes of issue 17's second chain: ``safe_vault`` and ``_safe_spender``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from custody.ethereum.records import SafeVaultRow
from treasury import migrate
from treasury.chains import EvmChainSettings
from treasury.db import make_engine, session_factory
from treasury.reconcile import eth_scope
from treasury.reconcile.accounts import holdings_account
from treasury.settings import Settings, SpendSettings
from treasury.wiring import (
    paying_safe,
    resolve_asset,
    safe_vault,
    spend_accounts,
    spendable_assets,
    spender_for,
    vault_of,
)
from treasury.workflow_exceptions import NotConfiguredError

RESERVE_CHAIN = 31337
BNB_CHAIN = 31339
BNB = EvmChainSettings("bnb", None, BNB_CHAIN, native_asset="BNB")


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A database with a Safe on each chain."""
    url = f"sqlite:///{tmp_path / 'chains.sqlite3'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    with factory.begin() as session:
        for name, chain_id, byte in (
            ("eth-safe", RESERVE_CHAIN, "11"),
            ("bnb-safe", BNB_CHAIN, "22"),
        ):
            session.add(
                SafeVaultRow(
                    name=name, chain_id=chain_id, address="0x" + byte * 20, threshold=2, nonce=0
                )
            )
    yield factory
    engine.dispose()


def test_the_ether_safe_is_the_first_chains_once_the_second_chain_is_configured(
    sessions: sessionmaker[Session],
) -> None:
    """With the BNB chain listed, its Safe is not a candidate to pay ether; without the list the
    two Safes are ambiguous and the wiring asks which one (it never guesses)."""
    with sessions() as session:
        chosen = safe_vault(session, Settings(evm_chains=(BNB,)))
        assert (chosen.name, chosen.chain_id) == ("eth-safe", RESERVE_CHAIN)
        with pytest.raises(NotConfiguredError, match="2 Safe vaults are in the database"):
            safe_vault(session, Settings())


def test_a_spend_needs_the_node_of_its_safes_chain(sessions: sessionmaker[Session]) -> None:
    """Ether spends need the first chain's node; with none configured the error says so."""
    with pytest.raises(NotConfiguredError, match=f"No node of EVM chain {RESERVE_CHAIN}"):
        spender_for(sessions, "ETH", Settings(evm_chains=(BNB,)))


def test_each_chains_native_coin_is_spent_from_that_chains_safe(
    sessions: sessionmaker[Session],
) -> None:
    """BNB is spendable as configuration says: paid by the BNB chain's only Safe and booked into
    that Safe's holdings, while ETH stays the first chain's; no code names BNB."""
    settings = Settings(evm_chains=(BNB,))
    with sessions() as session:
        assert spendable_assets(session, settings) == ("BTC", "ETH", "BNB")
        assert resolve_asset(session, "BNB", settings) == "BNB"
        assert vault_of(session, "BNB", settings) == "bnb-safe"
        assert vault_of(session, "ETH", settings) == "eth-safe"
        safe = paying_safe(session, "BNB", settings)
        assert (safe.chain_id, safe.native_asset) == (BNB_CHAIN, "BNB")
        accounts = spend_accounts(session, settings)
    assert accounts["BNB"].holdings == holdings_account(eth_scope(BNB_CHAIN, "bnb-safe"), "BNB")
    assert accounts["ETH"].holdings == holdings_account(eth_scope(RESERVE_CHAIN, "eth-safe"), "ETH")
    unlisted = Settings(spends=SpendSettings(safe_vault="eth-safe"))
    with sessions() as session:  # without the chain configured, BNB is no asset of the wiring
        assert "BNB" not in spendable_assets(session, unlisted)
        with pytest.raises(NotConfiguredError, match="No chain spender exists for BNB"):
            vault_of(session, "BNB", unlisted)


def test_a_bnb_spend_needs_the_bnb_chains_node(sessions: sessionmaker[Session]) -> None:
    """BNB's spender is built on the BNB chain's node; with none configured it says which."""
    with pytest.raises(
        NotConfiguredError,
        match=f"BNB need the reserve's EVM node of the Safe's chain {BNB_CHAIN}.*'bnb'",
    ):
        spender_for(sessions, "BNB", Settings(evm_chains=(BNB,)))


def test_two_safes_on_the_bnb_chain_are_chosen_by_the_setting(
    sessions: sessionmaker[Session],
) -> None:
    """With two Safes on the BNB chain the wiring never guesses: it asks for the chain's own
    TREASURY_EVM_BNB_SAFE_VAULT and takes the one it names (or TREASURY_SAFE_VAULT's, if that is
    on the BNB chain); a name that is not a Safe of that chain is refused, not ignored."""
    with sessions.begin() as session:
        session.add(
            SafeVaultRow(
                name="bnb-safe-2",
                chain_id=BNB_CHAIN,
                address="0x" + "33" * 20,
                threshold=2,
                nonce=0,
            )
        )
    with sessions() as session:
        with pytest.raises(NotConfiguredError, match="set TREASURY_EVM_BNB_SAFE_VAULT to"):
            vault_of(session, "BNB", Settings(evm_chains=(BNB,)))
        assert "BNB" not in spend_accounts(session, Settings(evm_chains=(BNB,)))
        chosen = Settings(evm_chains=(BNB,), spends=SpendSettings(safe_vault="bnb-safe-2"))
        assert vault_of(session, "BNB", chosen) == "bnb-safe-2"
        per_chain = Settings(evm_chains=(replace(BNB, safe_vault="bnb-safe-2"),))
        assert vault_of(session, "BNB", per_chain) == "bnb-safe-2"
        assert vault_of(session, "ETH", per_chain) == "eth-safe"
        wrong = Settings(evm_chains=(replace(BNB, safe_vault="eth-safe"),))
        with pytest.raises(NotConfiguredError, match="no Safe of that name is on the EVM chain"):
            vault_of(session, "BNB", wrong)
