"""The spends page's pending large spends section in a real browser: each spend announced on the
services chain with its public window and veto status, readable (no sideways scroll, no clipped
key figure, no serious axe-core finding) in Kyrgyz, Russian and English at a phone's and a
laptop's width. Behind it, a real window registry on the services-chain anvil: one spend still
waiting, one whose window passed, one vetoed by an officer of the central bank."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from authority_support import SPEND, Deployment
from conftest import PUBLISHED_AT
from page_checks import LANGUAGES, assert_readable
from page_guard import guarded_page
from playwright.sync_api import Browser
from site_support import Attestations
from workflow_support import build_world

from custody.authority.delay import SpendAnnouncement
from custody.authority.statement import StatementKind
from custody.devnet import EvmNode
from custody.ethereum.announcements import ServicesChainWindow, deploy_window_registry
from custody.ethereum.chain import EthChain
from reporting.site import load_bundles, load_export, publish_site, site_server
from reporting.site.i18n import load_catalogues
from treasury.announcements import Publisher, announce, relay_veto
from treasury.publication import EXPORT_FILE_NAME, write_export

CATALOGUES = load_catalogues()
WEEK_SECONDS = 7 * 24 * 3600


@pytest.fixture(scope="module")
def pending_site(
    attestations: Attestations,
    bundles_dir: Path,
    services_node: EvmNode,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A site whose export carries a waiting, an open and a vetoed large spend; served."""
    folder = tmp_path_factory.mktemp("pending-spends")
    world = build_world(f"sqlite:///{folder / 'treasury.sqlite3'}")
    chain = EthChain(services_node.rpc)
    sender = chain.accounts()[0]
    publisher = Publisher(
        ServicesChainWindow(chain, deploy_window_registry(chain, sender, sender)), sender
    )
    roster = Deployment.build()
    try:
        with world.sessions.begin() as session:
            for proposal, window in ((11, 0), (12, WEEK_SECONDS), (13, WEEK_SECONDS)):
                spend = replace(SPEND, amount=SPEND.amount * proposal)
                last = announce(
                    session,
                    publisher,
                    proposal,
                    SpendAnnouncement.for_spend(str(proposal), spend),
                    window,
                )
            veto = roster.statement("cb-alice", kind=StatementKind.VETO, proposal_id="13")
            relay_veto(
                session,
                publisher.window,
                chain.accounts()[6],
                roster.state(),
                roster.signed(veto),
                last.announced_at,
            )
        export = write_export(
            world.sessions, folder / EXPORT_FILE_NAME, exported_at=last.announced_at
        )
    finally:
        world.engine.dispose()
    records = load_export(export)
    assert [(p.proposal_id, p.status.value) for p in records.pending_spends] == [
        (11, "open"), (12, "waiting"), (13, "vetoed"),
    ]  # fmt: skip
    published = load_bundles(bundles_dir, nodes=attestations.nodes)
    site = publish_site(published, records, folder / "site", published_at=PUBLISHED_AT)
    server = site_server(site.folder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("width", [390, 1366])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_pending_spends_section_reads_in_every_language(
    browser: Browser, pending_site: str, lang: str, width: int, screenshots: Path
) -> None:
    """The section lists the three spends, newest first, with their window state and the
    vetoing institution, each time on one line (a phone once broke dates at their hyphens),
    and the page stays readable."""
    catalogue = CATALOGUES[lang]
    with guarded_page(browser, pending_site) as (page, traffic):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{pending_site}/{lang}/spends.html")
        section = page.locator("section[aria-labelledby='pending-spends-heading']")
        assert section.locator("h2").inner_text() == catalogue.text("pending.title")
        rows = section.locator("tbody tr")
        assert rows.count() == 3
        states = [rows.nth(i).locator("strong[data-key-figure]").inner_text() for i in range(3)]
        assert states == [
            catalogue.text("pending.status.vetoed"),
            catalogue.text("pending.status.waiting"),
            catalogue.text("pending.status.open"),
        ]
        assert catalogue.text("pending.vetoed_by") in rows.nth(0).inner_text()
        lines_per_time = section.locator("td .nowrap").evaluate_all(
            "spans => spans.map(span => span.getClientRects().length)"
        )
        assert lines_per_time == [1] * 6, lines_per_time  # announced and opens, three rows
        assert_readable(page, f"{lang}/spends.html pending spends at {width} px")
        section.screenshot(path=str(screenshots / f"site-pending-spends-{lang}-{width}.png"))
    traffic.assert_clean()
