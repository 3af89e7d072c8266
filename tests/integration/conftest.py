"""Fixtures shared by the integration tests that work on one fresh database per test, and the
BNB devnet node (started only by the tests that ask for it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from workflow_support import World, build_world

from custody.devnet import BNB_DEVNET_CHAIN_ID, EvmNode, NodeBinaries
from treasury import migrate
from treasury.db import make_engine, session_factory


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to every head."""
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ``engine``."""
    return session_factory(engine)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    """The workflow tests' world (``workflow_support.build_world``) on a fresh database. A file
    whose world is another one defines its own ``world`` fixture, which takes precedence."""
    built = build_world(db_url)
    yield built
    built.engine.dispose()


@pytest.fixture(scope="session")
def bnb_node(binaries: NodeBinaries) -> Iterator[EvmNode]:
    """The reserve's second EVM chain: an anvil standing for BNB Chain under a chain id no real
    chain uses (started once, by the first test that needs it)."""
    with EvmNode(binaries.anvil, chain_id=BNB_DEVNET_CHAIN_ID) as node:
        yield node
