"""Officers' passkeys: registered in the console, usable only once their admin signs them in.

A passkey is the console's officer key (``custody.authority.OfficerPublicKey`` of kind
``webauthn-es256``). The console verifies the browser's registration (attestation) with
py_webauthn -- the challenge it issued, this site's origin and RP id, the person verified -- and
stores ONLY the public key, as a PENDING registration. The server's word makes nothing usable:
the key counts for the signers only once an admin of the officer's own institution signs a
KEY_ROTATED roster record adding it (``approval_record`` builds that record; the admin's CLI
signs it with their key file and ``treasury.authority.store.append_record`` stores it after
custody's replay accepts it). So a database writer who slips a key of their own into this table
gains nothing unless an admin signs it -- which is why the admin is shown the key id the officer
reads on their own console screen before signing.

Whether a registration is ACTIVE is read from the replayed roster chain, never from a column, so
this table is append-only (UPDATE and DELETE refused by migration 0011 and by the mapper).

In the console, the officer's approval or veto is an assertion over the statement's digest
(``custody.authority.WebAuthnSignature``); ``passkey_signed`` pairs it with the statement and
the roster key it claims, and the workflow verifies it exactly as it verifies a key file's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from webauthn import generate_registration_options, options_to_json, verify_registration_response
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from custody.authority import (
    ApprovalStatement,
    AuthorityError,
    KeyRotated,
    OfficerKeyKind,
    OfficerPublicKey,
    OfficerRole,
    OfficerState,
    RecordKind,
    RosterRecord,
    RosterState,
    SignedStatement,
    WebAuthnSignature,
    next_record,
)
from custody.clock import Clock, utc_now
from treasury import audit
from treasury.audit import AuditKind
from treasury.authority.store import load_records, require_roster_state, roster_state
from treasury.authority.tables import KEY_ID_MAX_CHARS
from treasury.db import Base, UtcDateTime, begin_serialised_write
from treasury.exceptions import ImmutableRecordError
from treasury.officers import Officer, Role, get_officer
from treasury.workflow_exceptions import (
    NotAuthorisedError,
    UnknownRecordError,
    WorkflowError,
    WorkflowInputError,
)

__all__ = [
    "PASSKEY_ROLES",
    "RP_NAME",
    "PasskeyConflictError",
    "PasskeyInputError",
    "PasskeyRegistration",
    "PasskeyRegistrationRow",
    "PasskeyState",
    "active_passkeys",
    "approval_record",
    "approving_admin",
    "assertion_from_json",
    "passkey_signed",
    "register_passkey",
    "registration_challenge",
    "registration_options",
    "registrations",
    "statement_from_text",
    "verify_registration",
]

RP_NAME = "National Crypto Reserve treasury"
"""The relying party's name the authenticator shows when a passkey is created."""
PASSKEY_ROLES = (Role.APPROVER, Role.OVERSIGHT, Role.ADMIN)
"""Officers who sign (approve, veto, administer) and so may register a passkey."""
REGISTRATION_TIMEOUT_MS = 120_000
"""How long the browser waits for the officer at the authenticator."""
_CHALLENGE_CONTEXT = b"national-reserve console passkey registration v1\x00"
_ORIGIN_MAX_CHARS = 300
_KEY_JSON_MAX_CHARS = 2000


class PasskeyInputError(WorkflowInputError):
    """A passkey registration or assertion the browser sent is malformed or does not verify."""


class PasskeyConflictError(WorkflowError):
    """The passkey is already registered, or already active in the roster."""


class PasskeyState(StrEnum):
    """Where a registration stands; read from the signed roster chain, not from the database."""

    PENDING = "pending admin signature"
    ACTIVE = "active"


class PasskeyRegistrationRow(Base):
    """One passkey an officer registered in the console: its public key only; never changed."""

    __tablename__ = "passkey_registrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(KEY_ID_MAX_CHARS), unique=True)
    """``OfficerPublicKey.key_id`` (``wa:`` and 16 hex), derived from the credential id."""
    public_key: Mapped[str] = mapped_column(Text)
    """``OfficerPublicKey.to_json()`` as JSON text: COSE key, RP id, origin, credential id."""
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)


def _refuse_orm_change(_mapper: Any, _connection: Any, target: Any) -> None:
    raise ImmutableRecordError(
        f"{type(target).__name__} records are immutable; register a new passkey instead."
    )


event.listen(PasskeyRegistrationRow, "before_update", _refuse_orm_change)
event.listen(PasskeyRegistrationRow, "before_delete", _refuse_orm_change)


@dataclass(frozen=True)
class PasskeyRegistration:
    """A stored registration with its officer and its state in the roster chain."""

    id: int
    officer_id: int
    officer_name: str
    institution: str
    key: OfficerPublicKey
    registered_at: datetime
    state: PasskeyState

    @property
    def key_id(self) -> str:
        return self.key.key_id


# --- Registration -----------------------------------------------------------------------------


def registration_challenge(secret: str, nonce: bytes) -> bytes:
    """The challenge of one registration: an HMAC of a fresh nonce keyed by the officer's secret.

    The console keys it with the officer's console session id (the per-session secret in its
    HttpOnly cookie) and keeps the nonce in an HttpOnly cookie, so it needs no server state, and
    an attestation made for one officer's page cannot be posted by another officer.
    """
    return hmac.new(secret.encode(), _CHALLENGE_CONTEXT + nonce, hashlib.sha256).digest()


def _user_handle(officer: Officer) -> bytes:
    """An opaque, stable user handle (WebAuthn asks for no personal data in it)."""
    return hashlib.sha256(f"national-reserve officer {officer.id}".encode()).digest()[:16]


def registration_options(
    officer: Officer,
    *,
    rp_id: str,
    challenge: bytes,
    registered: list[OfficerPublicKey],
) -> str:
    """The ``PublicKeyCredentialCreationOptions`` as JSON (base64url bytes) for ``create()``.

    ES256 only (the one algorithm the signers verify), user verification required, and the
    officer's registered credentials excluded so one authenticator is not registered twice.
    """
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=RP_NAME,
        user_name=officer.name,
        user_id=_user_handle(officer),
        user_display_name=f"{officer.name} ({officer.institution_code})",
        challenge=challenge,
        timeout=REGISTRATION_TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=key.credential_id)
            for key in registered
            if key.credential_id is not None
        ],
        supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256],
    )
    return options_to_json(options)


def _client_data(credential: dict[str, Any]) -> dict[str, Any]:
    response = credential.get("response")
    encoded = response.get("clientDataJSON") if isinstance(response, dict) else None
    if not isinstance(encoded, str):
        raise PasskeyInputError("The passkey registration carries no clientDataJSON.")
    try:
        parsed = json.loads(_b64url_decode(encoded, "clientDataJSON"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PasskeyInputError("The passkey registration's clientDataJSON is not JSON.") from exc
    if not isinstance(parsed, dict):
        raise PasskeyInputError("The passkey registration's clientDataJSON is not an object.")
    return parsed


def verify_registration(
    credential_json: str, *, challenge: bytes, rp_id: str, origin: str
) -> OfficerPublicKey:
    """The public key of a browser's ``create()`` answer, if it verifies; else ``PasskeyInputError``.

    py_webauthn checks the challenge, the origin, the RP id hash, user presence and verification,
    and the attestation statement; a key made in a cross-origin frame, or not ES256, is refused.
    """
    if not credential_json.strip():
        raise PasskeyInputError(
            "The browser sent no passkey: allow the console to create one, then try again."
        )
    try:
        credential = json.loads(credential_json)
    except ValueError as exc:
        raise PasskeyInputError("The passkey registration is not JSON.") from exc
    if not isinstance(credential, dict):
        raise PasskeyInputError("The passkey registration is not a JSON object.")
    if _client_data(credential).get("crossOrigin") not in (None, False):
        raise PasskeyInputError("The passkey was created in a cross-origin frame.")
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            require_user_verification=True,
            supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256],
        )
    except Exception as exc:  # py_webauthn raises several classes on bad input: all refuse
        raise PasskeyInputError(f"The passkey registration does not verify: {exc}") from None
    try:
        return OfficerPublicKey(
            OfficerKeyKind.WEBAUTHN_ES256,
            verified.credential_public_key,
            rp_id=rp_id,
            origin=origin,
            credential_id=verified.credential_id,
        )
    except AuthorityError as exc:
        raise PasskeyInputError(f"The passkey cannot be used as an officer key: {exc}") from exc


def register_passkey(
    session: Session, officer: Officer, key: OfficerPublicKey, *, clock: Clock = utc_now
) -> PasskeyRegistration:
    """Store ``key`` as ``officer``'s PENDING passkey (and audit it); the caller commits.

    Refused (nothing written) for an officer without a signing role, a key that is not a
    passkey, or a credential registered before (by anyone).
    """
    officer.require(*PASSKEY_ROLES)
    if key.kind is not OfficerKeyKind.WEBAUTHN_ES256:
        raise PasskeyInputError("Only a WebAuthn passkey is registered here.")
    text = json.dumps(key.to_json(), sort_keys=True, separators=(",", ":"))
    if len(text) > _KEY_JSON_MAX_CHARS or len(key.origin or "") > _ORIGIN_MAX_CHARS:
        raise PasskeyInputError("The passkey's public key or origin is implausibly long.")
    begin_serialised_write(session)
    taken = session.scalar(
        select(PasskeyRegistrationRow.id).where(PasskeyRegistrationRow.key_id == key.key_id)
    )
    if taken is not None:
        raise PasskeyConflictError(
            f"The passkey {key.key_id} is already registered (registration {taken})."
        )
    now = clock().astimezone(UTC)
    row = PasskeyRegistrationRow(
        officer_id=officer.id, key_id=key.key_id, public_key=text, registered_at=now
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        kind=AuditKind.POLICY_CHANGE,
        actor=f"officer:{officer.id}",
        refs={"officer_id": officer.id, "passkey_registration_id": row.id},
        payload={
            "event": "passkey_registered",
            "key_id": key.key_id,
            "rp_id": key.rp_id,
            "origin": key.origin,
        },
        clock=lambda: now,
    )
    return PasskeyRegistration(
        row.id,
        officer.id,
        officer.name,
        officer.institution_code,
        key,
        now,
        PasskeyState.PENDING,
    )


# --- Reading ----------------------------------------------------------------------------------


def _active_key_ids(state: RosterState | None, officer_id: int) -> frozenset[str]:
    if state is None:
        return frozenset()
    officer = state.officers.get(str(officer_id))
    if officer is None or not officer.active:
        return frozenset()
    return frozenset(officer.keys)


def _key_of(row: PasskeyRegistrationRow) -> OfficerPublicKey:
    try:
        return OfficerPublicKey.from_json(json.loads(row.public_key))
    except (ValueError, AuthorityError) as exc:
        raise PasskeyInputError(
            f"Stored passkey registration {row.id} is malformed: {exc}"
        ) from None


def registrations(session: Session, officer_id: int | None = None) -> list[PasskeyRegistration]:
    """Stored registrations (one officer's, or all), oldest first, each with its roster state.

    A registration whose stored key no longer derives its own key id (an edited row) raises
    ``PasskeyInputError`` naming it rather than being shown under another key's id.
    """
    query = select(PasskeyRegistrationRow).order_by(PasskeyRegistrationRow.id)
    if officer_id is not None:
        query = query.where(PasskeyRegistrationRow.officer_id == officer_id)
    rows = list(session.scalars(query))
    state = roster_state(session) if rows else None
    found = []
    officers: dict[int, Officer] = {}
    for row in rows:
        key = _key_of(row)
        if key.key_id != row.key_id:
            raise PasskeyInputError(
                f"Stored passkey registration {row.id} names key {row.key_id} but holds "
                f"{key.key_id}: the row was altered."
            )
        officer = officers.get(row.officer_id) or get_officer(session, row.officer_id)
        officers[row.officer_id] = officer
        active = key.key_id in _active_key_ids(state, row.officer_id)
        found.append(
            PasskeyRegistration(
                row.id,
                row.officer_id,
                officer.name,
                officer.institution_code,
                key,
                row.registered_at,
                PasskeyState.ACTIVE if active else PasskeyState.PENDING,
            )
        )
    return found


# --- The admin's signature --------------------------------------------------------------------


def _registration(session: Session, registration_id: int) -> PasskeyRegistration:
    found = [r for r in registrations(session) if r.id == registration_id]
    if not found:
        raise UnknownRecordError(f"No passkey registration has the id {registration_id}.")
    return found[0]


def approval_record(
    session: Session, registration_id: int
) -> tuple[PasskeyRegistration, RosterRecord]:
    """The unsigned KEY_ROTATED record that adds the registration's key to its officer.

    It follows the stored head; an admin of the officer's institution signs its hash, and
    ``append_record`` stores it once custody's replay accepts it.
    """
    registration = _registration(session, registration_id)
    if registration.state is PasskeyState.ACTIVE:
        raise PasskeyConflictError(
            f"Passkey registration {registration_id} ({registration.key_id}) is already active "
            "in the roster."
        )
    state = require_roster_state(session)
    officer = state.officers.get(str(registration.officer_id))
    if officer is None or not officer.active:
        raise PasskeyInputError(
            f"Officer {registration.officer_id} ({registration.officer_name}) is not an active "
            "officer of the signed roster; their admin must sign them in first."
        )
    records = load_records(session)
    body = KeyRotated(str(registration.officer_id), (registration.key,), ())
    return registration, next_record(records[-1], RecordKind.KEY_ROTATED, body)


def approving_admin(
    state: RosterState, registration: PasskeyRegistration, key_id: str
) -> OfficerState:
    """The active admin of the registration's institution who holds key ``key_id``.

    Custody's replay would refuse any other signer; this says so before anyone signs.
    """
    for officer in state.officers.values():
        if (
            officer.active
            and OfficerRole.ADMIN in officer.roles
            and officer.institution == registration.institution
            and key_id in officer.keys
        ):
            return officer
    raise NotAuthorisedError(
        f"The key {key_id} is not an active key of an admin of {registration.institution} in the "
        f"signed roster; only {registration.institution}'s admins can sign in its officers' "
        "passkeys."
    )


# --- Statements signed with a passkey ---------------------------------------------------------


def _b64url_decode(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise PasskeyInputError(f"The passkey field {name} must be a non-empty base64url string.")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise PasskeyInputError(f"The passkey field {name} is not base64url.") from exc


def assertion_from_json(text: str) -> WebAuthnSignature:
    """The browser's ``get()`` answer (fields in base64url) as a ``WebAuthnSignature``."""
    names = ("credential_id", "authenticator_data", "client_data_json", "signature")
    if not text.strip():
        raise PasskeyInputError(
            "The browser sent no passkey signature: allow the console to use your passkey, "
            "then try again."
        )
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise PasskeyInputError("The passkey signature is not JSON.") from exc
    if not isinstance(obj, dict) or set(obj) != set(names):
        raise PasskeyInputError(f"A passkey signature is an object with exactly {list(names)}.")
    return WebAuthnSignature(*(_b64url_decode(obj[name], name) for name in names))


def statement_from_text(text: str) -> ApprovalStatement:
    """The statement the page showed, as its canonical JSON text (any other encoding refused)."""
    try:
        return ApprovalStatement.parse(text.encode("utf-8"))
    except AuthorityError as exc:
        raise PasskeyInputError(f"The signed statement is malformed: {exc}") from exc


def passkey_signed(
    state: RosterState,
    officer: Officer,
    statement: ApprovalStatement,
    assertion: WebAuthnSignature,
) -> SignedStatement:
    """``statement`` with ``assertion``, under the officer's roster key of that credential.

    Only pairs them: whether the assertion verifies, and whether the statement is the one the
    proposal needs, is checked by the workflow (and again by each signer).
    """
    roster_officer = state.officers.get(str(officer.id))
    keys = {} if roster_officer is None or not roster_officer.active else roster_officer.keys
    for key_id, key in keys.items():
        if (
            key.kind is OfficerKeyKind.WEBAUTHN_ES256
            and key.credential_id == assertion.credential_id
        ):
            return SignedStatement(statement, key_id, assertion)
    raise NotAuthorisedError(
        "The passkey you signed with is not an active key of yours in the signed roster; if you "
        "registered it recently, it is still waiting for your institution's admin to sign it in."
    )


def active_passkeys(state: RosterState | None, officer: Officer) -> list[OfficerPublicKey]:
    """The officer's passkeys that the signed roster holds active (what ``get()`` may use)."""
    if state is None:
        return []
    roster_officer = state.officers.get(str(officer.id))
    if roster_officer is None or not roster_officer.active:
        return []
    return [k for k in roster_officer.keys.values() if k.kind is OfficerKeyKind.WEBAUTHN_ES256]
