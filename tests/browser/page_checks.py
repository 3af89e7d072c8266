"""Checks a reader would make of any page: can it be read without sideways scrolling, is any key
figure cut off, and does axe-core find a serious accessibility violation.

Geometry is asserted from the laid-out page, not from screenshots: the document must not be wider
than the viewport, and every element marked as a key figure (``data-key-figure``, or a selector the
test gives) must be inside the viewport horizontally and not clipped by an ancestor that hides its
overflow. axe-core comes from npm (``scripts/install-browser.sh`` puts it in ``.nodes/npm-axe``);
it is evaluated through the DevTools protocol, so the pages' Content-Security-Policy (no inline
scripts) stays as strict as it is for readers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from playwright.sync_api import Page

AXE_SCRIPT = (
    Path(__file__).resolve().parents[2] / ".nodes" / "npm-axe" / "node_modules" / "axe-core"
    / "axe.min.js"
)  # fmt: skip
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
"""axe's two highest impacts: a reader who uses a screen reader or keyboard is stopped."""
KEY_FIGURE_SELECTOR = "[data-key-figure]"
WIDTHS = (390, 768, 1366, 1920)
"""The widths a page must read well at: a phone, a tablet, a laptop, a wide screen."""
LANGUAGES = ("ky", "ru", "en")


@dataclass(frozen=True)
class Clipped:
    """A key figure a reader cannot see whole: its text, where it is, and why."""

    text: str
    reason: str


@cache
def _axe_source() -> str:
    if not AXE_SCRIPT.is_file():
        raise FileNotFoundError(
            f"axe-core is not installed at {AXE_SCRIPT}; run `make browser` "
            "(scripts/install-browser.sh)."
        )
    return AXE_SCRIPT.read_text(encoding="utf-8")


def axe_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each
    (rule, impact, help, and the first offending elements); empty when the page passes."""
    if page.evaluate("() => typeof window.axe === 'undefined'"):
        page.evaluate(_axe_source())
    results = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    return [
        f"{item['id']} ({item['impact']}): {item['help']} at {json.dumps(item['targets'])}"
        for item in results
        if item["impact"] in BLOCKING_IMPACTS
    ]


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the document is wider than the viewport (0 when it fits)."""
    return int(
        page.evaluate(
            "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - document.documentElement.clientWidth"
        )
    )


def clipped_figures(page: Page, selector: str = KEY_FIGURE_SELECTOR) -> list[Clipped]:
    """Every element matching ``selector`` that is not wholly visible: outside the viewport
    horizontally, or cut by an ancestor whose overflow is hidden, clipped or scrolled."""
    found = page.evaluate(
        """(selector) => {
            const width = document.documentElement.clientWidth;
            const out = [];
            for (const el of document.querySelectorAll(selector)) {
                const box = el.getBoundingClientRect();
                if (box.width === 0 && box.height === 0) continue;  // not rendered here
                const text = (el.textContent || '').trim().slice(0, 80);
                if (box.left < -0.5 || box.right > width + 0.5) {
                    out.push({text, reason: `outside the viewport (${Math.round(box.left)}..`
                        + `${Math.round(box.right)} of ${width} px)`});
                    continue;
                }
                if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX
                        !== 'visible') {
                    out.push({text, reason: 'its own text overflows its box'});
                    continue;
                }
                for (let up = el.parentElement; up; up = up.parentElement) {
                    const style = getComputedStyle(up);
                    if (style.overflowX === 'visible') continue;
                    const outer = up.getBoundingClientRect();
                    if (box.left < outer.left - 0.5 || box.right > outer.right + 0.5) {
                        out.push({text, reason: `cut by <${up.tagName.toLowerCase()}`
                            + `${up.className ? ' class=' + up.className : ''}> `
                            + `(overflow-x: ${style.overflowX})`});
                        break;
                    }
                }
            }
            return out;
        }""",
        selector,
    )
    return [Clipped(text=item["text"], reason=item["reason"]) for item in found]


def assert_readable(page: Page, where: str, selector: str = KEY_FIGURE_SELECTOR) -> None:
    """The page fits its viewport, no key figure is clipped, and axe finds nothing serious."""
    overflow = horizontal_overflow(page)
    assert overflow <= 0, f"{where}: the document scrolls sideways by {overflow} px"
    clipped = clipped_figures(page, selector)
    assert clipped == [], f"{where}: key figures cut off: {clipped}"
    violations = axe_violations(page)
    assert violations == [], f"{where}: accessibility violations: {violations}"
