"""Passkeys in Debian's Chromium with its virtual authenticator (CDP ``WebAuthn``), on a reserve on
the live regtest node: an approver registers a passkey at first login, the admin of their
institution signs it into the roster through `treasury passkeys approve`, the approver approves a
spend from the proposal page, another institution's approver with a key file; then the REAL
Bitcoin signer verifies the statement signed in the browser and signs, and refuses (before any
signature) while the stored statement is altered after signing."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from embit.psbt import PSBT
from eth_account import Account
from page_guard import guarded_page
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from custody.authority import ApprovalStatement, OfficerKeyKind, WebAuthnSignature, canonical
from custody.bitcoin import signer as bitcoin_signer
from custody.bitcoin.spend import load_spend
from custody.devnet import BitcoinNode, EvmNode
from custody.devnet.process import free_port
from custody.exceptions import CustodyError
from treasury.api import create_app
from treasury.authority.passkeys import PasskeyState, registrations
from treasury.authority.store import statements_for
from treasury.authority.tables import ApprovalStatementRow
from treasury.cli import app as cli_app
from treasury.db import DATABASE_URL_ENV, make_engine
from treasury.exceptions import TreasuryError
from treasury.officers import issue_token
from treasury.proposals import ProposalState
from treasury.story import DECREE, SATS_PER_BTC, Reserve
from treasury.story.cast import ADMINS, APPROVERS, PROPOSER

log = logging.getLogger(__name__)

SERVER_START_TIMEOUT_S = 10.0
BTC_DEPOSITS_SATS = (60_000_000, 30_000_000)
SPEND_SATS = SATS_PER_BTC // 4
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
PASSKEY_APPROVER = APPROVERS["NBKR"]
KEY_FILE_APPROVER = APPROVERS["ACH"]


@dataclass(frozen=True)
class Console:
    reserve: Reserve
    url: str
    """``http://localhost:<port>``: a secure context whose host is a valid WebAuthn RP id."""


@pytest.fixture
def reserve(tmp_path: Path, bitcoin_node: BitcoinNode, evm_node: EvmNode) -> Iterator[Reserve]:
    """Ceremonies held, vaults open, a deposit reconciled, officers, policy, decree, allowlist and
    the signed roster in place (its own vault name, so it shares the session nodes safely)."""
    story = Reserve(
        tmp_path / "reserve", bitcoin_node, evm_node, btc_vault=f"passkey-{uuid.uuid4().hex[:8]}"
    )
    story.hold_ceremonies(log.info)
    story.open_vaults(log.info)
    story.deposit(log.info, BTC_DEPOSITS_SATS, 10**18, 0)
    evm_node.rpc.call("evm_mine")
    story.reconcile(log.info)
    payee = bitcoin_node.rpc.wallet("miner").call("getnewaddress", "", "bech32")
    story.govern(log.info, {"BTC": payee, "ETH": Account.create().address})
    story.reconcile(log.info)
    yield story
    story.engine.dispose()


@pytest.fixture
def console(reserve: Reserve, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """The API and console over the reserve (its workflow, spenders and story clock), served by
    uvicorn on a free loopback port; the CLI points at the same database."""
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
    yield Console(reserve, f"http://localhost:{port}")
    server.should_exit = True
    thread.join()


@pytest.fixture
def signing_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every call of the Bitcoin signer's ``sign_multisig_inputs`` (the only place a vault input
    is signed), with the number of inputs it was given."""
    calls: list[int] = []
    original = bitcoin_signer.sign_multisig_inputs

    def spy(psbt: PSBT, root: Any) -> Any:
        calls.append(len(psbt.inputs))
        return original(psbt, root)

    monkeypatch.setattr(bitcoin_signer, "sign_multisig_inputs", spy)
    return calls


def virtual_authenticator(page: Page) -> tuple[Any, str]:
    """A platform passkey authenticator with user verification, in this page's Chromium."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


def token_for(reserve: Reserve, name: str) -> str:
    """An API token of the story officer ``name``, issued by their institution's admin."""
    officer = reserve.officers[name]
    with reserve.sessions.begin() as session:
        return issue_token(
            session,
            officer.id,
            actor=reserve.officers[ADMINS[officer.institution_code]],
            now=reserve.clock(),
        )


def shoot(page: Page, screenshots: Path, name: str) -> None:
    """The page at phone and desktop width (full page), ending at desktop width."""
    for label, (width, height) in (("phone", WIDTHS["phone"]), ("desktop", WIDTHS["desktop"])):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(screenshots / f"{name}-{label}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways at {label} width ({overflow}px)"


def admin_signs_in(reserve: Reserve, registration_id: int) -> str:
    """NBKR's admin runs `treasury passkeys approve` with their own key file."""
    admin = reserve.officer_keys[ADMINS["NBKR"]]
    result = CliRunner().invoke(
        cli_app,
        [
            "passkeys", "approve", str(registration_id), "--key-file", str(admin.key_file),
            "--passphrase-file", str(admin.passphrase_file), "--yes",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def without_triggers(engine: Engine) -> None:
    """What a database owner can do: drop the approval statements' append-only triggers."""
    with engine.begin() as connection:
        names = connection.execute(
            text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'approval_statements'"
            )
        ).scalars()
        for name in list(names):
            connection.execute(text(f'DROP TRIGGER "{name}"'))


def rewrite_statement(engine: Engine, row_id: int, statement: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE approval_statements SET statement = :s WHERE id = :id"),
            {"s": statement, "id": row_id},
        )


def test_an_approval_signed_with_a_passkey_in_chromium_is_verified_by_the_bitcoin_signer(
    browser: Browser, console: Console, screenshots: Path, signing_calls: list[int]
) -> None:
    """Register at first login (pending), the NBKR admin signs it in through the CLI (active),
    approve from the proposal page with the passkey; ACH approves with a key file; the signer
    refuses a statement altered after signing, then verifies the genuine one and signs."""
    reserve = console.reserve
    approver = reserve.officers[PASSKEY_APPROVER]
    with guarded_page(browser, console.url) as (page, traffic):
        cdp, authenticator = virtual_authenticator(page)
        log.info("first login: the approver lands on the keys page and registers a passkey")
        page.goto(f"{console.url}/console/login")
        page.fill("#token", token_for(reserve, PASSKEY_APPROVER))
        page.click("button[type=submit]")
        page.wait_for_url("**/console/passkey")
        assert page.locator("#key-file-active").is_visible()
        assert page.locator("#no-passkey").is_visible()
        shoot(page, screenshots, "console-passkey-register")
        page.click("#register-passkey")
        page.wait_for_url("**/console/passkey?done=registered")
        state = page.locator("[data-passkey-state]")
        assert state.get_attribute("data-passkey-state") == "pending"
        assert state.inner_text() == "pending admin signature"
        shoot(page, screenshots, "console-passkey-pending")
        credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert len(credentials["credentials"]) == 1
        with reserve.sessions() as session:
            (registration,) = registrations(session, approver.id)
        assert registration.key.kind is OfficerKeyKind.WEBAUTHN_ES256
        assert registration.key.rp_id == "localhost"
        assert registration.key.origin == console.url
        assert registration.key_id in page.locator("#passkeys").inner_text()

        log.info("NBKR's admin signs the passkey into the roster with their key file")
        printed = admin_signs_in(reserve, registration.id)
        assert registration.key_id in printed
        page.goto(f"{console.url}/console/passkey")
        assert page.locator("[data-passkey-state]").get_attribute("data-passkey-state") == "active"
        with reserve.sessions() as session:
            (registration,) = registrations(session, approver.id)
        assert registration.state is PasskeyState.ACTIVE
        shoot(page, screenshots, "console-passkey-active")

        log.info("a spend is proposed and prepared; ACH's approver approves with a key file")
        wf = reserve.workflow()
        spender = reserve.spenders()["BTC"]
        proposer = reserve.officers[PROPOSER]
        payee = reserve.payees["BTC"]
        view = wf.propose(
            proposer, asset="BTC", amount=SPEND_SATS, destination=payee,
            purpose="School heating in Naryn", legal_basis=DECREE,
        )  # fmt: skip
        view = wf.prepare(proposer, view.id, spender)
        assert view.tx_hash is not None
        ach = reserve.officers[KEY_FILE_APPROVER]
        keyed = reserve.officer_keys[KEY_FILE_APPROVER].sign_statement(wf.statement(ach, view.id))
        wf.approve(ach, view.id, view.tx_hash, signed=keyed)

        log.info("the NBKR approver reviews the statement in coin units and signs it in Chromium")
        page.goto(f"{console.url}/console/proposals/{view.id}")
        shown = page.locator("#approve-statement").inner_text()
        for fact in ("0.25 BTC (25000000 sat)", payee, view.tx_hash, DECREE):
            assert fact in shown
        expected = wf.statement(approver, view.id)
        assert expected.policy_hash in shown
        assert page.locator("#approve-statement .digest").inner_text() != ""
        shoot(page, screenshots, "console-passkey-approve")
        page.check("#reviewed")
        page.click("#approve")
        page.wait_for_url("**?done=approved")
        assert page.locator("#proposal-state").inner_text() == "approved"
        shoot(page, screenshots, "console-passkey-approved")
    traffic.assert_clean()

    with reserve.sessions() as session:
        stored = statements_for(session, view.id)
        passkey_row = session.scalars(
            select(ApprovalStatementRow).where(
                ApprovalStatementRow.proposal_id == view.id,
                ApprovalStatementRow.key_id == registration.key_id,
            )
        ).one()
    signed_in_browser = next(s for s in stored if s.key_id == registration.key_id)
    assert isinstance(signed_in_browser.signature, WebAuthnSignature)
    assert signed_in_browser.statement.officer_id == str(approver.id)
    genuine = passkey_row.statement

    log.info("a database writer alters the browser-signed statement: the signer refuses")
    engine = make_engine(reserve.database_url)
    try:
        without_triggers(engine)
        original = ApprovalStatement.parse(genuine.encode())
        for field, value, why in (
            ("amount", str(SPEND_SATS * 3), "names amount"),
            (
                "expires_at",
                canonical.encode_utc(original.expires_at.replace(year=2030), "at"),
                "does not verify",
            ),
        ):
            altered = original.to_json() | {field: value}
            rewrite_statement(engine, passkey_row.id, canonical.encode(altered).decode())
            with pytest.raises((CustodyError, TreasuryError)) as refused:
                reserve.sign(wf, view.id, "BTC")
            log.info("refused (%s altered): %s", field, refused.value)
            assert why in str(refused.value)
            assert signing_calls == [], f"a signature was made with the {field} altered"
            with reserve.sessions() as session:
                assert load_spend(session, spend_id(reserve, view.id)).signed_by == ()
        rewrite_statement(engine, passkey_row.id, genuine)
    finally:
        engine.dispose()

    log.info("the genuine statements: both institutions' signers verify them and sign")
    view = reserve.sign(wf, view.id, "BTC")
    assert view.state is ProposalState.SIGNED
    assert len(signing_calls) == 2
    verified = reserve.verified_for(view.id)
    assert {v.institution for v in verified} == {"NBKR", "ACH"}
    for verification in verified:
        names = {a.name for a in verification.authorization.approvers}
        assert PASSKEY_APPROVER in names
        assert KEY_FILE_APPROVER in names
    view = wf.broadcast(view.id, spender)
    view = reserve.confirm(wf, view.id, "BTC")
    assert view.state is ProposalState.CONFIRMED


def spend_id(reserve: Reserve, proposal_id: int) -> int:
    """The custody spend behind the proposal's prepared transaction."""
    with reserve.sessions() as session:
        current = reserve.workflow()._current_tx(session, proposal_id)
        assert current is not None
        payload: dict[str, Any] = json.loads(current.payload)
    return int(payload["spend_id"])
