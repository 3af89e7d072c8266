"""The roster chain: replays from a ceremony-signed genesis, and refuses what a DB writer forges."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from authority_support import INSTITUTIONS, Deployment, ceremony_root, k1_public, private_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custody.authority import (
    CEREMONY_KEY_ID,
    AllowlistAdded,
    AuthorityError,
    BrokenChainError,
    CeremonySignatureError,
    ChangeQuorumError,
    DecreeAdded,
    Genesis,
    GenesisError,
    InstitutionEntry,
    InvalidChangeError,
    KeyRotated,
    OfficerAdded,
    OfficerEntry,
    OfficerRemoved,
    OfficerRole,
    PolicySet,
    RecordKind,
    RecordSignature,
    RoleChanged,
    RosterError,
    RosterRecord,
    Secp256k1Signature,
    UnauthorizedChangeError,
    canonical,
    ceremony_public_key,
    next_record,
    policy_hash_of,
    replay,
    sign_with_ceremony_key,
    verify_genesis_for,
)
from custody.authority.roster_bodies import parse_body

DEPLOYMENT = Deployment.build()


def _fresh() -> Deployment:
    return Deployment(
        records=list(DEPLOYMENT.records),
        secrets=dict(DEPLOYMENT.secrets),
        passkeys=dict(DEPLOYMENT.passkeys),
        roots=dict(DEPLOYMENT.roots),
    )


def test_valid_chain_replays_to_the_expected_state() -> None:
    """Officers, roles, keys, policy and allowlist come out of the signed records."""
    state = DEPLOYMENT.state()
    assert set(state.institutions) == set(INSTITUTIONS)
    assert state.officers["cb-alice"].roles == {OfficerRole.APPROVER}
    assert state.officers["mof-carol"].institution == "MOF"
    assert state.policy_hash == policy_hash_of(state.policy_document or "")
    assert state.allows_destination("BTC", "bcrt1qpayee")
    assert state.head_hash == DEPLOYMENT.records[-1].record_hash()


def test_records_survive_json_round_trip() -> None:
    """A record stored as JSON and read back replays identically."""
    stored = [json.loads(json.dumps(r.to_json())) for r in DEPLOYMENT.records]
    assert replay([RosterRecord.from_json(r) for r in stored]) == DEPLOYMENT.state()


def test_verify_genesis_for_each_institution_seed() -> None:
    """Each institution's recombined root finds its own ceremony key and signature."""
    for code in INSTITUTIONS:
        entry = verify_genesis_for(DEPLOYMENT.roots[code], DEPLOYMENT.records[0])
        assert entry.code == code


def _forged_genesis(with_roots: dict[str, object]) -> RosterRecord:
    """A genesis a DB writer builds with ceremony keys of their own, fully self-consistent."""
    institutions = []
    for code in INSTITUTIONS:
        root = with_roots[code]
        institutions.append(
            InstitutionEntry(code, code, root.my_fingerprint.hex(), ceremony_public_key(root))  # type: ignore[attr-defined]
        )
    mallory = OfficerEntry(
        "cb-admin",
        "Mallory",
        "CB",
        frozenset({OfficerRole.ADMIN, OfficerRole.APPROVER}),
        (k1_public(private_key("mallory")),),
    )
    admins = [mallory] + [
        OfficerEntry(
            f"{c.lower()}-admin",
            "M",
            c,
            frozenset({OfficerRole.ADMIN}),
            (k1_public(private_key("m" + c)),),
        )
        for c in INSTITUTIONS[1:]
    ]
    record = next_record(
        None, RecordKind.GENESIS, Genesis("test-reserve", tuple(institutions), tuple(admins))
    )
    for code in INSTITUTIONS:
        record = record.with_signature(
            RecordSignature(
                code,
                CEREMONY_KEY_ID,
                Secp256k1Signature(sign_with_ceremony_key(with_roots[code], record.record_hash())),  # type: ignore[arg-type]
            )
        )
    return record


def test_forged_genesis_signed_by_other_ceremony_keys_is_refused_by_the_signer() -> None:
    """A genesis made with the attacker's own ceremony keys replays, but no real seed accepts it."""
    forged_roots = {code: ceremony_root("forged " + code) for code in INSTITUTIONS}
    forged = _forged_genesis(forged_roots)
    replay([forged])  # internally consistent: only the anchor in the real seed can catch it
    for code in INSTITUTIONS:
        with pytest.raises(CeremonySignatureError):
            verify_genesis_for(DEPLOYMENT.roots[code], forged)


def test_forged_genesis_reusing_real_public_keys_lacks_valid_signatures() -> None:
    """Copying the real fingerprints and ceremony keys does not help without the seeds."""
    real = parse_body(RecordKind.GENESIS, DEPLOYMENT.records[0].body)
    assert isinstance(real, Genesis)
    mallory = OfficerEntry(
        "cb-admin",
        "Mallory",
        "CB",
        frozenset({OfficerRole.ADMIN}),
        (k1_public(private_key("mallory")),),
    )
    body = replace(real, admins=(mallory, *real.admins[1:]))
    forged = next_record(None, RecordKind.GENESIS, body)
    for signature in DEPLOYMENT.records[0].signatures:  # old signatures, new hash
        forged = forged.with_signature(signature)
    with pytest.raises(CeremonySignatureError):
        replay([forged])
    with pytest.raises(CeremonySignatureError):
        verify_genesis_for(DEPLOYMENT.roots["CB"], forged)


def test_genesis_missing_one_ceremony_signature_is_refused() -> None:
    """Every institution's ceremony must sign the genesis."""
    genesis = DEPLOYMENT.records[0]
    partial = RosterRecord(
        genesis.sequence, genesis.prev_hash, genesis.kind, genesis.body, genesis.signatures[:2]
    )
    with pytest.raises(CeremonySignatureError):
        replay([partial])


def test_inserted_officer_without_admin_signature_is_refused() -> None:
    """A DB writer's officer record, unsigned or self-signed, does not replay."""
    d = _fresh()
    entry = OfficerEntry(
        "cb-eve",
        "Eve",
        "CB",
        frozenset({OfficerRole.APPROVER}),
        (k1_public(private_key("eve")),),
    )
    d.secrets["cb-eve"] = private_key("eve")
    unsigned = d.make(RecordKind.OFFICER_ADDED, OfficerAdded(entry), [])
    with pytest.raises(UnauthorizedChangeError, match="no signature"):
        replay([*d.records, unsigned])
    self_signed = d.make(RecordKind.OFFICER_ADDED, OfficerAdded(entry), ["cb-eve"])
    with pytest.raises(UnauthorizedChangeError, match="not an active officer"):
        replay([*d.records, self_signed])
    by_approver = d.make(RecordKind.OFFICER_ADDED, OfficerAdded(entry), ["cb-alice"])
    with pytest.raises(UnauthorizedChangeError, match="not an admin"):
        replay([*d.records, by_approver])


def test_admin_of_another_institution_cannot_change_officers() -> None:
    """MOF's admin cannot add a CB approver, grant a CB role or rotate a CB key."""
    d = _fresh()
    entry = OfficerEntry(
        "cb-eve", "Eve", "CB", frozenset({OfficerRole.APPROVER}), (k1_public(private_key("e")),)
    )
    for kind, body in (
        (RecordKind.OFFICER_ADDED, OfficerAdded(entry)),
        (RecordKind.ROLE_GRANTED, RoleChanged("cb-alice", OfficerRole.ADMIN)),
        (RecordKind.KEY_ROTATED, KeyRotated("cb-alice", (k1_public(private_key("x")),), ())),
        (RecordKind.OFFICER_REMOVED, OfficerRemoved("cb-admin")),
    ):
        record = d.make(kind, body, ["mof-admin"])
        with pytest.raises(UnauthorizedChangeError, match="no active admin of CB"):
            replay([*d.records, record])


def test_key_inserted_into_an_officer_without_signature_is_refused() -> None:
    """A key rotation signed only by the officer themselves (not an admin) is refused."""
    d = _fresh()
    rotate = KeyRotated("cb-alice", (k1_public(private_key("eve")),), ())
    with pytest.raises(UnauthorizedChangeError):
        replay([*d.records, d.make(RecordKind.KEY_ROTATED, rotate, ["cb-alice"])])
    replay([*d.records, d.make(RecordKind.KEY_ROTATED, rotate, ["cb-admin"])])


@pytest.mark.parametrize(
    "body",
    [
        PolicySet(policy_hash_of("{}"), "{}"),
        AllowlistAdded("BTC", "bcrt1qattacker", "Attacker"),
        DecreeAdded(
            "Decree 666",
            "Fake",
            DEPLOYMENT.statement("cb-alice").expires_at,
            {"BTC": 10**9},
        ),
    ],
    ids=["policy", "allowlist", "decree"],
)
def test_cross_institution_change_signed_by_one_institution_is_refused(body: object) -> None:
    """Policy, allowlist and decree records need admins of two distinct institutions."""
    d = _fresh()
    kind = {
        PolicySet: RecordKind.POLICY_SET,
        AllowlistAdded: RecordKind.ALLOWLIST_ADDED,
        DecreeAdded: RecordKind.DECREE_ADDED,
    }[type(body)]
    d.add_officer("cb-admin2", "CB", {OfficerRole.ADMIN}, signer="cb-admin")
    one = d.make(kind, body, ["cb-admin", "cb-admin2"])  # type: ignore[arg-type]
    with pytest.raises(ChangeQuorumError):
        replay([*d.records, one])
    two = d.make(kind, body, ["cb-admin", "mof-admin"])  # type: ignore[arg-type]
    replay([*d.records, two])


def test_policy_hash_must_match_document() -> None:
    """A policy record whose hash is not its document's is refused."""
    d = _fresh()
    record = d.make(
        RecordKind.POLICY_SET,
        PolicySet(policy_hash_of("other"), '{"limits":"raised"}'),
        ["cb-admin", "mof-admin"],
    )
    with pytest.raises(InvalidChangeError):
        replay([*d.records, record])


def test_last_admin_cannot_be_removed_and_ids_are_not_reused() -> None:
    """No change may leave an institution without an admin; officer ids are never reused."""
    d = _fresh()
    with pytest.raises(InvalidChangeError, match="no active admin"):
        replay(
            [
                *d.records,
                d.make(RecordKind.OFFICER_REMOVED, OfficerRemoved("cb-admin"), ["cb-admin"]),
            ]
        )
    entry = OfficerEntry(
        "cb-alice", "Twin", "CB", frozenset({OfficerRole.APPROVER}), (k1_public(private_key("t")),)
    )
    with pytest.raises(InvalidChangeError, match="never reused"):
        replay([*d.records, d.make(RecordKind.OFFICER_ADDED, OfficerAdded(entry), ["cb-admin"])])


def test_dropped_reordered_or_second_genesis_records_break_the_chain() -> None:
    """Removing, swapping or re-rooting records is named by replay."""
    records = DEPLOYMENT.records
    with pytest.raises(BrokenChainError):
        replay([records[0], *records[2:]])
    with pytest.raises(BrokenChainError):
        replay([records[0], records[2], records[1], *records[3:]])
    with pytest.raises(GenesisError):
        replay(records[1:])
    with pytest.raises(GenesisError):
        replay([])


def _edit_body(record: RosterRecord, data: st.DataObject) -> RosterRecord:
    """Change one string somewhere in the record's body to another string."""
    obj = canonical.parse(record.body)
    paths: list[tuple[list[object], object]] = []

    def walk(node: object, path: list[object]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, [*path, k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, [*path, i])
        elif isinstance(node, str):
            paths.append((path, node))

    walk(obj, [])
    path, old = data.draw(st.sampled_from(paths))
    new = data.draw(st.text(min_size=1, max_size=8).filter(lambda s: s != old))
    target = obj
    for step in path[:-1]:
        target = target[step]  # type: ignore[index]
    target[path[-1]] = new  # type: ignore[index]
    return RosterRecord(
        record.sequence, record.prev_hash, record.kind, canonical.encode(obj), record.signatures
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_record_edit_breaks_the_chain(data: st.DataObject) -> None:
    """Edit any string of any record's body, or its kind: replay refuses the chain."""
    records = list(DEPLOYMENT.records)
    index = data.draw(st.integers(min_value=0, max_value=len(records) - 1))
    records[index] = _edit_body(records[index], data)
    with pytest.raises(AuthorityError):
        replay(records)


def test_editing_a_signature_breaks_the_chain() -> None:
    """Replacing a record's signature with one over another record is refused."""
    records = list(DEPLOYMENT.records)
    victim, donor = records[5], records[1]
    records[5] = RosterRecord(
        victim.sequence, victim.prev_hash, victim.kind, victim.body, donor.signatures
    )
    with pytest.raises(RosterError):
        replay(records)
