"""The database attacker: with every trigger dropped and write access to every table, no forged
row gets a signature from the custody signers, and what the signers cannot see is named by the
auditor's commands.

Each test starts from a copy of one signed reserve on the real devnets (``attacker_support``:
the story's ceremonies, vaults, officers with key files, a roster genesis signed by the ceremony
keys, proposals approved with signed statements) on SQLite and on PostgreSQL, changes rows the
way a database writer can, and then asks the share holders of both approving institutions to
sign through the treasury's spender, as ``treasury spend sign`` does. A spy on the only two
calls that make a vault signature (the Bitcoin signer's ``sign_multisig_inputs``, the Safe
owner's ``sign_safe_tx_hash``) proves that a refusal came before any signature.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from attacker_support import (
    APPROVER_CODES,
    ATTACKER_ETH,
    BTC_PAYMENT_SATS,
    AttackWorld,
    ReserveTemplates,
    approve_with_keys,
    open_proposal,
    templates_for,
)
from authority_support import k1_public, k1_sign, private_key
from embit.bip32 import HDKey
from embit.psbt import PSBT
from sqlalchemy import delete, func, insert, select, text, update
from typer.testing import Result

import custody.bitcoin.signer as btc_signer
import custody.ethereum.safe_signature as safe_signature
import custody.ethereum.signer as safe_signer
from custody.authority import (
    CEREMONY_KEY_ID,
    AllowlistAdded,
    ApprovalStatement,
    DecreeAdded,
    Genesis,
    InstitutionEntry,
    KeyRotated,
    OfficerAdded,
    OfficerEntry,
    OfficerPublicKey,
    OfficerRole,
    PolicySet,
    RecordKind,
    RecordSignature,
    RosterRecord,
    RosterRules,
    Secp256k1Signature,
    SignedStatement,
    StatementKind,
    ceremony_public_key,
    next_record,
    policy_hash_of,
    replay,
    sign_with_ceremony_key,
)
from custody.authority.errors import (
    CeremonySignatureError,
    DestinationNotAllowlistedError,
    InsufficientApprovalsError,
    PolicyMismatchError,
    SignatureMismatchError,
    StatementMismatchError,
    UnauthorizedChangeError,
    UnknownSignerError,
    VetoedError,
)
from custody.authority.roster_bodies import RecordBody
from custody.devnet import BitcoinNode, EvmNode
from custody.exceptions import CustodyError
from treasury.audit import AuditEvent
from treasury.authority.store import load_records
from treasury.authority.tables import ApprovalStatementRow, RosterRecordRow
from treasury.canonical import canonical_json
from treasury.exceptions import TreasuryError
from treasury.officers import ApiTokenRow, OfficerRoleRow, OfficerRow
from treasury.policy import current_policy
from treasury.policy.document import parse_policy, sha256_hex
from treasury.policy.tables import LegalBasisCeilingRow, LegalBasisRow, PolicyVersionRow
from treasury.story import INSTITUTIONS, SATS_PER_BTC, WEI_PER_ETH
from treasury.story.cast import ADMINS, APPROVERS

log = logging.getLogger("tests.database_attacker")

IMMUTABLE_TABLES = (
    "ledger_entries",
    "ledger_postings",
    "audit_events",
    "policy_versions",
    "legal_bases",
    "legal_basis_ceilings",
    "allowlist_entries",
    "allowlist_approvals",
    "allowlist_activations",
    "officer_roles",
    "proposal_approvals",
    "proposal_approval_voids",
    "roster_records",
    "approval_statements",
)
"""The tables the migrations make append-only; the attacker has dropped their triggers."""
RAISED_LIMIT_SATS = 10 * SATS_PER_BTC
ABOVE_THE_REAL_LIMIT_SATS = 3 * SATS_PER_BTC // 2
"""1.5 BTC: above the signed policy's per-transaction limit (1 BTC), below the raised one."""


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def templates(
    bitcoin_node: BitcoinNode, evm_node: EvmNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReserveTemplates]:
    """One signed reserve per database kind for the whole module (built on first use)."""
    yield from templates_for(bitcoin_node, evm_node, tmp_path_factory.mktemp("attacker"))


@pytest.fixture
def world(
    db_url: str, templates: ReserveTemplates, request: pytest.FixtureRequest
) -> Iterator[AttackWorld]:
    """This test's copy of the reserve, at ``db_url`` (SQLite and PostgreSQL)."""
    server = (
        str(request.getfixturevalue("postgres_server_url"))
        if db_url.startswith("postgresql")
        else None
    )
    copied = templates.clone(db_url, server)
    yield copied
    copied.close()


@pytest.fixture
def signatures(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every vault signature made: the Bitcoin signer's ``sign_multisig_inputs`` (a PSBT's
    inputs) and the Safe owner's ``sign_safe_tx_hash``, the only two places a custody key signs a
    spend."""
    calls: list[str] = []
    sign_multisig_inputs = btc_signer.sign_multisig_inputs
    sign_safe_tx_hash = safe_signature.sign_safe_tx_hash

    def bitcoin_spy(psbt: PSBT, root: HDKey) -> int:
        calls.append("bitcoin")
        return sign_multisig_inputs(psbt, root)

    def safe_spy(key: Any, safe_tx_hash: bytes) -> Any:
        calls.append("safe")
        return sign_safe_tx_hash(key, safe_tx_hash)

    monkeypatch.setattr(btc_signer, "sign_multisig_inputs", bitcoin_spy)
    monkeypatch.setattr(safe_signer, "sign_safe_tx_hash", safe_spy)
    return calls


# --- helpers -------------------------------------------------------------------------------------


def refused_by_both(
    world: AttackWorld,
    signatures: list[str],
    proposal_id: int,
    asset: str,
    error: type[Exception],
    match: str | None,
) -> None:
    """The share holders of both approving institutions are refused with ``error``; no custody
    key signed anything."""
    for code in APPROVER_CODES:
        with pytest.raises(error, match=match):
            world.sign(proposal_id, code, asset)
    assert signatures == [], "a custody key signed the attacker's spend"


def attempt(world: AttackWorld, proposal_id: int, code: str, asset: str) -> Exception | None:
    """Sign, returning the refusal instead of raising it (``None`` when it signed)."""
    try:
        world.sign(proposal_id, code, asset)
    except (CustodyError, TreasuryError) as exc:
        log.info("refused: %s", exc)
        return exc
    return None


def attacker_key(label: str) -> tuple[bytes, OfficerPublicKey]:
    """A secp256k1 key the attacker made, and its public key as the roster lists keys."""
    secret = private_key(f"attacker {label}")
    return secret, k1_public(secret)


def signed_by(secret: bytes, key_id: str, statement: ApprovalStatement) -> SignedStatement:
    """``statement`` signed with ``secret`` under ``key_id`` (which may be someone else's)."""
    return SignedStatement(statement, key_id, k1_sign(secret, statement.digest()))


def stored_records(world: AttackWorld) -> tuple[RosterRecord, ...]:
    with world.reserve.sessions() as session:
        return load_records(session)


def roster_row(world: AttackWorld, record: RosterRecord) -> Any:
    """The ``roster_records`` row of ``record``, as the treasury stores one."""
    return insert(RosterRecordRow).values(
        sequence=record.sequence,
        kind=record.kind.value,
        body=record.body.decode("utf-8"),
        prev_hash=record.prev_hash.hex(),
        hash=record.record_hash().hex(),
        signatures=json.dumps([s.to_json() for s in record.signatures], sort_keys=True),
        recorded_at=world.reserve.clock(),
    )


def named(result: Result, *fragments: str) -> str:
    """The command failed (exit 1) and its output names each fragment."""
    output = str(result.output)
    assert result.exit_code == 1, output
    for fragment in fragments:
        assert fragment in output, output
    return output


# --- the untouched reserve -----------------------------------------------------------------------


def test_the_untouched_reserve_signs_and_the_attacker_has_dropped_every_trigger(
    world: AttackWorld, signatures: list[str]
) -> None:
    """The control: on the copy the attacks start from, both chains' approved spends are signed
    after the signer verified the approvers' statements; and that copy has no trigger left on
    any append-only table, so every attack below is the database writer's to make."""
    on = {entry.split(".", 1)[0] for entry in world.dropped_triggers}
    assert set(IMMUTABLE_TABLES) <= on, sorted(set(IMMUTABLE_TABLES) - on)
    if world.engine.dialect.name == "sqlite":
        remaining = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
    else:
        remaining = "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"
    assert world.scalar(text(remaining)) == 0

    for code in APPROVER_CODES:
        world.sign(world.proposals.btc_approved, code, "BTC")
    world.sign(world.proposals.eth_approved, APPROVER_CODES[0], "ETH")
    assert signatures.count("bitcoin") == 2
    assert signatures.count("safe") == 1
    verified = {
        (v.institution, tuple(a.name for a in v.authorization.approvers))
        for v in world.reserve.verifications
    }
    approvers = tuple(APPROVERS[code] for code in APPROVER_CODES)
    assert verified == {(code, approvers) for code in APPROVER_CODES}


# --- 1. re-point an approved proposal to another payment ----------------------------------------


def test_a_bitcoin_spend_re_pointed_in_every_table_is_refused(
    world: AttackWorld, signatures: list[str]
) -> None:
    """The issue's attack: custody's spend (PSBT, txid, payments, fee), the prepared
    transaction, the approvals' hash and the proposal all say 0.4 BTC to the attacker. The rows
    agree with each other; the officers' statements name the 0.1 BTC payment."""
    proposal = world.proposals.btc_approved
    txid = world.repoint_btc(proposal, world.attacker_btc, 4 * BTC_PAYMENT_SATS)
    assert world.prepared(proposal).tx_hash == txid
    refused_by_both(world, signatures, proposal, "BTC", StatementMismatchError, "names amount")


def test_a_safe_transaction_re_pointed_in_every_table_is_refused(
    world: AttackWorld, signatures: list[str]
) -> None:
    """The issue's Ethereum attack: ``safe_transactions`` (to, value, hash), the prepared
    transaction and ``proposal_approvals.tx_hash`` re-pointed from 1 ETH to the payee to 9 ETH to
    an unlisted address; the SafeTx hashes right, but no statement names it."""
    proposal = world.proposals.eth_approved
    new_hash = world.repoint_eth(proposal, ATTACKER_ETH, 9 * WEI_PER_ETH)
    assert world.prepared(proposal).tx_hash == new_hash
    refused_by_both(world, signatures, proposal, "ETH", StatementMismatchError, "names amount")


# --- 2. a fake approval --------------------------------------------------------------------------


@pytest.mark.parametrize("with_statement", [False, True], ids=["approval-row", "forged-statement"])
def test_a_fake_approval_is_refused(
    world: AttackWorld, signatures: list[str], with_statement: bool
) -> None:
    """The second institution's approval of a proposal only NBKR approved is inserted: a
    ``proposal_approvals`` row, and optionally the ACH approver's statement with a signature
    the attacker made under that approver's key id."""
    proposal = world.proposals.btc_half
    ach = world.officer(APPROVERS["ACH"])
    rows: list[Any] = [
        world.approval_row(proposal, ach.id, ach.institution_id),
        world.mark_approved(proposal),
    ]
    if with_statement:
        secret, _ = attacker_key("signature")
        key_id = world.reserve.officer_keys[APPROVERS["ACH"]].public.key_id
        rows.append(
            world.statement_row(proposal, signed_by(secret, key_id, world.statement(proposal, ach)))
        )
    world.execute(*rows)
    if with_statement:
        error: type[Exception] = SignatureMismatchError
        match = "not signed by their key"
    else:
        error, match = InsufficientApprovalsError, r"1 institution\(s\) \(\['NBKR'\]\)"
    refused_by_both(world, signatures, proposal, "BTC", error, match)


# --- 3. a fake officer or key --------------------------------------------------------------------


@pytest.mark.parametrize("kind", [RecordKind.OFFICER_ADDED, RecordKind.KEY_ROTATED])
def test_an_officer_or_key_appended_to_the_roster_without_an_admin_signature_is_refused(
    world: AttackWorld, signatures: list[str], kind: RecordKind
) -> None:
    """A roster record linked to the stored head but signed by no admin: a new ACH approver
    (also given an ``officers`` row and the approver role), or a key of the attacker's added to
    the real ACH approver. Their statement approves the half-approved proposal."""
    proposal = world.proposals.btc_half
    secret, public = attacker_key("officer")
    now = world.reserve.clock()
    ach = world.officer(APPROVERS["ACH"])
    body: RecordBody
    if kind is RecordKind.OFFICER_ADDED:
        officer_id = world.inserted_id(
            insert(OfficerRow).values(
                institution_id=ach.institution_id, name="Mallory", created_at=now
            )
        )
        world.execute(insert(OfficerRoleRow).values(officer_id=officer_id, role="approver"))
        body = OfficerAdded(
            OfficerEntry(
                str(officer_id), "Mallory", "ACH", frozenset({OfficerRole.APPROVER}), (public,)
            )
        )
        approver = replace(ach, id=officer_id, name="Mallory")
    else:
        officer_id = ach.id
        body = KeyRotated(str(ach.id), (public,), ())
        approver = ach
    head = stored_records(world)[-1]
    record = next_record(head, kind, body)
    statement = world.statement(proposal, approver)
    world.execute(
        roster_row(world, record),
        world.approval_row(proposal, officer_id, ach.institution_id),
        world.statement_row(proposal, signed_by(secret, public.key_id, statement)),
        world.mark_approved(proposal),
    )
    refused_by_both(
        world,
        signatures,
        proposal,
        "BTC",
        UnauthorizedChangeError,
        f"Record {record.sequence} \\({kind.value}\\) carries no signature",
    )
    named(world.verify("roster"), f"roster broken at record {record.sequence}")


def test_an_officer_only_in_the_officers_table_is_refused(
    world: AttackWorld, signatures: list[str]
) -> None:
    """An ``officers`` row with the approver role and an API token, but no roster record: the
    treasury's tables know them, the signer's roster does not."""
    proposal = world.proposals.btc_half
    secret, public = attacker_key("table officer")
    now = world.reserve.clock()
    ach = world.officer(APPROVERS["ACH"])
    officer_id = world.inserted_id(
        insert(OfficerRow).values(institution_id=ach.institution_id, name="Mallory", created_at=now)
    )
    world.execute(
        insert(OfficerRoleRow).values(officer_id=officer_id, role="approver"),
        insert(ApiTokenRow).values(
            officer_id=officer_id,
            lookup_id="ab" * 8,
            salt_hex="cd" * 16,
            digest_hex="ef" * 32,
            created_at=now,
            expires_at=now + timedelta(days=1),
        ),
    )
    mallory = replace(ach, id=officer_id, name="Mallory")
    statement = world.statement(proposal, mallory)
    world.execute(
        world.approval_row(proposal, officer_id, ach.institution_id),
        world.statement_row(proposal, signed_by(secret, public.key_id, statement)),
        world.mark_approved(proposal),
    )
    refused_by_both(world, signatures, proposal, "BTC", UnknownSignerError, "not an active officer")


# --- 4. raise a limit in the stored policy -------------------------------------------------------


def _raised_policy(world: AttackWorld) -> tuple[int, str]:
    """The version in force and its document with the BTC limits raised to 10 BTC."""
    with world.reserve.sessions() as session:
        version = current_policy(session).version
        row = session.get(PolicyVersionRow, version)
        assert row is not None
        document: dict[str, Any] = json.loads(row.document)
    limits = document["assets"]["BTC"]
    for name in ("per_tx_limit", "daily_limit"):
        limits[name] = type(limits[name])(RAISED_LIMIT_SATS)
    return version, canonical_json(parse_policy(document).to_json())


def test_a_raised_limit_is_named_by_policy_verify(world: AttackWorld) -> None:
    """``policy_versions.document`` rewritten with the BTC limits raised, its hash left: the
    auditor's ``treasury policy verify`` names the version (and the server refuses to read it)."""
    version, document = _raised_policy(world)
    world.execute(
        update(PolicyVersionRow)
        .where(PolicyVersionRow.version == version)
        .values(document=document)
    )
    named(world.verify("policy"), f"Policy version {version}")


def test_a_raised_limit_with_its_hash_recomputed_is_refused_by_the_signer(
    world: AttackWorld, signatures: list[str]
) -> None:
    """The limits raised AND the stored hash recomputed (and the decree's ceiling raised), so the
    server proposes 1.5 BTC and the approvers, trusting the screen, sign statements naming that
    policy. The signer's policy is the one signed into the roster: the statements name another."""
    version, document = _raised_policy(world)
    with world.reserve.sessions() as session:
        decree = session.scalars(select(LegalBasisRow.id)).one()
    world.execute(
        update(PolicyVersionRow)
        .where(PolicyVersionRow.version == version)
        .values(document=document, content_hash=sha256_hex(document)),
        update(LegalBasisCeilingRow)
        .where(LegalBasisCeilingRow.legal_basis_id == decree, LegalBasisCeilingRow.asset == "BTC")
        .values(ceiling=RAISED_LIMIT_SATS),
    )
    wf = world.reserve.workflow()
    proposal = open_proposal(
        world.reserve, wf, "BTC", ABOVE_THE_REAL_LIMIT_SATS, world.payees["BTC"]
    )
    rows: list[Any] = [world.mark_approved(proposal)]
    for code in APPROVER_CODES:
        officer = world.officer(APPROVERS[code])
        signed = world.reserve.officer_keys[APPROVERS[code]].sign_statement(
            world.statement(proposal, officer)
        )
        assert signed.statement.policy_hash == sha256_hex(document)
        rows += [
            world.approval_row(proposal, officer.id, officer.institution_id),
            world.statement_row(proposal, signed),
        ]
    world.execute(*rows)
    refused_by_both(world, signatures, proposal, "BTC", PolicyMismatchError, "names policy")
    named(world.verify("policy"), f"Policy version {version}")


# --- 5. an allowlist entry -----------------------------------------------------------------------


def test_an_allowlisted_attacker_address_does_not_re_point_an_approved_spend(
    world: AttackWorld, signatures: list[str]
) -> None:
    """The attacker's address allowlisted (entry, two institutions' approvals, activation) and
    the approved 0.1 BTC spend re-pointed there: the statements name the payee."""
    world.allowlist("BTC", world.attacker_btc)
    proposal = world.proposals.btc_approved
    world.repoint_btc(proposal, world.attacker_btc, BTC_PAYMENT_SATS)
    refused_by_both(world, signatures, proposal, "BTC", StatementMismatchError, "names destination")


def test_an_allowlist_entry_only_in_the_database_does_not_authorise_a_new_spend(
    world: AttackWorld, signatures: list[str]
) -> None:
    """The attacker's address allowlisted in the treasury's tables only; the server then offers
    a spend to it, which the approvers (trusting the allowlist) approve with their keys. The
    signer's allowlist is the roster chain's, where no admins signed that address in."""
    world.allowlist("BTC", world.attacker_btc)
    wf = world.reserve.workflow()
    proposal = open_proposal(world.reserve, wf, "BTC", BTC_PAYMENT_SATS, world.attacker_btc)
    approve_with_keys(world.reserve, wf, proposal, APPROVER_CODES)
    refused_by_both(
        world, signatures, proposal, "BTC", DestinationNotAllowlistedError, world.attacker_btc
    )


# --- 6. a veto marked as withdrawn ---------------------------------------------------------------


def _veto_statement_ids(world: AttackWorld, proposal: int) -> list[int]:
    with world.reserve.sessions() as session:
        rows = session.execute(
            select(ApprovalStatementRow.id, ApprovalStatementRow.statement).where(
                ApprovalStatementRow.proposal_id == proposal
            )
        ).all()
    return [
        i
        for i, body in rows
        if ApprovalStatement.parse(body.encode("utf-8")).kind is StatementKind.VETO
    ]


def _veto_audit_sequence(world: AttackWorld, proposal: int) -> int:
    with world.reserve.sessions() as session:
        events = session.execute(select(AuditEvent.sequence, AuditEvent.refs, AuditEvent.payload))
        found = [
            sequence
            for sequence, refs, payload in events
            if json.loads(refs).get("proposal_id") == proposal
            and json.loads(payload).get("event") == "vetoed"
        ]
    assert len(found) == 1, found
    return found[0]


def test_a_veto_withdrawn_in_the_proposal_row_is_refused(
    world: AttackWorld, signatures: list[str]
) -> None:
    """The vetoed proposal put back to approved (state, closing columns cleared): the oversight
    officer's signed VETO statement is still among the proposal's statements."""
    proposal = world.proposals.btc_vetoed
    assert _veto_statement_ids(world, proposal)
    world.execute(world.mark_approved(proposal))
    refused_by_both(world, signatures, proposal, "BTC", VetoedError, f"vetoed proposal {proposal}")


def test_a_veto_erased_with_its_audit_event_is_named_by_audit_verify(world: AttackWorld) -> None:
    """The proposal put back to approved, the VETO statement deleted (the signer can no longer
    see a veto) and the audit event of the veto deleted too: the hash-chained audit log has a
    gap, which ``treasury audit verify`` names."""
    proposal = world.proposals.btc_vetoed
    sequence = _veto_audit_sequence(world, proposal)
    world.execute(
        world.mark_approved(proposal),
        delete(ApprovalStatementRow).where(
            ApprovalStatementRow.id.in_(_veto_statement_ids(world, proposal))
        ),
        delete(AuditEvent).where(AuditEvent.sequence == sequence),
    )
    assert _veto_statement_ids(world, proposal) == []
    named(world.verify("audit"), f"at #{sequence}")


def test_a_veto_erased_from_the_statements_is_refused_or_named(
    world: AttackWorld, signatures: list[str]
) -> None:
    """The proposal put back to approved and the VETO statement deleted, the audit log left as it
    is (it still records the veto). Either the signer refuses, or the auditor's commands name
    the vetoed proposal that is approved again."""
    proposal = world.proposals.btc_vetoed
    world.execute(
        world.mark_approved(proposal),
        delete(ApprovalStatementRow).where(
            ApprovalStatementRow.id.in_(_veto_statement_ids(world, proposal))
        ),
    )
    refusal = attempt(world, proposal, APPROVER_CODES[0], "BTC")
    audit = world.verify("audit")
    policy = world.verify("policy")
    named_by = [
        result
        for result in (audit, policy)
        if result.exit_code == 1 and f"proposal {proposal}" in str(result.output).lower()
    ]
    assert (refusal is not None and signatures == []) or named_by, (
        f"the erased veto of proposal {proposal} was signed ({signatures}) and neither "
        f"`audit verify` (exit {audit.exit_code}) nor `policy verify` (exit {policy.exit_code}) "
        "names it"
    )


# --- 7. a forged roster genesis ------------------------------------------------------------------


def _forged_chain(world: AttackWorld) -> tuple[list[RosterRecord], dict[str, bytes]]:
    """A complete roster of the attacker's: a genesis listing the real institutions and their
    real ceremony fingerprints but ceremony keys the attacker made (and signed with), admins and
    approvers (the real officer ids) holding the attacker's keys, the real policy, the payee on
    the allowlist and the decree. Returns the records and the approvers' secrets by code."""
    reserve = world.reserve
    ceremony = {
        i.code: HDKey.from_seed(private_key(f"attacker ceremony {i.code}")) for i in INSTITUTIONS
    }
    secrets = {
        name: private_key(f"attacker key of {name}")
        for name in (*ADMINS.values(), *APPROVERS.values())
    }

    def entry(name: str, code: str, role: OfficerRole) -> OfficerEntry:
        officer = reserve.officers[name]
        return OfficerEntry(
            str(officer.id), name, code, frozenset({role}), (k1_public(secrets[name]),)
        )

    genesis = next_record(
        None,
        RecordKind.GENESIS,
        Genesis(
            "the attacker's roster",
            tuple(
                InstitutionEntry(
                    i.code,
                    i.name,
                    reserve.transcripts[i.code].fingerprint,
                    ceremony_public_key(ceremony[i.code]),
                )
                for i in INSTITUTIONS
            ),
            tuple(entry(ADMINS[i.code], i.code, OfficerRole.ADMIN) for i in INSTITUTIONS),
            RosterRules(),
        ),
    )
    for i in INSTITUTIONS:
        signature = sign_with_ceremony_key(ceremony[i.code], genesis.record_hash())
        genesis = genesis.with_signature(
            RecordSignature(i.code, CEREMONY_KEY_ID, Secp256k1Signature(signature))
        )
    records = [genesis]

    def append(kind: RecordKind, body: RecordBody, codes: tuple[str, ...]) -> None:
        record = next_record(records[-1], kind, body)
        for code in codes:
            admin = ADMINS[code]
            record = record.with_signature(
                RecordSignature(
                    str(reserve.officers[admin].id),
                    k1_public(secrets[admin]).key_id,
                    k1_sign(secrets[admin], record.record_hash()),
                )
            )
        records.append(record)

    for code in APPROVER_CODES:
        append(
            RecordKind.OFFICER_ADDED,
            OfficerAdded(entry(APPROVERS[code], code, OfficerRole.APPROVER)),
            (code,),
        )
    with reserve.sessions() as session:
        policy = current_policy(session)
        document = session.get_one(PolicyVersionRow, policy.version).document
        decree = session.scalars(select(LegalBasisRow)).one()
        ceilings = {
            row.asset: row.ceiling
            for row in session.scalars(
                select(LegalBasisCeilingRow).where(LegalBasisCeilingRow.legal_basis_id == decree.id)
            )
        }
    append(RecordKind.POLICY_SET, PolicySet(policy_hash_of(document), document), APPROVER_CODES)
    append(
        RecordKind.ALLOWLIST_ADDED,
        AllowlistAdded("BTC", world.payees["BTC"], "payee"),
        APPROVER_CODES,
    )
    append(
        RecordKind.DECREE_ADDED,
        DecreeAdded(
            decree.reference, decree.title, decree.expires_at.replace(microsecond=0), ceilings
        ),
        APPROVER_CODES,
    )
    replay(records)  # the forgery is a valid chain in itself: only its anchor is wrong
    return records, {code: secrets[APPROVERS[code]] for code in APPROVER_CODES}


def test_a_forged_roster_genesis_is_refused_and_named(
    world: AttackWorld, signatures: list[str]
) -> None:
    """Every roster row replaced by the attacker's own chain, and the approved proposal's
    statements by ones its approvers' ids 'signed' with the attacker's keys: the signer finds
    the genesis is not anchored in its ceremony; ``roster verify`` and ``audit verify`` name
    record 0."""
    proposal = world.proposals.btc_approved
    records, secrets = _forged_chain(world)
    statements = []
    for code in APPROVER_CODES:
        officer = world.officer(APPROVERS[code])
        statement = world.statement(proposal, officer)
        statements.append(
            world.statement_row(
                proposal, signed_by(secrets[code], k1_public(secrets[code]).key_id, statement)
            )
        )
    world.execute(
        delete(RosterRecordRow),
        delete(ApprovalStatementRow).where(ApprovalStatementRow.proposal_id == proposal),
        *(roster_row(world, record) for record in records),
        *statements,
    )
    refused_by_both(
        world,
        signatures,
        proposal,
        "BTC",
        CeremonySignatureError,
        "ceremony key that is not this seed's",
    )
    named(world.verify("roster"), "roster broken at record 0")
    named(world.verify("audit"), "roster broken at record 0")


# --- no roster at all ----------------------------------------------------------------------------


def test_a_deleted_roster_signs_nothing(world: AttackWorld, signatures: list[str]) -> None:
    """Every ``roster_records`` row deleted: with no genesis there is no officer to verify, so
    nothing is signed (no unchecked fallback); ``roster verify`` names the deleted records."""
    world.execute(delete(RosterRecordRow))
    assert world.scalar(select(func.count()).select_from(RosterRecordRow)) == 0
    for asset, proposal in (
        ("BTC", world.proposals.btc_approved),
        ("ETH", world.proposals.eth_approved),
    ):
        for code in APPROVER_CODES:
            assert attempt(world, proposal, code, asset) is not None
    assert signatures == [], "signed without a roster"
    named(world.verify("roster"), "records were deleted")
