"""The roster's genesis: built from the treasury's institutions, signed by each one's ceremony.

The genesis lists every institution that has a key ceremony, with its ceremony fingerprint and
ceremony public key, and its first admin with that admin's officer key. Its hash is then signed
by each institution's ceremony key, which only a quorum of that institution's share holders can
produce by recombining their seed. So the steps follow the people:

1. each institution's share holders derive their ceremony public key (``ceremony_key_of``): it is
   public, and needed before the genesis exists because the genesis hash covers it;
2. the operator builds the unsigned genesis (``build_genesis``);
3. each institution's share holders sign it (``sign_genesis``): the recombined seed must be the
   transcript's and its ceremony key the one the genesis lists, or nothing is signed;
4. once every institution has signed, the genesis is stored (``commit_genesis``).

Seeds are recombined only inside ``custody.keys.signing_keys``, which checks the fingerprint and
wipes the seed when the block ends; nothing derived from them but public keys and signatures
leaves this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from custody.authority import (
    CEREMONY_KEY_ID,
    CeremonySignatureError,
    Genesis,
    InstitutionEntry,
    OfficerEntry,
    OfficerPublicKey,
    OfficerRole,
    RecordKind,
    RecordSignature,
    RosterRecord,
    RosterRules,
    Secp256k1Signature,
    ceremony_public_key,
    next_record,
    sign_with_ceremony_key,
    verify_genesis_for,
)
from custody.authority.roster_bodies import parse_body
from custody.ceremony import Transcript, list_transcripts
from custody.clock import Clock, utc_now
from custody.keys import signing_keys
from custody.shamir import combine_shares, parse_shares
from treasury.authority.errors import RosterInputError
from treasury.authority.store import append_record
from treasury.officers import Institution, Officer, Role, list_institutions, list_officers

__all__ = [
    "DEFAULT_ROSTER_NAME",
    "build_genesis",
    "ceremony_institutions",
    "ceremony_key_of",
    "check_against_transcripts",
    "commit_genesis",
    "genesis_body",
    "sign_genesis",
    "transcript_of",
]

DEFAULT_ROSTER_NAME = "national-reserve"
"""The genesis ``name`` unless another is given (it keeps two rosters' genesis hashes apart)."""


def genesis_body(record: RosterRecord) -> Genesis:
    """The parsed body of a genesis record (``RosterInputError`` for any other kind)."""
    if record.kind is not RecordKind.GENESIS:
        raise RosterInputError(f"Record {record.sequence} is a {record.kind.value}, not a genesis.")
    body = parse_body(RecordKind.GENESIS, record.body)
    if not isinstance(body, Genesis):
        raise RosterInputError("The genesis body did not parse as a genesis.")
    return body


def transcript_of(session: Session, institution: Institution) -> Transcript | None:
    """The ceremony transcript recorded under the institution's name, if any."""
    return next((t for t in list_transcripts(session) if t.institution == institution.name), None)


def ceremony_institutions(session: Session) -> list[tuple[Institution, Transcript]]:
    """The treasury's institutions that have a key ceremony, each with its transcript."""
    found = []
    for institution in list_institutions(session):
        transcript = transcript_of(session, institution)
        if transcript is not None:
            found.append((institution, transcript))
    return found


def _institution(session: Session, code: str) -> tuple[Institution, Transcript]:
    for institution, transcript in ceremony_institutions(session):
        if institution.code == code:
            return institution, transcript
    raise RosterInputError(
        f"Institution {code} is not a treasury institution with a key ceremony recorded under "
        "its name (see `treasury ceremony show` and `treasury officers`)."
    )


def ceremony_key_of(
    session: Session, code: str, shares: Sequence[str], passphrase: str
) -> tuple[str, bytes]:
    """Recombine institution ``code``'s shares; return its ceremony fingerprint and public key.

    The seed must have the transcript's fingerprint (``FingerprintMismatchError`` otherwise) and
    is wiped before this returns.
    """
    _institution_row, transcript = _institution(session, code)
    seed = combine_shares(parse_shares(list(shares)), passphrase)
    with signing_keys(seed, transcript.fingerprint) as keys:
        return transcript.fingerprint, ceremony_public_key(keys.bitcoin_root)


def _first_admin(officers: Sequence[Officer], code: str, now: datetime) -> Officer:
    admins = [
        o
        for o in officers
        if o.institution_code == code and Role.ADMIN in o.roles and o.is_active(now)
    ]
    if not admins:
        raise RosterInputError(
            f"Institution {code} has no active admin; found its first admin "
            "(`treasury officers found`) before building the genesis."
        )
    return min(admins, key=lambda o: o.id)


def build_genesis(
    session: Session,
    admin_keys: Mapping[str, OfficerPublicKey],
    ceremony_keys: Mapping[str, bytes],
    *,
    name: str = DEFAULT_ROSTER_NAME,
    rules: RosterRules | None = None,
    clock: Clock = utc_now,
) -> RosterRecord:
    """The unsigned genesis of every institution with a ceremony, and each one's first admin.

    ``admin_keys`` and ``ceremony_keys`` map institution codes to the first admin's officer key
    and the ceremony public key (``ceremony_key_of``); both must name exactly the institutions
    that have a ceremony.
    """
    rules = rules or RosterRules()
    pairs = ceremony_institutions(session)
    codes = [institution.code for institution, _ in pairs]
    if not codes:
        raise RosterInputError("No treasury institution has a key ceremony: nothing to anchor in.")
    for given, what in ((admin_keys, "--admin-key"), (ceremony_keys, "--ceremony-key")):
        missing = sorted(set(codes) - set(given))
        unknown = sorted(set(given) - set(codes))
        if missing or unknown:
            raise RosterInputError(
                f"The genesis covers the institutions with a ceremony ({', '.join(codes)}); "
                f"{what} is missing for {missing or 'none'} and names unknown {unknown or 'none'}."
            )
    for rule, count in (
        ("change_institutions", rules.change_institutions),
        ("approval_institutions", rules.approval_institutions),
    ):
        if not 1 <= count <= len(codes):
            raise RosterInputError(f"The rule {rule}={count} is not between 1 and {len(codes)}.")
    officers = list_officers(session)
    now = clock()
    entries = []
    admins = []
    for institution, transcript in pairs:
        entries.append(
            InstitutionEntry(
                institution.code,
                institution.name,
                transcript.fingerprint,
                ceremony_keys[institution.code],
            )
        )
        admin = _first_admin(officers, institution.code, now)
        admins.append(
            OfficerEntry(
                officer_id=str(admin.id),
                name=admin.name,
                institution=institution.code,
                roles=frozenset(OfficerRole(role.value) for role in admin.roles),
                keys=(admin_keys[institution.code],),
            )
        )
    return next_record(
        None, RecordKind.GENESIS, Genesis(name, tuple(entries), tuple(admins), rules)
    )


def sign_genesis(
    session: Session, genesis: RosterRecord, code: str, shares: Sequence[str], passphrase: str
) -> RosterRecord:
    """The genesis with institution ``code``'s ceremony signature added, made by its shares.

    Refused before signing if the recombined seed is not the transcript's, or if the genesis does
    not list this institution with this seed's fingerprint and ceremony key.
    """
    body = genesis_body(genesis)
    entry = next((i for i in body.institutions if i.code == code), None)
    if entry is None:
        raise RosterInputError(f"The genesis does not list institution {code}.")
    if any(s.signer == code for s in genesis.signatures):
        raise RosterInputError(f"The genesis already carries the ceremony signature of {code}.")
    _institution_row, transcript = _institution(session, code)
    if entry.ceremony_fingerprint != transcript.fingerprint:
        raise CeremonySignatureError(
            f"The genesis gives {code} the ceremony fingerprint {entry.ceremony_fingerprint}, but "
            f"its transcript records {transcript.fingerprint}; nothing was signed."
        )
    seed = combine_shares(parse_shares(list(shares)), passphrase)
    with signing_keys(seed, transcript.fingerprint) as keys:
        root = keys.bitcoin_root
        if ceremony_public_key(root) != entry.ceremony_public_key:
            raise CeremonySignatureError(
                f"The genesis gives {code} a ceremony key that is not its seed's; nothing was "
                "signed."
            )
        signature = sign_with_ceremony_key(root, genesis.record_hash())
        signed = genesis.with_signature(
            RecordSignature(code, CEREMONY_KEY_ID, Secp256k1Signature(signature))
        )
        verify_genesis_for(root, signed)
    return signed


def check_against_transcripts(session: Session, genesis: RosterRecord) -> None:
    """Refuse a genesis whose institutions or fingerprints are not the treasury's ceremonies'."""
    known = {
        institution.code: transcript for institution, transcript in ceremony_institutions(session)
    }
    for entry in genesis_body(genesis).institutions:
        transcript = known.get(entry.code)
        if transcript is None:
            raise CeremonySignatureError(
                f"The genesis lists institution {entry.code}, which has no key ceremony in the "
                "treasury."
            )
        if transcript.fingerprint != entry.ceremony_fingerprint:
            raise CeremonySignatureError(
                f"The genesis gives {entry.code} the ceremony fingerprint "
                f"{entry.ceremony_fingerprint}, but its transcript records "
                f"{transcript.fingerprint}: the genesis was not made with its ceremony."
            )


def commit_genesis(session: Session, genesis: RosterRecord, *, clock: Clock = utc_now) -> None:
    """Store the genesis once every institution's ceremony has signed it (custody replays it)."""
    check_against_transcripts(session, genesis)
    officers = {str(o.id): o for o in list_officers(session)}
    for admin in genesis_body(genesis).admins:
        officer = officers.get(admin.officer_id)
        if officer is None or officer.institution_code != admin.institution:
            raise RosterInputError(
                f"The genesis admin {admin.officer_id} ({admin.name}) is not a treasury officer "
                f"of {admin.institution}."
            )
    append_record(session, genesis, clock=clock)
