"""Changes to the signed roster chain after its genesis: drafted, signed by admins, committed.

Every change to who may sign (officers, keys, roles) and to what they sign under (policy,
allowlist, decrees) is a record that the admins the rules name must sign with their own keys,
and that the signers replay before every signature. Nobody edits a table; the steps follow the
people::

    draft    the operator turns typed inputs into the next unsigned record (``draft_*``), which
             is refused at once if it could never apply (unknown officer, reused key id,
             duplicate allowlist entry or decree, a policy that is not the stored version...);
    sign     each required admin checks what the record says (``describe``) and adds a signature
             with their key file (``sign_record``); a draft the chain has moved past is refused;
    commit   the record is stored (``commit_record``): ``append_record`` replays the chain with
             it and refuses, writing nothing, unless its signatures meet the rules -- an active
             admin of the officer's own institution for officer, key and role changes; admins of
             ``rules.change_institutions`` distinct institutions for policy, allowlist and decree.

Amounts are base units here; ``base_units`` turns a person's exact coin amount (``"1.5"`` BTC)
into them with the asset's decimals. The record file is the record's JSON (``record_file_text``),
so a draft can travel between the admins' machines and be checked by each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.authority import (
    AllowlistAdded,
    DecreeAdded,
    EncodingError,
    KeyRotated,
    OfficerAdded,
    OfficerEntry,
    OfficerPublicKey,
    OfficerRemoved,
    OfficerRole,
    PolicySet,
    RecordKind,
    RecordSignature,
    RoleChanged,
    RosterRecord,
    RosterState,
    Secp256k1Signature,
    load_public_key,
    next_record,
    policy_hash_of,
    preview_change,
    replay,
    sign_digest,
)
from custody.authority.roster_bodies import RecordBody, parse_body
from custody.clock import Clock, utc_now
from treasury.authority.errors import NoRosterError, RosterInputError
from treasury.authority.genesis import commit_genesis
from treasury.authority.store import append_record, load_records
from treasury.exceptions import TreasuryError
from treasury.ledger import get_asset
from treasury.officers import get_officer
from treasury.policy.tables import PolicyVersionRow
from treasury.policy.versions import altered_because
from treasury.workflow_exceptions import UnknownRecordError

__all__ = [
    "CROSS_INSTITUTION_KINDS",
    "KNOWN_DECIMALS",
    "Requirement",
    "asset_decimals",
    "base_units",
    "chain_state",
    "coin_units",
    "commit_record",
    "describe",
    "draft_allowlist_added",
    "draft_decree_added",
    "draft_key_rotated",
    "draft_officer_added",
    "draft_officer_removed",
    "draft_policy_set",
    "draft_role_changed",
    "load_record_file",
    "public_keys",
    "record_file_text",
    "requirement",
    "sign_record",
]

CROSS_INSTITUTION_KINDS = frozenset(
    {RecordKind.POLICY_SET, RecordKind.ALLOWLIST_ADDED, RecordKind.DECREE_ADDED}
)
"""Record kinds that admins of ``rules.change_institutions`` institutions must sign."""
KNOWN_DECIMALS = {"BTC": 8, "ETH": 18}
"""Decimals of the chains' native assets, used when the ledger has not registered them yet."""
_COIN_AMOUNT = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")


# --- Amounts ----------------------------------------------------------------------------------


def asset_decimals(session: Session, asset: str) -> int:
    """The asset's decimals: the ledger's registration, else BTC's 8 or ETH's 18."""
    try:
        return get_asset(session, asset).decimals
    except TreasuryError:
        if asset in KNOWN_DECIMALS:
            return KNOWN_DECIMALS[asset]
        raise RosterInputError(
            f"The asset {asset!r} is not registered in the ledger, so its decimals are unknown; "
            "register it (or track the token) before giving amounts in it."
        ) from None


def base_units(text: str, decimals: int, what: str) -> int:
    """An exact coin amount as people write it (``"1.5"``) in base units; never rounded.

    Refused: signs, exponents, grouping, spaces, more fractional digits than the asset has, zero.
    """
    match = _COIN_AMOUNT.fullmatch(text)
    if match is None:
        raise RosterInputError(
            f"The {what} {text!r} is not a plain decimal amount such as 1.5 (no sign, exponent, "
            "spaces or thousands separators)."
        )
    whole, fraction = match.group(1), (match.group(2) or ".")[1:]
    if len(fraction) > decimals:
        raise RosterInputError(
            f"The {what} {text!r} has {len(fraction)} decimal places; the asset has {decimals}, "
            "so it cannot be represented exactly."
        )
    scale: int = 10**decimals
    amount = int(whole) * scale + int(fraction.ljust(decimals, "0") or "0")
    if amount <= 0:
        raise RosterInputError(f"The {what} must be positive, not {text!r}.")
    return amount


def coin_units(amount: int, decimals: int) -> str:
    """Base units as an exact coin amount without trailing zeros (``150000000, 8 -> '1.5'``)."""
    whole, fraction = divmod(amount, 10**decimals)
    if not decimals or not fraction:
        return str(whole)
    return f"{whole}.{fraction:0{decimals}d}".rstrip("0")


# --- Drafting ---------------------------------------------------------------------------------


def _chain(session: Session) -> tuple[RosterRecord, ...]:
    records = load_records(session)
    if not records:
        raise NoRosterError(
            "No roster genesis is stored: commit one (`treasury roster genesis`, `sign-genesis`, "
            "`commit`) before drafting changes to it."
        )
    return records


def _draft(session: Session, kind: RecordKind, body: RecordBody) -> RosterRecord:
    """The next record after the stored chain, refused now if it could never apply."""
    records = _chain(session)
    draft = next_record(records[-1], kind, body)
    preview_change(records, draft)
    return draft


def _roster_officer(session: Session, officer_id: str) -> str:
    officer = chain_state(session).officers.get(officer_id)
    if officer is None or not officer.active:
        raise RosterInputError(f"Officer {officer_id} is not an active officer of the roster.")
    return officer.officer_id


def chain_state(session: Session) -> RosterState:
    """The state the stored chain replays to (every record verified); ``NoRosterError`` if none."""
    return replay(_chain(session))


def draft_officer_added(
    session: Session,
    officer_id: int,
    keys: Sequence[OfficerPublicKey],
    roles: Iterable[OfficerRole] | None = None,
    *,
    clock: Clock = utc_now,
) -> RosterRecord:
    """OFFICER_ADDED for the treasury's officer ``officer_id`` with ``keys``.

    Name and institution are the treasury's; ``roles`` default to the officer's treasury roles
    and may only narrow them (the roster never grants what the treasury does not).
    """
    try:
        officer = get_officer(session, officer_id)
    except UnknownRecordError:
        raise RosterInputError(f"No treasury officer {officer_id} exists.") from None
    if not officer.is_active(clock()):
        raise RosterInputError(
            f"Officer {officer_id} ({officer.name}) was revoked in the treasury; a revoked officer "
            "does not enter the roster."
        )
    treasury_roles = frozenset(OfficerRole(role.value) for role in officer.roles)
    chosen = treasury_roles if roles is None else frozenset(roles)
    if not chosen:
        raise RosterInputError(f"Officer {officer_id} needs at least one role in the roster.")
    if not chosen <= treasury_roles:
        extra = sorted(role.value for role in chosen - treasury_roles)
        raise RosterInputError(
            f"Officer {officer_id} ({officer.name}) does not hold {', '.join(extra)} in the "
            "treasury; grant it there first."
        )
    if not keys:
        raise RosterInputError("An officer enters the roster with at least one public key.")
    entry = OfficerEntry(
        str(officer.id), officer.name, officer.institution_code, chosen, tuple(keys)
    )
    return _draft(session, RecordKind.OFFICER_ADDED, OfficerAdded(entry))


def draft_officer_removed(session: Session, officer_id: str) -> RosterRecord:
    """OFFICER_REMOVED: the officer's keys stop counting at once (its id is never reused)."""
    return _draft(
        session, RecordKind.OFFICER_REMOVED, OfficerRemoved(_roster_officer(session, officer_id))
    )


def draft_key_rotated(
    session: Session,
    officer_id: str,
    added: Sequence[OfficerPublicKey] = (),
    revoked: Sequence[str] = (),
) -> RosterRecord:
    """KEY_ROTATED: add public keys to and/or revoke key ids of one officer."""
    if not added and not revoked:
        raise RosterInputError("A key rotation adds a key (--add-key-file) or revokes one.")
    body = KeyRotated(_roster_officer(session, officer_id), tuple(added), tuple(revoked))
    return _draft(session, RecordKind.KEY_ROTATED, body)


def draft_role_changed(
    session: Session, officer_id: str, role: OfficerRole, *, grant: bool
) -> RosterRecord:
    """ROLE_GRANTED or ROLE_REVOKED of ``role`` for one roster officer."""
    kind = RecordKind.ROLE_GRANTED if grant else RecordKind.ROLE_REVOKED
    return _draft(session, kind, RoleChanged(_roster_officer(session, officer_id), role))


def draft_policy_set(session: Session, version: int | None = None) -> RosterRecord:
    """POLICY_SET of the treasury's stored policy version (the newest unless ``version``).

    The record carries the exact stored document, which must still hash to the version's
    recorded hash: a version altered at rest is never signed into the chain.
    """
    if version is None:
        row = session.scalars(
            select(PolicyVersionRow).order_by(PolicyVersionRow.version.desc())
        ).first()
        if row is None:
            raise RosterInputError("No policy version is stored: set one (`policy set`) first.")
    else:
        row = session.get(PolicyVersionRow, version)
        if row is None:
            raise RosterInputError(f"No policy version {version} is stored.")
    altered = altered_because(row)
    if altered is not None or policy_hash_of(row.document) != row.content_hash:
        raise RosterInputError(
            f"{altered or 'The stored policy does not hash to its recorded hash.'} It cannot be "
            "signed into the roster."
        )
    return _draft(session, RecordKind.POLICY_SET, PolicySet(row.content_hash, row.document))


def draft_allowlist_added(session: Session, asset: str, address: str, label: str) -> RosterRecord:
    """ALLOWLIST_ADDED: spends of ``asset`` may pay ``address`` once admins signed it in."""
    for name, value in (("asset", asset), ("address", address), ("label", label)):
        if not value.strip() or value != value.strip():
            raise RosterInputError(f"The allowlist {name} must be non-empty, without outer spaces.")
    return _draft(session, RecordKind.ALLOWLIST_ADDED, AllowlistAdded(asset, address, label))


def draft_decree_added(
    session: Session,
    reference: str,
    title: str,
    expires_at: datetime,
    ceilings: Mapping[str, int],
    *,
    clock: Clock = utc_now,
) -> RosterRecord:
    """DECREE_ADDED: spends citing ``reference`` may pay up to each ceiling (base units) until
    ``expires_at`` (timezone-aware, in the future, whole seconds)."""
    if expires_at.tzinfo is None:
        raise RosterInputError("The decree's expiry needs a timezone, e.g. 2027-01-01T00:00:00Z.")
    if expires_at.microsecond:
        raise RosterInputError("The decree's expiry is given in whole seconds.")
    if expires_at <= clock():
        raise RosterInputError(
            f"The decree {reference!r} expires at {expires_at.isoformat()}, which has passed: an "
            "expired decree authorises nothing."
        )
    if not ceilings:
        raise RosterInputError("A decree needs at least one ceiling (ASSET=AMOUNT).")
    for asset, ceiling in ceilings.items():
        if isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling <= 0:
            raise RosterInputError(f"The ceiling for {asset} must be a positive base-unit amount.")
    body = DecreeAdded(reference, title, expires_at.astimezone(UTC), dict(ceilings))
    try:
        return _draft(session, RecordKind.DECREE_ADDED, body)
    except EncodingError as exc:
        raise RosterInputError(f"The decree cannot be encoded: {exc}") from None


# --- What the record says, and who must sign it -----------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """Who must still sign a record before it can be committed."""

    met: bool
    text: str
    """One sentence: what the rules require and which signatures are there."""


def _body(record: RosterRecord) -> RecordBody:
    return parse_body(record.kind, record.body)


def _officer_label(state: RosterState, officer_id: str) -> str:
    officer = state.officers.get(officer_id)
    if officer is None:
        return f"officer {officer_id}"
    return f"officer {officer_id} ({officer.name}, {officer.institution})"


def requirement(state: RosterState, record: RosterRecord) -> Requirement:
    """What the rules require of ``record``'s signatures, given the chain's state before it."""
    signers = {
        s.signer: state.officers[s.signer].institution
        for s in record.signatures
        if s.signer in state.officers
    }
    if record.kind in CROSS_INSTITUTION_KINDS:
        needed = state.rules.change_institutions
        have = sorted(set(signers.values()))
        text = (
            f"needs admins of {needed} distinct institutions; signed by admins of "
            f"{', '.join(have) or 'none yet'}"
        )
        return Requirement(len(have) >= needed, text)
    body = _body(record)
    if isinstance(body, OfficerAdded):
        institution = body.officer.institution
    else:
        officer_id = getattr(body, "officer_id", "")
        officer = state.officers.get(officer_id)
        institution = officer.institution if officer is not None else "?"
    met = institution in signers.values()
    text = f"needs an active admin of {institution}; {'signed' if met else 'not signed yet'} by one"
    return Requirement(met, text)


def describe(
    record: RosterRecord, state: RosterState, decimals: Mapping[str, int] | None = None
) -> list[str]:
    """The record in human terms, one line each: what changes, and the signatures so far.

    ``decimals`` (asset -> decimals) shows decree ceilings in coin units beside base units.
    """
    body = _body(record)
    lines = [f"roster record #{record.sequence} ({record.kind.value}), hash "
             f"{record.record_hash().hex()}"]  # fmt: skip
    if isinstance(body, OfficerAdded):
        entry = body.officer
        roles = ", ".join(sorted(role.value for role in entry.roles))
        keys = ", ".join(f"{key.key_id} ({key.kind.value})" for key in entry.keys)
        lines.append(
            f"  add officer {entry.officer_id} ({entry.name}) to {entry.institution} with roles "
            f"{roles}; keys {keys}"
        )
    elif isinstance(body, OfficerRemoved):
        lines.append(f"  remove {_officer_label(state, body.officer_id)}: all its keys stop")
    elif isinstance(body, KeyRotated):
        lines.append(f"  rotate the keys of {_officer_label(state, body.officer_id)}")
        for key in body.added:
            lines.append(f"    add key {key.key_id} ({key.kind.value}) {key.public.hex()}")
        for key_id in body.revoked:
            lines.append(f"    revoke key {key_id}")
    elif isinstance(body, RoleChanged):
        verb = "grant" if record.kind is RecordKind.ROLE_GRANTED else "revoke"
        lines.append(f"  {verb} role {body.role.value} of {_officer_label(state, body.officer_id)}")
    elif isinstance(body, PolicySet):
        lines.append(
            f"  set the policy in force to {body.policy_hash} (replacing "
            f"{state.policy_hash or 'none'}):"
        )
        lines.extend(f"    {line}" for line in _pretty_policy(body.document))
    elif isinstance(body, AllowlistAdded):
        lines.append(f"  allow spends of {body.asset} to pay {body.address} (label {body.label!r})")
    elif isinstance(body, DecreeAdded):
        lines.append(
            f"  decree {body.reference!r} ({body.title}), expires {body.expires_at.isoformat()}"
        )
        for asset, ceiling in sorted(body.ceilings.items()):
            shown = f"{ceiling} base units"
            if decimals and asset in decimals:
                shown = f"{coin_units(ceiling, decimals[asset])} {asset} ({ceiling} base units)"
            lines.append(f"    ceiling per spend of {asset}: {shown}")
    for signature in record.signatures:
        lines.append(
            f"  signed by {_officer_label(state, signature.signer)} with {signature.key_id}"
        )
    lines.append(f"  rule: {requirement(state, record).text}")
    return lines


def _pretty_policy(document: str) -> list[str]:
    try:
        return json.dumps(json.loads(document), indent=2, sort_keys=True).splitlines()
    except ValueError:
        return [document]


# --- Signing and committing -------------------------------------------------------------------


def sign_record(
    session: Session, record: RosterRecord, key_file: Path, passphrase: str
) -> RosterRecord:
    """``record`` with one more signature, by the roster officer whose active key ``key_file``
    holds. Refused before signing if that officer is not an active admin, already signed, or the
    chain has moved past the draft (it would never commit: draft it again)."""
    records = _chain(session)
    state = replay(records)
    if record.kind is RecordKind.GENESIS:
        raise RosterInputError(
            "A genesis is signed by the ceremony keys (`roster sign-genesis`), not officer keys."
        )
    if record.sequence != len(records) or record.prev_hash != records[-1].record_hash():
        raise RosterInputError(
            f"The draft is record #{record.sequence} after a head that is no longer the stored "
            f"chain's (now {len(records)} records, head {records[-1].record_hash().hex()[:16]}): "
            "another change was committed first. Draft it again."
        )
    preview_change(records, record)
    public = load_public_key(key_file)
    signer = next(
        (o for o in state.officers.values() if o.active and o.keys.get(public.key_id) == public),
        None,
    )
    if signer is None:
        raise RosterInputError(
            f"The key {public.key_id} of {key_file} is not an active key of any roster officer."
        )
    if OfficerRole.ADMIN not in signer.roles:
        raise RosterInputError(
            f"{_officer_label(state, signer.officer_id)} is not an admin; only admins sign roster "
            "changes."
        )
    if any(s.signer == signer.officer_id for s in record.signatures):
        raise RosterInputError(
            f"{_officer_label(state, signer.officer_id)} has already signed this record."
        )
    signature = Secp256k1Signature(sign_digest(key_file, passphrase, record.record_hash()))
    return record.with_signature(RecordSignature(signer.officer_id, public.key_id, signature))


def commit_record(session: Session, record: RosterRecord, *, clock: Clock = utc_now) -> None:
    """Store ``record`` as the next link (a genesis through ``commit_genesis``).

    ``append_record`` replays the stored chain with it: a record whose signatures do not meet the
    rules raises custody's error (``UnauthorizedChangeError``, ``ChangeQuorumError``...) and
    nothing is written. The caller commits the transaction.
    """
    if record.kind is RecordKind.GENESIS:
        commit_genesis(session, record, clock=clock)
        return
    append_record(session, record, clock=clock)


# --- Record files -----------------------------------------------------------------------------


def record_file_text(record: RosterRecord) -> str:
    """The record file's text: the record's JSON, signatures included, stable and readable."""
    return json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n"


def load_record_file(text: str, source: str) -> RosterRecord:
    """The record a record file holds; ``RosterInputError`` naming ``source`` otherwise."""
    try:
        return RosterRecord.from_json(json.loads(text))
    except (ValueError, EncodingError) as exc:
        raise RosterInputError(f"{source} is not a roster record file: {exc}") from None


def public_keys(paths: Sequence[Path]) -> tuple[OfficerPublicKey, ...]:
    """The public keys recorded in key files (no passphrase needed)."""
    return tuple(load_public_key(path) for path in paths)
