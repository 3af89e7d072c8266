"""The announcements file: the producer's statements read back by the verifier's own parser, and
every malformed file refused with the field at fault (no node needed)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from reserve_verifier.announcements import AnnouncementsFileError, parse_announcements
from reserve_verifier.fields import SECP256K1_ORDER

from reporting.announcement import (
    COUNTERSIGNER,
    INCOMING,
    OUTGOING,
    AnnouncementError,
    announcements_document,
    appended,
    key_rotation,
    read_announcements,
    sign_statement,
    vault_set,
)
from reporting.attestation import KeySigner, RegistryRef, SignerRole
from reporting.bundle import canonical_json

REGISTRY = RegistryRef(
    31338, to_checksum_address("0x" + "ab" * 20), to_checksum_address("0x" + "cd" * 20)
)
OLD = KeySigner(SignerRole.TREASURY, hashlib.sha256(b"format old").digest())
NEW = KeySigner(SignerRole.TREASURY, hashlib.sha256(b"format new").digest())
AUDITOR = KeySigner(SignerRole.AUDITOR, hashlib.sha256(b"format auditor").digest())


def _public(signer: KeySigner) -> str:
    return signer.public_key.to_bytes().hex()


def rotation_document() -> dict[str, Any]:
    """A file with one fully signed treasury rotation, as JSON data."""
    statement = key_rotation(REGISTRY, SignerRole.TREASURY, _public(OLD), _public(NEW), 2)
    for slot, signer in ((OUTGOING, OLD), (INCOMING, NEW), (COUNTERSIGNER, AUDITOR)):
        statement = sign_statement(statement, slot, signer)
    document: dict[str, Any] = json.loads(canonical_json(announcements_document([statement])))
    return document


def test_producer_file_reads_back_on_both_sides() -> None:
    """The verifier's parser and the producer's reader agree on the file and its digest."""
    data = canonical_json(rotation_document())
    (read,) = parse_announcements(data)
    (produced,) = read_announcements(data)
    assert read.digest == produced.digest
    assert read.statement["new_public_key"] == _public(NEW)
    assert set(read.signatures) == {OUTGOING, INCOMING, COUNTERSIGNER}


def _high_s(signature: str) -> str:
    raw = bytes.fromhex(signature)
    s = SECP256K1_ORDER - int.from_bytes(raw[32:64], "big")
    return (raw[:32] + s.to_bytes(32, "big") + bytes((raw[64] ^ 1,))).hex()


def _break(document: dict[str, Any], how: str) -> None:
    entry = document["announcements"][0]
    if how == "unknown field":
        entry["statement"]["note"] = "audited"
    elif how == "digest":
        entry["digest"] = "00" * 32
    elif how == "high S":
        entry["signatures"][OUTGOING] = _high_s(entry["signatures"][OUTGOING])
    elif how == "missing slot":
        del entry["signatures"][INCOMING]
    elif how == "not a point":
        entry["statement"]["new_public_key"] = "01" * 64
    elif how == "float":
        entry["statement"]["effective_from_sequence"] = 2.0


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("unknown field", "wrong field 'note'"),
        ("digest", "hashes to"),
        ("high S", "high S value"),
        ("missing slot", "wrong field 'incoming'"),
        ("not a point", "not a point of secp256k1"),
        ("float", "not usable JSON"),
    ],
)
def test_malformed_files_are_refused(how: str, reason: str) -> None:
    """Each way of spoiling the file is refused with a reason naming it (the honest file reads)."""
    document = rotation_document()
    parse_announcements(json.dumps(document))
    _break(document, how)
    with pytest.raises(AnnouncementsFileError, match=reason):
        parse_announcements(json.dumps(document))


def test_producer_refuses_wrong_keys_and_unsigned_statements() -> None:
    """The producer will not sign a slot with the wrong key, nor list a statement not fully signed
    or going back in sequence."""
    statement = key_rotation(REGISTRY, SignerRole.TREASURY, _public(OLD), _public(NEW), 3)
    with pytest.raises(AnnouncementError, match="old treasury key"):
        sign_statement(statement, OUTGOING, NEW)
    with pytest.raises(AnnouncementError, match="countersigned by the other office"):
        sign_statement(statement, COUNTERSIGNER, OLD)
    with pytest.raises(AnnouncementError, match="lacks the signature"):
        appended((), sign_statement(statement, OUTGOING, OLD))
    later = vault_set(REGISTRY, {"bitcoin": [], "evm": []}, 5)
    later = sign_statement(sign_statement(later, "treasury", OLD), "auditor", AUDITOR)
    (earlier,) = read_announcements(canonical_json(rotation_document()))
    with pytest.raises(AnnouncementError, match="announcements are in order"):
        appended((later,), earlier)
