"""Key rotations and vault-set changes: from the pinned trust anchors to those in force for a bundle.

The auditor pins keys and the vault set once (``trust.py``); the treasury changes them only by
statements signed by what is already trusted and announced in the registry before the first
attestation they govern (``reporting/SPEC-announcements.md``; this is the verifier's own reading,
sharing no code with the producer's ``reporting/announcement.py``). The announcements file lists
every statement in the order announced; for a bundle of sequence ``S`` the statements effective
at or before ``S`` are applied in that order to the pins, each checked against the keys in force
after the ones before it:

* ``key-rotation`` of a role: ``outgoing`` recovers the old key, which must be in force for the
  role; ``incoming`` recovers the new key (it is held); ``countersigner`` recovers a key in force
  for the other role. The old key is replaced by the new one. A treasury rotation may carry
  ``new_publisher``: the registry's publisher moves with the key, so a pinned publisher moves to it.
* ``vault-set``: ``treasury`` and ``auditor`` recover keys in force; the set becomes the
  statement's ``vaults`` (compared as canonical JSON by the check of the body's vaults).

Offline, statements are checked by signature (and order in the file) only, and the result says
so. Given the services node, each statement's digest must be recorded by the pinned registry
(running the known code) with ``announced_before(digest)`` at most its ``effective_from_sequence``:
announced before the first attestation it governs was published.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError

from reserve_verifier.bundle import canonical_json, parse_json
from reserve_verifier.evm import registry_runtime_code, web3_client
from reserve_verifier.exceptions import UsageError, VerifierError
from reserve_verifier.fields import checksum_address, lower_hex, signature_bytes
from reserve_verifier.trust import PUBLIC_KEY_HEX_CHARS, SECP256K1_P, SIGNER_ROLES, TrustAnchors

STATEMENT_FORMAT = "national-reserve-announcement"
"""The ``format`` field of every statement."""

STATEMENT_VERSION = 1
"""The statement layout this verifier reads."""

ANNOUNCEMENTS_FORMAT = "national-reserve-announcements"
"""The ``format`` field of the announcements file."""

ANNOUNCEMENTS_VERSION = 1
"""The announcements file layout this verifier reads."""

KEY_ROTATION = "key-rotation"
VAULT_SET = "vault-set"

ROTATION_SLOTS = ("outgoing", "incoming", "countersigner")
"""A rotation's signatures: the old key, the new key, the other role's key in force."""

MAX_JSON_INT = (1 << 53) - 1
"""Largest JSON integer a sequence may be."""

_ENTRY_FIELDS = frozenset({"statement", "digest", "signatures"})
_COMMON_FIELDS = frozenset({"format", "version", "kind", "registry", "effective_from_sequence"})
_KIND_FIELDS = {
    KEY_ROTATION: _COMMON_FIELDS | {"role", "old_public_key", "new_public_key"},
    VAULT_SET: _COMMON_FIELDS | {"vaults"},
}
_KIND_SLOTS = {KEY_ROTATION: ROTATION_SLOTS, VAULT_SET: SIGNER_ROLES}
_OPTIONAL_FIELDS = {KEY_ROTATION: frozenset({"new_publisher"}), VAULT_SET: frozenset()}
"""Fields a statement may leave out: a treasury rotation hands the registry over only if the
registry's publisher is the treasury's key."""
PUBLISHER_ROLE = "treasury"
"""The role whose key is the registry's publisher, and so the only one that may hand it over."""
ZERO_ADDRESS = "0x" + "00" * 20


class AnnouncementsFileError(UsageError, ValueError):
    """The announcements file cannot be read or breaks its grammar (a usage error: exit code 2)."""


@dataclass(frozen=True)
class Announcement:
    """One statement as read: its fields, its recomputed digest, its signatures by slot."""

    statement: Mapping[str, Any]
    digest: bytes
    signatures: Mapping[str, bytes]

    @property
    def kind(self) -> str:
        """``key-rotation`` or ``vault-set``."""
        return str(self.statement["kind"])

    @property
    def effective_from_sequence(self) -> int:
        """The first attestation this statement governs."""
        return int(self.statement["effective_from_sequence"])


@dataclass(frozen=True)
class Applied:
    """A statement that took effect for this bundle, and (online) where the registry put it."""

    announcement: Announcement
    summary: str
    announced_before: int | None


@dataclass(frozen=True)
class EffectiveTrust:
    """The keys and vault set in force for one attestation, and the statements that made them."""

    signers: Mapping[str, tuple[str, ...]]
    vaults: Mapping[str, Any] | None
    applied: tuple[Applied, ...]
    later: int
    online: bool
    publisher: str | None = None
    """The registry publisher in force (lower-case): the pinned one, moved by each applied
    treasury rotation's ``new_publisher``; None if the trust file pins none."""

    def anchors(self, pinned: TrustAnchors) -> TrustAnchors:
        """``pinned`` with these keys, this publisher (if pinned) and this vault set in force."""
        changes: dict[str, Any] = {"signers": self.signers, "vaults": self.vaults}
        if pinned.registry.publisher is not None and self.publisher is not None:
            changes["registry"] = dataclasses.replace(pinned.registry, publisher=self.publisher)
        return dataclasses.replace(pinned, **changes)

    def describe(self) -> str:
        """The report line: what was applied, and whether the registry was consulted."""
        if not self.applied:
            text = "no announced change takes effect by this attestation; the pins are in force"
        else:
            text = "; ".join(item.summary for item in self.applied)
        if self.later:
            text += f" ({self.later} later statement(s) not yet in effect)"
        if not self.applied:
            return text
        if self.online:
            return text + "; each announced in the registry before the attestation it governs"
        return (
            text + "; checked by signature only: the registry was not consulted "
            "(no --services-rpc), so whether each was announced in time is unknown"
        )


# --- Reading the file ---------------------------------------------------------------------------


def _refuse(message: str) -> AnnouncementsFileError:
    return AnnouncementsFileError(f"The announcements file {message}")


def _object(value: Any, allowed: frozenset[str], where: str) -> Mapping[str, Any]:
    """An object holding exactly the ``allowed`` fields."""
    if not isinstance(value, Mapping):
        raise _refuse(f"has {where} that is not a JSON object.")
    if set(value) != allowed:
        odd = sorted(set(value) ^ allowed)
        raise _refuse(f"has {where} with the wrong field {odd[0]!r} (unknown or missing).")
    return value


def _sequence(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_JSON_INT:
        raise _refuse(f"has {where}.effective_from_sequence {value!r}, not a positive integer.")
    return value


def _public_key(value: Any, what: str) -> str:
    """128 lower-case hex digits that are a point of secp256k1."""
    try:
        lower_hex(value, what, size=PUBLIC_KEY_HEX_CHARS // 2)
    except VerifierError as error:
        raise _refuse(f"is malformed: {error}") from None
    x, y = int(value[:64], 16), int(value[64:], 16)
    if not (x < SECP256K1_P and y < SECP256K1_P and (y * y - x * x * x - 7) % SECP256K1_P == 0):
        raise _refuse(f"has the {what} that is not a point of secp256k1.")
    return str(value)


def _new_publisher(statement: Mapping[str, Any], where: str) -> None:
    """A treasury rotation's ``new_publisher``: a nonzero EIP-55 address."""
    if statement["role"] != PUBLISHER_ROLE:
        raise _refuse(
            f"has {where}.new_publisher in a {statement['role']} rotation: only the treasury's key publishes."
        )
    try:
        checksum_address(statement["new_publisher"], f"{where}.new_publisher")
    except VerifierError as error:
        raise _refuse(f"is malformed: {error}") from None
    if str(statement["new_publisher"]).lower() == ZERO_ADDRESS:
        raise _refuse(f"has {where}.new_publisher the zero address.")


def _statement(value: Any, where: str) -> Mapping[str, Any]:
    """One statement's fields, each in its one spelling."""
    if not isinstance(value, Mapping) or value.get("kind") not in _KIND_FIELDS:
        raise _refuse(f"has {where} whose kind is not {KEY_ROTATION!r} or {VAULT_SET!r}.")
    present = _OPTIONAL_FIELDS[value["kind"]] & set(value)
    statement = _object(value, _KIND_FIELDS[value["kind"]] | present, where)
    if statement["format"] != STATEMENT_FORMAT or statement["version"] != STATEMENT_VERSION:
        raise _refuse(f"has {where} that is not a {STATEMENT_FORMAT} version 1 statement.")
    registry = _object(statement["registry"], frozenset({"chain_id", "address"}), where)
    try:
        checksum_address(registry["address"], f"{where}.registry.address")
    except VerifierError as error:
        raise _refuse(f"is malformed: {error}") from None
    if isinstance(registry["chain_id"], bool) or not isinstance(registry["chain_id"], int):
        raise _refuse(f"has {where}.registry.chain_id that is not an integer.")
    _sequence(statement["effective_from_sequence"], where)
    if statement["kind"] == KEY_ROTATION:
        if statement["role"] not in SIGNER_ROLES:
            raise _refuse(f"has {where}.role {statement['role']!r}, not treasury or auditor.")
        _public_key(statement["old_public_key"], f"{where}.old_public_key")
        _public_key(statement["new_public_key"], f"{where}.new_public_key")
        if "new_publisher" in statement:
            _new_publisher(statement, where)
    elif not isinstance(statement["vaults"], Mapping):
        raise _refuse(f"has {where}.vaults that is not a JSON object.")
    return statement


def parse_announcements(data: bytes | str) -> tuple[Announcement, ...]:
    """Read an announcements file strictly; raise :class:`AnnouncementsFileError` naming the fault.

    Only the form is checked here (fields, spellings, the stated digests, low-S signatures);
    whose keys signed, and in what order, is :func:`effective_trust`'s question.
    """
    try:
        document = parse_json(data)
    except VerifierError as error:
        raise _refuse(f"is not usable JSON: {error}") from None
    top = _object(document, frozenset({"format", "version", "announcements"}), "a top level")
    if top["format"] != ANNOUNCEMENTS_FORMAT or top["version"] != ANNOUNCEMENTS_VERSION:
        raise _refuse(f"is not a {ANNOUNCEMENTS_FORMAT} version {ANNOUNCEMENTS_VERSION} file.")
    if not isinstance(top["announcements"], list):
        raise _refuse("has 'announcements' that is not a JSON array.")
    read: list[Announcement] = []
    for position, entry in enumerate(top["announcements"]):
        where = f"announcements[{position}]"
        entry = _object(entry, _ENTRY_FIELDS, where)
        statement = _statement(entry["statement"], f"{where}.statement")
        try:
            digest = hashlib.sha256(canonical_json(statement)).digest()
        except VerifierError as error:
            raise _refuse(f"has {where}.statement that is not canonical JSON: {error}") from None
        if entry["digest"] != digest.hex():
            raise _refuse(
                f"states {where}.digest {entry['digest']!r}, but its statement hashes to {digest.hex()}."
            )
        slots = frozenset(_KIND_SLOTS[statement["kind"]])
        signatures = _object(entry["signatures"], slots, f"{where}.signatures")
        try:
            parsed = {
                slot: signature_bytes(text, f"{where}.signatures.{slot}")
                for slot, text in signatures.items()
            }
        except VerifierError as error:
            raise _refuse(f"is malformed: {error}") from None
        read.append(Announcement(statement, digest, parsed))
    return tuple(read)


# --- Applying the statements --------------------------------------------------------------------


def _signer(announcement: Announcement, slot: str) -> str:
    """The public key (128 hex) that signed ``slot`` of the statement's digest."""
    try:
        recovered = Signature(announcement.signatures[slot]).recover_public_key_from_msg_hash(
            announcement.digest
        )
    except (BadSignature, ValidationError) as error:
        raise VerifierError(
            f"The {slot} signature of a statement is malformed ({error})."
        ) from None
    return str(recovered.to_bytes().hex())


def _other(role: str) -> str:
    return next(other for other in SIGNER_ROLES if other != role)


def _rotate(signers: dict[str, tuple[str, ...]], announcement: Announcement, name: str) -> str:
    """Check a key rotation against the keys in force and apply it; return its summary."""
    statement = announcement.statement
    role, old, new = statement["role"], statement["old_public_key"], statement["new_public_key"]
    if old not in signers[role]:
        raise VerifierError(
            f"The {name} rotates the {role} key {old[:16]}..., which is not a {role} key in force: refused (the rotation is out of order or its old key was never pinned)."
        )
    if _signer(announcement, "outgoing") != old:
        raise VerifierError(
            f"The {name} is not signed by the old {role} key it rotates away from: refused (only the key in force may hand over)."
        )
    if _signer(announcement, "incoming") != new:
        raise VerifierError(f"The {name}'s incoming signature is not by the new {role} key.")
    other = _other(role)
    if _signer(announcement, "countersigner") not in signers[other]:
        raise VerifierError(f"The {name} is not countersigned by a key in force for the {other}.")
    if any(new in keys for keys in signers.values()):
        raise VerifierError(f"The {name} names a new {role} key that is already in force.")
    signers[role] = tuple(new if key == old else key for key in signers[role])
    summary = f"{role} key {old[:16]}... rotated to {new[:16]}..."
    if "new_publisher" in statement:
        summary += f", registry publisher handed to {statement['new_publisher']}"
    return summary + f" from attestation {announcement.effective_from_sequence}"


def _vault_set(
    signers: Mapping[str, tuple[str, ...]], announcement: Announcement, name: str
) -> str:
    """Check a vault-set statement against the keys in force; return its summary."""
    for role in SIGNER_ROLES:
        if _signer(announcement, role) not in signers[role]:
            raise VerifierError(f"The {name} is not signed by a key in force for the {role}.")
    vaults_digest = hashlib.sha256(canonical_json(announcement.statement["vaults"])).hexdigest()
    return (
        f"vault set {vaults_digest[:16]}... from attestation {announcement.effective_from_sequence}"
    )


def _check_registry(announcement: Announcement, pinned: TrustAnchors, name: str) -> None:
    """The statement names the pinned registry: one made for another registry is void here."""
    registry = announcement.statement["registry"]
    if (
        registry["chain_id"] != pinned.registry.chain_id
        or str(registry["address"]).lower() != pinned.registry.address
    ):
        raise VerifierError(
            f"The {name} was made for the registry {registry['address']} on chain {registry['chain_id']}, not the pinned one."
        )


def _announced_before(w3: Any, pinned: TrustAnchors, digest: bytes) -> int:
    """``announced_before(digest)`` of the pinned registry (0 if never announced)."""
    from eth_abi.abi import decode, encode

    address = w3.to_checksum_address(pinned.registry.address)
    data = bytes(w3.keccak(text="announced_before(bytes32)"))[:4] + encode(["bytes32"], [digest])
    answer = bytes(w3.eth.call({"to": address, "data": "0x" + data.hex()}))
    (before,) = decode(["uint256"], answer)
    return int(before)


def _registry_client(services: str, pinned: TrustAnchors) -> Any:
    """A web3 client on the pinned registry's chain, the registry running the known code."""
    w3 = web3_client(services)
    if w3.eth.chain_id != pinned.registry.chain_id:
        raise VerifierError(
            f"The services RPC serves chain {w3.eth.chain_id}, not the pinned registry's chain {pinned.registry.chain_id}."
        )
    code = bytes(w3.eth.get_code(w3.to_checksum_address(pinned.registry.address)))
    if code != registry_runtime_code():
        raise VerifierError(
            f"The code at {pinned.registry.address} is not the attestation registry's compiled code."
        )
    return w3


def effective_trust(
    pinned: TrustAnchors,
    announcements: Sequence[Announcement],
    sequence: int,
    services: str | None = None,
) -> EffectiveTrust:
    """The keys and vault set in force for attestation ``sequence``, or a refusal naming why.

    Statements are applied in file order, each against the keys in force after the ones before
    it; their ``effective_from_sequence`` must not decrease. A statement effective after
    ``sequence`` ends the walk (it cannot govern this attestation). With ``services`` (the
    auditor's services-chain RPC URL) each applied statement must be announced in the pinned
    registry no later than the attestation it first governs.
    """
    signers = {role: tuple(keys) for role, keys in pinned.signers.items()}
    vaults: Mapping[str, Any] | None = getattr(pinned, "vaults", None)
    publisher = pinned.registry.publisher
    w3 = _registry_client(services, pinned) if services else None
    applied: list[Applied] = []
    last_effective = 0
    last_announced = 0
    for position, announcement in enumerate(announcements):
        name = f"announcement {position + 1} ({announcement.kind}, {announcement.digest.hex()[:16]}...)"
        effective = announcement.effective_from_sequence
        if effective < last_effective:
            raise VerifierError(
                f"The {name} takes effect at attestation {effective}, before the statement listed ahead of it ({last_effective}): announcements are out of order."
            )
        if effective > sequence:
            return EffectiveTrust(
                signers,
                vaults,
                tuple(applied),
                len(announcements) - position,
                w3 is not None,
                publisher,
            )
        last_effective = effective
        _check_registry(announcement, pinned, name)
        if announcement.kind == KEY_ROTATION:
            summary = _rotate(signers, announcement, name)
            if publisher is not None and "new_publisher" in announcement.statement:
                publisher = str(announcement.statement["new_publisher"]).lower()
        else:
            summary = _vault_set(signers, announcement, name)
            vaults = announcement.statement["vaults"]
        before = None
        if w3 is not None:
            before = _announced_before(w3, pinned, announcement.digest)
            if before == 0:
                raise VerifierError(
                    f"The {name} is not announced in the registry {pinned.registry.address}: refused (a change the public was never shown does not count)."
                )
            if before > effective:
                raise VerifierError(
                    f"The {name} was announced only before attestation {before}, after attestation {effective} it claims to govern: refused."
                )
            if before < last_announced:
                raise VerifierError(
                    f"The {name} was announced before an earlier-listed statement: announcements are out of order."
                )
            last_announced = before
        applied.append(Applied(announcement, summary, before))
    return EffectiveTrust(signers, vaults, tuple(applied), 0, w3 is not None, publisher)
