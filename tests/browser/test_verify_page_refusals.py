"""The verify page refuses a malformed proof file in words a holder can act on, in every language.

A citizen's real package (from the live attestations of ``site_support``) is spoilt the way a
hand-edited or badly exported file would be: an amount with a leading zero, and a note added
beside the proof. verify.js must refuse each (SPEC-attestation R-GRAM-1, R-GRAM-2), and the page
must say which field is at fault and what the holder can do, in the page's own language, at
phone and desktop width, without sideways scrolling. Screenshots are left in ``artifacts/screenshots/issue14/`` for review.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from page_guard import guarded_page
from playwright.sync_api import Browser, Page
from site_support import PRIVATE_ACCOUNT, SCREENSHOTS_DIR, Attestations

from reporting.site import PublishedSite
from reporting.site.i18n import LANGUAGES, load_catalogues

SCREENS = SCREENSHOTS_DIR / "issue14"
WIDTHS = {"phone": 390, "desktop": 1280}
CATALOGUES = load_catalogues()


def _leading_zero(package: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, str]]:
    """The first amount written with a leading zero: same number, another spelling."""
    spoilt = copy.deepcopy(package)
    spoilt["leaf"]["amounts"][0] = "0" + spoilt["leaf"]["amounts"][0]
    value = json.dumps(spoilt["leaf"]["amounts"][0])
    return spoilt, "js.reason.bad_amount", {"detail": "leaf.amounts[0]", "value": value}


def _unknown_field(package: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, str]]:
    """An unsigned note beside the proof, as if the treasury had said who it was issued to."""
    spoilt = {**copy.deepcopy(package), "issued_to": "Member of Parliament"}
    return spoilt, "js.reason.unknown_field", {"detail": "issued_to"}


SPOILS = {"leading-zero": _leading_zero, "unknown-field": _unknown_field}


def _expected(lang: str, key: str, fields: dict[str, str]) -> str:
    """The catalogue's message with its fields filled, as verify.js fills it."""
    return CATALOGUES[lang].text(key, **fields)


def _check_file(page: Page, package: dict[str, Any]) -> str:
    page.evaluate("document.getElementById('result').dataset.verdict = 'none'")
    page.fill("#proof-text", json.dumps(package))
    page.click("#check-package")
    page.wait_for_function("document.getElementById('result').dataset.verdict !== 'none'")
    return str(page.locator("#result").get_attribute("data-verdict"))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_page_refuses_a_malformed_proof_file_in_its_language(
    browser: Browser, site: PublishedSite, attestations: Attestations, lang: str
) -> None:
    """Each spoilt file is refused as INVALID with the message naming the field and the advice for
    a changed file, in ``lang``, at both widths and with nothing wider than the screen; the
    unspoilt file still verifies."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    messages = CATALOGUES[lang].messages
    for label, width in WIDTHS.items():
        with guarded_page(browser) as (page, traffic):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto((site.folder / lang / "verify.html").as_uri())
            for name, spoil in SPOILS.items():
                spoilt, key, fields = spoil(attestations.private_package)
                assert _check_file(page, spoilt) == "invalid", (lang, label, name)
                shown = page.locator("#result").inner_text()
                assert messages["js.invalid"] in shown
                assert _expected(lang, key, fields) in shown, (lang, label, name, shown)
                assert messages["js.format_hint"] in shown
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow == 0, (lang, label, name, overflow)
                page.screenshot(
                    path=SCREENS / f"verify-refused-{name}-{lang}-{label}.png", full_page=True
                )
                page.locator("section.result").screenshot(
                    path=SCREENS / f"verify-refused-{name}-{lang}-{label}-result.png"
                )
            assert _check_file(page, attestations.private_package) == "valid"
            assert PRIVATE_ACCOUNT in page.locator("#result").inner_text()
        traffic.assert_clean()
