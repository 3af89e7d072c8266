"""The strict grammar of a bundle file: which fields each object may hold, and each value's form.

Written from ``SPEC-attestation.md`` (and ``SPEC-merkle.md`` for roots, leaves and proofs): every
object lists its fields, so an unsigned note slipped in anywhere (an "audited by" beside the body,
a field inside a UTXO) is refused rather than shown, and a missing field is refused by name
(R-GRAM-1; only the signatures, the file's proofs of control and the anchors may be absent, each
reported by its own check); every value has one spelling (see ``fields``), and no string holds a lone
surrogate. After the shape, the rules a reader can check with no node: UTXOs sorted by outpoint,
each listed once and created at or below the snapshot height; each holding's amount fits its leaf
field; the vault set's scripts and Safes sorted, each listed once; EVM snapshots sorted by chain
and their balances by (Safe, asset), each once; encumbrances sorted by (asset, reference), each
once; a reserve-proof slot exactly when there are UTXOs (and a PSBT only with its slot) and
EIP-1271 slots sorted, each at its chain's snapshot block; the Bitcoin anchor above the snapshot
height, and the registry anchor's sequence, chain and registry the body's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from itertools import pairwise
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

MAX_UTXO_SATS = (1 << 64) - 1
"""A UTXO amount is a ``u64`` in its holdings leaf (SPEC-attestation R-HOLD-3)."""

MAX_SAFE_BALANCE = (1 << 256) - 1
"""A Safe balance is a ``u256`` in its holdings leaf (SPEC-attestation R-HOLD-3)."""

_AS_OF = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_EIP1271_SIGNATURE = re.compile(r"(?:[0-9a-f]{2})+")
_ASSET_CODE = re.compile(r"[\x21-\x7e]{1,64}")
_NETWORK = re.compile(r"[a-z0-9]+")
_ASSET_CHAIN = re.compile(r"bitcoin:[a-z0-9]+|evm:[1-9][0-9]*")


def _count(value: Any, path: str) -> None:
    """A small non-negative JSON integer (height, vout, chain id, sequence)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_JSON_INT:
        raise BundleFormatError(f"The field {path} is {value!r}, not a non-negative JSON integer.")


def _chain_id(value: Any, path: str) -> None:
    """A chain id: a counter of at least 1 (no chain has id 0)."""
    _count(value, path)
    if value < 1:
        raise BundleFormatError(
            f"The field {path} is {value!r}, not a chain id (an integer of at least 1)."
        )


def _code(value: Any, path: str) -> None:
    """An asset code (R-GRAM-9): 1-64 printable ASCII bytes 0x21-0x7E, no space."""
    if not isinstance(value, str) or _ASSET_CODE.fullmatch(value) is None:
        raise BundleFormatError(
            f"The asset code {value!r} at {path} is not 1 to 64 printable ASCII characters without spaces."
        )


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


def _script(value: Any, path: str) -> None:
    """A scriptPubKey: lowercase hex of at least one byte (no output locks to an empty script here)."""
    if lower_hex(value, f"field {path}") == b"":
        raise BundleFormatError(f"The field {path} is empty, not a script's lowercase hex.")


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
    """``YYYY-MM-DDTHH:MM:SSZ`` naming a real UTC second (no 2026-02-30, no 24:00:00, no leap
    second ``:60``)."""
    if not isinstance(value, str) or _AS_OF.fullmatch(value) is None:
        raise BundleFormatError(f"The field {path} is {value!r}, not YYYY-MM-DDTHH:MM:SSZ.")
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise BundleFormatError(
            f"The field {path} is {value!r}, not a valid UTC time YYYY-MM-DDTHH:MM:SSZ."
        ) from None


def _network(value: Any, path: str) -> None:
    """A Bitcoin network name: lowercase letters and digits (``main``, ``regtest``), so that
    ``bitcoin:<network>`` is an asset chain name."""
    if not isinstance(value, str) or _NETWORK.fullmatch(value) is None:
        raise BundleFormatError(
            f"The field {path} is {value!r}, not a network name of lowercase letters and digits."
        )


def _asset_chain(value: Any, path: str) -> None:
    """An asset's chain: ``bitcoin:<network>`` or ``evm:<chain id>`` (decimal, at least 1)."""
    if not isinstance(value, str) or _ASSET_CHAIN.fullmatch(value) is None:
        raise BundleFormatError(
            f"The field {path} is {value!r}: neither bitcoin:<network> nor evm:<chain id> (a chain id of at least 1, no leading zero)."
        )


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


def _obj(optional: frozenset[str] = frozenset(), **fields: Rule) -> Rule:
    """An object holding only ``fields``, every one of them except the ``optional`` ones
    (SPEC-attestation R-GRAM-1: a missing field is refused by name, not left to the check that
    happens to read it, since some fields are read by no check)."""

    def rule(value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise BundleFormatError(f"The field {path} is not a JSON object.")
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise BundleFormatError(
                f"The object {path} holds the unknown field {unknown[0]!r}; the format allows only {', '.join(sorted(fields))}."
            )
        missing = sorted(set(fields) - optional - set(value))
        if missing:
            raise BundleFormatError(
                f"The object {path} has no {missing[0]!r} field; the format requires {', '.join(sorted(set(fields) - optional))}."
            )
        for name, item in value.items():
            fields[name](item, f"{path}.{name}")

    return rule


def _map(inner: Rule) -> Rule:
    """An object keyed by asset code, every key a code and every value checked by ``inner``."""

    def rule(value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise BundleFormatError(f"The field {path} is not a JSON object.")
        for key, item in value.items():
            _code(key, f"{path} (a key)")
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
    frozenset({"digest"}),  # SPEC-merkle: compared when stated; the producer always states it
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
    script_pubkey=_script,
    created_height=_count,
    created_block_hash=_hash,
)
_BALANCE = _obj(
    safe_address=_address, asset=_code, token_address=_nullable(_address), amount=_decimal
)
_SIGNER = _obj(public_key=_public_key, address=_address)
_ASSET = _obj(
    chain=_asset_chain,
    kind=_one_of("native", "erc20"),
    contract=_nullable(_address),
    decimals=_count,
    symbol=_text,
)
_SAFE_VAULT = _obj(chain_id=_chain_id, safe_address=_address)

BODY = _obj(
    format=_text,
    version=_count,
    sequence=_count,
    previous_digest=_hash,
    as_of=_as_of,
    assets=_map(_ASSET),
    vaults=_obj(bitcoin=_list(_script), evm=_list(_SAFE_VAULT)),
    snapshot=_obj(
        bitcoin=_obj(network=_network, height=_count, block_hash=_hash, utxos=_list(_UTXO)),
        evm=_list(
            _obj(
                chain_id=_chain_id,
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
        # A complete listing may leave proofs out (the root is rebuilt); R-LIAB-3 says when.
        public_listing=_list(_obj(frozenset({"proof"}), leaf=_LEAF, proof=_PROOF)),
    ),
    ledger=_obj(totals=_map(_decimal)),
    encumbrances=_list(
        _obj(
            asset=_code,
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
        eip1271=_list(_obj(chain_id=_chain_id, safe_address=_address, block_number=_count)),
    ),
    signers=_obj(treasury=_SIGNER, auditor=_SIGNER),
    registry=_obj(chain_id=_chain_id, address=_address, publisher=_address),
)
"""The signed body (SPEC-attestation "Body")."""

FILE = _obj(
    body=BODY,
    digest=_hash,
    # A missing signature is R-SIG-1's own failed line ("signature ... missing"), not a refusal.
    signatures=_obj(frozenset({"treasury", "auditor"}), treasury=_signature, auditor=_signature),
    proofs_of_control=_obj(
        frozenset({"bitcoin_reserve_proof", "eip1271"}),
        bitcoin_reserve_proof=_obj(psbt=_text),
        eip1271=_list(
            _obj(chain_id=_chain_id, safe_address=_address, signature=_eip1271_signature)
        ),
    ),
    # An anchor not (yet) made is a failed node check (N-6), not a malformed file.
    anchors=_obj(
        frozenset({"bitcoin", "services"}),
        bitcoin=_obj(txid=_hash, vout=_count, block_hash=_hash, height=_count),
        services=_obj(
            chain_id=_chain_id,
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


def _check_vault_order(vaults: Mapping[str, Any]) -> None:
    """The vault set's scripts and Safes are sorted, each listed once (one spelling per set)."""
    scripts = vaults.get("bitcoin", [])
    if scripts != sorted(set(scripts)):
        raise BundleFormatError(
            "The vault set's Bitcoin scripts are not sorted, or list one script twice."
        )
    safes = [
        (safe.get("chain_id"), str(safe.get("safe_address", "")).lower())
        for safe in vaults.get("evm", [])
    ]
    if any(chain is None for chain, _ in safes):
        return
    if safes != sorted(set(safes)):
        raise BundleFormatError(
            "The vault set's Safes are not sorted by (chain id, address), or list one Safe twice."
        )


def _check_evm_order(evm: Any) -> None:
    """Chains sorted by chain id, each once; each chain's balances sorted by (Safe, asset), each
    pair once: a balance listed twice would count twice in the totals."""
    if not isinstance(evm, list):
        return
    chains: list[int] = [
        entry["chain_id"]
        for entry in evm
        if isinstance(entry, Mapping) and isinstance(entry.get("chain_id"), int)
    ]
    if chains != sorted(set(chains)):
        raise BundleFormatError(
            f"The EVM snapshots are not sorted by chain id, or list one chain twice: {chains}."
        )
    for entry in evm:
        pairs = [
            (str(balance.get("safe_address", "")).lower(), str(balance.get("asset", "")))
            for balance in entry.get("balances", [])
            if isinstance(balance, Mapping)
        ]
        if pairs != sorted(set(pairs)):
            raise BundleFormatError(
                f"The balances of chain {entry.get('chain_id')} are not sorted by (Safe, asset), or list one Safe's asset twice."
            )


def _check_slots(body: Mapping[str, Any]) -> None:
    """The proof-of-control slots match the snapshot: a reserve-proof slot exactly when there
    are UTXOs; EIP-1271 slots sorted by (chain id, Safe), each once, each at its chain's
    snapshot block (a signature checked at another block proves control at another time)."""
    slots = body.get("proofs_of_control")
    snapshot = body.get("snapshot")
    if not isinstance(slots, Mapping) or not isinstance(snapshot, Mapping):
        return
    has_utxos = bool(snapshot.get("bitcoin", {}).get("utxos"))
    if "bitcoin_reserve_proof" in slots and (slots["bitcoin_reserve_proof"] is None) == has_utxos:
        raise BundleFormatError(
            "The Bitcoin reserve-proof slot must be present exactly when the snapshot lists UTXOs."
        )
    blocks = {
        entry.get("chain_id"): entry.get("block_number")
        for entry in snapshot.get("evm", [])
        if isinstance(entry, Mapping)
    }
    keys = []
    for slot in slots.get("eip1271", []):
        if not isinstance(slot, Mapping):
            continue
        chain = slot.get("chain_id")
        keys.append((chain, str(slot.get("safe_address", "")).lower()))
        if chain not in blocks:
            raise BundleFormatError(
                f"The EIP-1271 slot of {slot.get('safe_address')} names chain {chain}, which has no snapshot."
            )
        if slot.get("block_number") != blocks[chain]:
            raise BundleFormatError(
                f"The EIP-1271 slot of {slot.get('safe_address')} is at block {slot.get('block_number')}, not its chain's snapshot block {blocks[chain]}."
            )
    if None not in (chain for chain, _ in keys) and keys != sorted(set(keys)):
        raise BundleFormatError(
            "The EIP-1271 slots are not sorted by (chain id, Safe), or list one Safe twice."
        )


def _check_anchors(body: Mapping[str, Any], anchors: Mapping[str, Any]) -> None:
    """The Bitcoin anchor is mined after the snapshot (R-ANC-1: the digest names the snapshot
    block, so its anchor cannot be in that block or below); the registry anchor's sequence is the
    body's (R-ANC-2) and its chain and registry are the body's registry (R-ANC-3)."""
    snapshot_height = body.get("snapshot", {}).get("bitcoin", {}).get("height")
    anchor_height = anchors.get("bitcoin", {}).get("height")
    if (
        snapshot_height is not None
        and anchor_height is not None
        and anchor_height <= snapshot_height
    ):
        where = (
            f"below the snapshot height {snapshot_height}"
            if anchor_height < snapshot_height
            else "the snapshot block itself, not above the snapshot height"
        )
        raise BundleFormatError(
            f"The Bitcoin anchor is at height {anchor_height}, {where}; a digest naming the snapshot block can only be anchored in a later block."
        )
    services = anchors.get("services", {})
    registry_sequence = services.get("sequence")
    sequence = body.get("sequence")
    if registry_sequence is not None and sequence is not None and registry_sequence != sequence:
        raise BundleFormatError(
            f"The registry anchor records sequence {registry_sequence}, but this is attestation {sequence}."
        )
    registry = body.get("registry", {})
    stated = (services.get("chain_id"), services.get("registry"))
    expected = (registry.get("chain_id"), registry.get("address"))
    if services and stated != expected:
        raise BundleFormatError(
            f"The registry anchor names the registry {stated[1]} on chain {stated[0]}, not the body's registry {expected[1]} on chain {expected[0]}."
        )


def _check_encumbrances(encumbrances: Any) -> None:
    """Encumbrances in strictly ascending (asset, reference) order (R-ENC-1): one spelling of the
    list, and no reference of an asset listed twice (it would be subtracted twice)."""
    keys = [
        (str(item.get("asset")), str(item.get("reference")))
        for item in encumbrances
        if isinstance(item, Mapping)
    ]
    for earlier, later in pairwise(keys):
        if not earlier < later:
            raise BundleFormatError(
                f"The encumbrances are not in strictly ascending (asset, reference) order: {later} comes after {earlier}."
            )


def _check_listing_salts(listing: Any) -> None:
    """No two published accounts share a salt (R-LIAB-3). The salt is a keyed function of the id,
    so one salt under two ids is not the producer's; the same id twice is the tree check's own
    failure ("names one account twice")."""
    owners: dict[str, str] = {}
    for entry in listing:
        leaf = entry["leaf"]
        owner = owners.setdefault(leaf["salt"], leaf["account_id"])
        if owner != leaf["account_id"]:
            raise BundleFormatError(
                f"The public listing gives the accounts {owner!r} and {leaf['account_id']!r} one salt; each account has its own."
            )


def _check_holding_amounts(snapshot: Mapping[str, Any]) -> None:
    """Each holding's amount fits its leaf field (R-HOLD-3): a UTXO's ``u64`` sats, a Safe
    balance's ``u256``. A larger figure has no leaf, so it could not be in the holdings root."""
    for utxo in snapshot.get("bitcoin", {}).get("utxos", []):
        if int(utxo["amount"]) > MAX_UTXO_SATS:
            raise BundleFormatError(
                f"The UTXO {utxo['txid']}:{utxo['vout']} states {utxo['amount']} sats, more than a u64 holds (at most {MAX_UTXO_SATS})."
            )
    for entry in snapshot.get("evm", []):
        for balance in entry.get("balances", []):
            if int(balance["amount"]) > MAX_SAFE_BALANCE:
                raise BundleFormatError(
                    f"The balance of {balance['asset']} in Safe {balance['safe_address']} is {balance['amount']}, more than a u256 holds."
                )


def _check_text(value: Any, path: str) -> None:
    """No string (key or value) holds a lone UTF-16 surrogate (R-JSON-1): a ``\\ud800`` escape
    without its pair names no Unicode character, so the text has no UTF-8 form to hash."""
    if isinstance(value, str):
        if any(0xD800 <= ord(char) <= 0xDFFF for char in value):
            raise BundleFormatError(
                f"The string at {path} holds a lone UTF-16 surrogate escape; the bundle must be Unicode text (UTF-8)."
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_text(key, f"{path} (a key)")
            _check_text(item, f"{path}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _check_text(item, f"{path}[{position}]")


def _check_file_proofs(body: Mapping[str, Any], proofs: Mapping[str, Any]) -> None:
    """The file carries a reserve-proof PSBT only where the body has its slot (R-POC-2): a PSBT
    beside a bundle without UTXOs proves nothing the body states. (A missing PSBT where the slot
    is an object is R-POC-1's failed line.)"""
    slot = body.get("proofs_of_control", {}).get("bitcoin_reserve_proof")
    if slot is None and "bitcoin_reserve_proof" in proofs:
        raise BundleFormatError(
            "The file carries a reserve proof, but the body's reserve-proof slot is null (no UTXOs): a reserve proof is present exactly when its slot is."
        )


def check_grammar(data: Mapping[str, Any]) -> None:
    """Refuse a bundle file that breaks the format's grammar or its offline consistency rules."""
    _check_text(data, "$")
    FILE(data, "$")
    body = data["body"]
    _check_utxo_order(body["snapshot"]["bitcoin"])
    _check_holding_amounts(body["snapshot"])
    _check_vault_order(body["vaults"])
    _check_evm_order(body["snapshot"]["evm"])
    _check_encumbrances(body["encumbrances"])
    _check_listing_salts(body["liabilities"]["public_listing"])
    _check_slots(body)
    _check_file_proofs(body, data["proofs_of_control"])
    _check_anchors(body, data["anchors"])
