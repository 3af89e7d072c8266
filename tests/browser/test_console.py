"""The officers' console: a real browser logs in with an API token and approves a proposal; the
console keeps the API's rules (roles, policy, CSRF), keeps only a session id in its cookie (never
the token), and logging out ends that session on the server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from page_guard import guarded_page
from playwright.sync_api import Browser
from sqlalchemy import select
from workflow_support import DECREE, DESTINATION, World, build_world

from custody.devnet.process import free_port
from reporting.site.i18n import LOCALES_DIR
from treasury.api import create_app
from treasury.api.console import LOGIN_CSRF_COOKIE, SESSION_COOKIE, csrf_token
from treasury.api.console_i18n import ConsoleCatalogueError, load_console_catalogues
from treasury.officers import InstitutionRow
from treasury.proposals import ApprovalRow, ProposalState, SpendProposalRow

SERVER_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Console:
    world: World
    url: str
    proposal_id: int
    tx_hash: str


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(f"sqlite:///{tmp_path / 'treasury.sqlite3'}")
    yield built
    built.engine.dispose()


def _prepared_with_one_approval(world: World) -> tuple[int, str]:
    """A proposal with a prepared transaction that the Central Bank has already approved."""
    wf = world.workflow()
    view = wf.propose(
        world.officers["proposer"], asset="BTC", amount=30_000_000, destination=DESTINATION,
        purpose="School heating in Naryn", legal_basis=DECREE,
    )  # fmt: skip
    view = wf.prepare(world.officers["proposer"], view.id, world.chain)
    assert view.tx_hash is not None
    wf.approve(world.officers["cb_approver"], view.id, view.tx_hash)
    return view.id, view.tx_hash


@pytest.fixture
def console(world: World) -> Iterator[Console]:
    """The API app (console mounted) served by uvicorn on a free loopback port."""
    proposal_id, tx_hash = _prepared_with_one_approval(world)
    app = create_app(
        world.workflow(), world.sessions, spenders={"BTC": world.chain}, clock=world.clock
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        assert time.monotonic() < deadline, "the console's server did not start"
        time.sleep(0.02)
    yield Console(world, f"http://127.0.0.1:{port}", proposal_id, tx_hash)
    server.should_exit = True
    thread.join()


def _state(world: World, proposal_id: int) -> str:
    with world.sessions() as session:
        row = session.get(SpendProposalRow, proposal_id)
        assert row is not None
        return row.state


def test_officer_logs_in_and_approves_and_the_database_changes(
    browser: Browser, console: Console, screenshots: Path
) -> None:
    """Parliament's approver logs in, sees the proposal, its policy checks and the hash, approves
    it; the proposal reaches quorum and is `approved` in the database, with PARL's approval."""
    world = console.world
    assert _state(world, console.proposal_id) == ProposalState.PROPOSED.value
    with guarded_page(browser, console.url) as (page, traffic):
        page.goto(f"{console.url}/console/proposals")
        page.wait_for_url("**/console/login")
        page.fill("#token", world.tokens["parl_approver"])
        page.click("button[type=submit]")
        page.wait_for_url("**/console/proposals")
        row = page.locator(
            "tbody tr", has=page.locator(f"a[href$='/proposals/{console.proposal_id}']")
        )
        assert row.locator("[data-state]").inner_text() == "proposed"
        assert "allowed" in row.inner_text()
        _shot = screenshots / "console-proposals.png"
        page.screenshot(path=str(_shot), full_page=True)
        row.locator("a").first.click()
        page.wait_for_url(f"**/console/proposals/{console.proposal_id}")
        assert page.locator("#tx-hash").inner_text() == console.tx_hash
        assert DESTINATION in page.locator("main").inner_text()
        assert page.locator("#policy ~ table tbody tr").count() >= 2
        page.check("#reviewed")
        page.click("#approve")
        page.wait_for_url("**?done=approved")
        assert page.locator("#proposal-state").inner_text() == "approved"
        page.screenshot(path=str(screenshots / "console-proposal-approved.png"), full_page=True)
        cookie = next(c for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/console"
        secret = world.tokens["parl_approver"].rsplit("_", 1)[1]
        assert secret not in cookie["value"]
        assert all(secret not in c["value"] for c in page.context.cookies())
        assert page.evaluate("document.cookie") == ""
        page.goto(f"{console.url}/console/alarms")
        assert "matched" in page.locator("main").inner_text()
        page.screenshot(path=str(screenshots / "console-alarms.png"), full_page=True)
        page.click("form.who button[type=submit]")
        page.wait_for_url("**/console/login")
        # A copy of the cookie taken before logout, replayed after it: the login page again.
        page.context.add_cookies(
            [{"name": SESSION_COOKIE, "value": cookie["value"], "url": f"{console.url}/console"}]
        )
        sent = page.context.cookies(f"{console.url}/console/proposals")
        assert [c["value"] for c in sent if c["name"] == SESSION_COOKIE] == [cookie["value"]]
        page.goto(f"{console.url}/console/proposals")
        page.wait_for_url("**/console/login")
        assert page.locator("#officer-name").count() == 0
    traffic.assert_clean()
    assert _state(world, console.proposal_id) == ProposalState.APPROVED.value
    with world.sessions() as session:
        institutions = session.scalars(
            select(InstitutionRow.code)
            .join(ApprovalRow, ApprovalRow.institution_id == InstitutionRow.id)
            .where(ApprovalRow.proposal_id == console.proposal_id, ApprovalRow.voided_at.is_(None))
        ).all()
    assert sorted(institutions) == ["CB", "PARL"]


def _logged_in(world: World, officer: str) -> TestClient:
    app = create_app(
        world.workflow(), world.sessions, spenders={"BTC": world.chain}, clock=world.clock
    )
    client = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)
    client.get("/console/login")
    login_csrf = client.cookies[LOGIN_CSRF_COOKIE]
    response = client.post(
        "/console/login", data={"token": world.tokens[officer], "csrf": login_csrf}
    )
    assert response.status_code == 303
    return client


def test_console_keeps_the_api_rules(world: World) -> None:
    """Without a cookie the console sends you to log in; a proposer cannot approve (403, as the
    API); a post without the right CSRF token changes nothing; a bad token does not log in."""
    proposal_id, tx_hash = _prepared_with_one_approval(world)
    anonymous = TestClient(
        create_app(world.workflow(), world.sessions, clock=world.clock), follow_redirects=False
    )
    assert anonymous.get("/console/proposals").headers["location"] == "/console/login"
    anonymous.get("/console/login")
    bad = anonymous.post(
        "/console/login", data={"token": "trs_00_00", "csrf": anonymous.cookies[LOGIN_CSRF_COOKIE]}
    )
    assert bad.status_code == 401
    assert "not valid" in bad.text
    forged_login = anonymous.post(
        "/console/login", data={"token": world.tokens["parl_approver"], "csrf": "x"}
    )
    assert forged_login.status_code == 403
    assert SESSION_COOKIE not in forged_login.cookies

    proposer = _logged_in(world, "proposer")
    proposer_csrf = csrf_token(proposer.cookies[SESSION_COOKIE])
    refused = proposer.post(
        f"/console/proposals/{proposal_id}/approve",
        data={"tx_hash": tx_hash, "csrf": proposer_csrf},
    )
    assert refused.status_code == 403
    assert "needs the role approver" in refused.text
    approver = _logged_in(world, "parl_approver")
    forged = approver.post(
        f"/console/proposals/{proposal_id}/approve",
        data={"tx_hash": tx_hash, "csrf": proposer_csrf},
    )
    assert forged.status_code == 403
    wrong_hash = approver.post(
        f"/console/proposals/{proposal_id}/approve",
        data={"tx_hash": "ab" * 32, "csrf": csrf_token(approver.cookies[SESSION_COOKIE])},
    )
    assert wrong_hash.status_code == 409
    assert _state(world, proposal_id) == ProposalState.PROPOSED.value
    page = approver.get(f"/console/proposals/{proposal_id}")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert world.tokens["parl_approver"] not in page.text


@pytest.mark.parametrize(
    ("width", "height", "label"), [(1366, 900, "desktop"), (390, 844, "phone")]
)
def test_a_reason_with_control_characters_is_refused_in_the_console(
    browser: Browser, console: Console, screenshots: Path, width: int, height: int, label: str
) -> None:
    """A reject reason carrying a control character gets the 422 page; the proposal stays open."""
    world = console.world
    with guarded_page(browser, console.url) as (page, _traffic):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{console.url}/console/login")
        page.fill("#token", world.tokens["parl_approver"])
        page.click("button[type=submit]")
        page.wait_for_url("**/console/proposals")
        page.goto(f"{console.url}/console/proposals/{console.proposal_id}")
        page.eval_on_selector("#reason", "el => { el.value = 'Bad\\u0001reason'; }")
        page.click("#reject")
        alert = page.locator("[role=alert]").first
        assert "control" in alert.inner_text() or "U+0001" in alert.inner_text()
        page.screenshot(
            path=str(screenshots / f"console-refused-control-character-{label}.png"), full_page=True
        )
    assert _state(world, console.proposal_id) == ProposalState.PROPOSED.value


@pytest.mark.parametrize(
    ("width", "height", "label"), [(1366, 900, "desktop"), (390, 844, "phone")]
)
def test_the_login_page_states_the_session_limits_and_fits_the_screen(
    browser: Browser, console: Console, screenshots: Path, width: int, height: int, label: str
) -> None:
    """The login page says how long a session lasts and how it ends, without sideways scrolling."""
    with guarded_page(browser, console.url) as (page, _traffic):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{console.url}/console/login")
        text = page.locator("main").inner_text()
        assert "at most 8 hours" in text
        assert "30 minutes without activity" in text
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        page.screenshot(path=str(screenshots / f"console-login-{label}.png"), full_page=True)


def _decisions_offered(html: str) -> set[str]:
    """The decisions a proposal page offers, by the forms it holds."""
    return {verb for verb in ("approve", "reject", "veto") if f'/{verb}"' in html}


def test_each_officer_is_offered_only_the_decisions_they_may_take(world: World) -> None:
    """With CB's approval standing: PARL's approver may approve or reject, CB's approver (already
    decided) nothing, the proposer only withdraw, oversight only veto, the auditor nothing; the
    awaiting tab lists the proposal for PARL's approver and oversight only; names, not ids."""
    proposal_id, _tx_hash = _prepared_with_one_approval(world)
    expected = {
        "parl_approver": {"approve", "reject"},
        "mof_approver": {"approve", "reject"},
        "cb_approver": set(),
        "proposer": {"reject"},
        "oversight": {"veto"},
        "auditor": set(),
    }
    for officer, offered in expected.items():
        client = _logged_in(world, officer)
        page = client.get(f"/console/proposals/{proposal_id}")
        assert page.status_code == 200
        assert _decisions_offered(page.text) == offered, officer
        assert "1 of 2 institutions" in page.text
        assert "cb_approver" in page.text  # the approver's name, not "officer 5"
        if officer == "proposer":
            assert "Withdraw my proposal" in page.text
        awaiting = client.get("/console/proposals?show=awaiting").text
        listed = f'data-proposal="{proposal_id}"' in awaiting
        assert listed == bool(offered - {"reject"}), officer


def test_the_console_speaks_the_language_asked_for_and_remembers_it(world: World) -> None:
    """Accept-Language picks Russian; ?lang=ky switches to Kyrgyz and a SameSite=Strict,
    HttpOnly cookie keeps it; amounts are coin units in the language's marks, base units on
    hover; the list no longer says "(base units)"."""
    proposal_id, _tx_hash = _prepared_with_one_approval(world)
    client = _logged_in(world, "parl_approver")
    russian = client.get("/console/proposals", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert '<html lang="ru">' in russian.text
    assert "<h1>Предложения" in russian.text
    assert "0,3\u00a0BTC" in russian.text
    assert 'title="30\u00a0000\u00a0000\u00a0sat"' in russian.text
    assert "base units" not in russian.text
    kyrgyz = client.get(f"/console/proposals/{proposal_id}?lang=ky")
    assert '<html lang="ky">' in kyrgyz.text
    cookie = kyrgyz.headers["set-cookie"]
    assert "console_lang=ky" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    again = client.get("/console/proposals", headers={"Accept-Language": "en"})
    assert '<html lang="ky">' in again.text
    assert "Чыгым сунуштары" in again.text
    english = client.get("/console/proposals?lang=en")
    assert "0.3\u00a0BTC" in english.text
    assert 'title="30,000,000\u00a0sat"' in english.text


def test_console_catalogues_refuse_a_missing_or_duplicated_message(tmp_path: Path) -> None:
    """Every console language must have the same keys, and a key may be defined once only: the
    console refuses to start otherwise (the shipped catalogues load)."""
    loaded = load_console_catalogues()
    assert set(loaded) == {"ky", "ru", "en"}
    assert len({len(c.messages) for c in loaded.values()}) == 1
    for code, text in (("en", "Proposals"), ("ru", "Предложения"), ("ky", "Сунуштар")):
        assert loaded[code].text("console.nav.proposals") == text
    parts = tmp_path / "parts"
    parts.mkdir()
    for code in ("ky", "ru", "en"):
        (parts / f"x.{code}.json").write_text(json.dumps({"x.only": code}), encoding="utf-8")
    assert load_console_catalogues(LOCALES_DIR, parts)["ru"].text("x.only") == "ru"
    (parts / "x.ru.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConsoleCatalogueError, match="missing"):
        load_console_catalogues(LOCALES_DIR, parts)
    for code in ("ky", "ru", "en"):
        (parts / f"x.{code}.json").write_text(json.dumps({"nav.skip": "x"}), encoding="utf-8")
    with pytest.raises(ConsoleCatalogueError, match="defined both"):
        load_console_catalogues(LOCALES_DIR, parts)
