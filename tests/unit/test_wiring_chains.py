"""The spend wiring with a second EVM reserve chain: the Safe that pays ether is the first chain's,
never the Safe of a further chain; a Safe's spender needs its own chain's node.

(Depends on the wiring changes of issue 17's second chain: ``safe_vault`` and ``_safe_spender``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from custody.ethereum.records import SafeVaultRow
from treasury import migrate
from treasury.chains import EvmChainSettings
from treasury.db import make_engine, session_factory
from treasury.settings import Settings
from treasury.wiring import safe_vault, spender_for
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
