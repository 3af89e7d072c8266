"""A newcomer runs `treasury demo --serve`, reads only what it prints, logs into the console with
a printed login, and approves the waiting spend with the printed key file, in Chromium.

The whole demo runs here on its own fresh devnets, exactly as the command runs it; the browser
part happens while it is left running (the ``until`` hook stands for the newcomer's Ctrl-C).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from page_guard import guarded_page
from playwright.sync_api import Browser, Page

from treasury.demo import run_demo
from treasury.story.cast import APPROVERS, OVERSIGHT
from treasury.story.translated import INSTITUTIONS, PURPOSES

BTC_PURPOSE = "Medical equipment for the Osh regional hospital"
APPROVE_SECONDS = 60_000
"""Playwright's wait in milliseconds for the key-file signature (scrypt in the page) and the
approval to come back."""


@dataclass(frozen=True)
class Printed:
    """What the newcomer reads on the screen: where the console is and each officer's login."""

    console: str
    site: str
    logins: dict[str, tuple[str, Path, str]]
    """officer name -> (token, key file, passphrase)"""
    waiting: dict[str, int]
    """asset -> the proposal id printed as waiting"""


def _read_screen(lines: list[str]) -> Printed:
    text = "\n".join(lines)
    console = re.search(r"officers' console: (http://\S+/console)", text)
    site = re.search(r"parliament site: +(http://\S+/)", text)
    assert console, text
    assert site, text
    logins: dict[str, tuple[str, Path, str]] = {}
    for match in re.finditer(
        r"- (?P<name>.+?), \w+\n +token: +(?P<token>\S+)\n +key file: +(?P<key>\S+)\n"
        r" +passphrase: +(?P<passphrase>\S+)",
        text,
    ):
        logins[match["name"]] = (match["token"], Path(match["key"]), match["passphrase"])
    waiting = {
        match["asset"]: int(match["id"])
        for match in re.finditer(r"proposal (?P<id>\d+): [\d.]+ (?P<asset>BTC|ETH) \(", text)
        if "awaiting" in text[match.end() : text.index("\n", match.end())]
    }
    return Printed(console[1], site[1], logins, waiting)


def _log_in(page: Page, printed: Printed, officer: str) -> None:
    page.goto(f"{printed.console}/login")
    page.fill("#token", printed.logins[officer][0])
    page.locator("form[action$='/login'] button[type=submit]").click()
    # An officer with no passkey yet lands on the keys page, which says the key file signs too.
    page.wait_for_url(lambda url: not url.endswith("/login"))
    page.goto(f"{printed.console}/proposals")


def _approve_with_key_file(page: Page, printed: Printed, officer: str, proposal_id: int) -> None:
    _token, key_file, passphrase = printed.logins[officer]
    page.goto(f"{printed.console}/proposals/{proposal_id}")
    page.set_input_files("#keyfile-approve-file", str(key_file))
    page.fill("#keyfile-approve-passphrase", passphrase)
    reviewed = page.locator("form[data-keyfile-sign] input[name=reviewed]")
    if reviewed.count():
        reviewed.check()
    page.click("#keyfile-approve-submit")
    page.wait_for_url(
        re.compile(rf".*/proposals/{proposal_id}\?done=approved"), timeout=APPROVE_SECONDS
    )


def test_a_newcomer_approves_a_waiting_spend_with_only_what_the_demo_printed(
    browser: Browser, tmp_path: Path, screenshots: Path
) -> None:
    lines: list[str] = []
    outcome: dict[str, str] = {}

    def newcomer() -> None:
        printed = _read_screen(lines)
        assert set(printed.logins) == {*APPROVERS.values(), OVERSIGHT}
        assert set(printed.waiting) == {"BTC", "ETH"}
        btc = printed.waiting["BTC"]
        with guarded_page(browser, printed.console.removesuffix("/console")) as (page, traffic):
            _log_in(page, printed, APPROVERS["NBKR"])
            listing = page.locator("main").inner_text()
            assert "0.1\xa0BTC" in listing  # coin units, not 10,000,000
            page.goto(f"{printed.console}/proposals?lang=ky")
            in_kyrgyz = page.locator("main").inner_text()
            assert PURPOSES[BTC_PURPOSE]["ky"] in in_kyrgyz  # the proposer's translation
            assert BTC_PURPOSE not in in_kyrgyz
            assert INSTITUTIONS["MOF"]["ky"] in in_kyrgyz  # the proposer's institution
            assert "Ministry of Finance" not in in_kyrgyz
            page.goto(f"{printed.console}/proposals?lang=en")
            _approve_with_key_file(page, printed, APPROVERS["NBKR"], btc)
            outcome["after"] = page.locator("main").inner_text()
            page.screenshot(
                path=str(screenshots / "demo-serve-approved-en-1366.png"), full_page=True
            )
            traffic.assert_clean()

    run_demo(lines.append, serve=True, until=newcomer, root=tmp_path)
    assert "1 of 2" in outcome["after"] or "1/2" in outcome["after"], outcome["after"]
    assert any("Look at what it made" in line for line in lines)
