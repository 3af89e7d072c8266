"""Approval statements: published vectors, strict parsing, and that every field is signed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_keys.datatypes import Signature as EthSignature
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.authority import (
    DOMAIN_TAG,
    ApprovalStatement,
    EncodingError,
    SignatureMismatchError,
    StatementKind,
    secp256k1,
    verify_signature,
)
from custody.authority.vectors import generate
from custody.exceptions import CustodyError
from custody.secret import SecretBytes

VECTORS = json.loads(
    (Path(generate.__file__).with_name("statements_v1.json")).read_text(encoding="utf-8")
)


def test_vectors_file_is_what_the_generator_writes() -> None:
    """The published file is reproducible from the generator (no hand edits, no drift)."""
    assert generate.build() == VECTORS


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["description"])
def test_valid_vector_encodes_hashes_and_verifies(vector: dict[str, Any]) -> None:
    """Each vector's statement encodes to the published bytes, digest and signature."""
    statement = ApprovalStatement.from_json(vector["statement"])
    encoding = bytes.fromhex(vector["encoding_hex"])
    assert statement.encode() == encoding == vector["encoding"].encode("utf-8")
    assert statement.digest().hex() == vector["digest"]
    assert ApprovalStatement.parse(encoding) == statement
    assert bytes.fromhex(VECTORS["domain_tag_hex"]) == DOMAIN_TAG
    secp256k1.verify_digest(
        bytes.fromhex(VECTORS["public_key"]), statement.digest(), bytes.fromhex(vector["signature"])
    )
    # A second implementation (eth_keys, pure Python) recovers the same key from the signature.
    signature = bytes.fromhex(vector["signature"])
    recovered = EthSignature(signature).recover_public_key_from_msg_hash(statement.digest())
    assert recovered.to_compressed_bytes().hex() == VECTORS["public_key"]
    assert hashlib.sha256(DOMAIN_TAG + encoding).hexdigest() == vector["digest"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["description"])
def test_invalid_vector_is_refused(vector: dict[str, Any]) -> None:
    """Every non-canonical or malformed encoding is refused by the strict parser."""
    with pytest.raises(EncodingError):
        ApprovalStatement.parse(bytes.fromhex(vector["encoding_hex"]))


def test_encoding_errors_are_custody_errors() -> None:
    """Parsing errors belong to the custody tree and to ValueError."""
    with pytest.raises(CustodyError):
        ApprovalStatement.parse(b"{}")
    assert issubclass(EncodingError, ValueError)


def _base() -> ApprovalStatement:
    return ApprovalStatement.from_json(VECTORS["valid"][0]["statement"])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": True}, "amount"),
        ({"max_fee": None}, "max_fee"),
        ({"safe_nonce": 3}, "safe_nonce"),
        ({"tx_hash": "0x" + "ab" * 32}, "tx_hash"),
        ({"chain": "litecoin:main"}, "chain"),
        ({"policy_hash": "AB" * 32}, "policy_hash"),
        ({"destination": " bcrt1q"}, "destination"),
        ({"expires_at": datetime(2026, 1, 1)}, "expires_at"),  # naive on purpose
        ({"expires_at": datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC)}, "expires_at"),
    ],
)
def test_invalid_field_values_are_refused(changes: dict[str, Any], field: str) -> None:
    """A statement cannot even be built with an ambiguous or ill-typed field."""
    with pytest.raises(EncodingError, match=field):
        replace(_base(), **changes)


def test_evm_statement_needs_nonce_and_address() -> None:
    """On an EVM chain the Safe nonce is required and the vault id is the Safe's address."""
    evm = ApprovalStatement.from_json(VECTORS["valid"][1]["statement"])
    with pytest.raises(EncodingError, match="safe_nonce"):
        replace(evm, safe_nonce=None)
    with pytest.raises(EncodingError, match="vault_id"):
        replace(evm, vault_id="reserve-eth")


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20
).filter(lambda s: s == s.strip())


def _mutations() -> st.SearchStrategy[tuple[str, Any]]:
    """One field and another valid value for it (the same value is filtered out by the test)."""
    when = st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.replace(microsecond=0))
    return st.one_of(
        st.tuples(st.just("kind"), st.sampled_from(list(StatementKind))),
        st.tuples(
            st.sampled_from(
                [
                    "proposal_id",
                    "vault",
                    "vault_id",
                    "asset",
                    "destination",
                    "legal_basis",
                    "officer_id",
                    "institution",
                ]
            ),
            _TEXT,
        ),
        st.tuples(st.just("chain"), st.sampled_from(["bitcoin:main", "bitcoin:testnet"])),
        st.tuples(st.just("amount"), st.integers(min_value=1, max_value=2**256)),
        st.tuples(st.just("max_fee"), st.integers(min_value=0, max_value=2**64)),
        st.tuples(st.just("tx_hash"), st.binary(min_size=32, max_size=32).map(bytes.hex)),
        st.tuples(st.just("policy_hash"), st.binary(min_size=32, max_size=32).map(bytes.hex)),
        st.tuples(st.just("expires_at"), when),
    )


SIGNER = SecretBytes(bytes.fromhex("11" * 32))
SIGNER_KEY = secp256k1.public_key_of(SIGNER)


@settings(max_examples=150, deadline=None)
@given(_mutations())
def test_any_single_field_change_changes_digest_and_fails_verification(
    mutation: tuple[str, Any],
) -> None:
    """Change one field to any other valid value: new digest, and the old signature fails."""
    from custody.authority import OfficerKeyKind, OfficerPublicKey, Secp256k1Signature

    field, value = mutation
    base = _base()
    if getattr(base, field) == value:
        return
    changed = replace(base, **{field: value})
    assert changed.digest() != base.digest()
    assert ApprovalStatement.parse(changed.encode()) == changed
    signature = Secp256k1Signature(secp256k1.sign_digest(SIGNER, base.digest()))
    key = OfficerPublicKey(OfficerKeyKind.SECP256K1, SIGNER_KEY)
    verify_signature(key, base.digest(), signature)
    with pytest.raises(SignatureMismatchError):
        verify_signature(key, changed.digest(), signature)


def test_expiry_is_whole_seconds_utc_z() -> None:
    """Any aware time zone is normalised to UTC with a Z; the encoding shows it."""
    plus_two = datetime(2026, 7, 1, 2, 0, tzinfo=UTC) + timedelta(0)
    statement = replace(_base(), expires_at=plus_two)
    assert b'"expires_at":"2026-07-01T02:00:00Z"' in statement.encode()
