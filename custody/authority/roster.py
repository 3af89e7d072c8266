"""Replay the roster and policy chain into the state a signer trusts, or say why not.

A database writer can insert any row, so the signer trusts no row: it replays the records from a
genesis that each institution's ceremony key signed (only a quorum of that institution's share
holders can produce that signature) and applies each change only if the signatures the rules
require are there:

- an institution's officers, keys and roles change only with a signature of an active admin of
  THAT institution (an admin of another institution cannot add an approver next door);
- a policy, allowlist or decree record needs admins of ``rules.change_institutions`` distinct
  institutions;
- no change may leave an institution without an active admin holding an active key.

``verify_genesis_for`` is the other half of the anchor: the signer that has just recombined its
seed checks that the genesis carries its own ceremony key, so a genesis built around other
ceremony keys (however well signed) is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from embit.bip32 import HDKey

from custody.authority import canonical, secp256k1
from custody.authority import roster_bodies as rb
from custody.authority.ceremony_key import ceremony_public_key
from custody.authority.errors import (
    BrokenChainError,
    CeremonySignatureError,
    ChangeQuorumError,
    GenesisError,
    SignatureError,
    UnauthorizedChangeError,
)
from custody.authority.officer_key import OfficerPublicKey
from custody.authority.roster_record import (
    CEREMONY_KEY_ID,
    GENESIS_PREV_HASH,
    RecordKind,
    RosterRecord,
)
from custody.authority.roster_state import OfficerState, RosterState, StateBuilder
from custody.authority.signature import Secp256k1Signature, verify_signature

__all__ = [
    "OfficerState",
    "RosterState",
    "active_key",
    "next_record",
    "policy_hash_of",
    "preview_change",
    "replay",
    "verify_genesis_for",
]

_CROSS_INSTITUTION = frozenset(
    {RecordKind.POLICY_SET, RecordKind.ALLOWLIST_ADDED, RecordKind.DECREE_ADDED}
)


def next_record(
    previous: RosterRecord | None, kind: RecordKind, body: rb.RecordBody
) -> RosterRecord:
    """An unsigned record that follows ``previous`` (``None`` for the genesis)."""
    if previous is None:
        return RosterRecord(0, GENESIS_PREV_HASH, kind, canonical.encode(body.to_json()))
    return RosterRecord(
        previous.sequence + 1, previous.record_hash(), kind, canonical.encode(body.to_json())
    )


def replay(records: Sequence[RosterRecord]) -> RosterState:
    """Verify every link, signature and rule from the genesis on; return the resulting state."""
    builder, head = _replay_builder(records)
    return builder.freeze(head.record_hash())


def preview_change(records: Sequence[RosterRecord], draft: RosterRecord) -> RosterState:
    """The state ``draft`` would lead to once signed as the rules require, or the reason it can
    never apply (a wrong link, an unknown officer, a reused key id, a duplicate entry...).

    ``records`` are replayed in full; the draft's own signatures are NOT checked. This is for
    refusing a nonsensical change before any admin is asked to sign it; nothing may trust the
    result as a chain (``replay`` is the only verdict on a chain).
    """
    builder, head = _replay_builder(records)
    _check_link(draft, len(records), head)
    body = rb.parse_body(draft.kind, draft.body)
    if draft.kind in _CROSS_INSTITUTION:
        builder.apply_shared(draft.sequence, body)
    else:
        builder.institution_of(body)
        builder.apply_officer_change(draft.kind, body)
        builder.require_admins()
    return builder.freeze(draft.record_hash())


def _check_link(record: RosterRecord, index: int, previous: RosterRecord) -> None:
    if record.sequence != index:
        raise BrokenChainError(
            f"Record {index} carries sequence {record.sequence}: a record was dropped, "
            "inserted or reordered."
        )
    if record.prev_hash != previous.record_hash():
        raise BrokenChainError(
            f"Record {index} does not link to record {index - 1}'s hash: the chain was "
            "edited or spliced."
        )
    if record.kind is RecordKind.GENESIS:
        raise GenesisError(f"Record {index} is a second genesis; only record 0 may be one.")


def _replay_builder(records: Sequence[RosterRecord]) -> tuple[StateBuilder, RosterRecord]:
    """The state after every record (all verified), and the last record."""
    if not records:
        raise GenesisError("The roster chain is empty: there is no genesis to start from.")
    builder = _apply_genesis(records[0])
    previous = records[0]
    for index, record in enumerate(records[1:], start=1):
        _check_link(record, index, previous)
        _apply_change(builder, record)
        previous = record
    return builder, previous


def verify_genesis_for(root: HDKey, genesis: RosterRecord) -> rb.InstitutionEntry:
    """Check, with a freshly recombined seed's root, that the genesis is anchored in it.

    The institution whose ceremony fingerprint is the root's must list the root's ceremony public
    key, and the genesis must carry that key's valid signature. Returns the institution.
    """
    body = _genesis_body(genesis)
    fingerprint = root.my_fingerprint.hex()
    entry = next((i for i in body.institutions if i.ceremony_fingerprint == fingerprint), None)
    if entry is None:
        raise CeremonySignatureError(
            f"The roster genesis lists no institution with ceremony fingerprint {fingerprint}: "
            "it was not made with this seed's ceremony."
        )
    if entry.ceremony_public_key != ceremony_public_key(root):
        raise CeremonySignatureError(
            f"The roster genesis gives institution {entry.code} a ceremony key that is not this "
            "seed's: the genesis is forged or belongs to another ceremony."
        )
    _check_ceremony_signature(genesis, entry)
    return entry


def _genesis_body(record: RosterRecord) -> rb.Genesis:
    if record.kind is not RecordKind.GENESIS or record.sequence != 0:
        raise GenesisError("Record 0 of the roster chain must be the genesis.")
    if record.prev_hash != GENESIS_PREV_HASH:
        raise GenesisError("The genesis must link to 32 zero bytes.")
    body = rb.parse_body(RecordKind.GENESIS, record.body)
    if not isinstance(body, rb.Genesis):  # parse_body's table guarantees it; narrow for typing
        raise GenesisError("The genesis body did not parse as a genesis.")
    return body


def _check_ceremony_signature(record: RosterRecord, entry: rb.InstitutionEntry) -> None:
    mine = [s for s in record.signatures if s.signer == entry.code]
    if len(mine) != 1 or mine[0].key_id != CEREMONY_KEY_ID:
        raise CeremonySignatureError(
            f"The roster genesis needs exactly one ceremony-key signature of {entry.code}, "
            f"found {len(mine)}."
        )
    signature = mine[0].signature
    if not isinstance(signature, Secp256k1Signature):
        raise CeremonySignatureError(f"The ceremony signature of {entry.code} is not secp256k1.")
    try:
        secp256k1.verify_digest(
            entry.ceremony_public_key, record.record_hash(), signature.signature
        )
    except SignatureError as exc:
        raise CeremonySignatureError(
            f"The ceremony-key signature of {entry.code} on the roster genesis does not verify: "
            f"{exc}"
        ) from exc


def _apply_genesis(record: RosterRecord) -> StateBuilder:
    body = _genesis_body(record)
    codes = [i.code for i in body.institutions]
    if not codes or len(set(codes)) != len(codes):
        raise GenesisError("The genesis must list at least one institution, each code once.")
    keys = [i.ceremony_public_key for i in body.institutions]
    if len(set(keys)) != len(keys):
        raise GenesisError("Two institutions share a ceremony key: each ceremony has its own seed.")
    rules = body.rules
    for name, count in (
        ("change_institutions", rules.change_institutions),
        ("approval_institutions", rules.approval_institutions),
    ):
        if not 1 <= count <= len(codes):
            raise GenesisError(f"The rule {name}={count} is not between 1 and {len(codes)}.")
    signers = {s.signer for s in record.signatures}
    if signers != set(codes) or len(record.signatures) != len(codes):
        raise CeremonySignatureError(
            "The genesis must carry exactly one ceremony signature per institution "
            f"({sorted(codes)}); it has {sorted(s.signer for s in record.signatures)}."
        )
    for entry in body.institutions:
        _check_ceremony_signature(record, entry)
    builder = StateBuilder(body)
    for admin in body.admins:
        if rb.OfficerRole.ADMIN not in admin.roles:
            raise GenesisError(f"The genesis officer {admin.officer_id} is not an admin.")
        builder.add_officer(admin)
    builder.require_admins()
    return builder


def _signing_admins(builder: StateBuilder, record: RosterRecord) -> dict[str, str]:
    """Verify every signature on ``record``; return officer id -> institution of the admins."""
    if not record.signatures:
        raise UnauthorizedChangeError(
            f"Record {record.sequence} ({record.kind.value}) carries no signature."
        )
    digest = record.record_hash()
    admins: dict[str, str] = {}
    for entry in record.signatures:
        officer = builder.officers.get(entry.signer)
        if officer is None or not officer.active:
            raise UnauthorizedChangeError(
                f"Record {record.sequence} is signed by {entry.signer!r}, who is not an active "
                "officer of the roster."
            )
        key = officer.keys.get(entry.key_id)
        if key is None:
            raise UnauthorizedChangeError(
                f"Record {record.sequence} is signed with key {entry.key_id!r}, which is not an "
                f"active key of officer {entry.signer}."
            )
        if rb.OfficerRole.ADMIN not in officer.roles:
            raise UnauthorizedChangeError(
                f"Record {record.sequence} is signed by {entry.signer}, who is not an admin."
            )
        try:
            verify_signature(key, digest, entry.signature)
        except SignatureError as exc:
            raise UnauthorizedChangeError(
                f"The signature of {entry.signer} on record {record.sequence} does not verify "
                f"(the record was altered after signing?): {exc}"
            ) from exc
        admins[officer.officer_id] = officer.institution
    return admins


def _apply_change(builder: StateBuilder, record: RosterRecord) -> None:
    body = rb.parse_body(record.kind, record.body)
    admins = _signing_admins(builder, record)
    if record.kind in _CROSS_INSTITUTION:
        institutions = set(admins.values())
        needed = builder.rules.change_institutions
        if len(institutions) < needed:
            raise ChangeQuorumError(
                f"Record {record.sequence} ({record.kind.value}) is signed by admins of "
                f"{sorted(institutions)}; it needs admins of {needed} distinct institutions."
            )
        builder.apply_shared(record.sequence, body)
        return
    institution = builder.institution_of(body)
    if institution not in admins.values():
        raise UnauthorizedChangeError(
            f"Record {record.sequence} ({record.kind.value}) changes institution "
            f"{institution}'s officers but no active admin of {institution} signed it."
        )
    builder.apply_officer_change(record.kind, body)
    builder.require_admins()


def policy_hash_of(document: str) -> str:
    """SHA-256 (hex) of a policy document's UTF-8 text: the hash statements name."""
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def active_key(state: RosterState, officer_id: str, key_id: str) -> OfficerPublicKey | None:
    """The officer's active key with that id, or ``None`` (inactive officer or revoked key)."""
    officer = state.officers.get(officer_id)
    if officer is None or not officer.active:
        return None
    return officer.keys.get(key_id)
