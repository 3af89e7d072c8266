"""Passkeys in the officers' console, on both databases: registration verified by the server and
kept pending until the officer's own admin signs it into the roster (`treasury passkeys`), and
approvals and vetoes signed with the passkey over the statement's digest, verified exactly as a
key file's signature is. Every refusal (bad origin, challenge, RP id, user verification, an
altered statement, a pending key) is a 4xx page and writes nothing."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from authority_support import FLAG_UP, FLAG_UV, SoftAuthenticator
from fastapi.testclient import TestClient
from signed_approvals_support import Roster, StatementChain, found_roster
from sqlalchemy import func, select, text
from typer.testing import CliRunner
from workflow_support import (
    DECREE,
    DECREE_CEILING_SATS,
    DESTINATION,
    SHARES,
    START,
    World,
    build_world,
)

from custody.authority import (
    AllowlistAdded,
    ApprovalStatement,
    DecreeAdded,
    KeyRotated,
    RecordKind,
    SpendUnderReview,
    StatementKind,
    WebAuthnSignature,
    create_key_file,
    load_public_key,
    verify_authorization,
)
from treasury.api import create_app
from treasury.api.console import LOGIN_CSRF_COOKIE, SESSION_COOKIE, csrf_token
from treasury.audit import AuditEvent
from treasury.authority.passkeys import PasskeyRegistrationRow, PasskeyState, registrations
from treasury.authority.store import load_records, roster_state, statements_for
from treasury.cli import app as cli_app
from treasury.db import DATABASE_URL_ENV
from treasury.proposals import ProposalState

BASE_URL = "https://treasury.example"
"""The console's origin in these tests; the RP id is its host (SoftAuthenticator's defaults)."""
FLAG_AT = 0x40
"""authenticatorData flag: attested credential data follows (registration)."""
KEY_PASSPHRASE = "admin key passphrase"
TEST_SCRYPT_N = 2**10
STATE_TABLES = (
    "spend_proposals",
    "prepared_transactions",
    "proposal_approvals",
    "approval_statements",
    "policy_decisions",
    "passkey_registrations",
    "roster_records",
    "audit_events",
)
"""What a refused registration, approval or veto must leave untouched."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def attestation(
    authenticator: SoftAuthenticator,
    challenge: bytes,
    *,
    origin: str | None = None,
    rp_id: str | None = None,
    flags: int = FLAG_UP | FLAG_UV | FLAG_AT,
    cross_origin: bool = False,
) -> str:
    """What ``navigator.credentials.create()`` answers (``none`` attestation), as the console's
    script posts it: the JSON of the credential with its byte fields in base64url."""
    credential_id = authenticator.credential_id
    authenticator_data = (
        hashlib.sha256((rp_id or authenticator.rp_id).encode()).digest()
        + bytes([flags])
        + (0).to_bytes(4, "big")
        + bytes(16)
        + len(credential_id).to_bytes(2, "big")
        + credential_id
        + authenticator.public_key().public
    )
    client_data = json.dumps(
        {
            "type": "webauthn.create",
            "challenge": b64url(challenge),
            "origin": origin or authenticator.origin,
            "crossOrigin": cross_origin,
        }
    ).encode()
    return json.dumps(
        {
            "id": b64url(credential_id),
            "rawId": b64url(credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(
                    cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": authenticator_data})
                ),
            },
            "clientExtensionResults": {},
        }
    )


def assertion_json(signature: WebAuthnSignature) -> str:
    """What the console's script posts after ``navigator.credentials.get()``."""
    return json.dumps(
        {
            "credential_id": b64url(signature.credential_id),
            "authenticator_data": b64url(signature.authenticator_data),
            "client_data_json": b64url(signature.client_data_json),
            "signature": b64url(signature.signature),
        }
    )


def attribute(page: str, pattern: str) -> str:
    found = re.search(pattern, page)
    assert found is not None, f"{pattern} is not on the page"
    return html.unescape(found.group(1))


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)
    built = build_world(db_url)
    built.chain = StatementChain(SHARES, required_signatures=2)
    yield built
    built.engine.dispose()


@pytest.fixture
def roster(world: World) -> Roster:
    """The founded roster, with the decree and the payee signed in (what the signers require)."""
    founded = found_roster(world)
    with world.sessions() as session:
        state = roster_state(session)
    assert state is not None
    if DECREE not in state.decrees:
        decree = DecreeAdded(
            DECREE, "Reserve rebalancing decree", START + timedelta(days=30),
            {"BTC": DECREE_CEILING_SATS},
        )  # fmt: skip
        founded.append(RecordKind.DECREE_ADDED, decree, ["admin", "cb_admin"])
    if not state.allows_destination("BTC", DESTINATION):
        payee = AllowlistAdded("BTC", DESTINATION, "Payee")
        founded.append(RecordKind.ALLOWLIST_ADDED, payee, ["admin", "cb_admin"])
    return founded


@pytest.fixture
def admin_keys(world: World, roster: Roster, tmp_path: Path) -> dict[str, Path]:
    """Key files of the CB and MOF admins, each signed into the roster by its own admin key."""
    files = {}
    for name in ("cb_admin", "admin"):
        path = tmp_path / f"{name}.key"
        key = create_key_file(path, KEY_PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
        roster.append(
            RecordKind.KEY_ROTATED, KeyRotated(roster.officer_id(name), (key,), ()), [name]
        )
        files[name] = path
    (tmp_path / "passphrase").write_text(KEY_PASSPHRASE + "\n")
    return files


def login(world: World, officer: str) -> tuple[TestClient, str]:
    """A browser's session on the console, logged in as ``officer``, and where login sent it."""
    client = TestClient(
        create_app(
            world.workflow(), world.sessions, spenders={"BTC": world.chain}, clock=world.clock
        ),
        base_url=BASE_URL,
        follow_redirects=False,
    )
    client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"token": world.tokens[officer], "csrf": client.cookies[LOGIN_CSRF_COOKIE]},
    )
    assert response.status_code == 303
    return client, response.headers["location"]


def csrf(client: TestClient) -> str:
    """The CSRF token of the client's console session (keyed by the session cookie)."""
    return csrf_token(client.cookies[SESSION_COOKIE])


def console(world: World, officer: str) -> TestClient:
    """A browser's session on the console, logged in as ``officer``."""
    return login(world, officer)[0]


def register(client: TestClient, world: World, officer: str, passkey: SoftAuthenticator,
             **changes: Any) -> Any:  # fmt: skip
    """Open the passkey page, create the passkey for the options it offers, post it."""
    page = client.get("/console/passkey")
    assert page.status_code == 200
    options = json.loads(attribute(page.text, r'data-passkey-create="([^"]*)"'))
    assert options["rp"]["id"] == "treasury.example"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["pubKeyCredParams"] == [{"type": "public-key", "alg": -7}]
    challenge = changes.pop("challenge", None) or b64url_decode(options["challenge"])
    return client.post(
        "/console/passkey",
        data={
            "csrf": csrf(client),
            "credential": attestation(passkey, challenge, **changes),
        },
    )


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.stdout + result.stderr


def approve_passkey(registration_id: int, key_file: Path) -> tuple[int, str]:
    return cli(
        "passkeys", "approve", str(registration_id), "--key-file", str(key_file),
        "--passphrase-file", str(key_file.parent / "passphrase"), "--yes",
    )  # fmt: skip


def snapshot(world: World) -> dict[str, list[tuple[Any, ...]]]:
    with world.engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]  # noqa: S608 - fixed table names
            for table in STATE_TABLES
        }


def active_passkey(
    world: World, admin_keys: dict[str, Path], officer: str = "cb_approver"
) -> tuple[TestClient, SoftAuthenticator]:
    """``officer`` logged in, with a passkey registered and signed in by the CB admin."""
    client = console(world, officer)
    passkey = SoftAuthenticator(f"passkey of {officer}")
    assert register(client, world, officer, passkey).status_code == 303
    with world.sessions() as session:
        (registration,) = registrations(session, world.officers[officer].id)
    code, out = approve_passkey(registration.id, admin_keys["cb_admin"])
    assert code == 0, out
    return client, passkey


def prepared(world: World) -> tuple[int, str]:
    wf = world.workflow()
    view = wf.propose(
        world.officers["proposer"], asset="BTC", amount=100_000_000, destination=DESTINATION,
        purpose="Pay the contractor", legal_basis=DECREE,
    )  # fmt: skip
    view = wf.prepare(world.officers["proposer"], view.id, world.chain)
    assert view.tx_hash is not None
    return view.id, view.tx_hash


def signing_form(
    client: TestClient, proposal_id: int, form: str = "approve-form"
) -> dict[str, str]:
    """The statement and challenge the proposal page gives the passkey to sign."""
    page = client.get(f"/console/proposals/{proposal_id}")
    assert page.status_code == 200
    start = page.text.index(f'id="{form}"')
    part = page.text[start:]
    return {
        "challenge": attribute(part, r'data-challenge="([^"]*)"'),
        "credentials": attribute(part, r'data-credentials="([^"]*)"'),
        "statement": attribute(part, r'name="statement" value="([^"]*)"'),
        "page": page.text,
    }


# --- Registration -----------------------------------------------------------------------------


def test_a_passkey_is_pending_until_the_officers_own_admin_signs_it_in(
    world: World, roster: Roster, admin_keys: dict[str, Path]
) -> None:
    """At first login a signing officer lands on the passkey page; the registration stores only
    the public key, pending; `passkeys approve` by the CB admin's key file makes it active in
    the signed roster, and the console shows it active."""
    client, first_page = login(world, "cb_approver")
    assert first_page == "/console/passkey"
    passkey = SoftAuthenticator("cb approver's phone")
    response = register(client, world, "cb_approver", passkey)
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"]).text
    assert passkey.public_key().key_id in page
    assert 'data-passkey-state="pending"' in page
    with world.sessions() as session:
        (row,) = session.scalars(select(PasskeyRegistrationRow)).all()
        assert json.loads(row.public_key) == passkey.public_key().to_json()
        assert row.officer_id == world.officers["cb_approver"].id
        records_before = len(load_records(session))
    code, out = cli("passkeys", "list")
    assert code == 0, out
    assert f"#{row.id}\t{row.key_id}\tpending admin signature" in out

    code, out = approve_passkey(row.id, admin_keys["cb_admin"])
    assert code == 0, out
    assert passkey.public_key().key_id in out
    with world.sessions() as session:
        assert len(load_records(session)) == records_before + 1
        state = roster_state(session)
        (registration,) = registrations(session)
    assert state is not None
    officer = state.officers[str(world.officers["cb_approver"].id)]
    assert officer.keys[passkey.public_key().key_id] == passkey.public_key()
    assert registration.state is PasskeyState.ACTIVE
    assert 'data-passkey-state="active"' in client.get("/console/passkey").text
    code, out = approve_passkey(row.id, admin_keys["cb_admin"])
    assert code == 1
    assert "already active" in out


def test_an_admin_of_another_institution_cannot_sign_a_passkey_in(
    world: World, roster: Roster, admin_keys: dict[str, Path]
) -> None:
    """The MOF admin's key cannot activate a CB approver's passkey; the roster is unchanged."""
    client = console(world, "cb_approver")
    assert register(client, world, "cb_approver", SoftAuthenticator("cb")).status_code == 303
    with world.sessions() as session:
        (registration,) = registrations(session)
    before = snapshot(world)
    code, out = approve_passkey(registration.id, admin_keys["admin"])
    assert code == 1
    assert "not an active key of an admin of CB" in out
    assert snapshot(world) == before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"challenge": b"\x01" * 32}, "challenge"),
        ({"rp_id": "evil.example"}, "RP ID"),
        ({"flags": FLAG_UP | FLAG_AT}, "verif"),
        ({"cross_origin": True}, "cross-origin"),
    ],
    ids=["bad-origin", "bad-challenge", "bad-rp-id", "no-user-verification", "cross-origin"],
)
def test_a_registration_that_does_not_verify_is_refused_and_nothing_is_written(
    world: World, roster: Roster, changes: dict[str, Any], message: str
) -> None:
    """Made for another origin, challenge or RP id, without user verification, or in a frame
    of another site: 422 naming why, and no registration, audit event or roster record."""
    client = console(world, "cb_approver")
    before = snapshot(world)
    refused = register(client, world, "cb_approver", SoftAuthenticator("cb"), **changes)
    assert refused.status_code == 422
    alert = attribute(refused.text, r'<p class="error" role="alert" id="error">([^<]*)</p>')
    assert message.lower() in alert.lower()
    assert snapshot(world) == before


def test_a_registration_is_bound_to_the_officer_who_was_offered_it(
    world: World, roster: Roster
) -> None:
    """A registration made for one officer's challenge and posted by another is refused."""
    alice = console(world, "cb_approver")
    page = alice.get("/console/passkey")
    options = json.loads(attribute(page.text, r'data-passkey-create="([^"]*)"'))
    made = attestation(SoftAuthenticator("cb"), b64url_decode(options["challenge"]))
    mallory = console(world, "mof_approver")
    mallory.get("/console/passkey")
    before = snapshot(world)
    refused = mallory.post(
        "/console/passkey",
        data={"csrf": csrf(mallory), "credential": made},
    )
    assert refused.status_code == 422
    assert "challenge" in refused.text
    assert snapshot(world) == before


def test_an_officer_without_a_signing_role_cannot_register(world: World, roster: Roster) -> None:
    """A proposer signs nothing, so the page offers no registration and a post is a 403."""
    client, first_page = login(world, "proposer")
    assert first_page == "/console/proposals"
    page = client.get("/console/passkey")
    assert "data-passkey-create" not in page.text
    before = snapshot(world)
    refused = client.post(
        "/console/passkey",
        data={
            "csrf": csrf(client),
            "credential": attestation(SoftAuthenticator("p"), b"\x00" * 32),
        },
    )
    assert refused.status_code == 403
    assert snapshot(world) == before


# --- Approving and vetoing ---------------------------------------------------------------------


def test_an_approval_signed_with_a_passkey_is_stored_and_verifies_for_the_signer(
    world: World, roster: Roster, admin_keys: dict[str, Path]
) -> None:
    """The proposal page shows the statement in coin units with its digest as the challenge; the
    assertion over it is stored with the approval exactly as a key file's signature is, and
    together with another institution's key-file statement it is a quorum the signer accepts."""
    client, passkey = active_passkey(world, admin_keys)
    proposal_id, tx_hash = prepared(world)
    form = signing_form(client, proposal_id)
    statement = ApprovalStatement.parse(form["statement"].encode())
    assert statement.officer_id == str(world.officers["cb_approver"].id)
    assert statement.amount == 100_000_000
    assert b64url_decode(form["challenge"]) == statement.digest()
    assert b64url_decode(form["credentials"]) == passkey.credential_id
    for shown in ("1 BTC (100000000 sat)", DESTINATION, tx_hash, statement.policy_hash, DECREE):
        assert shown in form["page"]
    assertion = passkey.assert_digest(statement.digest())
    response = client.post(
        f"/console/proposals/{proposal_id}/approve",
        data={
            "csrf": csrf(client),
            "tx_hash": tx_hash,
            "statement": form["statement"],
            "assertion": assertion_json(assertion),
            "reviewed": "yes",
        },
    )
    assert response.status_code == 303, response.text
    wf = world.workflow()
    other = roster.sign("parl_approver", wf.statement(world.officers["parl_approver"], proposal_id))
    view = wf.approve(world.officers["parl_approver"], proposal_id, tx_hash, other)
    assert view.state is ProposalState.APPROVED
    with world.sessions() as session:
        stored = statements_for(session, proposal_id)
        state = roster_state(session)
    assert state is not None
    assert stored[0].signature == assertion
    assert stored[0].key_id == passkey.public_key().key_id
    spend = SpendUnderReview(
        chain=statement.chain,
        vault_id=statement.vault_id,
        asset="BTC",
        amount=statement.amount,
        destination=statement.destination,
        tx_hash=tx_hash,
        fee=1_000,
        safe_nonce=None,
    )
    authorization = verify_authorization(state, stored, spend, world.clock())
    assert set(authorization.institutions) == {"CB", "PARL"}


def _tampered_statement(statement: str, **changes: str) -> str:
    obj = json.loads(statement)
    obj.update(changes)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("bad-origin", 403, "origin"),
        ("bad-challenge", 403, "challenge"),
        ("no-user-verification", 403, "verif"),
        ("amount-altered-after-signing", 409, "amount"),
        ("expiry-altered-after-signing", 403, "does not verify"),
        ("pending-passkey", 403, "waiting for your institution's admin"),
        ("no-assertion", 422, "no passkey signature"),
    ],
)
def test_an_approval_whose_passkey_signature_does_not_hold_is_refused_and_nothing_is_written(
    world: World, roster: Roster, admin_keys: dict[str, Path], case: str, status: int, message: str
) -> None:
    """Each refusal is a 4xx page naming why; no approval, statement or decision is written."""
    client, passkey = active_passkey(world, admin_keys)
    proposal_id, tx_hash = prepared(world)
    form = signing_form(client, proposal_id)
    statement_text = form["statement"]
    digest = ApprovalStatement.parse(statement_text.encode()).digest()
    assertion = passkey.assert_digest(digest)
    if case == "bad-origin":
        assertion = passkey.assert_digest(digest, origin="https://evil.example")
    elif case == "bad-challenge":
        assertion = passkey.assert_digest(hashlib.sha256(b"another statement").digest())
    elif case == "no-user-verification":
        assertion = passkey.assert_digest(digest, flags=FLAG_UP)
    elif case == "amount-altered-after-signing":
        statement_text = _tampered_statement(statement_text, amount="900000000")
    elif case == "expiry-altered-after-signing":
        later = ApprovalStatement.parse(statement_text.encode()).expires_at + timedelta(hours=1)
        statement_text = _tampered_statement(
            statement_text, expires_at=later.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    elif case == "pending-passkey":
        newer = SoftAuthenticator("a second passkey, not signed in")
        assert register(client, world, "cb_approver", newer).status_code == 303
        assertion = newer.assert_digest(digest)
    before = snapshot(world)
    refused = client.post(
        f"/console/proposals/{proposal_id}/approve",
        data={
            "csrf": csrf(client),
            "tx_hash": tx_hash,
            "statement": statement_text,
            "assertion": "" if case == "no-assertion" else assertion_json(assertion),
        },
    )
    assert refused.status_code == status, refused.text
    alert = attribute(refused.text, r'<div class="error" role="alert" id="error">\s*<p>([^<]*)</p>')
    assert message.lower() in alert.lower()
    assert snapshot(world) == before


def test_oversight_vetoes_with_a_passkey_and_the_signed_veto_is_stored(
    world: World, roster: Roster, tmp_path: Path
) -> None:
    """PARL's oversight officer (its admin too) signs its own passkey in with its key file and
    vetoes with it: the proposal is rejected and the VETO statement is stored for the signers."""
    key_file = tmp_path / "oversight.key"
    key = create_key_file(key_file, KEY_PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    (tmp_path / "passphrase").write_text(KEY_PASSPHRASE)
    roster.append(
        RecordKind.KEY_ROTATED,
        KeyRotated(roster.officer_id("oversight"), (key,), ()),
        ["oversight"],
    )
    client = console(world, "oversight")
    passkey = SoftAuthenticator("oversight")
    assert register(client, world, "oversight", passkey).status_code == 303
    with world.sessions() as session:
        (registration,) = registrations(session)
    assert load_public_key(key_file).key_id == key.key_id
    code, out = approve_passkey(registration.id, key_file)
    assert code == 0, out
    proposal_id, _tx_hash = prepared(world)
    form = signing_form(client, proposal_id, "veto-form")
    statement = ApprovalStatement.parse(form["statement"].encode())
    assert statement.kind is StatementKind.VETO
    response = client.post(
        f"/console/proposals/{proposal_id}/veto",
        data={
            "csrf": csrf(client),
            "reason": "The contractor is under investigation.",
            "statement": form["statement"],
            "assertion": assertion_json(passkey.assert_digest(statement.digest())),
        },
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("?done=vetoed")
    with world.sessions() as session:
        (stored,) = statements_for(session, proposal_id)
        audits = session.scalar(select(func.count()).select_from(AuditEvent))
    assert stored.statement.kind is StatementKind.VETO
    assert stored.key_id == passkey.public_key().key_id
    assert audits is not None
    assert world.workflow().view(proposal_id).state is ProposalState.REJECTED
