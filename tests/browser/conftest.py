"""Browser tests: real attestations on the live nodes, a published site, Debian's Chromium.

Every test here is marked ``integration`` (it needs the nodes or a browser). The session builds
one chain of attestations and one treasury database with an executed spend, publishes the site
once, and shares it; tests that change state build their own.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from site_support import (
    SCREENSHOTS_DIR,
    Attestations,
    build_attestations,
    chromium,
    write_bundles,
)
from workflow_support import World, build_world, shares_of

from custody.devnet import BitcoinNode, EvmNode
from reporting.site import (
    PublishedSite,
    load_bundles,
    load_export,
    publish_site,
    site_server,
)
from treasury.publication import EXPORT_FILE_NAME, write_export

PUBLISHED_AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SPEND_SATS = 25_000_000


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def attestations(
    bitcoin_node: BitcoinNode, evm_node: EvmNode, services_node: EvmNode
) -> Attestations:
    """Three real, anchored attestations of a growing reserve."""
    return build_attestations(bitcoin_node, evm_node, services_node)


def executed_spend(world: World) -> int:
    """Run one spend through two institutions' approvals and signatures to confirmation."""
    wf = world.workflow()
    view = wf.propose(
        world.officers["proposer"], asset="BTC", amount=SPEND_SATS,
        destination="bcrt1qdestination0000000000000000000000000",
        purpose="Hospital equipment for Osh region", legal_basis="DECREE-2026-17",
    )  # fmt: skip
    view = wf.prepare(world.officers["proposer"], view.id, world.chain)
    assert view.tx_hash is not None
    for name in ("cb_approver", "parl_approver"):
        wf.approve(world.officers[name], view.id, view.tx_hash)
    for name, code in (("cb_approver", "CB"), ("parl_approver", "PARL")):
        shares, passphrase = shares_of(code)
        wf.sign(world.officers[name], view.id, world.chain, shares, passphrase)
    wf.broadcast(view.id, world.chain)
    world.chain.mine()
    return wf.refresh(view.id, world.chain).id


@pytest.fixture(scope="session")
def site_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A treasury database with governance set up and one confirmed spend."""
    url = f"sqlite:///{tmp_path_factory.mktemp('site-db') / 'treasury.sqlite3'}"
    world = build_world(url)
    executed_spend(world)
    yield world
    world.engine.dispose()


@pytest.fixture(scope="session")
def bundles_dir(attestations: Attestations, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundles(attestations.bundles, tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="session")
def site(
    attestations: Attestations,
    bundles_dir: Path,
    site_world: World,
    tmp_path_factory: pytest.TempPathFactory,
) -> PublishedSite:
    """The site published from the live chain of attestations, verified against the nodes."""
    published = load_bundles(bundles_dir, nodes=attestations.nodes)
    export = tmp_path_factory.mktemp("export") / EXPORT_FILE_NAME
    records = load_export(write_export(site_world.sessions, export, exported_at=PUBLISHED_AT))
    out = tmp_path_factory.mktemp("published") / "site"
    return publish_site(published, records, out, published_at=PUBLISHED_AT)


@pytest.fixture(scope="session")
def served(site: PublishedSite) -> Iterator[str]:
    """The published site over HTTP from `treasury serve`'s server; yields its base URL."""
    server = site_server(site.folder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS_DIR
