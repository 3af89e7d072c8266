"""A treasury rotation's ``new_publisher``: written by the producer, read by the verifier's own
parser, refused where it cannot belong, and moving a pinned publisher only when the rotation is in
force (no node needed)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address
from reserve_verifier.announcements import (
    AnnouncementsFileError,
    effective_trust,
    parse_announcements,
)
from reserve_verifier.trust import RegistryPin, parse_trust, trust_document

from reporting.announcement import (
    COUNTERSIGNER,
    INCOMING,
    OUTGOING,
    AnnouncementError,
    SignedStatement,
    announcements_document,
    key_rotation,
    read_announcements,
    sign_statement,
)
from reporting.attestation import KeySigner, RegistryRef, SignerRole
from reporting.bundle import canonical_json

OLD = KeySigner(SignerRole.TREASURY, hashlib.sha256(b"handover old").digest())
NEW = KeySigner(SignerRole.TREASURY, hashlib.sha256(b"handover new").digest())
AUDITOR = KeySigner(SignerRole.AUDITOR, hashlib.sha256(b"handover auditor").digest())
AUDITOR_NEXT = KeySigner(SignerRole.AUDITOR, hashlib.sha256(b"handover auditor next").digest())
OLD_ADDRESS = Account.from_key(OLD.private_key).address
NEW_ADDRESS = Account.from_key(NEW.private_key).address
REGISTRY = RegistryRef(31338, to_checksum_address("0x" + "ab" * 20), OLD_ADDRESS)


def _public(signer: KeySigner) -> str:
    return signer.public_key.to_bytes().hex()


def handover(effective: int = 2, new_publisher: str | None = NEW_ADDRESS) -> SignedStatement:
    """The treasury's rotation OLD -> NEW, handing the registry to ``new_publisher``."""
    statement = key_rotation(
        REGISTRY,
        SignerRole.TREASURY,
        _public(OLD),
        _public(NEW),
        effective,
        new_publisher=new_publisher,
    )
    for slot, signer in ((OUTGOING, OLD), (INCOMING, NEW), (COUNTERSIGNER, AUDITOR)):
        statement = sign_statement(statement, slot, signer)
    return statement


def _file(*statements: SignedStatement) -> bytes:
    return canonical_json(announcements_document(statements))


def _pins(publisher: str | None = OLD_ADDRESS) -> Any:
    pin = RegistryPin(REGISTRY.chain_id, REGISTRY.address.lower(), publisher)
    return parse_trust(json.dumps(trust_document([_public(OLD)], [_public(AUDITOR)], pin)))


def test_new_publisher_is_signed_and_read_back_on_both_sides() -> None:
    """The field is part of the signed statement (another publisher is another digest) and both
    readers return it in EIP-55 form."""
    statement = handover(new_publisher=NEW_ADDRESS.lower())
    assert statement.new_publisher == NEW_ADDRESS
    assert statement.digest != handover(new_publisher=None).digest
    (read,) = parse_announcements(_file(statement))
    (produced,) = read_announcements(_file(statement))
    assert read.statement["new_publisher"] == NEW_ADDRESS
    assert produced.new_publisher == NEW_ADDRESS
    assert "new_publisher" not in handover(new_publisher=None).statement


def test_producer_refuses_a_publisher_where_it_cannot_belong() -> None:
    """Only a treasury rotation hands publishing over, and never to the zero address."""
    with pytest.raises(AnnouncementError, match="Only a treasury key rotation"):
        key_rotation(
            REGISTRY, SignerRole.AUDITOR, _public(AUDITOR), _public(AUDITOR_NEXT), 2,
            new_publisher=NEW_ADDRESS,
        )  # fmt: skip
    with pytest.raises(AnnouncementError, match="nonzero"):
        handover(new_publisher="0x" + "00" * 20)
    with pytest.raises(AnnouncementError, match="nonzero"):
        handover(new_publisher="0x1234")


def _edited(change: str) -> bytes:
    """The handover file with its statement edited (the stated digest follows the edit)."""
    document: dict[str, Any] = json.loads(_file(handover()))
    entry = document["announcements"][0]
    statement = entry["statement"]
    if change == "auditor":
        statement["role"] = "auditor"
    elif change == "lowercase":
        statement["new_publisher"] = NEW_ADDRESS.swapcase().replace("0X", "0x")
    elif change == "zero":
        statement["new_publisher"] = "0x" + "00" * 20
    entry["digest"] = hashlib.sha256(canonical_json(statement)).hexdigest()
    return canonical_json(document)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("auditor", "only the treasury's key publishes"),
        ("lowercase", "EIP-55"),
        ("zero", "zero address"),
    ],
)
def test_verifier_refuses_a_misplaced_or_malformed_publisher(change: str, reason: str) -> None:
    """The verifier's parser refuses new_publisher in an auditor rotation, a miscased address and
    the zero address, naming the field."""
    with pytest.raises(AnnouncementsFileError, match=reason):
        parse_announcements(_edited(change))


def test_pinned_publisher_moves_only_when_the_rotation_is_in_force() -> None:
    """Before its attestation the pinned publisher holds; from it, the new one; a rotation without
    new_publisher, or a trust file pinning no publisher, leaves the pin as it is."""
    pins = _pins()
    announced = parse_announcements(_file(handover()))
    before = effective_trust(pins, announced, 1)
    assert before.anchors(pins).registry.publisher == OLD_ADDRESS.lower()
    after = effective_trust(pins, announced, 2)
    assert after.publisher == NEW_ADDRESS.lower()
    assert after.anchors(pins).registry.publisher == NEW_ADDRESS.lower()
    assert "registry publisher handed to" in after.describe()
    kept = effective_trust(pins, parse_announcements(_file(handover(new_publisher=None))), 2)
    assert kept.anchors(pins).registry.publisher == OLD_ADDRESS.lower()
    unpinned = _pins(publisher=None)
    assert effective_trust(unpinned, announced, 2).anchors(unpinned).registry.publisher is None
