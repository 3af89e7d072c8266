"""Write ``statements_v1.json``: statement -> canonical encoding -> digest -> signature.

Run ``python -m custody.authority.vectors.generate`` after a deliberate format change only; the
file is a published contract. The signing key is a public test key (SHA-256 of a label) and
secp256k1 signing is deterministic (RFC 6979), so the output is reproducible byte for byte.
The ``invalid`` entries are encodings that ``ApprovalStatement.parse`` must refuse.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from custody.authority import secp256k1
from custody.authority.statement import DOMAIN_TAG, ApprovalStatement, StatementKind
from custody.secret import SecretBytes

VECTORS_PATH = Path(__file__).with_name("statements_v1.json")
TEST_KEY_LABEL = b"national-reserve test vector key 1"
"""The vector key is SHA-256 of this label: public, for tests only, never for real approvals."""


def _statements() -> list[tuple[str, ApprovalStatement]]:
    expires = datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)
    bitcoin = ApprovalStatement(
        kind=StatementKind.APPROVE,
        proposal_id="42",
        chain="bitcoin:regtest",
        vault="reserve-btc",
        vault_id="wsh(sortedmulti(2,[3442193e/48h/1h/0h/2h]tpubD6NzVbkrYhZ4WaWSyoBvQwbpLkojyoTZPRsgXELWz3Popb3qkjcJyJUGLnL4qHHoQvao8ESaAstxYSnhyswJ76uZPStJRJCTKvosUCJZL5B/0/*,[b0a0c0d0/48h/1h/0h/2h]tpubD6NzVbkrYhZ4WaWSyoBvQwbpLkojyoTZPRsgXELWz3Popb3qkjcJyJUGLnL4qHHoQvao8ESaAstxYSnhyswJ76uZPStJRJCTKvosUCJZL5B/0/*))#8e6hyyu5",
        asset="BTC",
        amount=150_000_000,
        destination="bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
        tx_hash="4c1f3a5e8d2b7c6f9a0e1d2c3b4a5968778695a4b3c2d1e0f0e1d2c3b4a59687",
        safe_nonce=None,
        max_fee=2_500,
        policy_hash=hashlib.sha256(b"policy v1").hexdigest(),
        legal_basis="Decree 2026/14",
        expires_at=expires,
        officer_id="cb-alice",
        institution="CB",
    )
    evm = ApprovalStatement(
        kind=StatementKind.APPROVE,
        proposal_id="43",
        chain="eip155:31337",
        vault="reserve-eth",
        vault_id="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        asset="ETH",
        amount=1_000_000_000_000_000_000,
        destination="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        tx_hash="0x" + hashlib.sha256(b"safe tx").hexdigest(),
        safe_nonce=7,
        max_fee=None,
        policy_hash=hashlib.sha256(b"policy v1").hexdigest(),
        legal_basis="Loi n° 2026-14 « réserve »",
        expires_at=expires,
        officer_id="mof-carol",
        institution="MOF",
    )
    veto = ApprovalStatement(
        kind=StatementKind.VETO,
        proposal_id="43",
        chain="eip155:31337",
        vault="reserve-eth",
        vault_id=evm.vault_id,
        asset="ETH",
        amount=evm.amount,
        destination=evm.destination,
        tx_hash=evm.tx_hash,
        safe_nonce=7,
        max_fee=None,
        policy_hash=evm.policy_hash,
        legal_basis=evm.legal_basis,
        expires_at=expires,
        officer_id="sao-olga",
        institution="SAO",
    )
    return [
        ("bitcoin approve (vault_id is an opaque string here)", bitcoin),
        ("evm approve, non-ASCII legal basis", evm),
        ("evm veto", veto),
    ]


def _invalid(valid: bytes, non_ascii: bytes) -> list[tuple[str, str]]:
    text = valid.decode("utf-8")
    obj = json.loads(text)
    other = json.loads(non_ascii.decode("utf-8"))
    return [
        ("whitespace after separators", json.dumps(obj, sort_keys=True, ensure_ascii=False)),
        (
            "keys not sorted",
            json.dumps(dict(reversed(obj.items())), separators=(",", ":"), ensure_ascii=False),
        ),
        (
            "ASCII escapes instead of UTF-8",
            json.dumps(other, sort_keys=True, separators=(",", ":")),
        ),
        ("duplicate key", text[:-1] + ',"amount":"1"}'),
        ("amount with a leading zero", text.replace('"amount":"', '"amount":"0', 1)),
        ("amount as a JSON number", text.replace('"amount":"150000000"', '"amount":150000000', 1)),
        ("unknown field", text[:-1] + ',"zz":"x"}'),
        ("missing field", text.replace('"asset":"BTC",', "", 1)),
        ("expiry with offset", text.replace("23:59:59Z", "23:59:59+00:00", 1)),
        ("byte-order mark", "\ufeff" + text),
    ]


def build() -> dict[str, Any]:
    """The vectors document."""
    secret = SecretBytes(hashlib.sha256(TEST_KEY_LABEL).digest())
    public = secp256k1.public_key_of(secret)
    valid: list[dict[str, Any]] = []
    encodings: list[bytes] = []
    for description, statement in _statements():
        encoding = statement.encode()
        encodings.append(encoding)
        valid.append(
            {
                "description": description,
                "statement": statement.to_json(),
                "encoding": encoding.decode("utf-8"),
                "encoding_hex": encoding.hex(),
                "digest": statement.digest().hex(),
                "signature": secp256k1.sign_digest(secret, statement.digest()).hex(),
            }
        )
    return {
        "format": "national-reserve/approval/1 test vectors",
        "domain_tag_hex": DOMAIN_TAG.hex(),
        "digest": "SHA-256(domain_tag || encoding)",
        "signature": "secp256k1 r || s || v, low S, RFC 6979, over the digest",
        "public_key": public.hex(),
        "valid": valid,
        "invalid": [
            {"description": d, "encoding_hex": t.encode("utf-8").hex()}
            for d, t in _invalid(encodings[0], encodings[1])
        ],
    }


def main() -> None:
    VECTORS_PATH.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()
