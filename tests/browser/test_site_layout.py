"""The parliament site as its readers meet it: every page at a phone's, a tablet's, a laptop's and
a wide screen's width, in Kyrgyz, Russian and English, in Debian's Chromium.

Each page must fit its width (no sideways scrolling, no key figure cut off, no serious axe-core
violation), the Kyrgyz and Russian pages must hold none of the English data (institutions, funds,
decree titles, purposes, payees, check names, chain names) apart from configured proper names,
and the front page must say what a citizen looks for first. The site is published from the
session's live attestations and a treasury whose officers entered the Kyrgyz and Russian wording
of their records (``treasury translations``), as a deployment would. Screenshots of every page go
to ``artifacts/screenshots/site-<page>-<lang>-<width>.png``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import PUBLISHED_AT, executed_spend
from page_checks import LANGUAGES, WIDTHS, assert_readable
from page_guard import guarded_page
from playwright.sync_api import Browser, Page
from site_support import PRIVATE_ACCOUNT, Attestations
from workflow_support import DECREE, World, build_world

from reporting.site import PublishedSite, load_bundles, load_export, publish_site, site_server
from reporting.site.i18n import load_catalogues
from reporting.site.localise import Localiser
from reporting.site.publish import PAGES, VERIFIER_ARCHIVE
from reporting.site.sources import TreasuryRecords
from treasury.publication import EXPORT_FILE_NAME, write_export
from treasury.translations import TranslationKind, set_translations

CATALOGUES = load_catalogues()
PROPER_NAMES = frozenset(
    {"Bitcoin", "Ethereum", "Safe", "BTC", "ETH", "KGST", "SHA-256", "BIP-127"}
)
"""Names every language writes the same way: a Kyrgyz or Russian page may show them."""
DECREE_URLS = {
    "ky": "https://laws.example.kg/ky/decree-2026-17",
    "ru": "https://laws.example.kg/ru/decree-2026-17",
}
DESTINATION = "bcrt1qdestination0000000000000000000000000"
TRANSLATIONS: tuple[tuple[TranslationKind, str, dict[str, str]], ...] = (
    (TranslationKind.INSTITUTION, "CB", {"ky": "Борбордук банк", "ru": "Центральный банк"}),
    (TranslationKind.INSTITUTION, "PARL", {"ky": "Жогорку Кеңеш", "ru": "Жогорку Кенеш"}),
    (TranslationKind.LEGAL_BASIS, DECREE,
     {"ky": "Резервди кайра теңдөө жөнүндө токтом", "ru": "Постановление о ребалансировке резервов"}),  # noqa: RUF001 - Russian text
    (TranslationKind.LEGAL_BASIS_URL, DECREE, DECREE_URLS),
    (TranslationKind.PURPOSE, "1",
     {"ky": "Ош облусу үчүн оорукана жабдуулары", "ru": "Больничное оборудование для Ошской области"}),
    (TranslationKind.PAYEE, DESTINATION, {"ky": "Алуучу", "ru": "Получатель"}),
)  # fmt: skip
"""What the treasury's officers enter in Kyrgyz and Russian: names, a title, a decree's texts, a
purpose and a payee label (the Ministry of Finance is left to the site's catalogue)."""


@dataclass(frozen=True)
class TranslatedSite:
    """The published site, the export it was published from, and where it is served."""

    site: PublishedSite
    records: TreasuryRecords
    export: dict[str, Any]
    origin: str = ""


@pytest.fixture(scope="module")
def translated(
    attestations: Attestations, bundles_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> TranslatedSite:
    """A treasury with one confirmed spend and its records translated, published with the
    session's live attestations, verified against the nodes."""
    folder = tmp_path_factory.mktemp("translated")
    world: World = build_world(f"sqlite:///{folder / 'treasury.sqlite3'}")
    try:
        executed_spend(world)
        with world.sessions.begin() as session:
            for kind, key, texts in TRANSLATIONS:
                set_translations(
                    session, world.officers["proposer"], kind, key, texts, now=world.clock()
                )
        export = write_export(
            world.sessions, folder / EXPORT_FILE_NAME, exported_at=PUBLISHED_AT,
            bitcoin_network="regtest",
        )  # fmt: skip
    finally:
        world.engine.dispose()
    records = load_export(export)
    published = load_bundles(bundles_dir, nodes=attestations.nodes)
    site = publish_site(published, records, folder / "site", published_at=PUBLISHED_AT)
    return TranslatedSite(site, records, json.loads(export.read_text("utf-8")))


@pytest.fixture(scope="module")
def served_translated(translated: TranslatedSite) -> Iterator[TranslatedSite]:
    """The translated site over HTTP from `treasury serve`'s server, as readers get it (axe-core
    reads the stylesheets again, which a browser allows over HTTP but not from file:// pages)."""
    server = site_server(translated.site.folder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield replace(translated, origin=f"http://{host!s}:{port}")
    server.shutdown()
    server.server_close()
    thread.join()


def _url(site: TranslatedSite, relative: str) -> str:
    return f"{site.origin}/{relative}" if site.origin else (site.site.folder / relative).as_uri()


@pytest.fixture(scope="module")
def english_data(translated: TranslatedSite) -> set[str]:
    """The English data strings of the English pages: every name, title, purpose and label the
    export carries, the chains' English names, and every check name as the verifier writes it
    and as the English page shows it."""
    export = translated.export
    found = {item["name"] for item in export["institutions"]}
    found |= {item["title"] for item in export["legal_bases"]}
    found |= {item["name"] for item in export["funds"] if item["name"] != item["account"]}
    found |= {item["name"] for item in export["chains"]}
    for spend in export["spends"]:
        found.add(spend["purpose"])
        if spend["payee"]:
            found.add(spend["payee"]["label"])
    english = Localiser(CATALOGUES["en"], translated.records)
    for bundle in load_bundles(translated.site.folder / "data" / "attestations"):
        for check in bundle.report.checks:
            found.add(check.name)
            found.add(re.sub(r"<[^>]+>", "", str(english.check(check.name).name)))
    for key, text in CATALOGUES["en"].messages.items():
        if key.startswith(("chain.", "institution.")) and "{" not in text:
            found.add(text)
    assert "Hospital equipment for Osh region" in found
    return {text for text in found if text not in PROPER_NAMES}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_page_reads_at_every_width_in_every_language(
    browser: Browser,
    served_translated: TranslatedSite,
    english_data: set[str],
    screenshots: Path,
    lang: str,
    width: int,
) -> None:
    """No page scrolls sideways, no key figure is cut off, axe finds nothing serious, and a
    Kyrgyz or Russian page shows no English data string (proper names aside)."""
    translated = served_translated
    english = english_data if lang != "en" else set()
    with guarded_page(browser, translated.origin) as (page, traffic):
        page.set_viewport_size({"width": width, "height": 900})
        for name in PAGES:
            page.goto(_url(translated, f"{lang}/{name}.html"))
            page.screenshot(
                path=str(screenshots / f"site-{name}-{lang}-{width}.png"), full_page=True
            )
            where = f"{lang}/{name}.html at {width} px"
            assert_readable(page, where)
            assert page.locator("[data-key-figure]").count() > 0 or name in (
                "verify", "data", "howto",
            ), where  # fmt: skip
            text = page.locator("body").inner_text()
            leaked = sorted(s for s in english if s in text)
            assert leaked == [], f"{where}: English data on the page: {leaked}"
        if lang == "en":
            page.goto(_url(translated, "index.html"))
            page.screenshot(path=str(screenshots / f"site-chooser-{width}.png"), full_page=True)
            assert_readable(page, f"language chooser at {width} px")
    traffic.assert_clean()


def _coverage(value: str) -> Fraction:
    numerator, denominator = value.split("/")
    return Fraction(int(numerator), int(denominator))


def test_front_page_headline_tells_a_citizen_what_they_look_for(
    browser: Browser, translated: TranslatedSite, attestations: Attestations
) -> None:
    """The headline gives each asset's reserve in coins, one coverage figure (the lowest) and
    each asset's, the attestation date and age, the countersigning audit office by name, and
    keeps the treasury's own software check apart from the auditor's signature."""
    latest = attestations.bundles[-1].body
    en = CATALOGUES["en"]
    ratios = {asset: cover["ratio"] for asset, cover in latest["coverage"].items()}
    lowest = min(latest["coverage"], key=lambda a: _coverage(
        f"{latest['coverage'][a]['numerator']}/{latest['coverage'][a]['denominator']}"))  # fmt: skip
    with guarded_page(browser) as (page, traffic):
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(_url(translated, "en/index.html"))
        headline = page.locator("section.headline")
        overall = headline.locator(".figure-overall .figure-value").inner_text()
        assert overall == ratios[lowest].replace("%", "\u00a0%")
        text = headline.inner_text()
        for asset, line in latest["reconciliation"].items():
            decimals = 8 if asset == "BTC" else 18
            coins = en.amount(int(line["chain_holdings"]), decimals)
            assert f"{coins}\u00a0{asset}" in text
            assert ratios[asset].replace("%", "\u00a0%") in text
        assert en.text("headline.attested_on", date=latest["as_of"][:10]) in text
        assert en.plural("headline.age", 1, date="2026-05-01") in text
        auditor = headline.locator(".assurance-auditor")
        assert en.text("auditor.name") in auditor.inner_text()
        assert en.text("headline.auditor_signed") in auditor.inner_text()
        assert latest["signers"]["auditor"]["address"] in auditor.inner_text()
        software = headline.locator("#software-check")
        assert software.locator("#verdict-heading").inner_text() == en.text("verdict.verified")
        assert en.text("verdict.not_auditor") in software.inner_text()
        assert "audit office" not in software.locator("#verdict-heading").inner_text()
        assert en.text("headline.not_shows_heading") in text
        box = headline.locator(".headline-figures").bounding_box()
        assert box is not None
        assert box["y"] < 844, "the figures start below the first screen"
        nav = page.locator("nav.compact-nav")
        assert page.locator("nav.main-nav").is_hidden()
        nav_box = nav.bounding_box()
        assert nav_box is not None
        assert nav_box["height"] < 844 / 8, "the menu takes the screen"
    traffic.assert_clean()


def test_phone_menu_opens_without_javascript(browser: Browser, translated: TranslatedSite) -> None:
    """On a phone the sections are one line that opens into the full menu, with JavaScript off."""
    with guarded_page(browser, javascript=False) as (page, traffic):
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(_url(translated, "ru/history.html"))
        menu = page.locator("nav.compact-nav")
        links = menu.locator("a")
        assert links.first.is_hidden()
        menu.locator("summary").click()
        assert links.count() == len(PAGES)
        links.nth(PAGES.index("spends")).click()
        page.wait_for_url("**/ru/spends.html")
        assert page.locator("h1").inner_text() == CATALOGUES["ru"].text("spends.title")
        page.set_viewport_size({"width": 1366, "height": 900})
        assert menu.is_hidden()
        assert page.locator("nav.main-nav a").count() == len(PAGES)
    traffic.assert_clean()


def _chart_text(page: Page, svg_id: str) -> list[dict[str, Any]]:
    """Each text of a chart: its rendered font size and box, and the chart's box."""
    result: list[dict[str, Any]] = page.evaluate(
        """(id) => {
            const svg = document.getElementById(id);
            const outer = svg.getBoundingClientRect();
            return [...svg.querySelectorAll('text')].map(t => {
                const box = t.getBoundingClientRect();
                const scale = svg.getScreenCTM().a;
                const size = parseFloat(getComputedStyle(t).fontSize) * scale;
                return {text: t.textContent, size, left: box.left - outer.left,
                        right: outer.right - box.right, top: box.top - outer.top,
                        bottom: outer.bottom - box.bottom};
            });
        }""",
        svg_id,
    )
    return result


@pytest.mark.parametrize(("width", "layout"), [(360, "-narrow"), (390, "-narrow"), (768, ""),
                                               (1366, ""), (1920, "")])  # fmt: skip
def test_charts_are_readable_at_every_width(
    browser: Browser, translated: TranslatedSite, width: int, layout: str
) -> None:
    """At each width the chart drawn for it shows text of at least 12 px, none of it cut off at
    the chart's edges; the legend entries do not overlap; series that coincide say so."""
    ru = CATALOGUES["ru"]
    with guarded_page(browser) as (page, traffic):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(_url(translated, "ru/history.html"))
        for chart in ("chart-coverage", "chart-reserves-btc", "chart-reserves-eth"):
            svg = page.locator(f"svg#{chart}{layout}")
            assert svg.is_visible(), f"{chart}{layout} at {width} px"
            texts = _chart_text(page, f"{chart}{layout}")
            assert texts
            for item in texts:
                assert item["size"] >= 11.9, f"{chart} at {width} px: {item}"
                edges = (item["left"], item["right"], item["top"], item["bottom"])
                assert min(edges) >= 0, f"{chart} at {width} px: cut off: {item}"
            boxes = page.locator(f"#{chart}-legend li").evaluate_all(
                "items => items.map(i => { const b = i.getBoundingClientRect();"
                " return [b.left, b.top, b.right, b.bottom]; })"
            )
            for i, a in enumerate(boxes):
                for b in boxes[i + 1 :]:
                    apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
                    assert apart, f"{chart} at {width} px: legend entries overlap"
        btc_legend = page.locator("#chart-reserves-btc-legend").inner_text()
        assert ru.text("history.same_as", other=ru.text("figure.chain_holdings")) in btc_legend
        styles = page.locator("svg#chart-reserves-btc polyline").evaluate_all(
            "lines => lines.map(l => [l.getAttribute('stroke-dasharray'),"
            " l.getAttribute('stroke-width')])"
        )
        assert len(set(map(tuple, styles))) == 3, "series drawn alike"
    traffic.assert_clean()


def test_spends_reconcile_with_holdings_and_name_fund_payee_and_decree(
    browser: Browser, translated: TranslatedSite
) -> None:
    """The spends page shows allocated minus paid out minus fees equals held per asset, what left the
    reserve, which account paid, the payee's label and the decree with a link to its text, in
    the reader's language."""
    movements = translated.export["movements"]["BTC"]
    [spend] = translated.export["spends"]
    for lang in LANGUAGES:
        t = CATALOGUES[lang]
        with guarded_page(browser) as (page, traffic):
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(_url(translated, f"{lang}/spends.html"))
            card = page.locator(".ledger-card").first.inner_text()
            for key in ("allocated", "spent", "fees", "held"):
                assert t.amount(int(movements[key]), 8) + "\u00a0BTC" in card, (lang, key)
            assert int(movements["allocated"]) - int(movements["spent"]) - int(
                movements["fees"]
            ) == int(movements["held"])
            row = page.locator("table.spends tbody tr").first
            text = row.inner_text()
            assert t.amount(int(spend["amount"]), 8) + "\u00a0BTC" in text
            assert spend["paid_from"]["account"] in text
            if lang == "en":
                assert spend["payee"]["label"] in text
                assert "Reserve rebalancing decree" in text
            else:
                assert spend["payee"]["translations"][lang] in text
                assert spend["translations"][lang] in text
            link = row.locator("a[rel~=external]")
            # An English reader is sent to the state language's text, and told which it is.
            shown = lang if lang in DECREE_URLS else "ky"
            assert link.get_attribute("href") == DECREE_URLS[shown]
            assert link.get_attribute("hreflang") == shown
            outflow = page.locator("ul.outflows").inner_text()
            assert t.amount(int(spend["amount"]), 8) in outflow
        traffic.assert_clean()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_check_your_account_shows_coins_near_the_top_on_a_phone(
    browser: Browser, served_translated: TranslatedSite, attestations: Attestations, lang: str
) -> None:
    """A holder's proof package checked on a phone: the result is in coin units, in the page's
    number marks, and in view without scrolling back."""
    translated = served_translated
    t = CATALOGUES[lang]
    package = attestations.private_package
    amounts = [int(a) for a in package["leaf"]["amounts"]]  # type: ignore[index]
    with guarded_page(browser, translated.origin) as (page, traffic):
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(_url(translated, f"{lang}/verify.html"))
        page.fill("#proof-text", json.dumps(package))
        page.click("#check-package")
        page.wait_for_function("document.getElementById('result').dataset.verdict === 'valid'")
        result = page.locator("#result")
        text = result.inner_text()
        assert PRIVATE_ACCOUNT in text
        assert f"{t.amount(amounts[0], 8)}\u00a0BTC" in text
        assert f"{t.amount(amounts[1], 18)}\u00a0ETH" in text
        top = result.evaluate("r => r.getBoundingClientRect().top")
        assert 0 <= top < 844 / 2, f"the result is at {top} px, not near the top of the screen"
        form = page.locator("#package-form").bounding_box()
        box = result.bounding_box()
        assert form is not None
        assert box is not None
        assert box["y"] < form["y"], "the result is below the form"
        assert_readable(page, f"{lang}/verify.html with a result", "#result p")
    traffic.assert_clean()


def test_how_to_verify_points_to_the_separate_verifier_and_publishes_its_source(
    browser: Browser, translated: TranslatedSite
) -> None:
    """The how-to names `pip install ./verifier` and `reserve-verify` with its real flags, and
    the published source archive holds the verifier alone and matches its stated SHA-256."""
    archive = (translated.site.folder / "data" / VERIFIER_ARCHIVE).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
    assert "verifier/pyproject.toml" in names
    assert "verifier/reserve_verifier/cli.py" in names
    assert all(name.startswith("verifier/") for name in names)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert len(archive) < 200 * 1024
    with guarded_page(browser) as (page, traffic):
        page.goto(_url(translated, "en/howto.html"))
        text = page.locator("main").inner_text()
        assert hashlib.sha256(archive).hexdigest() in text
        for command in ("pip install ./verifier", "reserve-verify attestation-000003.json --offline",
                        "--trust trust.json", "--announcements announcements.json",
                        "--bitcoin-rpc", "--evm-rpc", "--services-rpc",
                        "--previous attestation-000002.json", "--proof my-proof.json"):  # fmt: skip
            assert command in text, command
        assert "treasury verify" not in text
        assert "pip install -e ." not in text
        href = page.locator(f"a[href$='{VERIFIER_ARCHIVE}']").first.get_attribute("href")
        assert (translated.site.folder / "en" / str(href)).resolve().read_bytes() == archive
    traffic.assert_clean()


def test_chains_are_named_never_bare_ids(browser: Browser, translated: TranslatedSite) -> None:
    """Every page names chains in the reader's language (``Ethereum (local test network)``),
    never ``EVM 31337``."""
    with guarded_page(browser) as (page, traffic):
        for lang in LANGUAGES:
            t = CATALOGUES[lang]
            for name in PAGES:
                page.goto(_url(translated, f"{lang}/{name}.html"))
                text = page.locator("body").inner_text()
                assert re.search(r"EVM \d", text) is None, f"{lang}/{name}"
            page.goto(_url(translated, f"{lang}/index.html"))
            text = page.locator("main").inner_text()
            for chain in ("bitcoin:regtest", "evm:31337", "evm:31338"):
                assert t.text(f"chain.{chain}") in text, (lang, chain)
    traffic.assert_clean()
