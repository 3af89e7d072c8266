"""The parliament site puts its data in the reader's language, counts in each language's plural
forms, draws charts that stay readable, and publishes the verifier's source reproducibly."""

from __future__ import annotations

import io
import json
import re
import tarfile
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from reporting.site import SourceError, load_export
from reporting.site import charts as site_charts
from reporting.site.i18n import load_catalogues, plural_form
from reporting.site.localise import CHECK_NAMES, Localiser
from reporting.site.publish import verifier_archive
from reporting.site.sources import FundAllocation, FundKind, Named, TreasuryRecords

CATALOGUES = load_catalogues()


def test_russian_counts_take_three_forms_and_kyrgyz_one() -> None:
    assert [plural_form("ru", n) for n in (1, 2, 5, 11, 12, 21, 22, 25, 111)] == [
        "one", "few", "many", "many", "many", "one", "few", "many", "many",
    ]  # fmt: skip
    assert [plural_form("en", n) for n in (0, 1, 2)] == ["other", "one", "other"]
    assert {plural_form("ky", n) for n in range(30)} == {"other"}
    assert CATALOGUES["ru"].plural("headline.age", 3, date="2026-05-01").startswith("(за 3 дня")


def test_entered_translation_then_catalogue_then_marked_original() -> None:
    """A Kyrgyz page shows the officers' Kyrgyz name, else the catalogue's, else the English
    original marked lang="en" so a test (and a screen reader) can tell."""
    records = TreasuryRecords(original_language="en")
    ky = Localiser(CATALOGUES["ky"], records)
    entered = Named("CB", "Central Bank", {"ky": "Борбордук банк (киргизилген)"})
    assert str(ky.institution(entered)) == "Борбордук банк (киргизилген)"
    assert str(ky.institution(Named("MOF", "Ministry of Finance"))) == "Каржы министрлиги"
    unknown = str(ky.institution(Named("XYZ", "Unknown <Office>")))
    assert unknown == '<span lang="en">Unknown &lt;Office&gt;</span>'
    en = Localiser(CATALOGUES["en"], records)
    assert str(en.institution(Named("XYZ", "Unknown Office"))) == "Unknown Office"
    assert str(ky.named(Named("vault:btc", "vault:btc"), "account")) == "<code>vault:btc</code>"
    equity = FundAllocation("equity:btc", "equity:btc", FundKind.EQUITY, "BTC", 1, 0, 1)
    assert str(ky.fund(equity, "BTC")) == "Бөлүштүрүлбөгөн резерв (BTC)"


def test_chains_are_named_in_every_language_never_as_bare_ids() -> None:
    records = TreasuryRecords(chains={"evm:5": "Goerli (an old test network)"})
    for code in ("ky", "ru", "en"):
        local = Localiser(CATALOGUES[code], records)
        assert local.chain("evm:31337") == CATALOGUES[code].text("chain.evm:31337")
        assert "31337" not in local.chain("evm:31337")
        assert "99" in local.chain("evm:99")
        assert not re.fullmatch(r"EVM \d+", local.chain("evm:99"))
    assert Localiser(CATALOGUES["en"], records).chain("evm:5") == "Goerli (an old test network)"
    assert Localiser(CATALOGUES["ru"], records).chain("evm:5") == CATALOGUES["ru"].text(
        "chain.evm_other", id="5"
    )


@pytest.mark.parametrize(
    "name",
    ["digest", "signature auditor", "coverage BTC", "reconciliation ETH", "eip1271 0xAbC",
     "utxo ab12:0", "evm snapshot block 31337", "balance ETH of 0xAbC", "pinned auditor key",
     "inclusion of 'citizen:0001'", "reserve proof (BIP-127)", "vault holdings of 0xAbC"],
)  # fmt: skip
def test_every_check_name_is_translated(name: str) -> None:
    """Each verifier check has a Kyrgyz and Russian name and description; identifiers in it
    (an address, an outpoint, an account) stay as written, in <code>."""
    wordings = {code: Localiser(c, TreasuryRecords()).check(name) for code, c in CATALOGUES.items()}
    assert all(w.known for w in wordings.values())
    assert len({str(w.name) for w in wordings.values()}) == 3
    for wording in wordings.values():
        assert name not in str(wording.name)
        assert str(wording.about)
    for identifier in ("0xAbC", "ab12:0", "citizen:0001"):
        if identifier in name:
            assert f"<code>{identifier}</code>" in str(wordings["ky"].name)


def test_every_check_pattern_has_its_messages_and_unknown_checks_stay_marked() -> None:
    keys = {key.format(role=role) for _, key in CHECK_NAMES for role in ("treasury", "auditor")}
    for catalogue in CATALOGUES.values():
        for key in keys:
            assert catalogue.has(f"check.name.{key}"), key
            assert catalogue.has(f"check.about.{key}"), key
    odd = Localiser(CATALOGUES["ru"], TreasuryRecords()).check("a check of the future")
    assert not odd.known
    assert str(odd.name) == '<span lang="en">a check of the future</span>'


def _export(tmp_path: Path, **changes: Any) -> Path:
    document: dict[str, Any] = {
        "format": "national-reserve-export/1",
        "exported_at": "2026-05-01T12:00:00+00:00",
        "assets": [{"code": "BTC", "decimals": 8}],
        "institutions": [{"code": "CB", "name": "Central Bank"}],
        "legal_bases": [],
        "funds": [],
        "spends": [],
    }
    document.update(changes)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document), "utf-8")
    return path


def test_an_export_without_translations_still_reads_and_a_bad_one_is_refused(
    tmp_path: Path,
) -> None:
    """Members added to format 1 (translations, chains, movements) may be absent in an older
    export; where present, a malformed one is refused by its path."""
    records = load_export(_export(tmp_path))
    assert records.movements == {}
    assert records.chains == {}
    bad = [{"code": "CB", "name": "Central Bank", "translations": {"ky": 5}}]
    with pytest.raises(SourceError, match=r"institutions\[0\]\.translations"):
        load_export(_export(tmp_path, institutions=bad))
    movements = {"BTC": {"allocated": "10", "spent": "3", "fees": "1", "unexplained": "0",
                         "held": "6", "pending": {"allocated": "0", "spent": "0", "fees": "0",
                                                  "unexplained": "0", "held": "0"}}}  # fmt: skip
    found = load_export(_export(tmp_path, movements=movements)).movements["BTC"]
    assert (found.allocated, found.spent, found.fees, found.held) == (10, 3, 1, 6)
    assert found.balances
    movements["BTC"]["held"] = "7"
    assert not load_export(_export(tmp_path, movements=movements)).movements["BTC"].balances
    movements["BTC"]["held"] = 7
    with pytest.raises(SourceError, match=r"movements\.BTC\.held"):
        load_export(_export(tmp_path, movements=movements))


def _chart(count: int, coincide: bool = False) -> site_charts.Chart:
    held = tuple(Fraction(i + 1) for i in range(count))
    other = held if coincide else tuple(v / 2 for v in held)
    return site_charts.Chart(
        chart_id="c",
        title="t",
        description="d",
        x_labels=tuple(f"no. {i + 1}\n2026-05-{i + 1:02d}" for i in range(count)),
        series=(site_charts.Series("held", held), site_charts.Series("free", other, "same")),
        y_format=lambda v: f"{v} BTC",
    )


@pytest.mark.parametrize("count", [1, 2, 3, 12, 40])
def test_x_labels_never_overlap_and_keep_the_newest(count: int) -> None:
    labels = _chart(count).x_labels
    for layout in site_charts.LAYOUTS:
        plot = layout.width_px - 120
        shown = site_charts.label_positions(labels, plot, layout.font_px)
        assert shown[0] == 0
        assert shown[-1] == count - 1
        width = max(site_charts.text_width_px(line, layout.font_px) for line in labels[0].split())
        gap = Fraction(plot, max(count - 1, 1))
        for a, b in pairwise(shown):
            assert (b - a) * gap >= width


def test_charts_come_in_a_wide_and_a_narrow_drawing_with_an_html_legend() -> None:
    """Two drawings (the phone's has its own id), text sized in the drawing, and a legend in
    HTML naming a coinciding series; coinciding series differ in dash and width."""
    html = str(site_charts.render(_chart(3, coincide=True)))
    assert 'id="c"' in html
    assert 'id="c-narrow"' in html
    assert html.count('font-size="13"') == 2
    assert '<ul class="legend" id="c-legend">' in html
    assert '<span class="legend-note">same</span>' in html
    lines = re.findall(r'<polyline [^>]*stroke-width="([0-9.]+)"([^/]*)/>', html)
    assert len({(width, dash) for width, dash in lines[:2]}) == 2


def test_the_verifier_source_archive_is_small_reproducible_and_the_verifier_alone() -> None:
    first, second = verifier_archive(), verifier_archive()
    assert first is not None
    assert second is not None
    assert first.data == second.data
    with tarfile.open(fileobj=io.BytesIO(first.data)) as archive:
        names = archive.getnames()
        assert {m.mtime for m in archive.getmembers()} == {0}
    assert "verifier/pyproject.toml" in names
    assert all(n.startswith("verifier/reserve_verifier/") or n.count("/") == 1 for n in names)
    assert len(first.data) < 200 * 1024
    assert verifier_archive(Path("/nonexistent")) is None
