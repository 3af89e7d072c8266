"""Roster changes after the genesis, on both databases: every kind drafted, signed with admins' key
files and committed through `treasury roster`; what the rules refuse is never written; and the
signers' gate trusts only the chain's allowlist and decrees, never the treasury's tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from embit.bip32 import HDKey
from roster_support import (
    KEY_PASSPHRASE,
    NOW,
    RosterWorld,
    audit_rows,
    build_roster_world,
    roster_rows,
)
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from custody.authority import (
    AuthorityEvidence,
    ChangeQuorumError,
    DestinationNotAllowlistedError,
    OfficerPublicKey,
    OfficerRole,
    RosterRecord,
    Secp256k1Signature,
    SignedStatement,
    SpendUnderReview,
    StatementKind,
    UnauthorizedChangeError,
    UnknownLegalBasisError,
    check_before_signing,
    policy_hash_of,
    sign_digest,
)
from custody.authority.statement import ApprovalStatement
from custody.keys import signing_keys
from custody.shamir import combine_shares, parse_shares
from treasury.authority import changes
from treasury.authority.errors import RosterInputError
from treasury.authority.genesis import ceremony_key_of
from treasury.authority.store import load_records, roster_state
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV
from treasury.officers import Officer, Role
from treasury.policy import destination_allowed, set_policy
from treasury.policy.tables import (
    AllowlistActivationRow,
    AllowlistEntryRow,
    LegalBasisCeilingRow,
    LegalBasisRow,
)

POLICY: dict[str, Any] = {
    "quorum": {"institutions": ["CB", "MOF"], "required": 2},
    "assets": {
        "BTC": {
            "per_tx_limit": 100_000_000,
            "daily_limit": 200_000_000,
            "veto_threshold": 50_000_000,
        }
    },
    "veto_window_seconds": 3600,
    "allowlist": {"required": 2, "delay_seconds": 3600},
    "reconciliation_max_age_seconds": 6 * 3600,
    "proposal_ttl_seconds": 7 * 24 * 3600,
}
DECREE = "Decree No. 7 of 2026"
DECREE_EXPIRES = "2099-01-01T00:00:00+00:00"
PAYEE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
INSERTED_PAYEE = "bcrt1qinsertedbehindtheadminsbacks0000000000"
VAULT_ID = "wsh(sortedmulti(2,[aaaaaaaa/48h/1h/0h/2h]tpubA/0/*,[bbbbbbbb/48h/1h/0h/2h]tpubB/0/*))"


@pytest.fixture
def world(
    engine: Engine,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> RosterWorld:
    """CB and MOF with ceremonies and admins' key files, a committed genesis and a policy."""
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)
    world = build_roster_world(engine, sessions, tmp_path)
    world.genesis()
    with sessions.begin() as session:
        set_policy(session, world.admins["CB"], POLICY, now=NOW)
    (tmp_path / "key-passphrase").write_text(KEY_PASSPHRASE + "\n")
    return world


def _run(*args: str, prompt: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=prompt)
    return result.exit_code, result.stdout, result.stderr


def _ok(*args: str) -> str:
    code, out, err = _run(*args)
    assert code == 0, err
    return out


def _sign(world: RosterWorld, record_file: Path, code: str) -> str:
    """`roster sign` by institution ``code``'s admin, with the admin's key file."""
    return _ok(
        "roster", "sign", str(record_file), "--key-file", str(world.key_files[code]),
        "--passphrase-file", str(world.folder / "key-passphrase"), "--yes",
    )  # fmt: skip


def _counts(world: RosterWorld) -> tuple[int, int]:
    with world.sessions() as session:
        return roster_rows(session), audit_rows(session)


def _officer(world: RosterWorld, officer: Officer) -> Any:
    with world.sessions() as session:
        state = roster_state(session)
    assert state is not None
    return state.officers.get(str(officer.id))


def test_every_kind_of_change_goes_through_draft_sign_and_commit(
    world: RosterWorld, tmp_path: Path
) -> None:
    """Officer add, role grant/revoke, key rotation, policy, allowlist entry, decree (in coin
    units) and officer removal: each drafted, signed by the admins the rules need, committed."""
    alice = world.add_officer("CB", "Alice Approver", {Role.APPROVER})
    alice_key_file, alice_key = world.new_key("alice")
    out = _ok(
        "roster", "draft", "officer-add", "--officer-id", str(alice.id),
        "--key-file", str(alice_key_file), "--out", str(tmp_path / "add.json"),
    )  # fmt: skip
    assert f"add officer {alice.id} (Alice Approver) to CB with roles approver" in out
    assert "needs an active admin of CB" in out
    assert "not signed yet" in out
    out = _sign(world, tmp_path / "add.json", "CB")
    assert f"signed by officer {world.admins['CB'].id}" in out
    assert "every required signature is there" in out
    out = _ok("roster", "commit", str(tmp_path / "add.json"))
    assert "roster record stored: #1 officer_added" in out
    assert _officer(world, alice).roles == {OfficerRole.APPROVER}

    for step, kind in ((2, "role-grant"), (3, "role-revoke")):
        record_file = tmp_path / f"{kind}.json"
        out = _ok(
            "roster", "draft", kind, "--officer-id", str(alice.id), "--role", "oversight",
            "--out", str(record_file),
        )  # fmt: skip
        assert "role oversight of officer" in out
        _sign(world, record_file, "CB")
        assert f"#{step} role_" in _ok("roster", "commit", str(record_file))
    assert _officer(world, alice).roles == {OfficerRole.APPROVER}

    new_key_file, new_key = world.new_key("alice-2")
    _ok(
        "roster", "draft", "key-rotate", "--officer-id", str(alice.id),
        "--add-key-file", str(new_key_file), "--revoke", alice_key.key_id,
        "--out", str(tmp_path / "rotate.json"),
    )  # fmt: skip
    _sign(world, tmp_path / "rotate.json", "CB")
    _ok("roster", "commit", str(tmp_path / "rotate.json"))
    assert set(_officer(world, alice).keys) == {new_key.key_id}

    shared = {
        "policy": ["policy-set"],
        "allowlist": ["allowlist-add", "--asset", "BTC", "--address", PAYEE, "--label", "Supplier"],
        "decree": [
            "decree-add", "--reference", DECREE, "--title", "Reserve rebalancing",
            "--expires", DECREE_EXPIRES, "--ceiling", "BTC=1.5",
            "--ceiling", "ETH=0.000000000000000001",
        ],
    }  # fmt: skip
    for name, args in shared.items():
        record_file = tmp_path / f"{name}.json"
        out = _ok("roster", "draft", *args, "--out", str(record_file))
        assert "needs admins of 2 distinct institutions" in out
        assert "still to sign" in _sign(world, record_file, "CB")
        assert "every required signature is there" in _sign(world, record_file, "MOF")
        _ok("roster", "commit", str(record_file))
    with world.sessions() as session:
        state = roster_state(session)
    assert state is not None
    assert state.policy_document is not None
    assert state.policy_hash == policy_hash_of(state.policy_document)
    assert state.allows_destination("BTC", PAYEE)
    decree = state.decrees[DECREE]
    assert dict(decree.ceilings) == {"BTC": 150_000_000, "ETH": 1}
    assert decree.expires_at.isoformat() == DECREE_EXPIRES

    _ok(
        "roster", "draft", "officer-remove", "--officer-id", str(alice.id),
        "--out", str(tmp_path / "remove.json"),
    )  # fmt: skip
    _sign(world, tmp_path / "remove.json", "CB")
    _ok("roster", "commit", str(tmp_path / "remove.json"))
    assert not _officer(world, alice).active
    assert "roster intact: 9 records" in _ok("roster", "verify")


@pytest.mark.parametrize("kind", ["policy", "allowlist", "decree"])
def test_a_shared_change_signed_by_one_institution_is_refused_and_nothing_written(
    world: RosterWorld, tmp_path: Path, kind: str
) -> None:
    """A policy, allowlist or decree record signed by CB's admin alone is refused at commit."""
    args = {
        "policy": ["policy-set"],
        "allowlist": ["allowlist-add", "--asset", "BTC", "--address", PAYEE, "--label", "Shop"],
        "decree": [
            "decree-add", "--reference", DECREE, "--title", "T", "--expires", DECREE_EXPIRES,
            "--ceiling", "BTC=1",
        ],
    }[kind]  # fmt: skip
    record_file = tmp_path / "change.json"
    _ok("roster", "draft", *args, "--out", str(record_file))
    _sign(world, record_file, "CB")
    before = _counts(world)
    code, _, err = _run("roster", "commit", str(record_file))
    assert code == 1
    assert "needs admins of 2 distinct institutions" in err
    assert _counts(world) == before
    with world.sessions() as session, pytest.raises(ChangeQuorumError):
        changes.commit_record(session, changes.load_record_file(record_file.read_text(), "f"))


def test_an_officer_change_signed_by_another_institutions_admin_is_refused(
    world: RosterWorld, tmp_path: Path
) -> None:
    """MOF's admin cannot sign a CB officer into the roster: refused at commit, nothing written."""
    bob = world.add_officer("CB", "Bob Approver", {Role.APPROVER})
    key_file, _ = world.new_key("bob")
    record_file = tmp_path / "bob.json"
    _ok(
        "roster", "draft", "officer-add", "--officer-id", str(bob.id), "--key-file",
        str(key_file), "--out", str(record_file),
    )  # fmt: skip
    _sign(world, record_file, "MOF")
    before = _counts(world)
    code, _, err = _run("roster", "commit", str(record_file))
    assert code == 1
    assert "no active admin of CB signed it" in err
    assert _counts(world) == before
    with world.sessions() as session, pytest.raises(UnauthorizedChangeError):
        changes.commit_record(session, changes.load_record_file(record_file.read_text(), "f"))


def test_drafts_that_could_never_apply_or_amounts_not_exact_are_refused(
    world: RosterWorld, tmp_path: Path
) -> None:
    """Unknown officers, roles the treasury did not give, inexact amounts and past expiries are
    refused at draft time, and no file is written."""
    approver = world.add_officer("CB", "Carol Approver", {Role.APPROVER})
    key_file, _ = world.new_key("carol")
    refusals = {
        "is not an active officer of the roster": ["officer-remove", "--officer-id", "999"],
        "does not hold admin in the treasury": [
            "officer-add", "--officer-id", str(approver.id), "--key-file", str(key_file),
            "--role", "admin",
        ],
        "has 9 decimal places": [
            "decree-add", "--reference", "D", "--title", "T", "--expires", DECREE_EXPIRES,
            "--ceiling", "BTC=0.000000001",
        ],
        "not a plain decimal amount": [
            "decree-add", "--reference", "D", "--title", "T", "--expires", DECREE_EXPIRES,
            "--ceiling", "BTC=1e3",
        ],
        "which has passed": [
            "decree-add", "--reference", "D", "--title", "T", "--expires",
            "2001-01-01T00:00:00+00:00", "--ceiling", "BTC=1",
        ],
    }  # fmt: skip
    for message, args in refusals.items():
        out_file = tmp_path / "refused.json"
        code, _, err = _run("roster", "draft", *args, "--out", str(out_file))
        assert code == 1, message
        assert message in err
        assert not out_file.exists()


def test_signing_shows_the_change_asks_first_and_refuses_stale_drafts_and_non_admins(
    world: RosterWorld, tmp_path: Path
) -> None:
    """Without confirmation nothing is signed; an approver's key signs no roster change; a draft
    overtaken by another commit is refused before any signature."""
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    for record_file, address in ((first, PAYEE), (second, INSERTED_PAYEE)):
        _ok(
            "roster", "draft", "allowlist-add", "--asset", "BTC", "--address", address,
            "--label", "Payee", "--out", str(record_file),
        )  # fmt: skip
    drafted = second.read_text()
    code, out, err = _run(
        "roster", "sign", str(second), "--key-file", str(world.key_files["CB"]),
        "--passphrase-file", str(tmp_path / "key-passphrase"), prompt="n\n",
    )  # fmt: skip
    assert code == 1
    assert f"allow spends of BTC to pay {INSERTED_PAYEE}" in out
    assert "did not confirm" in err
    assert second.read_text() == drafted

    approver = world.add_officer("MOF", "Dana Approver", {Role.APPROVER})
    approver_key_file, approver_key = world.new_key("dana")
    with world.sessions() as session:
        record = changes.draft_officer_added(session, approver.id, [approver_key])
        record = changes.sign_record(session, record, world.key_files["MOF"], KEY_PASSPHRASE)
    with world.sessions.begin() as session:
        changes.commit_record(session, record)
    fresh = tmp_path / "fresh.json"
    _ok(
        "roster", "draft", "allowlist-add", "--asset", "BTC", "--address", PAYEE,
        "--label", "Payee", "--out", str(fresh),
    )  # fmt: skip
    code, _, err = _run(
        "roster", "sign", str(fresh), "--key-file", str(approver_key_file),
        "--passphrase-file", str(tmp_path / "key-passphrase"), "--yes",
    )  # fmt: skip
    assert code == 1
    assert "is not an admin" in err
    code, _, err = _run(
        "roster", "sign", str(first), "--key-file", str(world.key_files["CB"]),
        "--passphrase-file", str(tmp_path / "key-passphrase"), "--yes",
    )  # fmt: skip
    assert code == 1
    assert "Draft it again" in err


# --- The signers' gate: only the chain's allowlist and decrees count ---------------------------


def _commit(world: RosterWorld, record: RosterRecord, signers: list[str]) -> None:
    with world.sessions() as session:
        for code in signers:
            record = changes.sign_record(session, record, world.key_files[code], KEY_PASSPHRASE)
    with world.sessions.begin() as session:
        changes.commit_record(session, record, clock=lambda: NOW)


def _approver(world: RosterWorld, code: str) -> tuple[Officer, Path, OfficerPublicKey]:
    officer = world.add_officer(code, f"{code} approver", {Role.APPROVER})
    key_file, key = world.new_key(f"{code.lower()}-approver")
    with world.sessions() as session:
        record = changes.draft_officer_added(session, officer.id, [key])
    _commit(world, record, [code])
    return officer, key_file, key


@contextmanager
def _root(world: RosterWorld, code: str) -> Iterator[HDKey]:
    """Institution ``code``'s root, recombined from its holders' shares as a signer does."""
    shares, passphrase = world.shares(code), world.passphrase(code)
    with world.sessions() as session:
        fingerprint, _ = ceremony_key_of(session, code, shares, passphrase)
    with signing_keys(combine_shares(parse_shares(shares), passphrase), fingerprint) as keys:
        yield keys.bitcoin_root


@pytest.fixture
def governed(world: RosterWorld) -> dict[str, tuple[Officer, Path, OfficerPublicKey]]:
    """Approvers of CB and MOF, the policy, PAYEE and DECREE signed into the chain."""
    approvers = {code: _approver(world, code) for code in ("CB", "MOF")}
    with world.sessions() as session:
        policy = changes.draft_policy_set(session)
    _commit(world, policy, ["CB", "MOF"])
    with world.sessions() as session:
        allowlist = changes.draft_allowlist_added(session, "BTC", PAYEE, "Supplier")
    _commit(world, allowlist, ["CB", "MOF"])
    with world.sessions() as session:
        decree = changes.draft_decree_added(
            session,
            DECREE,
            "Rebalancing",
            NOW + timedelta(days=30),
            {"BTC": 10**8},
            clock=lambda: NOW,
        )
    _commit(world, decree, ["MOF", "CB"])
    return approvers


def _evidence(
    world: RosterWorld,
    approvers: dict[str, tuple[Officer, Path, OfficerPublicKey]],
    spend: SpendUnderReview,
    legal_basis: str,
) -> AuthorityEvidence:
    """The stored chain and both approvers' genuine statements of exactly ``spend``."""
    with world.sessions() as session:
        records = load_records(session)
        state = roster_state(session)
    assert state is not None
    assert state.policy_hash is not None
    signed = []
    for code, (officer, key_file, key) in approvers.items():
        statement = ApprovalStatement(
            kind=StatementKind.APPROVE, proposal_id="1", chain=spend.chain, vault="reserve",
            vault_id=spend.vault_id, asset=spend.asset, amount=spend.amount,
            destination=spend.destination, tx_hash=spend.tx_hash, safe_nonce=None,
            max_fee=1_000, policy_hash=state.policy_hash, legal_basis=legal_basis,
            expires_at=NOW + timedelta(hours=6), officer_id=str(officer.id), institution=code,
        )  # fmt: skip
        signature = sign_digest(key_file, KEY_PASSPHRASE, statement.digest())
        signed.append(SignedStatement(statement, key.key_id, Secp256k1Signature(signature)))
    return AuthorityEvidence(records, tuple(signed))


def _spend(destination: str) -> SpendUnderReview:
    return SpendUnderReview(
        chain="bitcoin:regtest", vault_id=VAULT_ID, asset="BTC", amount=25_000_000,
        destination=destination, tx_hash="ab" * 32, fee=500, safe_nonce=None,
    )  # fmt: skip


def test_an_allowlist_row_inserted_in_the_database_does_not_reach_the_signer(
    world: RosterWorld,
    engine: Engine,
    governed: dict[str, tuple[Officer, Path, OfficerPublicKey]],
) -> None:
    """A database writer's active allowlist row fools the treasury's table, not the signer: genuine
    approvals of a payment there are refused; the same approvals of a chain payee pass."""
    with engine.begin() as connection:
        entry_id = connection.execute(
            insert(AllowlistEntryRow)
            .values(
                asset="BTC",
                address=INSERTED_PAYEE,
                label="Supplier",
                requested_by=world.admins["CB"].id,
                requested_at=NOW - timedelta(days=3),
            )
            .returning(AllowlistEntryRow.id)
        ).scalar_one()
        connection.execute(
            insert(AllowlistActivationRow).values(
                entry_id=entry_id, active_from=NOW - timedelta(days=1)
            )
        )
    with world.sessions() as session:
        assert destination_allowed(session, "BTC", INSERTED_PAYEE, now=NOW)
    for code in ("CB", "MOF"):
        with _root(world, code) as root:
            spend = _spend(INSERTED_PAYEE)
            with pytest.raises(DestinationNotAllowlistedError, match=INSERTED_PAYEE):
                check_before_signing(root, _evidence(world, governed, spend, DECREE), spend, NOW)
            spend = _spend(PAYEE)
            verified = check_before_signing(
                root, _evidence(world, governed, spend, DECREE), spend, NOW
            )
            assert verified.institutions == ("CB", "MOF")


def test_a_statement_citing_a_decree_only_the_database_knows_is_refused(
    world: RosterWorld,
    engine: Engine,
    governed: dict[str, tuple[Officer, Path, OfficerPublicKey]],
) -> None:
    """A decree row inserted into the treasury's legal bases is no chain decree: genuine approvals
    citing it are refused by the signer's gate."""
    inserted = "Decree that no admin signed"
    with engine.begin() as connection:
        basis_id = connection.execute(
            insert(LegalBasisRow)
            .values(
                reference=inserted,
                title="Forged",
                expires_at=NOW + timedelta(days=300),
                created_at=NOW,
            )
            .returning(LegalBasisRow.id)
        ).scalar_one()
        connection.execute(
            insert(LegalBasisCeilingRow).values(
                legal_basis_id=basis_id, asset="BTC", ceiling=10**12
            )
        )
    spend = _spend(PAYEE)
    with _root(world, "CB") as root, pytest.raises(UnknownLegalBasisError, match=inserted):
        check_before_signing(root, _evidence(world, governed, spend, inserted), spend, NOW)


def test_an_amount_is_exact_in_coin_units_both_ways() -> None:
    """Coin amounts become base units exactly and back; nothing is rounded."""
    assert changes.base_units("1.5", 8, "ceiling") == 150_000_000
    assert changes.base_units("0.00000001", 8, "ceiling") == 1
    assert changes.base_units("10", 18, "ceiling") == 10 * 10**18
    assert changes.coin_units(150_000_000, 8) == "1.5"
    assert changes.coin_units(10**18, 18) == "1"
    for bad in ("1.", ".5", "-1", "1,000", " 1", "0", "0.000000000"):
        with pytest.raises(RosterInputError):
            changes.base_units(bad, 8, "ceiling")
