"""The published folder as files: every link and asset resolves, the HTML parses without a single
error under the WHATWG parser (html5lib, strict), and the pages meet the accessibility basics."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import html5lib
import pytest
from typer.testing import CliRunner
from workflow_support import World

from reporting.site import PublishedSite, SiteError, publish_site
from reporting.site.errors import CatalogueError
from reporting.site.i18n import LANGUAGES, Catalogue, load_catalogues
from reporting.site.publish import MARKER_FILE
from reporting.site.sources import TreasuryRecords
from treasury.cli import app

LINK_ATTRIBUTES = {"href", "src"}
LABELLED_INPUTS = {"text", "password", "file", "checkbox", None}
"""Input types that need a <label> (hidden inputs and buttons do not)."""


class _Page(HTMLParser):
    """Collects what the checks need from one page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: list[str] = []
        self.lang: str | None = None
        self.title = ""
        self.in_title = False
        self.images_without_alt = 0
        self.h1 = 0
        self.main = 0
        self.labels: set[str] = set()
        self.controls: list[str] = []
        self.tables = 0
        self.table_headers = 0
        self.svg_labelledby: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in LINK_ATTRIBUTES & set(found):
            self.links.append(found[name] or "")
        if "id" in found:
            self.ids.append(found["id"] or "")
        if tag == "html":
            self.lang = found.get("lang")
        if tag == "title":
            self.in_title = True
        if tag == "img" and found.get("alt") is None:
            self.images_without_alt += 1
        if tag == "h1":
            self.h1 += 1
        if tag == "main":
            self.main += 1
        if tag == "label":
            self.labels.add(found.get("for") or "")
        if tag in ("textarea", "select") or (
            tag == "input" and found.get("type") in LABELLED_INPUTS
        ):
            self.controls.append(found.get("id") or "")
        if tag == "table":
            self.tables += 1
        if tag == "th":
            self.table_headers += 1
        if tag == "svg" and found.get("role") == "img":
            self.svg_labelledby.append(found.get("aria-labelledby") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data


def _pages(site: PublishedSite) -> dict[Path, _Page]:
    parsed = {}
    for path in sorted(site.folder.rglob("*.html")):
        page = _Page()
        page.feed(path.read_text("utf-8"))
        parsed[path] = page
    return parsed


def test_every_link_and_asset_in_the_folder_resolves(site: PublishedSite) -> None:
    """Crawling from the language chooser reaches every page; every href/src is a relative path
    to an existing file (and #fragment to an existing id); nothing points off the machine."""
    pages = _pages(site)
    seen: set[Path] = set()
    queue = [site.folder / "index.html"]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix != ".html":
            continue
        for link in pages[path].links:
            parts = urlsplit(link)
            assert (parts.scheme, parts.netloc) == ("", ""), f"{path}: absolute link {link}"
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            assert target.is_file(), f"{path.relative_to(site.folder)}: broken link {link}"
            assert site.folder in target.parents, f"{path}: {link} leaves the site"
            if parts.fragment:
                assert parts.fragment in pages[target].ids, f"{path}: no #{parts.fragment}"
            queue.append(target)
    assert set(pages) <= seen, f"pages nobody links to: {set(pages) - seen}"
    assert (site.folder / "static" / "verify.js") in seen
    data = site.folder / "data"
    for name in ("attestations.csv", "spends.csv", "funds.csv"):
        assert (data / name) in seen
    for name in ("attestations.json", "spends.json", "funds.json"):
        json.loads((data / name).read_text("utf-8"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_html_is_valid_and_accessible(site: PublishedSite, language: str) -> None:
    """Each page parses with no error under html5lib's strict WHATWG parser and has its language,
    a title, one h1, a main landmark, unique ids, alt text, table headers, labelled controls and
    charts whose accessible names point at existing elements."""
    parser = html5lib.HTMLParser(strict=True)
    pages = {path: page for path, page in _pages(site).items() if path.parent.name == language}
    assert len(pages) == 6
    for path, page in pages.items():
        where = path.relative_to(site.folder)
        parser.parse(path.read_bytes())
        assert parser.errors == [], f"{where}: {parser.errors}"
        assert page.lang == language, where
        assert page.title.strip(), where
        assert (page.h1, page.main) == (1, 1), where
        assert len(page.ids) == len(set(page.ids)), f"{where}: duplicate ids"
        assert page.images_without_alt == 0, where
        assert page.table_headers >= page.tables, where
        assert all(control in page.labels for control in page.controls), where
        for names in page.svg_labelledby:
            assert names, where
            assert all(name in page.ids for name in names.split()), where
    chooser = html5lib.HTMLParser(strict=True)
    chooser.parse((site.folder / "index.html").read_bytes())
    assert chooser.errors == []


def test_catalogues_have_the_same_keys_and_a_missing_key_stops_the_publish(
    tmp_path: Path,
) -> None:
    """The three catalogues hold the same messages; a page asking for an unknown key, or a
    catalogue missing one, is refused by name instead of falling back to another language."""
    catalogues = load_catalogues()
    assert set(catalogues) == {"ky", "ru", "en"}
    assert catalogues["ky"].text("nav.index") != catalogues["en"].text("nav.index")
    with pytest.raises(CatalogueError, match=r"no message 'nav\.nowhere'"):
        catalogues["ru"].text("nav.nowhere")
    broken = dict(catalogues["en"].messages)
    del broken["nav.index"]
    for code in LANGUAGES:
        source = broken if code == "ky" else catalogues[code].messages
        (tmp_path / f"{code}.json").write_text(json.dumps(source), "utf-8")
    with pytest.raises(CatalogueError, match=r"ky catalogue differs.*nav\.index"):
        load_catalogues(tmp_path)


def test_amounts_are_shown_exactly_in_each_language() -> None:
    """Base units become whole units with every significant digit and the language's marks."""
    en = Catalogue("en", {"number.group": ",", "number.decimal": "."})
    ru = Catalogue("ru", {"number.group": "\u00a0", "number.decimal": ","})
    wei = 1_234_567 * 10**18 + 1
    assert en.amount(wei, 18) == "1,234,567.000000000000000001"
    assert ru.amount(150_000_000, 8) == "1,5"
    assert ru.amount(-250_000_000_000, 8) == "-2\u00a0500"
    assert en.amount(42, None) == "42"


def test_publish_refuses_a_foreign_folder_and_keeps_the_old_site(
    bundles_dir: Path, site_world: World, tmp_path: Path
) -> None:
    """`treasury publish` writes a complete site and replaces only a folder it wrote; a folder
    with other files is refused with a one-line error and left untouched."""
    out = tmp_path / "site"
    args = ["publish", "--out", str(out), "--bundles", str(bundles_dir),
            "--database-url", site_world.url]  # fmt: skip
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "published 3 attestations and 1 spends" in first.output
    assert "verified offline" in first.output
    assert (out / MARKER_FILE).is_file()
    assert (out / "ky" / "index.html").is_file()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "letter.txt").write_text("keep me")
    refused = CliRunner().invoke(app, ["publish", "--out", str(foreign), "--bundles",
                                       str(bundles_dir), "--database-url", site_world.url])  # fmt: skip
    assert refused.exit_code == 1
    assert refused.output.startswith("error: The output folder")
    assert "Traceback" not in refused.output
    assert [p.name for p in foreign.iterdir()] == ["letter.txt"]
    with pytest.raises(SiteError, match="at least one"):
        publish_site((), TreasuryRecords(), out, published_at=datetime(2026, 1, 1, tzinfo=UTC))
    served = CliRunner().invoke(app, ["serve", str(foreign), "--port", "0"])
    assert served.exit_code == 1
    assert served.output.startswith("error: The folder")
