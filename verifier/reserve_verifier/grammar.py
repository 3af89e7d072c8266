"""The strict grammar of a bundle file: which fields each object may hold, and each value's form.

Written from ``SPEC-attestation.md`` (and ``SPEC-merkle.md`` for roots, leaves and proofs): every
object lists its allowed fields, so an unsigned note slipped in anywhere (an "audited by" beside
the body, a field inside a UTXO) is refused rather than shown; every value has one spelling
(see ``fields``). After the shape, the rules a reader can check with no node: UTXOs sorted by
outpoint and each listed once, created at or below the snapshot height, the Bitcoin anchor at or
above it, and the registry's sequence equal to the attestation's.

Only fields present are checked here; a missing one fails the check that reads it, by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from reserve_verifier.exceptions import BundleFormatError
from reserve_verifier.fields import (
    amount,
    checksum_address,
    lower_hex,
    signature_bytes,
)

MAX_JSON_INT = (1 << 53) - 1
"""Largest JSON integer a counter may be (exact in every reader)."""

Rule = Callable[[Any, str], None]
"""Checks one value at a path (``$.body.snapshot``), raising ``BundleFormatError``."""

_AS_OF = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_EIP1271_SIGNATURE = re.compile(r"(?:[0-9a-f]{2})+")


def _count(value: Any, path: str) -> None:
    """A small non-negative JSON integer (height, vout, chain id, sequence)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_JSON_INT:
        raise BundleFormatError(f"The field {path} is {value!r}, not a non-negative JSON integer.")


def _decimal(value: Any, path: str) -> None:
    amount(value, f"field {path}")


def _text(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise BundleFormatError(f"The field {path} is {value!r}, not a string.")


def _flag(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise BundleFormatError(f"The field {path} is {value!r}, not true or false.")


def _hash(value: Any, path: str) -> None:
    lower_hex(value, f"field {path}", size=32)


def _evm_hash(value: Any, path: str) -> None:
    lower_hex(value, f"field {path}", size=32, prefix=True)


def _hex(value: Any, path: str) -> None:
    lower_hex(value, f"field {path}")


def _public_key(value: Any, path: str) -> None:
    lower_hex(value, f"field {path}", size=64)


def _address(value: Any, path: str) -> None:
    checksum_address(value, f"address {path}")


def _signature(value: Any, path: str) -> None:
    signature_bytes(value, f"signature {path}")


def _eip1271_signature(value: Any, path: str) -> None:
    if not isinstance(value, str) or _EIP1271_SIGNATURE.fullmatch(value) is None:
        raise BundleFormatError(
            f"The field {path} is not bare lowercase hex (the Safe owners' packed signatures)."
        )


def _as_of(value: Any, path: str) -> None:
    if not isinstance(value, str) or _AS_OF.fullmatch(value) is None:
        raise BundleFormatError(f"The field {path} is {value!r}, not YYYY-MM-DDTHH:MM:SSZ.")


def _one_of(*allowed: Any) -> Rule:
    def rule(value: Any, path: str) -> None:
        if isinstance(value, bool) or value not in allowed:
            raise BundleFormatError(f"The field {path} is {value!r}, not one of {allowed!r}.")

    return rule


def _nullable(inner: Rule) -> Rule:
    def rule(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)

    return rule


def _obj(**fields: Rule) -> Rule:
    """An object holding only ``fields`` (each checked if present)."""

    def rule(value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise BundleFormatError(f"The field {path} is not a JSON object.")
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise BundleFormatError(
                f"The object {path} holds the unknown field {unknown[0]!r}; the format allows only {', '.join(sorted(fields))}."
            )
        for name, item in value.items():
            fields[name](item, f"{path}.{name}")

    return rule


def _map(inner: Rule) -> Rule:
    """An object keyed by asset code, every value checked by ``inner``."""

    def rule(value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise BundleFormatError(f"The field {path} is not a JSON object.")
        for key, item in value.items():
            inner(item, f"{path}.{key}")

    return rule


def _list(inner: Rule) -> Rule:
    def rule(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise BundleFormatError(f"The field {path} is not a JSON array.")
        for position, item in enumerate(value):
            inner(item, f"{path}[{position}]")

    return rule


_ROOT = _obj(
    version=_count,
    tree=_text,
    assets=_list(_text),
    leaf_count=_count,
    node_hash=_hash,
    sums=_list(_decimal),
    digest=_hash,
)
_LEAF = _obj(account_id=_text, amounts=_list(_decimal), salt=_hash)
_PROOF = _obj(
    version=_count,
    tree=_text,
    leaf_index=_count,
    siblings=_list(_obj(hash=_hash, sums=_list(_decimal))),
)
_UTXO = _obj(
    txid=_hash,
    vout=_count,
    amount=_decimal,
    script_pubkey=_hex,
    created_height=_count,
    created_block_hash=_hash,
)
_BALANCE = _obj(
    safe_address=_address, asset=_text, token_address=_nullable(_address), amount=_decimal
)
_SIGNER = _obj(public_key=_public_key, address=_address)

BODY = _obj(
    format=_text,
    version=_count,
    sequence=_count,
    previous_digest=_hash,
    as_of=_as_of,
    snapshot=_obj(
        bitcoin=_obj(network=_text, height=_count, block_hash=_hash, utxos=_list(_UTXO)),
        evm=_list(
            _obj(
                chain_id=_count,
                block_number=_count,
                block_hash=_evm_hash,
                balances=_list(_BALANCE),
            )
        ),
    ),
    holdings=_obj(root=_ROOT, totals=_map(_decimal)),
    liabilities=_obj(
        root=_ROOT,
        totals=_map(_decimal),
        public_listing=_list(_obj(leaf=_LEAF, proof=_PROOF)),
    ),
    ledger=_obj(totals=_map(_decimal)),
    encumbrances=_list(
        _obj(
            asset=_text,
            amount=_decimal,
            kind=_one_of("pending_spend", "locked"),
            reference=_text,
            description=_text,
        )
    ),
    reconciliation=_map(
        _obj(
            chain_holdings=_decimal,
            encumbered=_decimal,
            available=_decimal,
            liability_root_total=_decimal,
            ledger_total=_decimal,
            liabilities_match_ledger=_flag,
            statement=_text,
        )
    ),
    coverage=_map(
        _obj(
            numerator=_decimal,
            denominator=_decimal,
            ratio=_text,
            covered=_flag,
            shortfall=_decimal,
            statement=_text,
        )
    ),
    audit_log=_obj(sequence=_count, head_hash=_hash),
    proofs_of_control=_obj(
        bitcoin_reserve_proof=_nullable(
            _obj(scheme=_text, commitment_prefix=_text, message_prefix=_text)
        ),
        eip1271=_list(_obj(chain_id=_count, safe_address=_address, block_number=_count)),
    ),
    signers=_obj(treasury=_SIGNER, auditor=_SIGNER),
    registry=_obj(chain_id=_count, address=_address, publisher=_address),
)
"""The signed body (SPEC-attestation "Body")."""

FILE = _obj(
    body=BODY,
    digest=_hash,
    signatures=_obj(treasury=_signature, auditor=_signature),
    proofs_of_control=_obj(
        bitcoin_reserve_proof=_obj(psbt=_text),
        eip1271=_list(_obj(chain_id=_count, safe_address=_address, signature=_eip1271_signature)),
    ),
    anchors=_obj(
        bitcoin=_obj(txid=_hash, vout=_count, block_hash=_hash, height=_count),
        services=_obj(
            chain_id=_count,
            registry=_address,
            tx_hash=_evm_hash,
            block_number=_count,
            block_hash=_evm_hash,
            log_index=_count,
            sequence=_count,
        ),
    ),
)
"""The whole file (SPEC-attestation "The file", "Proofs of control", "Anchors")."""


def _check_utxo_order(bitcoin: Mapping[str, Any]) -> None:
    """UTXOs sorted by (txid, vout), each outpoint once, none created above the snapshot."""
    utxos = bitcoin.get("utxos", [])
    height = bitcoin.get("height")
    previous: tuple[str, int] | None = None
    for utxo in utxos:
        outpoint = (utxo.get("txid"), utxo.get("vout"))
        if None in outpoint:
            continue
        if previous is not None and outpoint == previous:
            raise BundleFormatError(
                f"The snapshot lists the UTXO {outpoint[0]}:{outpoint[1]} twice; each outpoint is held once."
            )
        if previous is not None and outpoint < previous:
            raise BundleFormatError(
                f"The snapshot's UTXOs are not sorted by (txid, vout): {outpoint[0]}:{outpoint[1]} comes after {previous[0]}:{previous[1]}."
            )
        previous = outpoint
        created = utxo.get("created_height")
        if height is not None and created is not None and created > height:
            raise BundleFormatError(
                f"The UTXO {outpoint[0]}:{outpoint[1]} was created at height {created}, above the snapshot height {height}."
            )


def _check_anchors(body: Mapping[str, Any], anchors: Mapping[str, Any]) -> None:
    """The Bitcoin anchor is not below the snapshot; the registry's sequence is the body's."""
    snapshot_height = body.get("snapshot", {}).get("bitcoin", {}).get("height")
    anchor_height = anchors.get("bitcoin", {}).get("height")
    if (
        snapshot_height is not None
        and anchor_height is not None
        and anchor_height < snapshot_height
    ):
        raise BundleFormatError(
            f"The Bitcoin anchor is at height {anchor_height}, below the snapshot height {snapshot_height}; a digest cannot be anchored before its snapshot."
        )
    registry_sequence = anchors.get("services", {}).get("sequence")
    sequence = body.get("sequence")
    if registry_sequence is not None and sequence is not None and registry_sequence != sequence:
        raise BundleFormatError(
            f"The registry anchor records sequence {registry_sequence}, but this is attestation {sequence}."
        )


def check_grammar(data: Mapping[str, Any]) -> None:
    """Refuse a bundle file that breaks the format's grammar or its offline consistency rules."""
    FILE(data, "$")
    body = data["body"]
    _check_utxo_order(body.get("snapshot", {}).get("bitcoin", {}))
    _check_anchors(body, data["anchors"])
