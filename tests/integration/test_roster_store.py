"""The roster chain and approval statements in the treasury's database, on both databases.

A genesis made with real ceremony shares is stored and replays; what custody's replay refuses is
never stored; the database refuses edits; and a database writer who bypasses the triggers (an
inserted, edited, replaced or dropped record) is named by ``verify_roster``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from embit.bip32 import HDKey
from roster_support import (
    CEREMONIES,
    KEY_PASSPHRASE,
    NOW,
    RosterWorld,
    audit_rows,
    build_roster_world,
    drop_roster_triggers,
    roster_rows,
)
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from custody.authority import (
    CEREMONY_KEY_ID,
    ApprovalStatement,
    CeremonySignatureError,
    Genesis,
    InstitutionEntry,
    KeyRotated,
    MalformedSignatureError,
    OfficerAdded,
    OfficerEntry,
    OfficerRole,
    RecordKind,
    RecordSignature,
    Secp256k1Signature,
    SignedStatement,
    StatementKind,
    UnauthorizedChangeError,
    UnknownSignerError,
    ceremony_public_key,
    next_record,
    sign_digest,
    sign_with_ceremony_key,
    verify_genesis_for,
)
from custody.ceremony import load_transcript
from custody.exceptions import FingerprintMismatchError
from custody.keys import signing_keys
from custody.shamir import combine_shares, parse_shares
from treasury.authority.errors import RosterInputError, StatementConflictError
from treasury.authority.genesis import build_genesis, ceremony_key_of, commit_genesis, sign_genesis
from treasury.authority.store import (
    add_statement,
    append_record,
    load_records,
    roster_state,
    statements_for,
)
from treasury.authority.tables import ApprovalStatementRow, RosterRecordRow
from treasury.authority.verify import verify_roster
from treasury.exceptions import ImmutableRecordError
from treasury.officers import Role
from treasury.policy.tables import LegalBasisRow
from treasury.proposals.tables import SpendProposalRow


@pytest.fixture
def world(engine: Engine, sessions: sessionmaker[Session], tmp_path: Path) -> RosterWorld:
    return build_roster_world(engine, sessions, tmp_path)


def _verdict_of(world: RosterWorld) -> tuple[int | None, str]:
    with world.sessions() as session:
        verdict = verify_roster(session)
    return (None, "") if verdict.brk is None else (verdict.brk.sequence, verdict.brk.message)


def _insert_row(connection: Connection, record_json: dict[str, object], digest: str) -> None:
    connection.execute(
        text(
            "INSERT INTO roster_records (sequence, kind, body, prev_hash, hash, signatures, "
            "recorded_at) VALUES (:sequence, :kind, :body, :prev_hash, :hash, :signatures, "
            ":recorded_at)"
        ),
        {
            "sequence": int(str(record_json["sequence"])),
            "kind": record_json["kind"],
            "body": record_json["body"],
            "prev_hash": record_json["prev_hash"],
            "hash": digest,
            "signatures": json.dumps(record_json["signatures"]),
            "recorded_at": NOW,
        },
    )


# --- The genesis ------------------------------------------------------------------------------


def test_a_genesis_signed_by_each_ceremony_quorum_is_stored_and_replays(world: RosterWorld) -> None:
    """The genesis lists both ceremony institutions (not PARL) with their first admins' keys; it replays and is in the audit log."""
    genesis = world.genesis()
    with world.sessions() as session:
        state = roster_state(session)
        assert state is not None
        assert sorted(state.institutions) == ["CB", "MOF"]
        assert {o.officer_id for o in state.officers.values()} == {
            str(world.admins["CB"].id),
            str(world.admins["MOF"].id),
        }
        assert state.head_hash == genesis.record_hash()
        assert load_records(session) == (genesis,)
        assert len(load_records(session)[0].signatures) == 2
    assert _verdict_of(world) == (None, "")


def test_a_genesis_is_not_stored_until_every_institution_signed(world: RosterWorld) -> None:
    """Committing a genesis with only CB's ceremony signature is refused and writes nothing."""
    with world.sessions() as session:
        keys = {
            code: ceremony_key_of(session, code, world.shares(code), world.passphrase(code))[1]
            for code in CEREMONIES
        }
        record = build_genesis(session, world.admin_keys, keys)
        record = sign_genesis(session, record, "CB", world.shares("CB"), "")
    with pytest.raises(CeremonySignatureError), world.sessions.begin() as session:
        commit_genesis(session, record)
    with world.sessions() as session:
        assert roster_rows(session) == 0
        assert roster_state(session) is None


def test_another_institutions_shares_or_a_foreign_ceremony_key_sign_nothing(
    world: RosterWorld,
) -> None:
    """MOF's shares cannot sign for CB, and a genesis naming a key that is not CB's seed's is refused before signing."""
    with world.sessions() as session:
        keys = {
            code: ceremony_key_of(session, code, world.shares(code), world.passphrase(code))[1]
            for code in CEREMONIES
        }
        record = build_genesis(session, world.admin_keys, keys)
        with pytest.raises(FingerprintMismatchError):
            sign_genesis(session, record, "CB", world.shares("MOF"), world.passphrase("MOF"))
        wrong = build_genesis(session, world.admin_keys, {**keys, "CB": keys["MOF"]})
        with pytest.raises(CeremonySignatureError, match="not its seed's"):
            sign_genesis(session, wrong, "CB", world.shares("CB"), "")
        with pytest.raises(RosterInputError, match="--admin-key is missing"):
            build_genesis(session, {"CB": world.admin_keys["CB"]}, keys)


# --- Appending --------------------------------------------------------------------------------


def test_a_record_signed_by_another_institutions_admin_is_refused_and_nothing_written(
    world: RosterWorld,
) -> None:
    """MOF's admin cannot add an approver to CB: custody's replay refuses it, no row or audit event is written; CB's admin can."""
    world.genesis()
    alice = world.add_officer("CB", "Alice", {Role.APPROVER})
    _, key = world.new_key("alice")
    forged = world.officer_record(alice, key, signer=world.admins["MOF"])
    with world.sessions() as session:
        rows, events = roster_rows(session), audit_rows(session)
    with (
        pytest.raises(UnauthorizedChangeError, match="no active admin of CB"),
        world.sessions.begin() as session,
    ):
        append_record(session, forged)
    with world.sessions() as session:
        assert (roster_rows(session), audit_rows(session)) == (rows, events)
    genuine = world.officer_record(alice, key, signer=world.admins["CB"])
    with world.sessions.begin() as session:
        append_record(session, genuine)
    with world.sessions() as session:
        state = roster_state(session)
        assert state is not None
        assert state.officers[str(alice.id)].institution == "CB"
        assert roster_rows(session) == rows + 1
    assert _verdict_of(world) == (None, "")


def test_the_database_refuses_to_change_or_skip_roster_records(
    world: RosterWorld, engine: Engine
) -> None:
    """UPDATE, DELETE (and TRUNCATE on PostgreSQL) and an insert that does not extend the head are refused; the ORM refuses first."""
    world.genesis()
    statements = [
        "UPDATE roster_records SET body = '{}' WHERE sequence = 0",
        "DELETE FROM roster_records WHERE sequence = 0",
        "INSERT INTO roster_records (sequence, kind, body, prev_hash, hash, signatures, "
        "recorded_at) VALUES (5, 'officer_added', '{}', "
        "'0000000000000000000000000000000000000000000000000000000000000000', "
        "'1111111111111111111111111111111111111111111111111111111111111111', '[]', "
        "'2026-11-28 09:00:00+00:00')",
    ]
    if engine.dialect.name == "postgresql":
        statements.append("TRUNCATE roster_records")
    for statement in statements:
        with pytest.raises(DBAPIError), engine.begin() as connection:
            connection.execute(text(statement))
    with world.sessions() as session:
        row = session.scalars(select(RosterRecordRow)).one()
        row.body = "{}"
        with pytest.raises(ImmutableRecordError):
            session.flush()
        session.rollback()
        session.delete(session.scalars(select(RosterRecordRow)).one())
        with pytest.raises(ImmutableRecordError):
            session.flush()
    assert _verdict_of(world) == (None, "")


# --- A database writer without the triggers --------------------------------------------------


def test_an_inserted_record_is_named(world: RosterWorld, engine: Engine) -> None:
    """A record appended straight into the table (a fake officer signed by a key the roster does not know) is named, and the state refuses to load."""
    genesis = world.genesis()
    drop_roster_triggers(engine)
    path, key = world.new_key("mallory")
    entry = OfficerEntry("999", "Mallory", "CB", frozenset({OfficerRole.APPROVER}), (key,))
    record = next_record(genesis, RecordKind.OFFICER_ADDED, OfficerAdded(entry))
    record = world.sign(record, str(world.admins["CB"].id), path)
    with engine.begin() as connection:
        _insert_row(connection, record.to_json(), record.record_hash().hex())
    sequence, message = _verdict_of(world)
    assert sequence == 1
    assert "Roster record 1" in message
    with pytest.raises(UnauthorizedChangeError), world.sessions() as session:
        roster_state(session)


def test_an_edited_record_is_named_whether_or_not_its_hash_was_updated(
    world: RosterWorld, engine: Engine
) -> None:
    """Renaming the genesis admin in the stored body is named at record 0: by the stored hash, then by the ceremony signatures."""
    world.genesis()
    drop_roster_triggers(engine)
    with engine.begin() as connection:
        body = connection.execute(text("SELECT body FROM roster_records")).scalar_one()
        edited = body.replace("Admin of CB", "Admin of XX")
        connection.execute(text("UPDATE roster_records SET body = :body"), {"body": edited})
    sequence, message = _verdict_of(world)
    assert sequence == 0
    assert "was edited" in message
    with world.sessions() as session:
        rehashed = load_records(session)[0].record_hash().hex()
    with engine.begin() as connection:
        connection.execute(text("UPDATE roster_records SET hash = :hash"), {"hash": rehashed})
    sequence, message = _verdict_of(world)
    assert sequence == 0
    assert "ceremony-key signature" in message


def _forged_genesis(world: RosterWorld) -> tuple[dict[str, object], str]:
    """A genesis made with the attacker's own seeds but the real fingerprints, validly self-signed."""
    with world.sessions() as session:
        real = load_records(session)[0]
    body = Genesis.from_json(json.loads(real.body))
    roots = {
        entry.code: HDKey.from_seed(hashlib.sha256(entry.code.encode()).digest())
        for entry in body.institutions
    }
    institutions = tuple(
        InstitutionEntry(e.code, e.name, e.ceremony_fingerprint, ceremony_public_key(roots[e.code]))
        for e in body.institutions
    )
    admins = tuple(
        OfficerEntry(
            a.officer_id, a.name, a.institution, a.roles, (world.new_key(f"attacker-{n}")[1],)
        )
        for n, a in enumerate(body.admins)
    )
    record = next_record(
        None, RecordKind.GENESIS, Genesis(body.name, institutions, admins, body.rules)
    )
    for code, root in roots.items():
        record = record.with_signature(
            RecordSignature(
                code,
                CEREMONY_KEY_ID,
                Secp256k1Signature(sign_with_ceremony_key(root, record.record_hash())),
            )
        )
    return record.to_json(), record.record_hash().hex()


def test_a_replaced_genesis_is_named_and_refused_by_the_ceremonys_own_seed(
    world: RosterWorld, engine: Engine
) -> None:
    """A self-consistent genesis on the attacker's seeds replays, but the audit log names it, and CB's recombined seed refuses it."""
    world.genesis()
    drop_roster_triggers(engine)
    forged, digest = _forged_genesis(world)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM roster_records"))
        _insert_row(connection, forged, digest)
    sequence, message = _verdict_of(world)
    assert sequence == 0
    assert "replaced" in message
    with world.sessions() as session:
        forged_record = load_records(session)[0]
    seed = combine_shares(parse_shares(world.shares("CB")), "")
    with world.sessions() as session:
        fingerprint = load_transcript(session, "Central Bank").fingerprint
    with signing_keys(seed, fingerprint) as keys, pytest.raises(CeremonySignatureError):
        verify_genesis_for(keys.bitcoin_root, forged_record)


def test_a_genesis_replaced_through_the_application_is_named(
    world: RosterWorld, engine: Engine
) -> None:
    """Deleting the chain and storing another genesis through append_record leaves two audit hashes for record 0: named."""
    world.genesis()
    drop_roster_triggers(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM roster_records"))
    world.genesis(name="second-reserve")
    sequence, message = _verdict_of(world)
    assert sequence == 0
    assert "replaced" in message


def test_dropping_the_newest_record_is_named(world: RosterWorld, engine: Engine) -> None:
    """Deleting the last record leaves a valid-looking shorter chain; the audit log names the missing record."""
    world.genesis()
    alice = world.add_officer("CB", "Alice", {Role.APPROVER})
    _, key = world.new_key("alice")
    with world.sessions.begin() as session:
        append_record(session, world.officer_record(alice, key, signer=world.admins["CB"]))
    drop_roster_triggers(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM roster_records WHERE sequence = 1"))
    sequence, message = _verdict_of(world)
    assert sequence == 1
    assert "deleted" in message


def test_an_empty_table_with_an_audited_roster_is_named(world: RosterWorld, engine: Engine) -> None:
    """Deleting every record is not 'no roster': the audit log says one existed."""
    world.genesis()
    drop_roster_triggers(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM roster_records"))
    sequence, message = _verdict_of(world)
    assert sequence == 0
    assert "deleted" in message


# --- Approval statements ----------------------------------------------------------------------


def _proposal(session: Session, proposer_id: int) -> int:
    basis = LegalBasisRow(
        reference="Decree 2026/14",
        title="Test",
        expires_at=NOW + timedelta(days=30),
        created_at=NOW,
    )
    session.add(basis)
    session.flush()
    row = SpendProposalRow(
        asset="BTC",
        amount=150_000,
        destination="bcrt1qpayee",
        purpose="test",
        legal_basis_id=basis.id,
        proposer_id=proposer_id,
        state="approved",
        created_at=NOW,
    )
    session.add(row)
    session.flush()
    return row.id


def _statement(proposal_id: int, officer_id: str, **changes: object) -> ApprovalStatement:
    fields: dict[str, object] = {
        "kind": StatementKind.APPROVE,
        "proposal_id": str(proposal_id),
        "chain": "bitcoin:regtest",
        "vault": "reserve-btc",
        "vault_id": "wsh(sortedmulti(2,...))#abcdefgh",
        "asset": "BTC",
        "amount": 150_000,
        "destination": "bcrt1qpayee",
        "tx_hash": "ab" * 32,
        "safe_nonce": None,
        "max_fee": 1_000,
        "policy_hash": "cd" * 32,
        "legal_basis": "Decree 2026/14",
        "expires_at": NOW + timedelta(hours=24),
        "officer_id": officer_id,
        "institution": "CB",
    }
    fields.update(changes)
    return ApprovalStatement(**fields)


def test_statements_are_stored_once_verified_and_read_back(
    world: RosterWorld, engine: Engine
) -> None:
    """An approver's statement round-trips; another proposal's, an unknown signer's and a changed signature are refused; rows are immutable."""
    world.genesis()
    alice = world.add_officer("CB", "Alice", {Role.APPROVER})
    path, key = world.new_key("alice")
    with world.sessions.begin() as session:
        append_record(session, world.officer_record(alice, key, signer=world.admins["CB"]))
        proposal_id = _proposal(session, world.admins["CB"].id)
    statement = _statement(proposal_id, str(alice.id))
    signed = SignedStatement(
        statement,
        key.key_id,
        Secp256k1Signature(sign_digest(path, KEY_PASSPHRASE, statement.digest())),
    )
    with world.sessions.begin() as session:
        add_statement(session, proposal_id, signed)
        add_statement(session, proposal_id, signed)  # the same again changes nothing
    with world.sessions() as session:
        assert statements_for(session, proposal_id) == (signed,)
    other = _statement(proposal_id + 1, str(alice.id))
    forged_key = SignedStatement(statement, "k1:0000000000000000", signed.signature)
    stranger = _statement(proposal_id, "4242")
    with world.sessions.begin() as session:
        with pytest.raises(RosterInputError):
            add_statement(
                session, proposal_id, SignedStatement(other, key.key_id, signed.signature)
            )
        with pytest.raises(UnknownSignerError):
            add_statement(session, proposal_id, forged_key)
        with pytest.raises(UnknownSignerError):
            add_statement(
                session, proposal_id, SignedStatement(stranger, key.key_id, signed.signature)
            )
    with pytest.raises(MalformedSignatureError), world.sessions.begin() as session:
        add_statement(
            session,
            proposal_id,
            SignedStatement(statement, key.key_id, Secp256k1Signature(bytes(65))),
        )
    second_path, second = world.new_key("alice-second")
    rotation = KeyRotated(str(alice.id), (second,), ())
    with world.sessions.begin() as session:
        append_record(
            session, world.signed_next(RecordKind.KEY_ROTATED, rotation, world.admins["CB"])
        )
    again = SignedStatement(
        statement,
        second.key_id,
        Secp256k1Signature(sign_digest(second_path, KEY_PASSPHRASE, statement.digest())),
    )
    with pytest.raises(StatementConflictError), world.sessions.begin() as session:
        add_statement(session, proposal_id, again)
    with world.sessions() as session:
        assert statements_for(session, proposal_id) == (signed,)
    for sql in ("UPDATE approval_statements SET key_id = 'x'", "DELETE FROM approval_statements"):
        with pytest.raises(DBAPIError), engine.begin() as connection:
            connection.execute(text(sql))
    with world.sessions() as session:
        row = session.scalars(select(ApprovalStatementRow)).one()
        row.key_id = "x"
        with pytest.raises(ImmutableRecordError):
            session.flush()
