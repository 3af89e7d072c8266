"""Statements that change what an auditor trusts: a signer's key rotation, a new vault set.

An auditor pins the treasury's and the audit office's public keys (and the vault set) once; the
treasury cannot change them by saying so in a bundle, because a bundle signed by a thief's key
would say the same. A change is therefore a *statement*, signed by the keys already trusted and
announced in the attestation registry (``announce(digest)``, see ``anchor.announce_digest``)
before the first attestation it governs. The format is ``reporting/SPEC-announcements.md``;
the verifier reads it with its own code (``reserve_verifier.announcements``).

A statement is canonical JSON, its digest ``SHA-256(canonical_json(statement))``, each signature
``r || s || v`` (low S) over that digest, as for bundles. Who signs:

* ``key-rotation`` — ``outgoing``: the role's old key (only the key in force may hand over);
  ``incoming``: the new key (proof that it is held: a rotation to a key nobody holds could never
  be rotated again, since only the key in force can sign the next one); ``countersigner``: the
  other role's key in force, so one stolen key cannot rotate its role to the thief and lock the
  office out (or race the office's own rotation): like a bundle, a change needs both offices.
* ``vault-set`` — ``treasury`` and ``auditor``: both keys in force, as for a bundle.

A treasury rotation may also hand the registry over: ``new_publisher`` (the new key's address)
is then signed with the rest, the old key calls ``set_publisher(new_publisher)`` right after
announcing it (:func:`hand_over_publisher`), and auditors who pin the publisher move their pin
with the key. Without it the publisher is not the treasury's key (a Safe, say) and stays.

The announcements file lists the signed statements in the order they were announced.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from eth_utils.address import is_address, to_checksum_address
from eth_utils.exceptions import ValidationError
from web3 import Web3

from reporting.anchor import (
    ServicesAnnouncement,
    announce_digest,
    registry_contract,
    set_publisher,
)
from reporting.attestation import KeySigner, RegistryRef, SignerRole
from reporting.bundle import AttestationError, canonical_json, parse_json

STATEMENT_FORMAT = "national-reserve-announcement"
"""The ``format`` field of every statement, so no other signed document's digest can match."""

STATEMENT_VERSION = 1
"""Version of the statement layout this module writes."""

ANNOUNCEMENTS_FORMAT = "national-reserve-announcements"
"""The ``format`` field of the announcements file (every statement, in announcement order)."""

ANNOUNCEMENTS_VERSION = 1
"""Version of the announcements file layout."""

PUBLIC_KEY_HEX_CHARS = 128
"""An uncompressed secp256k1 public key without its 0x04 prefix, as bundles list it."""

SECP256K1_P = 2**256 - 2**32 - 977
"""The secp256k1 field prime: a public key (x, y) satisfies y^2 = x^3 + 7 modulo it (checked
here because ``eth_keys`` does not, and a rotation to a non-point could never be undone)."""

OUTGOING = "outgoing"
"""Signature slot of a rotation: the role's old key, the one in force."""

INCOMING = "incoming"
"""Signature slot of a rotation: the new key, proving it is held."""

COUNTERSIGNER = "countersigner"
"""Signature slot of a rotation: the other role's key in force."""

ZERO_ADDRESS = "0x" + "00" * 20
"""The registry refuses it as a publisher, so a statement naming it could never take effect."""


_PUBLIC_KEY = re.compile(f"[0-9a-f]{{{PUBLIC_KEY_HEX_CHARS}}}")


class StatementKind(Enum):
    """What a statement changes."""

    KEY_ROTATION = "key-rotation"
    VAULT_SET = "vault-set"


class AnnouncementError(AttestationError, ValueError):
    """A statement cannot be built, signed or read, or an announcements file is malformed."""


def _public_key_hex(value: str, what: str) -> str:
    """A listed public key: 128 lower-case hex digits (no 0x04 prefix) that is a curve point."""
    if not isinstance(value, str) or _PUBLIC_KEY.fullmatch(value) is None:
        raise AnnouncementError(f"The {what} must be {PUBLIC_KEY_HEX_CHARS} lower-case hex digits.")
    x, y = int(value[:64], 16), int(value[64:], 16)
    if not (x < SECP256K1_P and y < SECP256K1_P and (y * y - x * x * x - 7) % SECP256K1_P == 0):
        raise AnnouncementError(f"The {what} is not a point of secp256k1.")
    return value


def _registry(registry: RegistryRef) -> dict[str, Any]:
    """The registry a statement belongs to: a statement made for one registry is void in another."""
    return {"chain_id": registry.chain_id, "address": registry.address}


def _effective(sequence: int) -> int:
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise AnnouncementError("The effective_from_sequence must be a positive integer.")
    return sequence


@dataclass(frozen=True)
class SignedStatement:
    """A statement (the hashed part) and its signatures by slot (65-byte hex, ``r || s || v``)."""

    statement: Mapping[str, Any]
    signatures: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> bytes:
        """``SHA-256(canonical_json(statement))``: what is signed and announced."""
        return hashlib.sha256(canonical_json(self.statement)).digest()

    @property
    def kind(self) -> StatementKind:
        """Key rotation or vault set."""
        return StatementKind(self.statement["kind"])

    @property
    def effective_from_sequence(self) -> int:
        """The first attestation this statement governs."""
        value: int = self.statement["effective_from_sequence"]
        return value

    @property
    def new_publisher(self) -> str | None:
        """The registry publisher a treasury rotation hands over to (EIP-55), if it does."""
        value = self.statement.get("new_publisher")
        return None if value is None else str(value)

    @property
    def slots(self) -> tuple[str, ...]:
        """The signature slots this kind of statement needs, all of them."""
        if self.kind is StatementKind.KEY_ROTATION:
            return (OUTGOING, INCOMING, COUNTERSIGNER)
        return tuple(role.value for role in SignerRole)

    @property
    def complete(self) -> bool:
        """Every slot is signed."""
        return all(slot in self.signatures for slot in self.slots)

    def to_dict(self) -> dict[str, Any]:
        """The statement as it stands in the announcements file, its digest included for readers."""
        return {
            "statement": dict(self.statement),
            "digest": self.digest.hex(),
            "signatures": dict(self.signatures),
        }

    @classmethod
    def from_dict(cls, data: Any) -> SignedStatement:
        """Read one entry of an announcements file, refusing a stated digest not its own."""
        if not isinstance(data, Mapping) or set(data) != {"statement", "digest", "signatures"}:
            raise AnnouncementError(
                "An announcement must be an object of exactly statement, digest and signatures."
            )
        statement, signatures = data["statement"], data["signatures"]
        if not isinstance(statement, Mapping) or not isinstance(signatures, Mapping):
            raise AnnouncementError("An announcement's statement and signatures must be objects.")
        signed = cls(dict(statement), dict(signatures))
        if statement.get("format") != STATEMENT_FORMAT:
            raise AnnouncementError(f"The statement is not a {STATEMENT_FORMAT} document.")
        if data["digest"] != signed.digest.hex():
            raise AnnouncementError(
                f"The announcement states digest {data['digest']} but its statement hashes to {signed.digest.hex()}."
            )
        return signed


def _publisher(role: SignerRole, value: str) -> str:
    """A rotation's ``new_publisher``: a treasury rotation's, a nonzero address, in EIP-55."""
    if role is not SignerRole.TREASURY:
        raise AnnouncementError(
            "Only a treasury key rotation can hand the registry's publisher over (new_publisher)."
        )
    if not isinstance(value, str) or not is_address(value) or value.lower() == ZERO_ADDRESS:
        raise AnnouncementError("The new_publisher must be a nonzero 0x-prefixed 20-byte address.")
    return str(to_checksum_address(value))


def key_rotation(
    registry: RegistryRef,
    role: SignerRole,
    old_public_key: str,
    new_public_key: str,
    effective_from_sequence: int,
    *,
    new_publisher: str | None = None,
) -> SignedStatement:
    """The unsigned statement that ``role``'s key becomes ``new_public_key`` from that attestation.

    ``new_publisher`` (a treasury rotation only): the registry's publisher moves to this address
    with the key, normally the new key's own address (:func:`hand_over_publisher` makes it so).
    """
    old = _public_key_hex(old_public_key, "old public key")
    new = _public_key_hex(new_public_key, "new public key")
    if old == new:
        raise AnnouncementError("A key rotation must name a new key different from the old one.")
    statement: dict[str, Any] = {
        "format": STATEMENT_FORMAT,
        "version": STATEMENT_VERSION,
        "kind": StatementKind.KEY_ROTATION.value,
        "registry": _registry(registry),
        "role": role.value,
        "old_public_key": old,
        "new_public_key": new,
        "effective_from_sequence": _effective(effective_from_sequence),
    }
    if new_publisher is not None:
        statement["new_publisher"] = _publisher(role, new_publisher)
    return SignedStatement(statement)


def vault_set(
    registry: RegistryRef, vaults: Mapping[str, Any], effective_from_sequence: int
) -> SignedStatement:
    """The unsigned statement that the attested vaults are exactly ``vaults`` from that attestation.

    ``vaults`` is the whole new set in the body's own ``vaults`` form (a JSON object); it is
    carried as it is, and compared as canonical JSON, so adding one vault restates the others.
    """
    if not isinstance(vaults, Mapping):
        raise AnnouncementError("The vault set must be a JSON object (the body's 'vaults' form).")
    canonical_json(vaults)
    return SignedStatement(
        {
            "format": STATEMENT_FORMAT,
            "version": STATEMENT_VERSION,
            "kind": StatementKind.VAULT_SET.value,
            "registry": _registry(registry),
            "vaults": json.loads(canonical_json(vaults)),
            "effective_from_sequence": _effective(effective_from_sequence),
        }
    )


def _check_slot(signed: SignedStatement, slot: str, signer: KeySigner) -> None:
    """Refuse a key that does not belong in ``slot`` (as far as the statement alone can tell)."""
    statement = signed.statement
    key = signer.public_key.to_bytes().hex()
    if signed.kind is StatementKind.VAULT_SET:
        if slot != signer.role.value:
            raise AnnouncementError(
                f"A vault-set statement is signed by the treasury and the audit office; the {signer.role.value} key cannot sign as {slot!r}."
            )
        return
    role = statement["role"]
    if slot == OUTGOING and (signer.role.value != role or key != statement["old_public_key"]):
        raise AnnouncementError(f"The outgoing signature must be by the old {role} key.")
    if slot == INCOMING and (signer.role.value != role or key != statement["new_public_key"]):
        raise AnnouncementError(f"The incoming signature must be by the new {role} key.")
    if slot == COUNTERSIGNER and signer.role.value == role:
        raise AnnouncementError(
            f"A {role} key rotation is countersigned by the other office, not the {role}."
        )
    if slot not in signed.slots:
        raise AnnouncementError(f"A key-rotation statement has no signature slot {slot!r}.")


def sign_statement(signed: SignedStatement, slot: str, signer: KeySigner) -> SignedStatement:
    """Return a copy carrying ``signer``'s signature of the digest in ``slot``."""
    _check_slot(signed, slot, signer)
    signature = signer.sign_digest(signed.digest).hex()
    return replace(signed, signatures={**signed.signatures, slot: signature})


def announcements_document(statements: Iterable[SignedStatement]) -> dict[str, Any]:
    """The announcements file's JSON object: every statement, in the order announced."""
    return {
        "format": ANNOUNCEMENTS_FORMAT,
        "version": ANNOUNCEMENTS_VERSION,
        "announcements": [statement.to_dict() for statement in statements],
    }


def read_announcements(data: bytes | str) -> tuple[SignedStatement, ...]:
    """The statements of an announcements file's bytes, in file order."""
    try:
        document = parse_json(data)
    except AttestationError as error:
        raise AnnouncementError(f"The announcements file is unreadable: {error}") from None
    if (
        not isinstance(document, Mapping)
        or document.get("format") != ANNOUNCEMENTS_FORMAT
        or document.get("version") != ANNOUNCEMENTS_VERSION
        or not isinstance(document.get("announcements"), list)
    ):
        raise AnnouncementError(
            f"The file is not a {ANNOUNCEMENTS_FORMAT} version {ANNOUNCEMENTS_VERSION} document."
        )
    return tuple(SignedStatement.from_dict(entry) for entry in document["announcements"])


def signer_of(statement: SignedStatement, slot: str) -> str:
    """The public key (128 hex) whose signature fills ``slot``."""
    try:
        signature = Signature(bytes.fromhex(statement.signatures[slot]))
        recovered = signature.recover_public_key_from_msg_hash(statement.digest)
    except (KeyError, ValueError, BadSignature, ValidationError) as error:
        raise AnnouncementError(f"The {slot} signature is missing or unusable.") from error
    return str(recovered.to_bytes().hex())


def retired_keys(statements: Iterable[SignedStatement]) -> frozenset[str]:
    """Every key the listed rotations replaced: none of them may sign a later statement."""
    return frozenset(
        str(statement.statement["old_public_key"])
        for statement in statements
        if statement.kind is StatementKind.KEY_ROTATION
    )


def appended(
    statements: Sequence[SignedStatement], statement: SignedStatement
) -> tuple[SignedStatement, ...]:
    """The file's statements with ``statement`` last, refusing what a verifier would refuse.

    The statement must be fully signed, not already listed, signed by no key a listed rotation
    retired, and effective no earlier than the last one listed (the verifier reads the file in
    announcement order, each statement against the keys in force after those before it).
    """
    if not statement.complete:
        missing = [slot for slot in statement.slots if slot not in statement.signatures]
        raise AnnouncementError(f"The statement lacks the signature(s) {', '.join(missing)}.")
    if any(existing.digest == statement.digest for existing in statements):
        raise AnnouncementError("This statement is already in the announcements file.")
    retired = retired_keys(statements)
    for slot in statement.slots:
        if signer_of(statement, slot) in retired:
            raise AnnouncementError(
                f"The {slot} signature is by a key an earlier rotation retired; sign with the key in force."
            )
    if statements and statement.effective_from_sequence < statements[-1].effective_from_sequence:
        raise AnnouncementError(
            f"The statement takes effect at attestation {statement.effective_from_sequence}, before the last one listed ({statements[-1].effective_from_sequence}); announcements are in order."
        )
    return (*statements, statement)


def publish_statement(
    w3: Web3,
    registry: str,
    publisher: LocalAccount,
    listed: Sequence[SignedStatement],
    statement: SignedStatement,
) -> tuple[tuple[SignedStatement, ...], ServicesAnnouncement]:
    """Announce a fully signed statement in the registry; return the file's new list and where.

    Refused before anything is sent: an incomplete or duplicate statement, one out of order in
    the file, or one taking effect before the registry's next attestation (it would govern an
    attestation already published, or one the public could not have seen it before).
    """
    extended = appended(listed, statement)
    following = int(registry_contract(w3, registry).functions.count().call()) + 1
    if statement.effective_from_sequence < following:
        raise AnnouncementError(
            f"The statement takes effect at attestation {statement.effective_from_sequence}, but the registry's next attestation is {following}: it must take effect at {following} or later."
        )
    return extended, announce_digest(w3, registry, publisher, statement.digest)


def announced_before(w3: Web3, registry: str, digest: bytes) -> int:
    """``announced_before(digest)`` of the registry: the attestation the statement was public
    before (0 if it was never announced)."""
    return int(registry_contract(w3, registry).functions.announced_before(digest).call())


def registry_publisher(w3: Web3, registry: str) -> str:
    """The address the registry accepts publications from now (EIP-55): the chain, not the
    treasury's records, says who may publish."""
    return str(to_checksum_address(registry_contract(w3, registry).functions.publisher().call()))


@dataclass(frozen=True)
class Announced:
    """A statement announced in the registry and listed in the file."""

    statements: tuple[SignedStatement, ...]
    """The announcements file's list, the statement included."""
    before_sequence: int
    """The registry's record: the statement was public before this attestation."""
    where: ServicesAnnouncement | None
    """Where this call's ``Announced`` event landed; None if an earlier, interrupted run
    already announced the statement."""


def ensure_announced(
    w3: Web3,
    registry: str,
    publisher: LocalAccount,
    listed: Sequence[SignedStatement],
    statement: SignedStatement,
) -> Announced:
    """:func:`publish_statement` that a re-run completes instead of refusing.

    A run that stopped after announcing (before writing the file, or before what follows the
    announcement) has left the digest in the registry: it is not sent again, only listed if the
    file lacks it. A statement the registry recorded too late to govern the attestation it names
    is refused, as the verifier would refuse it.
    """
    before = announced_before(w3, registry, statement.digest)
    listed_already = any(existing.digest == statement.digest for existing in listed)
    if before:
        if before > statement.effective_from_sequence:
            raise AnnouncementError(
                f"The statement was announced only before attestation {before}, after attestation {statement.effective_from_sequence} it names: build it anew for a later attestation."
            )
        extended = tuple(listed) if listed_already else appended(listed, statement)
        return Announced(extended, before, None)
    if listed_already:
        following = int(registry_contract(w3, registry).functions.count().call()) + 1
        if statement.effective_from_sequence < following:
            raise AnnouncementError(
                f"The listed statement takes effect at attestation {statement.effective_from_sequence}, but the registry's next attestation is {following}: it can no longer be announced in time."
            )
        where = announce_digest(w3, registry, publisher, statement.digest)
        return Announced(tuple(listed), where.before_sequence, where)
    extended, where = publish_statement(w3, registry, publisher, listed, statement)
    return Announced(extended, where.before_sequence, where)


def hand_over_publisher(
    w3: Web3, registry: str, publisher: LocalAccount, new_publisher: str
) -> str | None:
    """Call ``set_publisher(new_publisher)`` as ``publisher``; return the transaction hash.

    Idempotent: if the registry already accepts ``new_publisher`` (an earlier run got this far)
    nothing is sent and None is returned. Refused before sending if ``publisher`` is not the
    registry's publisher.
    """
    new = str(to_checksum_address(new_publisher))
    if registry_publisher(w3, registry) == new:
        return None
    return set_publisher(w3, registry, publisher, new)
