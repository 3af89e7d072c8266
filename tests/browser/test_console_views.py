"""The console's views and its key-file signer in Debian's Chromium.

The views (balances, alarms, audit log, policy, allowlist) are read by a logged-in officer at a
phone's, a tablet's, a laptop's and a wide screen's width in Kyrgyz, Russian and English: none
scrolls sideways, no key figure is cut off, axe finds nothing serious, and the alarms page shows
the newest reconciliation result per asset, not every run. The key-file signer (the real bundle
the console serves) opens a key file made by custody's ``create_key_file`` and signs a statement's
digest byte for byte as custody's ``sign_digest`` does; a wrong passphrase is refused in the page,
in the page's language, and nothing is posted.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from page_checks import LANGUAGES, WIDTHS, assert_readable
from page_guard import guarded_page
from playwright.sync_api import Browser, Page
from sqlalchemy.orm import sessionmaker
from workflow_support import DECREE, DESTINATION, World, build_world, shares_of

from custody.authority import ApprovalStatement, StatementKind
from custody.authority.key_file import create_key_file, load_public_key, sign_digest
from custody.authority.secp256k1 import verify_digest
from custody.devnet.process import free_port
from reporting.site.i18n import LANGUAGES as CATALOGUE_LANGUAGES
from treasury.api import create_app
from treasury.api.console_i18n import load_console_catalogues
from treasury.api.console_pages import SECURITY_HEADERS, console_environment
from treasury.api.console_views import KEYFILE_BUNDLE, console_views_router
from treasury.policy.gate import ReconciliationOutcome, record_reconciliation
from treasury.reconcile.alarms import raise_alarm
from treasury.reconcile.records import AlarmKind
from treasury.translations import TranslationKind, set_translations

SERVER_START_TIMEOUT_S = 10.0
VIEWS = ("balances", "alarms", "audit", "policy", "allowlist")
SPEND_SATS = 12_345_678
PASSPHRASE = "Бишкек correct horse"
"""Non-ASCII on purpose: the browser must encode it exactly as eth_account does (UTF-8)."""
DECREE_TITLE = {
    "ky": "Резервди кайра бөлүштүрүү токтому",
    "ru": "Постановление о перераспределении резерва",  # noqa: RUF001 (Russian text)
}
"""The decree's title as the officers translated it (its original is English)."""
TEST_SCRYPT_N = 2**12
"""Small enough for a quick test; the format and code path are those of the real 2**18."""
CATALOGUES = load_console_catalogues()


def _serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


# --- The views -----------------------------------------------------------------------------------


def _reserve_with_history(world: World) -> None:
    """A pending spend (broadcast, not confirmed), reconciliation runs for two assets (BTC's
    newest matched after an older mismatch; ETH's mismatched), and an open alarm."""
    wf = world.workflow()
    view = wf.propose(
        world.officers["proposer"], asset="BTC", amount=SPEND_SATS, destination=DESTINATION,
        purpose="School heating in Naryn", legal_basis=DECREE,
    )  # fmt: skip
    view = wf.prepare(world.officers["proposer"], view.id, world.chain)
    assert view.tx_hash is not None
    for name in ("cb_approver", "parl_approver"):
        wf.approve(world.officers[name], view.id, view.tx_hash)
    for name, code in (("cb_approver", "CB"), ("parl_approver", "PARL")):
        shares, passphrase = shares_of(code)
        wf.sign(world.officers[name], view.id, world.chain, shares, passphrase)
    wf.broadcast(view.id, world.chain)
    with world.sessions.begin() as session:
        world.clock.advance(minutes=5)
        record_reconciliation(
            session, "BTC", ReconciliationOutcome.MISMATCHED, checked_at=world.clock(),
            detail="vault holds 0.1 BTC less than the ledger",
        )  # fmt: skip
        world.clock.advance(minutes=5)
        record_reconciliation(
            session, "ETH", ReconciliationOutcome.MISMATCHED, checked_at=world.clock(),
            detail="Safe balance differs from the ledger",
        )  # fmt: skip
        world.clock.advance(minutes=5)
        record_reconciliation(
            session, "BTC", ReconciliationOutcome.MATCHED, checked_at=world.clock()
        )
        set_translations(
            session, world.officers["admin"], TranslationKind.LEGAL_BASIS, DECREE,
            {"ky": DECREE_TITLE["ky"], "ru": DECREE_TITLE["ru"]}, now=world.clock(),
        )  # fmt: skip
        raise_alarm(
            session, AlarmKind.BALANCE_MISMATCH, "test:eth:1", "eth:treasury-safe",
            "The Safe holds 1 ETH less than the ledger.", asset="ETH", clock=world.clock,
        )  # fmt: skip


@dataclass(frozen=True)
class Served:
    world: World
    url: str


def _served(url: str, *, relayer_low: bool = False) -> Iterator[Served]:
    world = build_world(url)
    _reserve_with_history(world)
    if relayer_low:  # a warning beside the blocking alarm, so both read in every language
        with world.sessions.begin() as session:
            raise_alarm(
                session, AlarmKind.RELAYER_LOW, "test:relayer:1", "relayer:31337:0x14dC",
                "The relayer 0x14dC...9955 holds 0.01 ETH, below its 0.05 ETH threshold.",
                asset="ETH", clock=world.clock,
            )  # fmt: skip
    app = create_app(
        world.workflow(), world.sessions, spenders={"BTC": world.chain}, clock=world.clock
    )
    try:
        for url in _serve(app):
            yield Served(world, url)
    finally:
        world.engine.dispose()


@pytest.fixture
def served_views(db_url: str) -> Iterator[Served]:
    """The views over a reserve with history, on each database (what they read and show)."""
    yield from _served(db_url)


@pytest.fixture
def served_views_layout(sqlite_url: str) -> Iterator[Served]:
    """The same, on SQLite only: the layout matrix (4 widths x 3 languages x 5 views, axe on
    each) measures the pages, not the database; the data they show is checked on both. It also
    carries a relayer's low-gas warning."""
    yield from _served(sqlite_url, relayer_low=True)


def _log_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/console/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/**")
    assert "/login" not in page.url


def test_views_read_well_at_every_width_and_language(
    browser: Browser, served_views_layout: Served, screenshots: Path
) -> None:
    """Each view, at 390/768/1366/1920 px in ky/ru/en: no sideways scrolling, no clipped key
    figure, no serious axe violation; screenshots at every width and language."""
    failures: list[str] = []
    with guarded_page(browser, served_views_layout.url) as (page, traffic):
        _log_in(page, served_views_layout.url, served_views_layout.world.tokens["parl_approver"])
        for lang in LANGUAGES:
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                for name in VIEWS:
                    page.goto(f"{served_views_layout.url}/console/{name}?lang={lang}")
                    assert page.locator("html").get_attribute("lang") == lang
                    assert page.locator("[data-key-figure]").count() > 0, name
                    if name == "alarms":
                        advice = CATALOGUES[lang].text("views.alarms.todo.relayer_low")
                        assert advice.replace("`", "") in page.inner_text("#open-alarm-list")
                        warning = page.locator("#open-alarm-list > li.status-warning")
                        assert warning.count() == 1  # a warning, not shown as a block
                        assert "reconcile ack" not in warning.inner_text()  # it clears itself
                    page.screenshot(
                        path=str(screenshots / f"console-{name}-{lang}-{width}.png"),
                        full_page=True,
                    )
                    try:
                        assert_readable(page, f"{name} {lang} {width}px")
                    except AssertionError as failure:
                        failures.append(str(failure))
    traffic.assert_clean()
    assert failures == [], "\n".join(failures)


def test_views_show_coin_units_and_the_newest_result_per_asset(
    browser: Browser, served_views: Served
) -> None:
    """Balances are in coin units with base units on hover (the pending spend included); the
    alarms page has one card per asset with its newest result and the number of runs, and the
    open alarm with what to do; the audit chain verifies; the policy and allowlist show the
    decree's ceiling and the payee's label."""
    en = CATALOGUES["en"]
    with guarded_page(browser, served_views.url) as (page, traffic):
        _log_in(page, served_views.url, served_views.world.tokens["oversight"])
        page.goto(f"{served_views.url}/console/balances?lang=en")
        btc = page.locator("section[data-asset=BTC]")
        pending = btc.locator("tr[data-account] td").filter(has_text="0.12345678\u00a0BTC").first
        assert pending.count() == 1
        assert pending.locator(".amount").get_attribute("title") == "12,345,678\u00a0sat"

        page.goto(f"{served_views.url}/console/alarms?lang=en")
        cards = page.locator("#checkpoints > li")
        assert cards.count() == 2  # BTC and ETH: four runs, two assets
        btc_card = page.locator("#checkpoints > li[data-asset=BTC]")
        assert btc_card.get_attribute("data-outcome") == "matched"
        assert en.text("views.alarms.runs", count="3") in btc_card.inner_text()
        eth_card = page.locator("#checkpoints > li[data-asset=ETH]")
        assert eth_card.get_attribute("data-outcome") == "mismatched"
        assert en.text("views.alarms.mismatched") in eth_card.inner_text()
        alarm = page.locator("#open-alarm-list > li")
        assert alarm.count() == 1
        advice = en.text("views.alarms.todo.balance_mismatch").replace("`", "")  # commands: <code>
        assert advice in alarm.inner_text()
        assert alarm.locator("code", has_text="treasury reconcile now").count() == 1

        page.goto(f"{served_views.url}/console/audit?lang=en")
        assert page.locator("#chain-status").get_attribute("data-chain") == "ok"
        first_row = page.locator("#audit-events tbody tr").first
        sequences = [
            int(s) for s in page.locator("#audit-events tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.sequence)"
            )
        ]  # fmt: skip
        assert sequences == sorted(sequences, reverse=True)
        assert first_row.get_attribute("data-sequence") == str(sequences[0])

        page.goto(f"{served_views.url}/console/policy?lang=en")
        decree = page.locator(f"tr[data-decree='{DECREE}']")
        assert "20\u00a0BTC" in decree.inner_text()  # the ceiling, in coin units
        assert "0.12345678\u00a0BTC" in decree.inner_text()  # committed by the broadcast spend

        for lang in ("ky", "ru"):
            page.goto(f"{served_views.url}/console/policy?lang={lang}")
            decree = page.locator(f"tr[data-decree='{DECREE}']").inner_text()
            assert DECREE_TITLE[lang] in decree
            assert "Reserve rebalancing decree" not in decree

        page.goto(f"{served_views.url}/console/allowlist?lang=en")
        entry = page.locator("#allowlist-table tbody tr").first
        assert entry.get_attribute("data-state") == "active"
        assert DESTINATION in entry.inner_text()
        assert "Payee" in entry.inner_text()
    traffic.assert_clean()


# --- The key-file signer -------------------------------------------------------------------------


@dataclass(frozen=True)
class PageSigning:
    """What ``keyfile_sign.html`` reads of the console's ``Signing``."""

    statement: ApprovalStatement
    canonical: str
    digest: str


def _statement() -> ApprovalStatement:
    return ApprovalStatement(
        kind=StatementKind.APPROVE, proposal_id="7", chain="bitcoin:regtest",
        vault="Резерв BTC", vault_id="wsh(sortedmulti(2,...))#abcd1234", asset="BTC",
        amount=40_000_000, destination=DESTINATION, tx_hash="ab" * 32, safe_nonce=None,
        max_fee=5_000, policy_hash="cd" * 32, legal_basis="Токтом № 17",
        expires_at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC), officer_id="4", institution="CB",
    )  # fmt: skip


@dataclass
class SigningPage:
    url: str
    posted: list[dict[str, str]]
    signing: PageSigning


@pytest.fixture(scope="module")
def signing_page() -> Iterator[SigningPage]:
    """The real key-file partial in a form (with the console's CSP) and the real bundle from the
    views' router; posts are recorded, not acted on."""
    if not KEYFILE_BUNDLE.is_file():
        pytest.fail("the key-file signer is not built: run scripts/install-console-js.sh")
    statement = _statement()
    signing = PageSigning(statement, statement.encode().decode("utf-8"), statement.digest().hex())
    posted: list[dict[str, str]] = []
    env = console_environment()
    app = FastAPI()
    app.include_router(console_views_router(sessionmaker()))

    @app.get("/console/sign")
    def sign_form(lang: str = "en") -> HTMLResponse:
        partial = env.get_template("keyfile_sign.html").render(
            signing=signing, prefix="/console", t=CATALOGUES[lang].text
        )
        html = (
            f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>sign</title>'
            '</head><body><main><form method="post" action="/console/posted" data-keyfile-sign>'
            f'<input type="hidden" name="csrf" value="token">{partial}</form></main></body></html>'
        )
        return HTMLResponse(html, headers=SECURITY_HEADERS)

    @app.post("/console/posted")
    async def record(request: Request) -> HTMLResponse:
        fields = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True)
        posted.append({name: values[-1] for name, values in fields.items()})
        return HTMLResponse("<!DOCTYPE html><title>posted</title><p id='posted'>posted</p>")

    for url in _serve(app):
        yield SigningPage(url, posted, signing)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "officer-key.json"
    create_key_file(path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    return path


def test_browser_signs_exactly_as_custody(
    browser: Browser, signing_page: SigningPage, key_file: Path
) -> None:
    """The page's signature over the statement digest equals custody's ``sign_digest`` byte for
    byte (RFC 6979, low S, r || s || v) and verifies; only the statement, the signature and the
    public key are posted, never the passphrase or the file."""
    signing_page.posted.clear()
    digest = bytes.fromhex(signing_page.signing.digest)
    expected = sign_digest(key_file, PASSPHRASE, digest)
    with guarded_page(browser, signing_page.url) as (page, traffic):
        page.goto(f"{signing_page.url}/console/sign")
        page.set_input_files("#keyfile-approve-file", str(key_file))
        page.fill("#keyfile-approve-passphrase", PASSPHRASE)
        page.click("#keyfile-approve-submit")
        page.wait_for_selector("#posted")
    traffic.assert_clean()
    assert len(signing_page.posted) == 1
    form = signing_page.posted[0]
    assert set(form) == {"csrf", "statement", "key_signature", "key_public"}
    assert form["statement"] == signing_page.signing.canonical
    signature = json.loads(form["key_signature"])
    assert signature == {"kind": "secp256k1", "signature": expected.hex()}
    public = load_public_key(key_file).public
    assert form["key_public"] == public.hex()
    verify_digest(public, digest, bytes.fromhex(signature["signature"]))
    body = json.dumps(form, ensure_ascii=False)
    for secret in (PASSPHRASE, "keystore", "ciphertext"):
        assert secret not in body


@pytest.mark.parametrize("lang", CATALOGUE_LANGUAGES)
def test_wrong_passphrase_is_refused_in_the_page(
    browser: Browser, signing_page: SigningPage, key_file: Path, lang: str, screenshots: Path
) -> None:
    """A wrong passphrase fails the key file's MAC: the page says so in its language and posts
    nothing at all."""
    signing_page.posted.clear()
    with guarded_page(browser, signing_page.url) as (page, traffic):
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{signing_page.url}/console/sign?lang={lang}")
        page.set_input_files("#keyfile-approve-file", str(key_file))
        page.fill("#keyfile-approve-passphrase", PASSPHRASE + "x")
        page.click("#keyfile-approve-submit")
        status = page.locator("#keyfile-approve-status[data-state=error]")
        status.wait_for()
        assert status.inner_text() == CATALOGUES[lang].text("views.keyfile.wrong_passphrase")
        page.screenshot(path=str(screenshots / f"console-keyfile-wrong-{lang}-390.png"))
        assert page.locator("input[name=key_signature]").input_value() == ""
        page.wait_for_timeout(300)  # a post, had one been started, would be on its way
    traffic.assert_clean()
    assert posts == []
    assert signing_page.posted == []


def test_not_a_key_file_is_refused(
    browser: Browser, signing_page: SigningPage, tmp_path: Path
) -> None:
    """A JSON file that is not an officer key file is refused before any passphrase is tried."""
    signing_page.posted.clear()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": hashlib.sha256(b"x").hexdigest()}), encoding="utf-8")
    with guarded_page(browser, signing_page.url) as (page, traffic):
        page.goto(f"{signing_page.url}/console/sign")
        page.set_input_files("#keyfile-approve-file", str(other))
        page.fill("#keyfile-approve-passphrase", PASSPHRASE)
        page.click("#keyfile-approve-submit")
        status = page.locator("#keyfile-approve-status[data-state=error]")
        status.wait_for()
        assert status.inner_text() == CATALOGUES["en"].text("views.keyfile.not_key_file")
    traffic.assert_clean()
    assert signing_page.posted == []
