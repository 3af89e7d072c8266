"""The parliament site in Debian's Chromium: the latest attestation, charts, languages, the
in-browser inclusion verifier, from the file system and over `treasury serve`, with no network."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from page_guard import guarded_page
from playwright.sync_api import Browser, Page
from site_support import CHROMIUM_PATH, PRIVATE_ACCOUNT, PUBLIC_ACCOUNT, Attestations

from reporting.exceptions import VerificationError
from reporting.merkle.account_package import verify_liability_package
from reporting.site import PublishedSite
from reporting.site.i18n import load_catalogues
from reporting.site.publish import PAGES

CATALOGUES = load_catalogues()
VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "reporting" / "vectors" / "merkle_v1.json").read_text()
)


def _url(site: PublishedSite, relative: str) -> str:
    return (site.folder / relative).as_uri()


def _shot(page: Page, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def test_latest_attestation_renders_from_the_file_system(
    browser: Browser, site: PublishedSite, attestations: Attestations, screenshots: Path
) -> None:
    """The English front page shows the latest attestation's figures, anchors, countersignature,
    addresses and a passing verdict, loading nothing but local files."""
    latest = attestations.bundles[-1]
    body = latest.body
    with guarded_page(browser) as (page, traffic):
        page.goto(_url(site, "en/index.html"))
        assert page.locator("h1").inner_text() == CATALOGUES["en"].text("index.title")
        assert page.locator("#verdict-heading").inner_text() == CATALOGUES["en"].text(
            "verdict.verified"
        )
        btc_row = page.locator("table tbody tr", has=page.locator("th", has_text="BTC")).first
        held = CATALOGUES["en"].amount(int(body["reconciliation"]["BTC"]["chain_holdings"]), 8)
        assert held in btc_row.inner_text()
        ratio = body["coverage"]["BTC"]["ratio"].removesuffix("%")
        assert f"{ratio}\u00a0%" in btc_row.inner_text()
        text = page.locator("main").inner_text()
        assert latest.anchors["bitcoin"]["txid"] in text
        assert latest.anchors["services"]["tx_hash"] in text
        assert body["signers"]["auditor"]["address"] in text
        assert latest.signatures["auditor"] in text
        assert "bcrt1" in text
        assert body["snapshot"]["evm"][0]["balances"][0]["safe_address"] in text
        raw = page.locator("a", has_text="attestation-000003.json").first
        href = str(raw.get_attribute("href"))
        assert (site.folder / "en" / href).read_bytes() == latest.to_bytes()
        _shot(page, screenshots, "site-en-index")
    traffic.assert_clean()


def test_history_charts_render_every_attestation(
    browser: Browser, site: PublishedSite, attestations: Attestations, screenshots: Path
) -> None:
    """The history page draws the coverage chart and one reserves chart per asset, with a
    marker per attestation and an accessible name, and lists every attestation."""
    count = len(attestations.bundles)
    with guarded_page(browser) as (page, traffic):
        page.goto(_url(site, "en/history.html"))
        coverage = page.locator("svg#chart-coverage")
        assert coverage.get_attribute("role") == "img"
        assert coverage.locator("title").first.text_content() == CATALOGUES["en"].text(
            "history.coverage_chart_title"
        )
        for asset in ("btc", "eth"):
            chart = page.locator(f"svg#chart-reserves-{asset}")
            assert chart.is_visible()
            assert chart.locator("polyline").count() == 3
            assert chart.bounding_box()["height"] > 150  # type: ignore[index]
        markers = coverage.locator("circle, rect[width='8'], polygon")
        assert markers.count() == 2 * count  # a point per asset and attestation
        legend = page.locator("#chart-coverage-legend li")
        assert legend.count() == 3  # two assets and the full-coverage line
        assert legend.locator("svg circle, svg rect[width='8']").count() == 2
        rows = page.locator("table tbody tr")
        assert rows.count() == count
        _shot(page, screenshots, "site-en-history")
    traffic.assert_clean()


def test_pages_read_without_javascript(browser: Browser, site: PublishedSite) -> None:
    """With JavaScript off, the attestation, charts and spends are all there (only the verifier needs it)."""
    with guarded_page(browser, javascript=False) as (page, traffic):
        page.goto(_url(site, "en/index.html"))
        assert page.locator("#reserves-heading").is_visible()
        page.goto(_url(site, "en/history.html"))
        assert page.locator("svg#chart-coverage").is_visible()
        page.goto(_url(site, "en/spends.html"))
        assert "Hospital equipment for Osh region" in page.locator("main").inner_text()
        page.goto(_url(site, "en/verify.html"))
        assert CATALOGUES["en"].text("verify.noscript") in page.locator("main").inner_text()
    traffic.assert_clean()


def test_language_switcher_changes_the_page(
    browser: Browser, site: PublishedSite, screenshots: Path
) -> None:
    """Choosing Russian then Kyrgyz on the history page opens that page in that language."""
    with guarded_page(browser) as (page, traffic):
        page.goto(_url(site, "en/history.html"))
        for code, name in (("ru", "Русский"), ("ky", "Кыргызча")):
            page.locator("nav.languages a", has_text=name).click()
            page.wait_for_url(f"**/{code}/history.html")
            assert page.locator("html").get_attribute("lang") == code
            assert page.locator("h1").inner_text() == CATALOGUES[code].text("history.title")
            assert page.locator("nav.main-nav a[aria-current=page]").inner_text() == (
                CATALOGUES[code].text("nav.history")
            )
        page.goto(_url(site, "ky/index.html"))
        _shot(page, screenshots, "site-ky-index")
        page.goto(_url(site, "ru/spends.html"))
        _shot(page, screenshots, "site-ru-spends")
        page.goto(_url(site, "index.html"))
        _shot(page, screenshots, "site-language-chooser")
    traffic.assert_clean()


def _verdict(page: Page) -> str:
    page.wait_for_function("document.getElementById('result').dataset.verdict !== 'none'")
    return str(page.locator("#result").get_attribute("data-verdict"))


def _reset(page: Page) -> None:
    page.evaluate("document.getElementById('result').dataset.verdict = 'none'")


def test_verifier_page_accepts_a_real_leaf_and_rejects_a_tampered_one(
    browser: Browser, site: PublishedSite, attestations: Attestations, screenshots: Path
) -> None:
    """Account id + salt of the published budget line, and a citizen's proof package, verify in
    the browser; a wrong salt and a package with an altered amount do not, as in Python."""
    package = attestations.private_package
    tampered = copy.deepcopy(package)
    tampered["leaf"]["amounts"][0] = str(int(tampered["leaf"]["amounts"][0]) + 1)  # type: ignore[index]
    verify_liability_package(package)
    with pytest.raises(VerificationError):
        verify_liability_package(tampered)
    with guarded_page(browser) as (page, traffic):
        page.goto(_url(site, "en/verify.html"))
        page.fill("#account-id", PUBLIC_ACCOUNT)
        page.fill("#salt", attestations.public_salt)
        page.click("#check-account")
        assert _verdict(page) == "valid"
        assert PUBLIC_ACCOUNT in page.locator("#result").inner_text()
        _shot(page, screenshots, "site-en-verify-valid")
        _reset(page)
        wrong = attestations.public_salt[:-1] + (
            "0" if attestations.public_salt[-1] != "0" else "1"
        )
        page.fill("#salt", wrong)
        page.click("#check-account")
        assert _verdict(page) == "invalid"
        _reset(page)
        page.fill("#proof-text", json.dumps(package))
        page.click("#check-package")
        assert _verdict(page) == "valid"
        assert PRIVATE_ACCOUNT in page.locator("#result").inner_text()
        _reset(page)
        page.set_input_files(
            "#proof-file",
            files=[{"name": "proof.json", "mimeType": "application/json",
                    "buffer": json.dumps(tampered).encode()}],
        )  # fmt: skip
        page.click("#check-package")
        assert _verdict(page) == "invalid"
        assert CATALOGUES["en"].text("js.reason.root_hash") in page.locator("#result").inner_text()
        _shot(page, screenshots, "site-en-verify-invalid")
    traffic.assert_clean()


def _js(page: Page, script: str, *args: Any) -> Any:
    return page.evaluate(script, list(args))


def test_browser_encoding_agrees_with_python_on_vectors_and_real_leaves(
    browser: Browser, site: PublishedSite, attestations: Attestations
) -> None:
    """The JavaScript leaf hash and root digest equal the committed vectors byte for byte; every
    vector proof and every published leaf of every attestation verifies; one altered amount fails."""
    with guarded_page(browser) as (page, traffic):
        page.goto(_url(site, "en/verify.html"))
        for vector in VECTORS["liabilities"]:
            root = vector["root"]
            assert _js(page, "([r]) => ReserveProof.rootDigest(r)", root) == root["digest"]
            for account in vector["accounts"]:
                leaf = {k: account[k] for k in ("account_id", "amounts", "salt")}
                assert _js(page, "([l]) => ReserveProof.leafHash(l)", leaf) == account["leaf_hash"]
                outcome = _js(
                    page, "([r, l, p]) => ReserveProof.verifyLeaf(r, l, p)", root, leaf,
                    account["proof"],
                )  # fmt: skip
                assert outcome["digest"] == root["digest"]
                altered = {
                    **leaf,
                    "amounts": [str(int(leaf["amounts"][0]) + 1), *leaf["amounts"][1:]],
                }
                failure = _js(
                    page,
                    "([r, l, p]) => ReserveProof.verifyLeaf(r, l, p).then(() => 'ok', e => e.key)",
                    root, altered, account["proof"],
                )  # fmt: skip
                assert failure == "root_hash"
        for bundle in attestations.bundles:
            liabilities = bundle.body["liabilities"]
            for entry in liabilities["public_listing"]:
                outcome = _js(
                    page, "([r, l, p]) => ReserveProof.verifyLeaf(r, l, p)",
                    liabilities["root"], entry["leaf"], entry["proof"],
                )  # fmt: skip
                assert outcome["digest"] == liabilities["root"]["digest"]
    traffic.assert_clean()


def test_site_works_over_treasury_serve_without_network(
    browser: Browser, site: PublishedSite, served: str, screenshots: Path
) -> None:
    """Every page in every language loads from the loopback server with all its assets, and no
    request goes anywhere else."""
    with guarded_page(browser, served) as (page, traffic):
        for code in CATALOGUES:
            for name in PAGES:
                response = page.goto(f"{served}/{code}/{name}.html")
                assert response is not None
                assert response.status == 200
                assert page.locator("html").get_attribute("lang") == code
        page.goto(f"{served}/en/spends.html")
        _shot(page, screenshots, "site-en-spends")
        page.goto(f"{served}/en/howto.html")
        _shot(page, screenshots, "site-en-howto")
        page.goto(f"{served}/en/data.html")
        csv_link = page.locator("a[href='../data/spends.csv']")
        response = page.request.get(f"{served}/data/spends.csv")
        assert csv_link.count() == 1
        assert response.ok
        assert "Hospital equipment for Osh region" in response.text()
    traffic.assert_clean()


def test_printed_page_hides_navigation(browser: Browser, site: PublishedSite) -> None:
    """The print stylesheet drops the navigation and language switcher but keeps the figures."""
    with guarded_page(browser) as (page, traffic):
        page.goto(_url(site, "en/index.html"))
        page.emulate_media(media="print")
        assert not page.locator("nav.main-nav").is_visible()
        assert not page.locator("nav.languages").is_visible()
        assert page.locator("#reserves-heading").is_visible()
        pdf = page.pdf(format="A4")
        assert pdf.startswith(b"%PDF")
    traffic.assert_clean()


def test_the_browser_is_debians_chromium(browser: Browser) -> None:
    """Playwright drives the system Chromium from Debian's package, not a downloaded build."""
    installed = subprocess.run(
        [CHROMIUM_PATH, "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert browser.version in installed
    assert "Debian" in installed
