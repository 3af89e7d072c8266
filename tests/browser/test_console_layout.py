"""The officers' console read and used in Chromium, in Kyrgyz, Russian and English, on a reserve on
the live regtest node: every console page fits 390 to 1920 px without sideways scrolling, no key
figure is cut off and axe finds nothing serious; an approver sees a pending spend in coin units
with the transaction decoded from its PSBT (each vault coin, the payment, the change back to the
vault, the fee in sat/vB) and the quorum's progress, and approves it with a passkey; another
approves with a key file opened in the browser; oversight vetoes a different spend with a key
file; and nobody is offered a button they may not use."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from eth_account import Account
from page_checks import LANGUAGES, WIDTHS, assert_readable
from page_guard import guarded_page
from playwright.sync_api import Browser, Page
from test_console_passkey import admin_signs_in, token_for, virtual_authenticator

from custody.devnet import BitcoinNode, EvmNode
from custody.devnet.process import free_port
from treasury.api import create_app
from treasury.authority.passkeys import registrations
from treasury.db import DATABASE_URL_ENV
from treasury.proposals import ProposalState
from treasury.story import DECREE, SATS_PER_BTC, Reserve
from treasury.story.cast import APPROVERS, OVERSIGHT, PROPOSER

log = logging.getLogger(__name__)

SERVER_START_TIMEOUT_S = 10.0
BTC_DEPOSITS_SATS = (60_000_000, 30_000_000)
FIRST_SATS = SATS_PER_BTC // 4
"""0.25 BTC: approved by NBKR (passkey) and ACH (key file)."""
SECOND_SATS = SATS_PER_BTC // 10
"""0.1 BTC: vetoed by oversight (key file)."""
PASSKEY_APPROVER = APPROVERS["NBKR"]
KEY_FILE_APPROVER = APPROVERS["ACH"]
AUDITOR = "State auditor (ACH)"
PHONE_HEIGHT, DESK_HEIGHT = 844, 900


@dataclass(frozen=True)
class Scene:
    reserve: Reserve
    url: str
    first: int
    """Proposal no. of the 0.25 BTC spend (prepared, no approval yet)."""
    second: int
    """Proposal no. of the 0.1 BTC spend (prepared, no approval yet)."""


@pytest.fixture
def scene(
    tmp_path: Path, bitcoin_node: BitcoinNode, evm_node: EvmNode, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Scene]:
    """A governed reserve with two prepared Bitcoin spends, and the console over it on localhost
    (a secure context for passkeys); the CLI points at the same database."""
    reserve = Reserve(
        tmp_path / "reserve", bitcoin_node, evm_node, btc_vault=f"layout-{uuid.uuid4().hex[:8]}"
    )
    reserve.hold_ceremonies(log.info)
    reserve.open_vaults(log.info)
    reserve.deposit(log.info, BTC_DEPOSITS_SATS, 10**18, 0)
    evm_node.rpc.call("evm_mine")
    reserve.reconcile(log.info)
    payee = bitcoin_node.rpc.wallet("miner").call("getnewaddress", "", "bech32")
    reserve.govern(log.info, {"BTC": payee, "ETH": Account.create().address})
    reserve.reconcile(log.info)
    wf = reserve.workflow()
    spender = reserve.spenders()["BTC"]
    proposer = reserve.officers[PROPOSER]
    ids = []
    for amount, purpose in ((FIRST_SATS, "School heating in Naryn"), (SECOND_SATS, "Road repair")):
        view = wf.propose(
            proposer, asset="BTC", amount=amount, destination=payee, purpose=purpose,
            legal_basis=DECREE,
        )  # fmt: skip
        ids.append(wf.prepare(proposer, view.id, spender).id)
    monkeypatch.setenv(DATABASE_URL_ENV, reserve.database_url)
    app = create_app(
        reserve.workflow(), reserve.sessions, spenders=reserve.spenders(), clock=reserve.clock
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        assert time.monotonic() < deadline, "the console's server did not start"
        time.sleep(0.02)
    yield Scene(reserve, f"http://localhost:{port}", ids[0], ids[1])
    server.should_exit = True
    thread.join()
    reserve.engine.dispose()


def log_in(page: Page, scene: Scene, name: str, lang: str) -> None:
    """Log ``name`` in through the login page in ``lang`` (remembered by the console's cookie)."""
    page.goto(f"{scene.url}/console/login?lang={lang}")
    page.fill("#token", token_for(scene.reserve, name))
    page.click("button[type=submit]")
    # An officer who signs but has no passkey lands on the keys page, the others on the list.
    page.wait_for_url(re.compile(r".*/console/(proposals|passkey)$"))
    page.goto(f"{scene.url}/console/proposals")


def log_out(page: Page) -> None:
    page.click("form.who button[type=submit]")
    page.wait_for_url("**/console/login")


def decision_buttons(page: Page) -> set[str]:
    """Which decisions the page offers: approve, reject, veto (by their forms)."""
    offered = set()
    for verb in ("approve", "reject", "veto"):
        if page.locator(f"form[action$='/{verb}']").count():
            offered.add(verb)
    return offered


def test_every_console_page_reads_at_every_width_in_every_language(
    browser: Browser, scene: Scene, screenshots: Path
) -> None:
    """Login, both proposal tabs, the proposal (decoded table, quorum, checks, decision forms),
    the keys page and a refusal, at 390/768/1366/1920 px in ky, ru, en: no sideways scroll, no key
    figure cut off, no serious axe violation; the page is in the language asked for."""
    reserve = scene.reserve
    wf = reserve.workflow()
    nbkr = reserve.officers[PASSKEY_APPROVER]
    signed = reserve.officer_keys[PASSKEY_APPROVER].sign_statement(wf.statement(nbkr, scene.first))
    view = wf.status(nbkr, scene.first)
    assert view.tx_hash is not None
    wf.approve(nbkr, scene.first, view.tx_hash, signed=signed)
    pages = {
        "proposals": "/console/proposals",
        "awaiting": "/console/proposals?show=awaiting",
        "proposal": f"/console/proposals/{scene.first}",
        "keys": "/console/passkey",
        "refused": "/console/proposals/999999",
    }
    with guarded_page(browser, scene.url) as (page, traffic):
        for lang in LANGUAGES:
            page.set_viewport_size({"width": 1366, "height": DESK_HEIGHT})
            page.goto(f"{scene.url}/console/login?lang={lang}")
            assert page.locator("html").get_attribute("lang") == lang
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": PHONE_HEIGHT})
                page.goto(f"{scene.url}/console/login")
                assert "treasury officers issue-token" in page.locator("main").inner_text()
                assert_readable(page, f"login {lang} {width}")
                page.screenshot(
                    path=str(screenshots / f"console-login-{lang}-{width}.png"), full_page=True
                )
            log_in(page, scene, KEY_FILE_APPROVER, lang)
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": PHONE_HEIGHT})
                for name, path in pages.items():
                    page.goto(f"{scene.url}{path}")
                    assert page.locator("html").get_attribute("lang") == lang
                    assert_readable(page, f"{name} {lang} {width}")
                    page.screenshot(
                        path=str(screenshots / f"console-{name}-{lang}-{width}.png"),
                        full_page=True,
                    )
            page.goto(f"{scene.url}/console/proposals/{scene.first}")
            decimal = "." if lang == "en" else ","
            assert page.locator("#amount").inner_text().replace("\u00a0", " ") == (
                f"0{decimal}25 BTC"
            )
            assert page.locator("#amount .amount").get_attribute("title").replace(
                "\u00a0", " "
            ) == ("25,000,000 sat" if lang == "en" else "25 000 000 sat")
            assert page.locator("#decoded tr[data-output=payment]").count() == 1
            assert page.locator("#decoded tr[data-output=change]").count() == 1
            assert "vB" in page.locator("#fee").inner_text()
            quorum = {"en": "1 of 2 institutions", "ru": "1 из 2 учреждений", "ky": "2 мекемеден 1"}
            assert quorum[lang] in page.locator("#quorum").inner_text()
            assert "Elmira Asanova" in page.locator("#approval-list").inner_text()
            log_out(page)
    # The refusal page answers 404 on purpose; any other failed load is still caught by URL.
    traffic.failed = [f for f in traffic.failed if not f.endswith("/console/proposals/999999")]
    traffic.errors = [e for e in traffic.errors if "status of 404" not in e]
    traffic.assert_clean()


def test_officers_approve_with_passkey_and_key_file_and_oversight_vetoes_with_only_their_buttons(
    browser: Browser, scene: Scene, screenshots: Path
) -> None:
    """NBKR's approver approves the first spend with a passkey (English), ACH's with a key file
    opened in the browser (Kyrgyz), which reaches the quorum; oversight vetoes the second with a
    key file (Russian). The proposer, the auditor, oversight and approvers who already decided
    are offered none of the buttons they may not use, and the awaiting tab follows."""
    reserve = scene.reserve
    first, second = f"/console/proposals/{scene.first}", f"/console/proposals/{scene.second}"
    payee = reserve.payees["BTC"]
    with guarded_page(browser, scene.url) as (page, traffic):
        page.set_viewport_size({"width": 390, "height": PHONE_HEIGHT})
        log.info("the proposer may only withdraw; the auditor may do nothing")
        log_in(page, scene, PROPOSER, "en")
        page.goto(f"{scene.url}{first}")
        assert decision_buttons(page) == {"reject"}
        assert "Withdraw" in page.locator("#reject").inner_text()
        log_out(page)
        log_in(page, scene, AUDITOR, "en")
        page.goto(f"{scene.url}{first}")
        assert decision_buttons(page) == set()
        assert page.locator("#decide").count() == 0
        log_out(page)

        log.info("NBKR's approver registers a passkey, the admin signs it in, she approves")
        _authenticator = virtual_authenticator(page)  # kept: the CDP session holds it
        log_in(page, scene, PASSKEY_APPROVER, "en")
        assert page.locator("#tab-awaiting").inner_text() == "Awaiting my decision (2)"
        page.goto(f"{scene.url}/console/passkey")
        page.click("#register-passkey")
        page.wait_for_url("**/console/passkey?done=registered")
        with reserve.sessions() as session:
            (registration,) = registrations(session, reserve.officers[PASSKEY_APPROVER].id)
        admin_signs_in(reserve, registration.id)
        page.goto(f"{scene.url}{first}")
        assert decision_buttons(page) == {"approve", "reject"}
        decoded = page.locator("#decoded")
        assert payee in decoded.locator("tr[data-output=payment]").inner_text()
        assert "0.25 BTC" in decoded.locator("tr[data-output=payment]").inner_text().replace(
            "\u00a0", " "
        )
        assert decoded.locator("tr.input").count() >= 1
        assert "sat/vB" in page.locator("#fee").inner_text()
        assert "0 of 2 institutions" in page.locator("#quorum").inner_text()
        assert page.locator("#checks tr[data-check=daily]").count() == 1
        assert page.locator("#checks .bad").count() == 0
        page.screenshot(path=str(screenshots / "console-flow-passkey-before.png"), full_page=True)
        page.check("#reviewed")
        page.click("#approve")
        page.wait_for_url("**?done=approved")
        assert "1 of 2 institutions" in page.locator("#quorum").inner_text()
        assert decision_buttons(page) == set()
        page.goto(f"{scene.url}/console/proposals?show=awaiting")
        assert page.locator("#proposal-list tbody tr").count() == 1
        log_out(page)

        log.info("ACH's approver approves with a key file in Kyrgyz: the quorum is reached")
        log_in(page, scene, KEY_FILE_APPROVER, "ky")
        page.goto(f"{scene.url}{first}")
        assert decision_buttons(page) == {"approve", "reject"}
        key = reserve.officer_keys[KEY_FILE_APPROVER]
        page.check("#reviewed-key")
        page.set_input_files("#keyfile-approve-file", str(key.key_file))
        page.fill("#keyfile-approve-passphrase", key.passphrase_file.read_text(encoding="utf-8"))
        page.click("#keyfile-approve-submit")
        page.wait_for_url("**?done=approved", timeout=60_000)
        assert page.locator("#proposal-state").get_attribute("data-state") == "approved"
        assert "2 мекемеден 2" in page.locator("#quorum").inner_text()
        assert decision_buttons(page) == set()
        page.screenshot(path=str(screenshots / "console-flow-keyfile-approved.png"), full_page=True)
        log_out(page)

        log.info("oversight: no veto on the approved small spend; vetoes the other in Russian")
        log_in(page, scene, OVERSIGHT, "ru")
        page.goto(f"{scene.url}{first}")
        assert decision_buttons(page) == set()
        page.goto(f"{scene.url}{second}")
        assert decision_buttons(page) == {"veto"}
        oversight_key = reserve.officer_keys[OVERSIGHT]
        page.fill("#veto-key-reason", "Нет сметы расходов")
        page.set_input_files("#keyfile-veto-file", str(oversight_key.key_file))
        page.fill(
            "#keyfile-veto-passphrase", oversight_key.passphrase_file.read_text(encoding="utf-8")
        )
        page.click("#keyfile-veto-submit")
        page.wait_for_url("**?done=vetoed", timeout=60_000)
        assert page.locator("#proposal-state").get_attribute("data-state") == "rejected"
        assert decision_buttons(page) == set()
        page.screenshot(path=str(screenshots / "console-flow-vetoed.png"), full_page=True)
        log_out(page)
    traffic.assert_clean()
    wf = reserve.workflow()
    auditor = reserve.officers[AUDITOR]
    assert wf.status(auditor, scene.first).state is ProposalState.APPROVED
    assert {a.institution for a in wf.status(auditor, scene.first).approvals} == {"NBKR", "ACH"}
    assert wf.status(auditor, scene.second).state is ProposalState.REJECTED
