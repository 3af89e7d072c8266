"""The spends page's key health section in a real browser: each institution's last share health
check, its next due date and whether it is overdue, readable (no sideways scroll, no clipped key
figure, no serious axe-core finding) in Kyrgyz, Russian and English at a phone's and a laptop's
width. The treasury behind it ran real ceremonies: one institution passed a check, one failed it
with another institution's shares, one never checked and is overdue."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import PUBLISHED_AT
from page_checks import LANGUAGES, assert_readable
from page_guard import guarded_page
from playwright.sync_api import Browser
from site_support import Attestations
from workflow_support import build_world

from custody.ceremony import CeremonyPlan, ShareFiles, read_share_file, run_ceremony
from reporting.site import load_bundles, load_export, publish_site, site_server
from reporting.site.i18n import load_catalogues
from treasury.custody_health import run_health_check
from treasury.publication import EXPORT_FILE_NAME, write_export

CATALOGUES = load_catalogues()
NAMES = {"MOF": "Ministry of Finance", "CB": "Central Bank", "PARL": "Parliament"}


@pytest.fixture(scope="module")
def key_health_site(
    attestations: Attestations, bundles_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A site whose export carries a passed, a failed and an overdue institution; served."""
    folder = tmp_path_factory.mktemp("key-health")
    world = build_world(f"sqlite:///{folder / 'treasury.sqlite3'}")
    ceremony_at = PUBLISHED_AT - timedelta(days=120)
    checked_at = PUBLISHED_AT - timedelta(days=5)
    try:
        shares: dict[str, list[str]] = {}
        for number, (code, name) in enumerate(NAMES.items()):
            with world.sessions.begin() as session:
                run_ceremony(
                    session,
                    CeremonyPlan(name, ("Alice", "Bob", "Carol"), 2),
                    ShareFiles(folder / code),
                    random_bytes=random.Random(number).randbytes,  # noqa: S311 (test seed)
                    rng=random.Random(number),  # noqa: S311 (test seed)
                    clock=lambda: ceremony_at,
                )
            shares[code] = [read_share_file(p) for p in sorted((folder / code).glob("*.txt"))]
        with world.sessions.begin() as session:
            run_health_check(session, "CB", shares["CB"][:2], actor="test", now=checked_at)
            run_health_check(session, "PARL", shares["MOF"][:2], actor="test", now=checked_at)
        export = write_export(world.sessions, folder / EXPORT_FILE_NAME, exported_at=PUBLISHED_AT)
    finally:
        world.engine.dispose()
    records = load_export(export)
    assert [(k.institution.code, k.overdue) for k in records.key_health] == [
        ("MOF", True), ("CB", False), ("PARL", True),
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
def test_key_health_section_reads_in_every_language(
    browser: Browser, key_health_site: str, lang: str, width: int
) -> None:
    """The section lists the three institutions with their state, and the page stays readable."""
    catalogue = CATALOGUES[lang]
    with guarded_page(browser, key_health_site) as (page, traffic):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{key_health_site}/{lang}/spends.html")
        section = page.locator("section[aria-labelledby='key-health-heading']")
        assert section.locator("h2").inner_text() == catalogue.text("key_health.title")
        rows = section.locator("tbody tr")
        assert rows.count() == 3
        states = [rows.nth(i).locator("strong[data-key-figure]").inner_text() for i in range(3)]
        assert states == [
            catalogue.text("key_health.overdue"),
            catalogue.text("key_health.in_order"),
            catalogue.text("key_health.overdue"),
        ]
        assert catalogue.text("key_health.result.mismatch") in section.inner_text()
        assert_readable(page, f"{lang}/spends.html key health at {width} px")
    traffic.assert_clean()
