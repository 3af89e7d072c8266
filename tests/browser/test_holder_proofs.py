"""Holders' proofs for past attestations: kept in the database, issued in a new process, and
checked by the standalone verifier and by the site in Chromium (file or account id + code).

The three live attestations of ``site_support`` are recorded in a fresh treasury database with
their trees kept; the trees are then dropped, so every package below is rebuilt from the
database: by `treasury proofs issue` in another process, and by the API the site asks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from bundle_support import liabilities
from page_guard import guarded_page
from playwright.sync_api import Browser, Page
from reserve_verifier import Nodes
from site_support import ASSETS, NONCE, PRIVATE_ACCOUNT, SCREENSHOTS_DIR, STEPS, Attestations
from workflow_support import World, build_world

from custody.devnet.process import free_port
from reporting.site import PublishedSite, load_bundles, load_export, publish_site
from reporting.site.i18n import load_catalogues
from treasury.api import create_app
from treasury.attest.account_proofs import holder_code, issue_package, keep_liability_tree
from treasury.attest.records import AttestationRecord
from treasury.publication import EXPORT_FILE_NAME, write_export

SCREENS = SCREENSHOTS_DIR / "issue14"
WIDTHS = {"phone": 390, "desktop": 1280}
PUBLISHED_AT = datetime(2026, 5, 2, 12, 0, tzinfo=UTC)
SERVER_START_TIMEOUT_S = 10.0
CATALOGUES = load_catalogues()


@dataclass(frozen=True)
class Holders:
    world: World
    database_url: str
    api: str
    site: PublishedSite
    bundles_dir: Path


@pytest.fixture(scope="module")
def holders(
    attestations: Attestations, bundles_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Holders]:
    """The attestations recorded with kept trees, the API serving holders, and the site."""
    url = f"sqlite:///{tmp_path_factory.mktemp('holders-db') / 'treasury.sqlite3'}"
    world = build_world(url)
    with world.sessions.begin() as session:
        for bundle, (_btc, _wei, rows) in zip(attestations.bundles, STEPS, strict=True):
            record = AttestationRecord(
                sequence=bundle.sequence,
                digest=bundle.digest.hex(),
                previous_digest=str(bundle.body["previous_digest"]),
                bitcoin_anchor_txid=bundle.anchors["bitcoin"]["txid"],
                services_chain_id=int(bundle.anchors["services"]["chain_id"]),
                services_anchor_tx=bundle.anchors["services"]["tx_hash"],
                anchors_json=json.dumps(dict(bundle.anchors)),
                bundle_json=bundle.to_bytes().decode(),
                created_at=PUBLISHED_AT,
            )
            session.add(record)
            session.flush()
            tree, _totals = liabilities(ASSETS, rows, NONCE)
            keep_liability_tree(session, record, tree)
            del tree
    app = create_app(world.workflow(), world.sessions, clock=world.clock)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    api = f"http://127.0.0.1:{port}"
    export = tmp_path_factory.mktemp("holders-export") / EXPORT_FILE_NAME
    records = load_export(write_export(world.sessions, export, exported_at=PUBLISHED_AT))
    site = publish_site(
        load_bundles(bundles_dir, nodes=Nodes()),
        records,
        tmp_path_factory.mktemp("holders-site") / "site",
        published_at=PUBLISHED_AT,
        proofs_api_url=f"{api}/holders/proof",
    )
    yield Holders(world, url, api, site, bundles_dir)
    server.should_exit = True
    thread.join()
    world.engine.dispose()


def _tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_a_package_issued_later_passes_reserve_verify(holders: Holders, tmp_path: Path) -> None:
    """`treasury proofs issue` in a new process writes citizen:0001's package of attestation 1
    (two attestations later); `reserve-verify` accepts it with that bundle and refuses it with
    another attestation's bundle."""
    package = tmp_path / "citizen-0001-1.json"
    env = {**os.environ, "TREASURY_DATABASE_URL": holders.database_url}
    issued = subprocess.run(
        [_tool("treasury"), "proofs", "issue", PRIVATE_ACCOUNT, "--attestation", "1",
         "--out", str(package)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    for sequence, expected in ((1, 0), (3, 1)):
        checked = subprocess.run(
            [_tool("reserve-verify"), str(holders.bundles_dir / f"attestation-{sequence}.json"),
             "--package", str(package), "--offline"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert checked.returncode == expected, checked.stdout + checked.stderr


def _open_verify(page: Page, holders: Holders, lang: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto((holders.site.folder / lang / "verify.html").as_uri())


def test_the_site_fetches_and_checks_with_account_id_and_code(
    holders: Holders, browser: Browser
) -> None:
    """In each language and width, account id + code fetch the package from the API and the page
    finds it valid against the published root; screenshots are left for review."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    code = holder_code(NONCE, PRIVATE_ACCOUNT)
    for lang in ("ky", "ru", "en"):
        valid = CATALOGUES[lang].messages["js.valid"]
        for label, width in WIDTHS.items():
            with guarded_page(browser, holders.api) as (page, traffic):
                _open_verify(page, holders, lang, width)
                page.screenshot(path=SCREENS / f"verify-{lang}-{label}.png", full_page=True)
                page.fill("#code-account-id", PRIVATE_ACCOUNT)
                page.fill("#code", code.lower().replace("-", " "))
                page.click("#check-code")
                page.wait_for_selector("#result[data-verdict='valid']")
                assert valid in page.inner_text("#result")
                assert "citizen:0001" in page.inner_text("#result")
                page.locator("#result").scroll_into_view_if_needed()
                page.screenshot(
                    path=SCREENS / f"verify-code-valid-{lang}-{label}.png", full_page=True
                )
                traffic.assert_clean()


def test_the_site_refuses_a_wrong_code_and_checks_a_downloaded_file(
    holders: Holders, browser: Browser, tmp_path: Path
) -> None:
    """Another account's code is refused with the page's explanation; the package file as
    issued selects its own attestation and verifies."""
    package = tmp_path / "citizen-0001-2.json"
    with holders.world.sessions() as session:
        package.write_text(json.dumps(issue_package(session, 2, PRIVATE_ACCOUNT)))
    refused = CATALOGUES["en"].messages["js.reason.code_refused"]
    with guarded_page(browser, holders.api) as (page, traffic):
        _open_verify(page, holders, "en", 1280)
        page.fill("#code-account-id", PRIVATE_ACCOUNT)
        page.fill("#code", holder_code(NONCE, "citizen:0002"))
        page.click("#check-code")
        page.wait_for_selector("#result[data-verdict='invalid']")
        assert refused in page.inner_text("#result")
        assert CATALOGUES["en"].messages["js.not_fetched"] in page.inner_text("#result")
        assert traffic.failed == [f"403 {holders.api}/holders/proof"]
        page.screenshot(path=SCREENS / "verify-code-refused-en-desktop.png", full_page=True)
        page.set_input_files("#proof-file", str(package))
        page.click("#check-package")
        page.wait_for_selector("#result[data-verdict='valid']")
        assert page.input_value("#attestation") == "2"
        page.screenshot(path=SCREENS / "verify-file-valid-en-desktop.png", full_page=True)
        # Chromium reports the refused request itself on the console; no script error occurred.
        assert traffic.errors == [
            "Failed to load resource: the server responded with a status of 403 (Forbidden)"
        ]
