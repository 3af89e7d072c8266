"""Session fixtures: real nodes on free ports in temp dirs, and real databases, always cleaned up.

Nodes start once per session (start-up is well under a second, but mining and deployments add
up); tests that need isolation create their own wallets, accounts or databases on them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import typer.testing
from hypothesis import settings
from migration_templates import REAL_MIGRATIONS_ENV, MigrationTemplates
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from custody.devnet import (
    SERVICES_CHAIN_ID,
    BitcoinNode,
    EvmNode,
    NodeBinaries,
    find_binaries,
    install_signal_handlers,
)
from custody.devnet.process import free_port
from treasury import migrate

log = logging.getLogger("tests")

settings.register_profile("suite", deadline=None)
settings.load_profile("suite")
"""Hypothesis's 200 ms per-example deadline measures the machine, not the code: the suite runs on
every core beside live nodes, and a loaded core made correct examples "fail". Examples still run
and shrink exactly as before; benchmarks (``bench/``) are where time is measured."""

POSTGRES_URL_ENV = "TREASURY_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "TREASURY_TEST_REQUIRE_POSTGRES"
"""Set to 1 (CI does): a missing PostgreSQL fails the run instead of skipping its half."""
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_CONNECT_TIMEOUT_S = 3


def pytest_configure(config: pytest.Config) -> None:
    install_signal_handlers()
    handed = getattr(config, "workerinput", {}).get(_SEED_INPUT)
    seed = (
        handed
        or os.environ.get("TREASURY_TEST_SEED")
        or str(random.SystemRandom().randrange(2**32))
    )
    config.stash[_SEED_KEY] = int(seed)


_SEED_INPUT = "treasury_test_seed"
"""The key under which the controller hands its seed to each pytest-xdist worker."""


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Give every pytest-xdist worker the controller's seed, so the header's seed replays the
    whole run (each worker would otherwise draw its own)."""
    node.workerinput[_SEED_INPUT] = str(node.config.stash[_SEED_KEY])


_SEED_KEY = pytest.StashKey[int]()


def pytest_report_header(config: pytest.Config) -> str:
    return f"TREASURY_TEST_SEED={config.stash[_SEED_KEY]} (set it to replay this run's randomness)"


FILE_WEIGHTS = Path(__file__).parent / "file_weights.json"
"""Seconds each test file took in a measured run (``scripts/test-file-weights.py`` writes it)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    integration_dir = Path(__file__).parent / "integration"
    for item in items:
        if integration_dir in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
    _heaviest_files_first(items)


def _heaviest_files_first(items: list[pytest.Item]) -> None:
    """Order the files by their measured time, longest first (a stable sort: tests keep their
    order within a file).

    ``make test`` hands whole files to the workers (``--dist loadfile``) in collection order
    (``--no-loadscope-reorder``): started last, a long file would run alone at the end while
    the other core idles. A file not yet measured counts as the median one.
    """
    if not FILE_WEIGHTS.exists():
        return
    weights: dict[str, float] = json.loads(FILE_WEIGHTS.read_text(encoding="utf-8"))
    known = sorted(weights.values())
    default = known[len(known) // 2] if known else 0.0
    root = Path(__file__).parent.parent

    def weight(item: pytest.Item) -> float:
        relative = Path(str(item.path)).relative_to(root).as_posix()
        return weights.get(relative, default)

    items.sort(key=lambda item: -weight(item))


@pytest.fixture(scope="session")
def test_seed(request: pytest.FixtureRequest) -> int:
    """The run's random seed (printed in the header) for tests that need reproducible randomness."""
    return request.config.stash[_SEED_KEY]


# --- Nodes ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def binaries() -> NodeBinaries:
    return find_binaries(install=True, log=log.info)


@pytest.fixture(scope="session")
def bitcoin_node(binaries: NodeBinaries) -> Iterator[BitcoinNode]:
    """A regtest bitcoind with 101 blocks mined (spendable coinbase in its ``miner`` wallet)."""
    with BitcoinNode(binaries.bitcoind) as node:
        node.mine(101)
        yield node


@pytest.fixture(scope="session")
def evm_node(binaries: NodeBinaries) -> Iterator[EvmNode]:
    """The reserve's anvil devnet (chain id 31337)."""
    with EvmNode(binaries.anvil) as node:
        yield node


@pytest.fixture(scope="session")
def services_node(binaries: NodeBinaries) -> Iterator[EvmNode]:
    """The government's services chain: a second anvil with its own chain id."""
    with EvmNode(binaries.anvil, chain_id=SERVICES_CHAIN_ID) as node:
        yield node


# --- Databases --------------------------------------------------------------------------------


def _answers(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[str | None]:
    """A private PostgreSQL cluster from initdb/pg_ctl; yields its URL, or None if impossible."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="treasury-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    port, data = free_port(), folder / "data"
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-o", opts, "-w", "start"],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        log.warning("throwaway PostgreSQL cluster did not start: %s", exc)
        shutil.rmtree(folder, ignore_errors=True)
        yield None
        return
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], check=False, timeout=60
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server: $TREASURY_TEST_POSTGRES_URL, the local one, or a throwaway cluster."""
    url = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    if _answers(url):
        yield url
        return
    with _throwaway_cluster() as started:
        if started is None:
            reason = (
                f"no PostgreSQL at {url} and no initdb/pg_ctl to start one (set {POSTGRES_URL_ENV})"
            )
            if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
                pytest.fail(f"{reason}; {REQUIRE_POSTGRES_ENV}=1 requires it", pytrace=False)
            pytest.skip(reason)
        yield started


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database on that server, dropped after the test."""
    name = f"treasury_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def migration_templates() -> Iterator[MigrationTemplates]:
    """This process's migrated templates (see ``tests/support/migration_templates.py``)."""
    templates = MigrationTemplates(real_upgrade=migrate.upgrade)
    yield templates
    templates.drop()


@pytest.fixture(autouse=True)
def _upgrades_copy_a_template(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty database upgraded to every head becomes a copy of a migrated template."""
    if request.node.get_closest_marker("real_migrations") or os.environ.get(REAL_MIGRATIONS_ENV):
        return
    templates: MigrationTemplates = request.getfixturevalue("migration_templates")
    monkeypatch.setattr(migrate, "upgrade", templates.upgrade)


@pytest.fixture(scope="session", autouse=True)
def _cli_built_once() -> Iterator[None]:
    """Typer's test runner turns the app into its click command tree on every ``invoke``: for
    the treasury's 200-odd commands that is about 0.13 s of type-hint evaluation per call, paid
    hundreds of times. A real ``treasury`` process builds it once; so do the tests now, per app
    object and its registered commands (an app changed after a build is built again)."""
    built: dict[tuple[int, int, int], Any] = {}
    build = typer.main.get_command

    def build_once(app: typer.Typer) -> Any:
        key = (id(app), len(app.registered_commands), len(app.registered_groups))
        if key not in built:
            built[key] = build(app)
        return built[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", build_once)
        yield


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file in the test's temp dir."""
    return f"sqlite:///{tmp_path / 'treasury.sqlite3'}"


@pytest.fixture(
    params=[pytest.param("sqlite_url", id="sqlite"), pytest.param("postgres_url", id="postgresql")]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on both databases: the embedded default and production's."""
    url: str = request.getfixturevalue(request.param)
    return url
