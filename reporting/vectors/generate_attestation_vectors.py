"""Generate ``attestation_rules_v1.json``: one or more vectors for every numbered rule of
``SPEC-attestation.md`` and ``SPEC-merkle.md`` (``R-...``).

Every vector starts from a real bundle built and signed by ``reporting.attestation`` with fixed
keys and values, then changes one thing. A change an insider holding both signing keys could make
is re-signed (new digest, new BIP-127 reserve proof, both signatures), so the verifier must
refuse it for the rule's own reason and not merely for a broken signature. A vector is::

    {"rule": "R-GRAM-2", "description": "...", "expected": "valid" | "invalid",
     "reason_contains": "text of the refusal" (invalid only),
     one of "bundle" (the file as JSON), "bundle_text" (raw text), "bundle_ref" (a name in
     "bundles"), and optionally "package" (an account's private proof package, checked against
     the bundle), "previous_ref" (the previous bundle of the chain), "trust" (a trust file object)
     or "trust_text"}

Run ``.venv/bin/python -m reporting.vectors.generate_attestation_vectors`` to rewrite the file;
a test requires the committed file to match the generator byte for byte. Nothing here is random:
keys are SHA-256 of fixed labels, and ECDSA signatures are deterministic (RFC 6979).
"""

from __future__ import annotations

import copy
import hashlib
import json
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embit import ec
from embit.psbt import PSBT
from embit.script import Script, Witness, p2wpkh
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from eth_keys.datatypes import PrivateKey
from eth_utils.address import to_checksum_address

from reporting.attestation import (
    AssetInfo,
    AssetKind,
    AttestationInputs,
    AuditHead,
    BitcoinSnapshot,
    BlockRef,
    Encumbrance,
    EncumbranceKind,
    EvmSnapshot,
    KeySigner,
    RegistryRef,
    SignerRole,
    SnapshotUtxo,
    VaultSet,
    build_attestation,
    reserve_commitment_txid,
    sign_bundle,
)
from reporting.bundle import GENESIS_DIGEST_HEX, Bundle
from reporting.holdings import HoldingsTree, SafeBalanceHolding, UtxoHolding
from reporting.sumtree import LiabilityTree

VECTORS_PATH = Path(__file__).with_name("attestation_rules_v1.json")
"""Where the committed rule vectors live."""

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The order n of secp256k1 (a high-S twin of a signature has s' = n - s)."""


def _key(label: str) -> bytes:
    """A fixed 32-byte private key: SHA-256 of a label (test keys; they guard nothing)."""
    return hashlib.sha256(f"attestation vectors v1: {label}".encode()).digest()


def _address(label: str) -> str:
    """A fixed EIP-55 address (the last 20 bytes of SHA-256 of a label)."""
    return str(to_checksum_address("0x" + hashlib.sha256(label.encode()).hexdigest()[-40:]))


TREASURY = KeySigner(SignerRole.TREASURY, _key("treasury"))
AUDITOR = KeySigner(SignerRole.AUDITOR, _key("auditor"))
OTHER = KeySigner(SignerRole.AUDITOR, _key("a stranger"))
VAULT_KEY = ec.PrivateKey(_key("bitcoin vault"))
VAULT_SCRIPT = p2wpkh(VAULT_KEY.get_public_key()).data
OTHER_SCRIPT = p2wpkh(ec.PrivateKey(_key("another vault")).get_public_key()).data
SAFE_OWNER = PrivateKey(_key("safe owner"))
SAFE = _address("safe")
OTHER_SAFE = _address("another safe")
TOKEN = _address("usdc token")
REGISTRY = _address("registry")
PUBLISHER = _address("publisher")
EVM_CHAIN_ID = 31337
SERVICES_CHAIN_ID = 31338
NONCE = hashlib.sha256(b"attestation vectors v1: snapshot nonce").digest()
ASSETS = ("BTC", "ETH", "USDC")
PUBLIC_ACCOUNT = "budget/defence"
ROWS: dict[str, tuple[int, int, int]] = {
    PUBLIC_ACCOUNT: (40_000, 10**18, 2_000_000),
    "holder-0001": (30_000, 2 * 10**18, 0),
    "holder-0002": (20_000, 0, 1_000_000),
}
"""Liabilities per account (BTC sats, ETH wei, USDC units): BTC totals 90 000 sats."""

UTXO_SATS = (100_000, 55_000)
"""Two vault UTXOs: 155 000 sats, 5 000 of them encumbered, so BTC coverage is 150 000 / 90 000
= 166.666...%, written "166.66%" (truncated, where rounding would give 166.67%)."""


def _block(height: int) -> BlockRef:
    return BlockRef(height, hashlib.sha256(f"vector block {height}".encode()).hexdigest())


def _tree(rows: Mapping[str, tuple[int, ...]], assets: tuple[str, ...] = ASSETS) -> LiabilityTree:
    return LiabilityTree.from_rows(assets, list(rows.items()), NONCE)


def _totals(
    rows: Mapping[str, tuple[int, ...]], assets: tuple[str, ...] = ASSETS
) -> dict[str, int]:
    return {asset: sum(row[i] for row in rows.values()) for i, asset in enumerate(assets)}


def _balances(eth: int = 5 * 10**18, usdc: int = 4_000_000) -> tuple[SafeBalanceHolding, ...]:
    return (
        SafeBalanceHolding(EVM_CHAIN_ID, SAFE, "ETH", None, eth),
        SafeBalanceHolding(EVM_CHAIN_ID, SAFE, "USDC", TOKEN, usdc),
    )


def inputs(**changes: Any) -> AttestationInputs:
    """The base attestation's inputs (any field replaced by ``changes``)."""
    utxos = tuple(
        SnapshotUtxo(
            hashlib.sha256(f"vector tx {i}".encode()).hexdigest(),
            i,
            amount,
            VAULT_SCRIPT,
            _block(100 + i),
        )
        for i, amount in enumerate(UTXO_SATS)
    )
    base = AttestationInputs(
        sequence=1,
        previous_digest=GENESIS_DIGEST_HEX,
        as_of=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        bitcoin=BitcoinSnapshot("regtest", _block(110), utxos),
        evm=(EvmSnapshot(EVM_CHAIN_ID, BlockRef(50, "0x" + "77" * 32), _balances()),),
        liabilities=_tree(dict(ROWS)),
        ledger_totals=_totals(dict(ROWS)),
        audit_head=AuditHead(9, hashlib.sha256(b"audit head").hexdigest()),
        registry=RegistryRef(SERVICES_CHAIN_ID, REGISTRY, PUBLISHER),
        treasury=TREASURY,
        auditor=AUDITOR,
        encumbrances=(
            Encumbrance(
                "BTC", 5_000, EncumbranceKind.PENDING_SPEND, "psbt:1", "A payment in flight."
            ),
        ),
        public_accounts=(PUBLIC_ACCOUNT,),
        assets={
            "BTC": AssetInfo("bitcoin:regtest", AssetKind.NATIVE, None, 8, "BTC"),
            "ETH": AssetInfo(f"evm:{EVM_CHAIN_ID}", AssetKind.NATIVE, None, 18, "ETH"),
            "USDC": AssetInfo(f"evm:{EVM_CHAIN_ID}", AssetKind.ERC20, TOKEN, 6, "USDC"),
        },
        vaults=VaultSet((VAULT_SCRIPT,), ((EVM_CHAIN_ID, SAFE),)),
    )
    return replace(base, **changes)


# --- proofs of control and anchors ------------------------------------------------------------


def reserve_psbt(body: dict[str, Any], digest: bytes, *, witness_utxos: bool = True) -> str:
    """A finalised BIP-127 PSBT over the body's UTXOs (all P2WPKH to the vault key), via embit.

    Fields are coerced (``int(vout)``), so a body with a mis-spelt field still gets the proof an
    insider would attach, and the vector fails for its spelling alone. Without
    ``witness_utxos`` the signed inputs do not state the amount and script they spend.
    """
    listed = body["snapshot"]["bitcoin"]["utxos"]
    tx = Transaction(
        vin=[TransactionInput(bytes.fromhex(reserve_commitment_txid(digest)), 0)]
        + [TransactionInput(bytes.fromhex(u["txid"]), int(u["vout"])) for u in listed],
        vout=[TransactionOutput(sum(int(u["amount"]) for u in listed), Script(VAULT_SCRIPT))],
    )
    psbt = PSBT(tx)
    psbt.inputs[0].witness_utxo = TransactionOutput(0, Script(b"\x51"))
    for item, utxo in zip(psbt.inputs[1:], listed, strict=True):
        item.witness_utxo = TransactionOutput(
            int(utxo["amount"]), Script(bytes.fromhex(utxo["script_pubkey"]))
        )
    psbt.sign_with(VAULT_KEY)
    psbt.inputs[0].witness_utxo = None
    for item in psbt.inputs[1:]:
        (signature,) = item.partial_sigs.values()
        item.final_scriptwitness = Witness([signature, VAULT_KEY.get_public_key().sec()])
        item.partial_sigs = {}
        if not witness_utxos:
            item.witness_utxo = None
    return str(psbt.to_string())


def _safe_signature(digest: bytes) -> str:
    """The Safe owner's packed signature of the digest (r || s || v, v in {27, 28}).

    Offline vectors only need its form; the live check (``isValidSignature`` on the Safe) is a
    node rule, exercised by the integration tests.
    """
    raw = bytearray(SAFE_OWNER.sign_msg_hash(digest).to_bytes())
    raw[64] += 27
    return bytes(raw).hex()


def seal(
    body: dict[str, Any],
    *,
    psbt_digest: bytes | None = None,
    psbt_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The bundle file of ``body``: reserve proof, EIP-1271 signatures, both signatures, anchors.

    ``psbt_digest`` makes the reserve proof commit to another digest (a stale proof);
    ``psbt_body`` spends that body's UTXOs instead (for a stated amount no transaction can carry).
    The registry anchor is in the body's registry, as the producer's is.
    """
    bundle = Bundle(body=copy.deepcopy(body))
    digest = bundle.digest
    if body["snapshot"]["bitcoin"]["utxos"]:
        psbt = reserve_psbt(psbt_body or body, psbt_digest or digest)
        bundle = bundle.with_proof("bitcoin_reserve_proof", {"psbt": psbt})
    bundle = bundle.with_proof(
        "eip1271",
        [
            {
                "chain_id": slot["chain_id"],
                "safe_address": slot["safe_address"],
                "signature": _safe_signature(digest),
            }
            for slot in body["proofs_of_control"]["eip1271"]
        ],
    )
    listed = body["signers"]
    for signer in (TREASURY, AUDITOR):
        if listed[signer.role.value] == signer.identity():
            bundle = sign_bundle(bundle, signer)
        elif listed[signer.role.value]["public_key"] == signer.identity()["public_key"]:
            # The listed address is not the key's: an insider still signs with the listed key.
            bundle = bundle.with_signature(signer.role.value, signer.sign_digest(digest))
    bundle = bundle.with_anchor(
        "bitcoin",
        {
            "txid": hashlib.sha256(b"anchor tx" + digest).hexdigest(),
            "vout": 1,
            "block_hash": hashlib.sha256(b"anchor block" + digest).hexdigest(),
            "height": body["snapshot"]["bitcoin"]["height"] + 2,
        },
    )
    registry = body.get("registry", {})
    bundle = bundle.with_anchor(
        "services",
        {
            "chain_id": registry.get("chain_id", SERVICES_CHAIN_ID),
            "registry": registry.get("address", REGISTRY),
            "tx_hash": "0x" + hashlib.sha256(b"registry tx" + digest).hexdigest(),
            "block_number": 12,
            "block_hash": "0x" + hashlib.sha256(b"registry block" + digest).hexdigest(),
            "log_index": 0,
            "sequence": body["sequence"],
        },
    )
    return copy.deepcopy(bundle.to_dict())


def built(**changes: Any) -> dict[str, Any]:
    """A bundle file built by the producer from ``inputs(**changes)`` and sealed."""
    return seal(copy.deepcopy(dict(build_attestation(inputs(**changes)).body)))


BASE_BODY: dict[str, Any] = copy.deepcopy(dict(build_attestation(inputs()).body))
"""The base attestation's body, as the producer writes it."""


def resigned(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The base body changed by ``change`` and sealed again (an insider's re-signed tamper)."""
    body = copy.deepcopy(BASE_BODY)
    change(body)
    return seal(body)


def rebuild_holdings(body: dict[str, Any]) -> None:
    """Restate the body's holdings root from its snapshot (the producer's tree), so a changed
    holding fails only the rule it breaks, not R-HOLD-1 as well."""
    holdings: list[Any] = [
        UtxoHolding(
            utxo["txid"],
            int(utxo["vout"]),
            int(utxo["amount"]),
            bytes.fromhex(utxo["script_pubkey"]),
        )
        for utxo in body["snapshot"]["bitcoin"]["utxos"]
    ]
    holdings += [
        SafeBalanceHolding(
            entry["chain_id"],
            balance["safe_address"],
            balance["asset"],
            balance["token_address"],
            int(balance["amount"]),
        )
        for entry in body["snapshot"]["evm"]
        for balance in entry["balances"]
    ]
    body["holdings"]["root"] = HoldingsTree.build(holdings).root.to_dict()


def register(code: str, chain: str, kind: str, contract: str | None) -> Callable[[Any], None]:
    """A change registering an asset nothing uses (the registry may define more than is held)."""

    def change(body: dict[str, Any]) -> None:
        body["assets"][code] = {
            "chain": chain,
            "contract": contract,
            "decimals": 18,
            "kind": kind,
            "symbol": code,
        }
        body["assets"] = {
            key: body["assets"][key] for key in sorted(body["assets"], key=str.encode)
        }

    return change


def both(*changes: Callable[[Any], Any]) -> Callable[[Any], None]:
    """Every change, in order."""

    def change(data: Any) -> None:
        for each in changes:
            each(data)

    return change


def edited(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The base file changed by ``change`` after signing (nothing re-signed)."""
    data = seal(copy.deepcopy(BASE_BODY))
    change(data)
    return data


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change setting the dotted ``path`` (list positions as numbers) to ``value``."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


# --- vectors ----------------------------------------------------------------------------------


def _vector(
    rule: str, description: str, expected: str, reason: str | None = None, **inputs: Any
) -> dict[str, Any]:
    vector: dict[str, Any] = {"rule": rule, "description": description, "expected": expected}
    if reason is not None:
        vector["reason_contains"] = reason
    vector.update(inputs)
    return vector


def valid(rule: str, description: str, **inputs: Any) -> dict[str, Any]:
    """A vector the verifier must accept (no failed check; node checks may be skipped)."""
    return _vector(rule, description, "valid", **inputs)


def invalid(rule: str, description: str, reason: str, **inputs: Any) -> dict[str, Any]:
    """A vector the verifier must refuse, one failure's reason containing ``reason``."""
    return _vector(rule, description, "invalid", reason, **inputs)


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reversed_keys(value[key]) for key in reversed(sorted(value))}
    if isinstance(value, list):
        return [_reversed_keys(item) for item in value]
    return value


def _high_s(signature_hex: str) -> str:
    raw = bytes.fromhex(signature_hex)
    s = int.from_bytes(raw[32:64], "big")
    return (raw[:32] + (SECP256K1_ORDER - s).to_bytes(32, "big") + bytes((raw[64] ^ 1,))).hex()


def _swap_case(address: str) -> str:
    """An address with the case of its first letter flipped (a broken EIP-55 checksum)."""
    for position, char in enumerate(address[2:], start=2):
        if char.isalpha():
            return address[:position] + char.swapcase() + address[position + 1 :]
    raise ValueError(address)


def _grammar_vectors(base: dict[str, Any]) -> list[dict[str, Any]]:
    text = json.dumps(base, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = base["digest"]
    first_utxo = BASE_BODY["snapshot"]["bitcoin"]["utxos"][0]
    assert first_utxo["vout"] == 1, "the true-for-1 vector needs vout 1"
    description = BASE_BODY["encumbrances"][0]["description"]
    surrogate = text.replace(json.dumps(description), json.dumps(description)[:-1] + '\\ud800"', 1)
    assert surrogate != text
    duplicated = text.replace(f'"digest":"{digest}"', f'"digest":"{digest}","digest":"{digest}"', 1)
    return [
        valid("R-JSON-1", "The base bundle, as built, signed and anchored.", bundle_ref="base"),
        invalid("R-JSON-1", "A JSON array is not a bundle.", "not a JSON object", bundle_text="[]"),
        invalid(
            "R-JSON-1",
            "The file starts with a byte-order mark.",
            "byte-order mark",
            bundle_text="\ufeff" + json.dumps(base, ensure_ascii=False),
        ),
        valid(
            "R-JSON-5",
            "Key order and whitespace of the file do not matter: the digest is over the canonical body.",
            bundle_text=json.dumps(_reversed_keys(base), indent=2, ensure_ascii=True),
        ),
        invalid("R-JSON-2", "The key 'digest' twice.", "repeats the key", bundle_text=duplicated),
        invalid(
            "R-JSON-3",
            "A JSON fraction (vout 0.0).",
            "JSON number",
            bundle_text=text.replace('"vout":0', '"vout":0.0', 1),
        ),
        invalid(
            "R-JSON-4",
            "A counter above 2**53 - 1 (the producer cannot sign it; the body is edited).",
            "audit_log.sequence",
            bundle=edited(_set("body.audit_log.sequence", 2**53)),
        ),
        invalid(
            "R-FILE-1",
            "The file has no 'anchors' part.",
            "has no 'anchors' field",
            bundle=edited(lambda data: data.pop("anchors")),
        ),
        invalid(
            "R-GRAM-1",
            "An unknown top-level part beside the body.",
            "unknown field 'audited_by'",
            bundle=edited(_set("audited_by", "a well-known firm")),
        ),
        invalid(
            "R-GRAM-1",
            "An unknown field in the body (re-signed).",
            "unknown field 'note'",
            bundle=resigned(_set("note", "unsigned claims do not belong here")),
        ),
        invalid(
            "R-GRAM-1",
            "An unknown field inside a UTXO (re-signed).",
            "unknown field 'label'",
            bundle=resigned(_set("snapshot.bitcoin.utxos.0.label", "cold storage")),
        ),
        invalid(
            "R-GRAM-1",
            "An unknown field inside a published leaf (re-signed).",
            "unknown field 'name'",
            bundle=resigned(_set("liabilities.public_listing.0.leaf.name", "Defence")),
        ),
        invalid(
            "R-GRAM-1",
            "The body has no as_of (re-signed): a missing field is refused, even one no check reads.",
            "has no 'as_of' field",
            bundle=resigned(lambda body: body.pop("as_of")),
        ),
        invalid(
            "R-GRAM-1",
            "The audit log head without its hash (re-signed).",
            "has no 'head_hash' field",
            bundle=resigned(lambda body: body["audit_log"].pop("head_hash")),
        ),
        invalid(
            "R-GRAM-1",
            "The registry without its publisher (re-signed): the publisher is required.",
            "has no 'publisher' field",
            bundle=resigned(lambda body: body["registry"].pop("publisher")),
        ),
        invalid(
            "R-GRAM-1",
            "A UTXO without its creating block hash (re-signed).",
            "has no 'created_block_hash' field",
            bundle=resigned(
                lambda body: body["snapshot"]["bitcoin"]["utxos"][0].pop("created_block_hash")
            ),
        ),
        invalid(
            "R-JSON-1",
            "A lone UTF-16 surrogate escape in a string (no UTF-8 form; nothing can sign it).",
            "lone UTF-16 surrogate",
            bundle_text=surrogate,
        ),
        invalid(
            "R-GRAM-2",
            "A leading zero in a ledger total (re-signed).",
            "canonical decimal string",
            bundle=resigned(_set("ledger.totals.BTC", "090000")),
        ),
        invalid(
            "R-GRAM-2",
            "A plus sign in an encumbrance amount (re-signed).",
            "canonical decimal string",
            bundle=resigned(_set("encumbrances.0.amount", "+5000")),
        ),
        invalid(
            "R-GRAM-2",
            "Minus zero as a coverage shortfall (re-signed).",
            "canonical decimal string",
            bundle=resigned(_set("coverage.BTC.shortfall", "-0")),
        ),
        invalid(
            "R-GRAM-2",
            "A UTXO amount as a JSON integer of the same value, not a string (re-signed).",
            "canonical decimal string",
            bundle=resigned(_set("snapshot.bitcoin.utxos.0.amount", int(first_utxo["amount"]))),
        ),
        invalid(
            "R-GRAM-3",
            "An upper-case txid (re-signed).",
            "lowercase hex",
            bundle=resigned(
                _set(
                    "snapshot.bitcoin.utxos.0.txid",
                    BASE_BODY["snapshot"]["bitcoin"]["utxos"][0]["txid"].upper(),
                )
            ),
        ),
        invalid(
            "R-GRAM-3",
            "A 31-byte block hash (re-signed).",
            "lowercase hex",
            bundle=resigned(_set("snapshot.bitcoin.block_hash", "ab" * 31)),
        ),
        invalid(
            "R-GRAM-3",
            "An EVM block hash without its 0x prefix (re-signed).",
            "0x-prefixed",
            bundle=resigned(_set("snapshot.evm.0.block_hash", "77" * 32)),
        ),
        invalid(
            "R-GRAM-4",
            "A registry address with a broken EIP-55 checksum (re-signed).",
            "EIP-55",
            bundle=resigned(_set("registry.address", _swap_case(REGISTRY))),
        ),
        invalid(
            "R-GRAM-4",
            "A Safe address in all lower case (EIP-55 only; re-signed).",
            "EIP-55",
            bundle=resigned(_set("snapshot.evm.0.balances.0.safe_address", SAFE.lower())),
        ),
        invalid(
            "R-GRAM-5",
            "A vout written as a string of the same number (re-signed).",
            "not a non-negative JSON integer",
            bundle=resigned(_set("snapshot.bitcoin.utxos.0.vout", str(first_utxo["vout"]))),
        ),
        invalid(
            "R-GRAM-5",
            "A vout of 1 written as true (re-signed).",
            "not a non-negative JSON integer",
            bundle=resigned(_set("snapshot.bitcoin.utxos.0.vout", True)),
        ),
        invalid(
            "R-GRAM-5",
            "A chain id of 0 (chain ids are at least 1; re-signed, anchored in that registry).",
            "not a chain id",
            bundle=resigned(_set("registry.chain_id", 0)),
        ),
        invalid(
            "R-GRAM-6",
            "as_of with an offset instead of Z (re-signed).",
            "YYYY-MM-DDTHH:MM:SSZ",
            bundle=resigned(_set("as_of", "2026-03-01T12:00:00+00:00")),
        ),
        invalid(
            "R-GRAM-6",
            "as_of naming a day that does not exist, 30 February (re-signed).",
            "not a valid UTC time",
            bundle=resigned(_set("as_of", "2026-02-30T12:00:00Z")),
        ),
        invalid(
            "R-GRAM-3",
            "An empty script in the vault set (hex of a script is at least one byte; re-signed).",
            "is empty",
            bundle=resigned(
                lambda body: body["vaults"].update(bitcoin=["", *body["vaults"]["bitcoin"]])
            ),
        ),
        invalid(
            "R-GRAM-7",
            "An encumbrance kind outside the list (re-signed).",
            "not one of",
            bundle=resigned(_set("encumbrances.0.kind", "reserved")),
        ),
        invalid(
            "R-GRAM-8",
            "Body version 2 (re-signed).",
            "version 1 document",
            bundle=resigned(_set("version", 2)),
        ),
        invalid(
            "R-GRAM-9",
            "An asset code with a space in a Safe balance (re-signed).",
            "printable ASCII",
            bundle=resigned(_set("snapshot.evm.0.balances.1.asset", "US DC")),
        ),
    ]


def _integrity_vectors(base: dict[str, Any]) -> list[dict[str, Any]]:
    later = copy.deepcopy(BASE_BODY)
    later["as_of"] = "2026-03-02T12:00:00Z"

    def same_key(body: dict[str, Any]) -> None:
        body["signers"]["auditor"] = TREASURY.identity()

    same = copy.deepcopy(BASE_BODY)
    same_key(same)
    same_file = seal(same)
    same_file["signatures"]["auditor"] = same_file["signatures"]["treasury"]

    second = copy.deepcopy(BASE_BODY)
    second["sequence"] = 2
    second["previous_digest"] = base["digest"]
    other_first = copy.deepcopy(BASE_BODY)
    other_first["as_of"] = "2026-02-01T12:00:00Z"
    third = copy.deepcopy(second)
    third["sequence"] = 3
    return [
        invalid(
            "R-DIG-1",
            "The stated digest is not the body's SHA-256.",
            "states digest",
            bundle=edited(_set("digest", "00" * 32)),
        ),
        invalid(
            "R-DIG-1",
            "The body changed after signing (as_of), nothing re-signed.",
            "states digest",
            bundle=edited(_set("body.as_of", "2026-03-02T12:00:00Z")),
        ),
        invalid(
            "R-SIG-1",
            "A signature with v = 27 (the Ethereum-message convention), not 0 or 1.",
            "v 0 or 1",
            bundle=edited(
                lambda data: data["signatures"].update(
                    treasury=data["signatures"]["treasury"][:128] + "1b"
                )
            ),
        ),
        invalid(
            "R-SIG-1",
            "A 64-byte signature (v missing).",
            "lowercase hex",
            bundle=edited(
                lambda data: data["signatures"].update(auditor=data["signatures"]["auditor"][:128])
            ),
        ),
        invalid(
            "R-SIG-2",
            "The high-S twin of the treasury's valid signature.",
            "high S",
            bundle=edited(
                lambda data: data["signatures"].update(
                    treasury=_high_s(data["signatures"]["treasury"])
                )
            ),
        ),
        invalid(
            "R-SIG-3",
            "The auditor slot holds a stranger's valid signature of the digest.",
            "not the listed auditor key",
            bundle=edited(
                lambda data: data["signatures"].update(
                    auditor=OTHER.sign_digest(bytes.fromhex(data["digest"])).hex()
                )
            ),
        ),
        invalid(
            "R-SIG-1",
            "The auditor's signature is missing.",
            "auditor signature is missing",
            bundle=edited(lambda data: data["signatures"].pop("auditor")),
        ),
        invalid(
            "R-SIG-4",
            "The listed treasury address is not its public key's (re-signed).",
            "does not match its public key",
            bundle=resigned(_set("signers.treasury.address", _address("not the treasury"))),
        ),
        invalid(
            "R-SIG-5",
            "Both roles list and sign with the treasury's key.",
            "same key",
            bundle=same_file,
        ),
        invalid(
            "R-CHAIN-1",
            "Attestation 2 naming no previous digest (re-signed).",
            "chain gap",
            bundle=resigned(_set("sequence", 2)),
        ),
        invalid(
            "R-CHAIN-1",
            "Attestation 1 naming a previous digest (re-signed).",
            "chain gap",
            bundle=resigned(_set("previous_digest", "ab" * 32)),
        ),
        invalid(
            "R-CHAIN-1",
            "Sequence 0 (re-signed).",
            "not a positive integer",
            bundle=resigned(_set("sequence", 0)),
        ),
        valid(
            "R-CHAIN-2",
            "Attestation 2 follows the base bundle, given as previous.",
            bundle=seal(second),
            previous_ref="base",
        ),
        invalid(
            "R-CHAIN-2",
            "Attestation 2 names the base digest, but the previous bundle given is another.",
            "chain gap",
            bundle=seal(second),
            previous=seal(other_first),
        ),
        invalid(
            "R-CHAIN-2",
            "Attestation 3 names the base bundle, which is number 1.",
            "this one is 3",
            bundle=seal(third),
            previous_ref="base",
        ),
    ]


def _snapshot_vectors() -> list[dict[str, Any]]:
    def unsorted(body: dict[str, Any]) -> None:
        body["snapshot"]["bitcoin"]["utxos"].reverse()

    def duplicate(body: dict[str, Any]) -> None:
        utxos = body["snapshot"]["bitcoin"]["utxos"]
        utxos.insert(1, copy.deepcopy(utxos[0]))

    base_utxos = inputs().bitcoin.utxos
    dropped = copy.deepcopy(
        dict(
            build_attestation(
                inputs(
                    bitcoin=BitcoinSnapshot(
                        "regtest",
                        _block(110),
                        tuple(utxo for utxo in base_utxos if utxo.amount_sats != 55_000),
                    )
                )
            ).body
        )
    )
    dropped["holdings"]["root"] = copy.deepcopy(BASE_BODY["holdings"]["root"])

    def other_token(body: dict[str, Any]) -> None:
        body["snapshot"]["evm"][0]["balances"][1]["token_address"] = _address("a fake token")

    big_utxo = copy.deepcopy(BASE_BODY)
    big_utxo["snapshot"]["bitcoin"]["utxos"][0]["amount"] = str(1 << 64)

    return [
        invalid(
            "R-SNAP-1",
            "UTXOs not sorted by (txid, vout) (re-signed).",
            "not sorted by (txid, vout)",
            bundle=resigned(unsorted),
        ),
        invalid(
            "R-SNAP-1",
            "One outpoint listed twice (re-signed).",
            "twice",
            bundle=resigned(duplicate),
        ),
        invalid(
            "R-SNAP-2",
            "A UTXO created above the snapshot height (re-signed).",
            "above the snapshot height",
            bundle=resigned(_set("snapshot.bitcoin.utxos.0.created_height", 111)),
        ),
        invalid(
            "R-SNAP-3",
            "A chain's balances not sorted by (Safe, asset) (re-signed).",
            "not sorted by (Safe, asset)",
            bundle=resigned(lambda body: body["snapshot"]["evm"][0]["balances"].reverse()),
        ),
        invalid(
            "R-SNAP-3",
            "One chain's snapshot listed twice (re-signed).",
            "list one chain twice",
            bundle=resigned(
                lambda body: body["snapshot"]["evm"].append(
                    copy.deepcopy(body["snapshot"]["evm"][0])
                )
            ),
        ),
        invalid(
            "R-HOLD-1",
            "The 55 000-sat UTXO removed from the snapshot, totals, reconciliation and coverage "
            "restated, the holdings root kept (re-signed, new reserve proof).",
            "holdings root is altered",
            bundle=seal(dropped),
        ),
        invalid(
            "R-HOLD-1",
            "A Safe balance's token address changed (its leaf hash changes; re-signed).",
            "holdings root is altered",
            bundle=resigned(other_token),
        ),
        invalid(
            "R-HOLD-2",
            "The stated BTC holdings total is one satoshi more (re-signed).",
            "holdings totals do not add up",
            bundle=resigned(_set("holdings.totals.BTC", "155001")),
        ),
        invalid(
            "R-HOLD-2",
            "The holdings totals list a zero column for a registered asset no holding has (re-signed).",
            "holdings totals do not add up",
            bundle=resigned(
                both(
                    register("DAI", f"evm:{EVM_CHAIN_ID}", "erc20", _address("dai token")),
                    _set("holdings.totals.DAI", "0"),
                )
            ),
        ),
        invalid(
            "R-HOLD-3",
            "A UTXO amount of 2**64 sats, which no u64 leaf field holds (re-signed, root kept).",
            "more than a u64 holds",
            bundle=seal(big_utxo, psbt_body=BASE_BODY),
        ),
        invalid(
            "R-HOLD-3",
            "A Safe balance of 2**256, which no u256 leaf field holds (re-signed, root kept).",
            "more than a u256 holds",
            bundle=resigned(_set("snapshot.evm.0.balances.0.amount", str(1 << 256))),
        ),
        valid(
            "R-HOLD-3",
            "A Safe balance above 2**128 (a u256 field; only liability amounts are u128).",
            bundle=_large_balance_bundle(),
        ),
        valid(
            "R-HOLD-2",
            "A Safe balance of zero ETH: the holdings totals carry the zero column.",
            bundle=_zero_eth_bundle(),
        ),
    ]


def _large_balance_bundle() -> dict[str, Any]:
    """2**200 wei in the Safe (more than a u128, less than a u256), and covered."""
    return built(
        evm=(EvmSnapshot(EVM_CHAIN_ID, BlockRef(50, "0x" + "77" * 32), _balances(eth=1 << 200)),)
    )


def _zero_eth_bundle() -> dict[str, Any]:
    """ETH holdings of zero against no ETH liabilities: totals and coverage carry zero columns."""
    rows = {account: (btc, 0, usdc) for account, (btc, _, usdc) in ROWS.items()}
    return built(
        evm=(EvmSnapshot(EVM_CHAIN_ID, BlockRef(50, "0x" + "77" * 32), _balances(eth=0)),),
        liabilities=_tree(rows),
        ledger_totals=_totals(rows),
    )


def _liability_vectors() -> list[dict[str, Any]]:
    def unsorted_assets(body: dict[str, Any]) -> None:
        body["liabilities"]["root"]["assets"] = ["ETH", "BTC", "USDC"]

    def alter_leaf(body: dict[str, Any]) -> None:
        amounts = body["liabilities"]["public_listing"][0]["leaf"]["amounts"]
        amounts[0] = str(int(amounts[0]) - 1)

    def listed_twice(body: dict[str, Any]) -> None:
        listing = body["liabilities"]["public_listing"]
        listing.append(copy.deepcopy(listing[0]))

    def salt_twice(body: dict[str, Any]) -> None:
        listing = body["liabilities"]["public_listing"]
        listing.append(copy.deepcopy(listing[0]))
        listing[-1]["leaf"]["account_id"] = "budget/another"

    def drop_column(body: dict[str, Any]) -> None:
        body["liabilities"]["totals"].pop("ETH")

    return [
        invalid(
            "R-LIAB-1",
            "The liability root states a digest its fields do not hash to (re-signed).",
            "Root digest mismatch",
            bundle=resigned(_set("liabilities.root.digest", "ab" * 32)),
        ),
        invalid(
            "R-LIAB-1",
            "The liability root's asset list is not in byte order (re-signed).",
            "ascending byte order",
            bundle=resigned(unsorted_assets),
        ),
        invalid(
            "R-LIAB-1",
            "A holdings root stated as the liability root (re-signed).",
            "not a liability-tree root",
            bundle=resigned(lambda body: body["liabilities"].update(root=body["holdings"]["root"])),
        ),
        invalid(
            "R-LIAB-2",
            "The stated liability totals omit a column of the root (re-signed).",
            "liability totals do not add up",
            bundle=resigned(drop_column),
        ),
        invalid(
            "R-LIAB-3",
            "A published leaf's amount lowered by one (re-signed).",
            "Root hash mismatch",
            bundle=resigned(alter_leaf),
        ),
        invalid(
            "R-LIAB-3",
            "A published account listed twice (re-signed).",
            "names one account twice",
            bundle=resigned(listed_twice),
        ),
        invalid(
            "R-LIAB-3",
            "A published leaf copied under another account id, salt kept (re-signed).",
            "one salt",
            bundle=resigned(salt_twice),
        ),
    ]


def _balance_vectors() -> list[dict[str, Any]]:
    def over_encumbered(body: dict[str, Any]) -> None:
        body["encumbrances"][0]["amount"] = "200000"
        body["reconciliation"]["BTC"]["encumbered"] = "200000"

    def ledger_differs(body: dict[str, Any]) -> None:
        body["ledger"]["totals"]["BTC"] = "90001"
        body["reconciliation"]["BTC"]["ledger_total"] = "90001"
        body["reconciliation"]["BTC"]["liabilities_match_ledger"] = False

    def drop_line(body: dict[str, Any]) -> None:
        body["reconciliation"].pop("USDC")

    under = {account: (btc, eth, usdc * 3) for account, (btc, eth, usdc) in ROWS.items()}
    no_usdc = {account: (btc, eth) for account, (btc, eth, _) in ROWS.items()}
    no_usdc_bundle = built(
        liabilities=_tree(no_usdc, ("BTC", "ETH")),
        ledger_totals=_totals(no_usdc, ("BTC", "ETH")),
    )
    no_usdc_wrong = copy.deepcopy(no_usdc_bundle["body"])
    no_usdc_wrong["coverage"]["USDC"]["ratio"] = "0.00%"
    two = (
        Encumbrance("BTC", 2_000, EncumbranceKind.PENDING_SPEND, "psbt:1", "A payment in flight."),
        Encumbrance("BTC", 3_000, EncumbranceKind.LOCKED, "psbt:2", "A locked payment."),
    )
    two_bundle = built(encumbrances=two)
    swapped = copy.deepcopy(two_bundle["body"])
    swapped["encumbrances"].reverse()
    repeated = copy.deepcopy(two_bundle["body"])
    repeated["encumbrances"][1]["reference"] = repeated["encumbrances"][0]["reference"]
    return [
        valid(
            "R-ENC-1",
            "Two BTC encumbrances in (asset, reference) order, 2 000 + 3 000 sats.",
            bundle=two_bundle,
        ),
        invalid(
            "R-ENC-1",
            "The two encumbrances in reverse order (re-signed).",
            "strictly ascending (asset, reference) order",
            bundle=seal(swapped),
        ),
        invalid(
            "R-ENC-1",
            "Two encumbrances of BTC with one reference (re-signed).",
            "strictly ascending (asset, reference) order",
            bundle=seal(repeated),
        ),
        invalid(
            "R-REC-1",
            "The reconciliation overstates chain holdings by one satoshi (re-signed).",
            "reconciliation states chain_holdings",
            bundle=resigned(_set("reconciliation.BTC.chain_holdings", "155001")),
        ),
        invalid(
            "R-REC-1",
            "The reconciliation has no line for USDC (re-signed).",
            "'USDC' is missing",
            bundle=resigned(drop_line),
        ),
        invalid(
            "R-REC-2",
            "Encumbrances of BTC above its holdings (re-signed).",
            "exceed its holdings",
            bundle=resigned(over_encumbered),
        ),
        invalid(
            "R-REC-3",
            "The ledger states one satoshi more than the liability tree (re-signed, flag false).",
            "Three-way reconciliation fails",
            bundle=resigned(ledger_differs),
        ),
        invalid(
            "R-REC-3",
            "The match flag is false while the totals match (re-signed).",
            "match flag",
            bundle=resigned(_set("reconciliation.BTC.liabilities_match_ledger", False)),
        ),
        invalid(
            "R-COV-1",
            "The coverage numerator counts encumbered holdings as available (re-signed).",
            "coverage ratio of BTC is misstated",
            bundle=resigned(_set("coverage.BTC.numerator", "155000")),
        ),
        invalid(
            "R-COV-2",
            "The percentage rounded up (166.67%) instead of truncated (166.66%) (re-signed).",
            "coverage statement of BTC is misstated",
            bundle=resigned(_set("coverage.BTC.ratio", "166.67%")),
        ),
        valid(
            "R-COV-2",
            "USDC held with no USDC liabilities: denominator 0, ratio 'no liabilities'.",
            bundle=no_usdc_bundle,
        ),
        invalid(
            "R-COV-2",
            "With no liabilities the ratio must be 'no liabilities', not a percentage (re-signed).",
            "coverage statement of USDC is misstated",
            bundle=seal(no_usdc_wrong),
        ),
        invalid(
            "R-COV-3",
            "Covered stated false for a covered asset (re-signed).",
            "coverage statement of ETH is misstated",
            bundle=resigned(_set("coverage.ETH.covered", False)),
        ),
        invalid(
            "R-COV-3",
            "A shortfall stated for a covered asset (re-signed).",
            "coverage statement of ETH is misstated",
            bundle=resigned(_set("coverage.ETH.shortfall", "1")),
        ),
        invalid(
            "R-COV-4",
            "An honest, correctly stated bundle whose USDC liabilities exceed its holdings.",
            "UNDER-COVERED",
            bundle=built(liabilities=_tree(under), ledger_totals=_totals(under)),
        ),
    ]


def _proof_of_control_vectors() -> list[dict[str, Any]]:
    stale = copy.deepcopy(BASE_BODY)
    stale["as_of"] = "2026-03-01T12:00:01Z"

    def fewer_inputs(data: dict[str, Any]) -> None:
        body = copy.deepcopy(data["body"])
        body["snapshot"]["bitcoin"]["utxos"].pop()
        data["proofs_of_control"]["bitcoin_reserve_proof"]["psbt"] = reserve_psbt(
            body, bytes.fromhex(data["digest"])
        )

    def no_witness_utxo(data: dict[str, Any]) -> None:
        data["proofs_of_control"]["bitcoin_reserve_proof"]["psbt"] = reserve_psbt(
            data["body"], bytes.fromhex(data["digest"]), witness_utxos=False
        )

    no_btc = _no_bitcoin_bundle()
    stray = copy.deepcopy(no_btc)
    stray["proofs_of_control"]["bitcoin_reserve_proof"] = copy.deepcopy(
        seal(copy.deepcopy(BASE_BODY))["proofs_of_control"]["bitcoin_reserve_proof"]
    )
    return [
        invalid(
            "R-POC-1",
            "The reserve proof's signed inputs carry no witness UTXO (amount and script spent).",
            "has no witness UTXO",
            bundle=edited(no_witness_utxo),
        ),
        valid(
            "R-POC-2",
            "No UTXOs and no BTC owed: the reserve-proof slot is null and the file has no PSBT.",
            bundle=no_btc,
        ),
        invalid(
            "R-POC-2",
            "A reserve proof in the file although the body's slot is null (no UTXOs).",
            "a reserve proof is present exactly when its slot is",
            bundle=stray,
        ),
        invalid(
            "R-POC-1",
            "The reserve proof (PSBT) is missing.",
            "reserve proof (BIP-127 PSBT) is missing",
            bundle=edited(lambda data: data["proofs_of_control"].pop("bitcoin_reserve_proof")),
        ),
        invalid(
            "R-POC-1",
            "The reserve proof commits to another digest (a stale proof).",
            "not the commitment to this digest",
            bundle=seal(stale, psbt_digest=bytes.fromhex(seal(copy.deepcopy(BASE_BODY))["digest"])),
        ),
        invalid(
            "R-POC-1",
            "The reserve proof leaves one attested UTXO out.",
            "does not spend exactly the attested UTXOs",
            bundle=edited(fewer_inputs),
        ),
        invalid(
            "R-POC-2",
            "An EIP-1271 slot at a block before its chain's snapshot block (re-signed).",
            "not its chain's snapshot block",
            bundle=resigned(_set("proofs_of_control.eip1271.0.block_number", 49)),
        ),
        invalid(
            "R-POC-2",
            "No reserve-proof slot although the snapshot lists UTXOs (re-signed).",
            "present exactly when",
            bundle=resigned(_set("proofs_of_control.bitcoin_reserve_proof", None)),
        ),
        invalid(
            "R-POC-2",
            "One Safe's EIP-1271 slot listed twice (re-signed).",
            "list one Safe twice",
            bundle=resigned(
                lambda body: body["proofs_of_control"]["eip1271"].append(
                    copy.deepcopy(body["proofs_of_control"]["eip1271"][0])
                )
            ),
        ),
        invalid(
            "R-ANC-1",
            "The Bitcoin anchor is below the snapshot height.",
            "below the snapshot height",
            bundle=edited(_set("anchors.bitcoin.height", 109)),
        ),
        invalid(
            "R-ANC-1",
            "The Bitcoin anchor is in the snapshot block itself (the digest names that block).",
            "not above the snapshot height",
            bundle=edited(_set("anchors.bitcoin.height", 110)),
        ),
        invalid(
            "R-ANC-3",
            "The registry anchor names another registry address than the body's.",
            "not the body's registry",
            bundle=edited(_set("anchors.services.registry", _address("another registry"))),
        ),
        invalid(
            "R-ANC-3",
            "The registry anchor is on another chain than the body's registry.",
            "not the body's registry",
            bundle=edited(_set("anchors.services.chain_id", EVM_CHAIN_ID)),
        ),
        invalid(
            "R-ANC-2",
            "The registry anchor records another sequence than the body's.",
            "registry anchor records sequence 2",
            bundle=edited(_set("anchors.services.sequence", 2)),
        ),
    ]


def _no_bitcoin_bundle() -> dict[str, Any]:
    """No vault UTXO, no encumbrance and no BTC owed: BTC is registered but in no figure."""
    rows = {account: (eth, usdc) for account, (_, eth, usdc) in ROWS.items()}
    return built(
        bitcoin=BitcoinSnapshot("regtest", _block(110), ()),
        encumbrances=(),
        liabilities=_tree(rows, ("ETH", "USDC")),
        ledger_totals=_totals(rows, ("ETH", "USDC")),
    )


def _trust(**changes: Any) -> dict[str, Any]:
    """A trust file pinning the base bundle's keys, registry and genesis (fields replaced)."""
    document: dict[str, Any] = {
        "format": "reserve-verifier-trust",
        "version": 1,
        "signers": {
            "treasury": [TREASURY.identity()["public_key"]],
            "auditor": [AUDITOR.identity()["public_key"]],
        },
        "registry": {"chain_id": SERVICES_CHAIN_ID, "address": REGISTRY, "publisher": PUBLISHER},
    }
    document.update(changes)
    return document


def _trust_vectors(base: dict[str, Any]) -> list[dict[str, Any]]:
    pins = _trust()
    treasury_key = pins["signers"]["treasury"][0]
    off_curve = treasury_key[:-1] + ("0" if treasury_key[-1] != "0" else "1")
    return [
        valid(
            "R-TRUST-1",
            "The base bundle against a trust file pinning its keys, registry and genesis.",
            bundle_ref="base",
            trust=_trust(genesis_digest=base["digest"]),
        ),
        invalid(
            "R-TRUST-1",
            "A trust file with an unknown field.",
            "unknown field 'comment'",
            bundle_ref="base",
            trust=_trust(comment="pinned on 1 March"),
        ),
        invalid(
            "R-TRUST-1",
            "A trust file naming a field twice.",
            "twice",
            bundle_ref="base",
            trust_text=json.dumps(pins).replace('"version": 1', '"version": 1, "version": 1'),
        ),
        invalid(
            "R-TRUST-1",
            "A trust file pinning a public key that is not a point of secp256k1.",
            "not a point of secp256k1",
            bundle_ref="base",
            trust=_trust(signers={"treasury": [off_curve], "auditor": pins["signers"]["auditor"]}),
        ),
        invalid(
            "R-TRUST-1",
            "A trust file pinning one key for both roles.",
            "same key",
            bundle_ref="base",
            trust=_trust(signers={"treasury": [treasury_key], "auditor": [treasury_key]}),
        ),
        invalid(
            "R-TRUST-1",
            "A trust file with a broken EIP-55 checksum on the registry address.",
            "wrong EIP-55 checksum",
            bundle_ref="base",
            trust=_trust(registry={"chain_id": SERVICES_CHAIN_ID, "address": _swap_case(REGISTRY)}),
        ),
        invalid(
            "R-TRUST-2",
            "The auditor key is not the pinned one.",
            "not pinned in the trust file for the auditor",
            bundle_ref="base",
            trust=_trust(
                signers={
                    "treasury": pins["signers"]["treasury"],
                    "auditor": [OTHER.identity()["public_key"]],
                }
            ),
        ),
        invalid(
            "R-TRUST-3",
            "The registry address is not the pinned one.",
            "but the trust file pins",
            bundle_ref="base",
            trust=_trust(
                registry={"chain_id": SERVICES_CHAIN_ID, "address": _address("another registry")}
            ),
        ),
        invalid(
            "R-TRUST-3",
            "The registry chain is not the pinned one.",
            "trust file pins chain 1",
            bundle_ref="base",
            trust=_trust(registry={"chain_id": 1, "address": REGISTRY}),
        ),
        invalid(
            "R-TRUST-3",
            "The registry publisher is not the pinned one.",
            "registry publisher",
            bundle_ref="base",
            trust=_trust(
                registry={
                    "chain_id": SERVICES_CHAIN_ID,
                    "address": REGISTRY,
                    "publisher": _address("another publisher"),
                }
            ),
        ),
        invalid(
            "R-TRUST-4",
            "Attestation 1 is not the pinned genesis.",
            "not the pinned genesis",
            bundle_ref="base",
            trust=_trust(genesis_digest="ab" * 32),
        ),
    ]


def _package(account_id: str) -> dict[str, Any]:
    """The private proof package the base tree gives ``account_id``."""
    return copy.deepcopy(_tree(dict(ROWS)).package(account_id))


def _merkle_vectors() -> list[dict[str, Any]]:
    tree = _tree(dict(ROWS))
    last = next(a for a in ROWS if tree.index_of(a) == len(ROWS) - 1)
    first = next(a for a in ROWS if tree.index_of(a) == 0)

    def package(account_id: str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        data = _package(account_id)
        change(data)
        return data

    def bump_sibling(data: dict[str, Any]) -> None:
        sums = data["proof"]["siblings"][0]["sums"]
        sums[0] = str(int(sums[0]) + 1)

    def fake_padding(data: dict[str, Any]) -> None:
        data["proof"]["siblings"][0]["hash"] = "ab" * 32

    def nfd(data: dict[str, Any]) -> None:
        data["leaf"]["account_id"] = unicodedata.normalize("NFD", "Ministère")

    other_root = LiabilityTree.from_rows(ASSETS, list(ROWS.items()), bytes(32))
    private = "holder-0002"
    return [
        valid(
            "R-PKG-1",
            "A private account's package, checked against the base bundle's liability root.",
            bundle_ref="base",
            package=_package(private),
        ),
        valid(
            "R-TREE-3",
            "The last of three leaves: its level-0 sibling is the empty padding node.",
            bundle_ref="base",
            package=_package(last),
        ),
        invalid(
            "R-PKG-1",
            "A package from another tree (another nonce) than the bundle's root.",
            "Root digest mismatch",
            bundle_ref="base",
            package=copy.deepcopy(other_root.package(private)),
        ),
        invalid(
            "R-PKG-1",
            "A package without its proof.",
            "no 'proof' field",
            bundle_ref="base",
            package=package(private, lambda data: data.pop("proof")),
        ),
        invalid(
            "R-ROOT-1",
            "The package's root states a digest its fields do not hash to.",
            "Root digest mismatch",
            bundle_ref="base",
            package=package(private, _set("root.digest", "cd" * 32)),
        ),
        invalid(
            "R-ROOT-2",
            "The package's root lists its assets out of byte order.",
            "ascending byte order",
            bundle_ref="base",
            package=package(private, _set("root.assets", ["USDC", "BTC", "ETH"])),
        ),
        invalid(
            "R-ROOT-3",
            "A liability package whose root names the holdings tree.",
            "holdings root carries no asset list",
            bundle_ref="base",
            package=package(private, _set("root.tree", "holdings")),
        ),
        invalid(
            "R-LEAF-1",
            "An account id in NFD (decomposed) form.",
            "NFC",
            bundle_ref="base",
            package=package(private, nfd),
        ),
        invalid(
            "R-LEAF-1",
            "An empty account id.",
            "not a non-empty string",
            bundle_ref="base",
            package=package(private, _set("leaf.account_id", "")),
        ),
        invalid(
            "R-LEAF-2",
            "A leaf with two amounts for a root of three assets.",
            "amounts but the root's assets",
            bundle_ref="base",
            package=package(private, lambda data: data["leaf"]["amounts"].pop()),
        ),
        invalid(
            "R-LEAF-2",
            "A leaf amount raised by one base unit.",
            "Root hash mismatch",
            bundle_ref="base",
            package=package(
                private,
                _set("leaf.amounts.0", str(ROWS[private][0] + 1)),
            ),
        ),
        invalid(
            "R-LEAF-3",
            "A 31-byte salt.",
            "32 bytes",
            bundle_ref="base",
            package=package(
                private, lambda data: data["leaf"].update(salt=data["leaf"]["salt"][:62])
            ),
        ),
        invalid(
            "R-LEAF-3",
            "Another account's salt.",
            "Root hash mismatch",
            bundle_ref="base",
            package=package(
                private,
                lambda data: data["leaf"].update(salt=_package(PUBLIC_ACCOUNT)["leaf"]["salt"]),
            ),
        ),
        invalid(
            "R-TREE-1",
            "A proof labelled as a holdings-tree proof against the liability root.",
            "holdings proof cannot be checked against a liabilities root",
            bundle_ref="base",
            package=package(private, _set("proof.tree", "holdings")),
        ),
        invalid(
            "R-TREE-2",
            "A sibling's sum raised by one: the parent hash covers both children's sums.",
            "Root hash mismatch",
            bundle_ref="base",
            package=package(first, bump_sibling),
        ),
        invalid(
            "R-TREE-3",
            "A real-looking sibling where the level has only the empty padding node.",
            "empty padding node",
            bundle_ref="base",
            package=package(last, fake_padding),
        ),
        invalid(
            "R-TREE-4",
            "A negative sibling sum.",
            "negative",
            bundle_ref="base",
            package=package(first, _set("proof.siblings.0.sums.0", "-1")),
        ),
        invalid(
            "R-TREE-4",
            "A sibling sum of 2**128.",
            "exceeds 128 bits",
            bundle_ref="base",
            package=package(first, _set("proof.siblings.0.sums.0", str(1 << 128))),
        ),
        invalid(
            "R-TREE-5",
            "A proof one sibling short.",
            "siblings but a tree of 3 leaves needs 2",
            bundle_ref="base",
            package=package(private, lambda data: data["proof"]["siblings"].pop()),
        ),
        invalid(
            "R-TREE-6",
            "A leaf index equal to the leaf count.",
            "outside the tree",
            bundle_ref="base",
            package=package(private, _set("proof.leaf_index", 3)),
        ),
        invalid(
            "R-TREE-6",
            "A proof whose leaf index is another leaf's.",
            "Root hash mismatch",
            bundle_ref="base",
            package=package(first, _set("proof.leaf_index", 1)),
        ),
        invalid(
            "R-GRAM-2",
            "A leaf amount with a leading zero in a package (one spelling per value).",
            "canonical decimal string",
            bundle_ref="base",
            package=package(private, _set("leaf.amounts.0", "0" + str(ROWS[private][0]))),
            needs="strict-package",
        ),
        invalid(
            "R-GRAM-3",
            "An upper-case salt in a package (hex is lower case).",
            "lowercase hex",
            bundle_ref="base",
            package=package(
                private, lambda data: data["leaf"].update(salt=data["leaf"]["salt"].upper())
            ),
            needs="strict-package",
        ),
        invalid(
            "R-GRAM-1",
            "An unknown field in a package.",
            "unknown field 'issued_to'",
            bundle_ref="base",
            package=package(private, _set("issued_to", "Jane Doe")),
            needs="strict-package",
        ),
    ]


def _zero_safe_bundle() -> dict[str, Any]:
    """A second vault Safe whose every balance is zero (the producer gives it a slot)."""
    balances = (
        *_balances(),
        SafeBalanceHolding(EVM_CHAIN_ID, OTHER_SAFE, "ETH", None, 0),
        SafeBalanceHolding(EVM_CHAIN_ID, OTHER_SAFE, "USDC", TOKEN, 0),
    )
    return built(
        evm=(EvmSnapshot(EVM_CHAIN_ID, BlockRef(50, "0x" + "77" * 32), balances),),
        vaults=VaultSet((VAULT_SCRIPT,), ((EVM_CHAIN_ID, SAFE), (EVM_CHAIN_ID, OTHER_SAFE))),
    )


def _registry_vectors() -> list[dict[str, Any]]:
    def drop_asset(body: dict[str, Any]) -> None:
        body["assets"].pop("USDC")

    native_contract = register("XETH", "evm:1", "native", _address("a wrapped coin"))
    zero_chain = register("ZERO", "evm:0", "native", None)
    twice = register("USDC2", f"evm:{EVM_CHAIN_ID}", "erc20", TOKEN)

    def other_contract(body: dict[str, Any]) -> None:
        body["assets"]["USDC"]["contract"] = _address("the registered USDC")

    def extra_line(body: dict[str, Any]) -> None:
        register("XAU", f"evm:{EVM_CHAIN_ID}", "erc20", _address("gold token"))(body)
        body["reconciliation"]["XAU"] = copy.deepcopy(body["reconciliation"]["ETH"])
        body["coverage"]["XAU"] = copy.deepcopy(body["coverage"]["ETH"])
        for section in ("reconciliation", "coverage"):
            body[section] = {
                key: body[section][key] for key in sorted(body[section], key=str.encode)
            }

    def foreign_script(body: dict[str, Any]) -> None:
        body["vaults"]["bitcoin"] = [OTHER_SCRIPT.hex()]

    def foreign_safe(body: dict[str, Any]) -> None:
        body["vaults"]["evm"] = [{"chain_id": EVM_CHAIN_ID, "safe_address": OTHER_SAFE}]

    def no_slot(body: dict[str, Any]) -> None:
        body["proofs_of_control"]["eip1271"] = []

    bad_chain = register("DAI", "ethereum", "erc20", _address("dai token"))

    def unsorted_scripts(body: dict[str, Any]) -> None:
        body["vaults"]["bitcoin"] = sorted([VAULT_SCRIPT.hex(), OTHER_SCRIPT.hex()], reverse=True)

    def ether_relabelled(body: dict[str, Any]) -> None:
        body["snapshot"]["evm"][0]["balances"][0]["token_address"] = TOKEN
        rebuild_holdings(body)

    def zero_safe_without_slot(body: dict[str, Any]) -> None:
        body["proofs_of_control"]["eip1271"] = [
            slot
            for slot in body["proofs_of_control"]["eip1271"]
            if slot["safe_address"] != OTHER_SAFE
        ]

    zero_safe = _zero_safe_bundle()
    unslotted = copy.deepcopy(zero_safe["body"])
    zero_safe_without_slot(unslotted)

    def extra_signature(data: dict[str, Any]) -> None:
        signatures = data["proofs_of_control"]["eip1271"]
        signatures.append(copy.deepcopy(signatures[0]))

    return [
        valid(
            "R-ASSET-1",
            "The base bundle: every asset used is registered, every holding is a vault's.",
            bundle_ref="base",
        ),
        invalid(
            "R-ASSET-1",
            "USDC is held and owed but not in the asset registry (re-signed).",
            "USDC appears in the holdings but not in the asset registry",
            bundle=resigned(drop_asset),
        ),
        invalid(
            "R-ASSET-2",
            "A registered native asset (held nowhere) with a contract address (re-signed).",
            "native asset XETH names a contract",
            bundle=resigned(native_contract),
        ),
        invalid(
            "R-ASSET-2",
            "A registered asset whose chain is neither bitcoin:<network> nor evm:<chain id> (re-signed).",
            "neither bitcoin:<network> nor evm:<chain id>",
            bundle=resigned(bad_chain),
        ),
        invalid(
            "R-ASSET-2",
            "A registered asset on evm:0 (chain ids are at least 1; re-signed).",
            "neither bitcoin:<network> nor evm:<chain id>",
            bundle=resigned(zero_chain),
        ),
        invalid(
            "R-ASSET-2",
            "A second code for USDC's contract on its chain (re-signed).",
            "names the contract",
            bundle=resigned(twice),
        ),
        invalid(
            "R-ASSET-3",
            "USDC registered with another contract than the Safe balance is read from (re-signed).",
            "not from USDC's registered contract",
            bundle=resigned(other_contract),
        ),
        invalid(
            "R-ASSET-3",
            "A token balance stated as the native coin ETH (re-signed).",
            "relabelled as the native coin",
            bundle=resigned(ether_relabelled),
        ),
        invalid(
            "R-ASSET-4",
            "Reconciliation and coverage lines for an asset nothing holds or owes (re-signed).",
            "lists XAU",
            bundle=resigned(extra_line),
        ),
        invalid(
            "R-VAULT-1",
            "A UTXO whose script is not in the vault set (re-signed).",
            "which is not in the vault set",
            bundle=resigned(foreign_script),
        ),
        invalid(
            "R-VAULT-2",
            "A Safe balance of a Safe not in the vault set (re-signed).",
            "holds an attested balance but is not in the vault set",
            bundle=resigned(foreign_safe),
        ),
        invalid(
            "R-VAULT-3",
            "A vault Safe holding a balance with no EIP-1271 slot (re-signed).",
            "no EIP-1271 slot",
            bundle=resigned(no_slot),
        ),
        invalid(
            "R-VAULT-3",
            "A vault Safe holding a balance whose EIP-1271 signature is left out of the file.",
            "no EIP-1271 signature",
            bundle=edited(lambda data: data["proofs_of_control"].update(eip1271=[])),
        ),
        valid(
            "R-VAULT-3",
            "A second vault Safe holding only zero balances: it has a slot and a signature too.",
            bundle=zero_safe,
        ),
        invalid(
            "R-VAULT-3",
            "The zero-balance Safe's EIP-1271 slot left out (re-signed).",
            "has a balance entry but no EIP-1271 slot",
            bundle=seal(unslotted),
        ),
        invalid(
            "R-VAULT-3",
            "The file carries one Safe's EIP-1271 signature twice (one signature per slot).",
            "not exactly the body's",
            bundle=edited(extra_signature),
        ),
        invalid(
            "R-VAULT-4",
            "The vault scripts not in ascending order (re-signed).",
            "not sorted",
            bundle=resigned(unsorted_scripts),
        ),
        invalid(
            "R-TRUST-5",
            "The trust file pins another USDC contract.",
            "asset registry differs",
            bundle_ref="base",
            trust=_trust(
                assets={
                    **copy.deepcopy(BASE_BODY["assets"]),
                    "USDC": {
                        **BASE_BODY["assets"]["USDC"],
                        "contract": _address("the registered USDC"),
                    },
                }
            ),
        ),
        invalid(
            "R-TRUST-5",
            "The trust file pins a Safe the bundle omits.",
            "vault set differs",
            bundle_ref="base",
            trust=_trust(
                vaults={
                    "bitcoin": BASE_BODY["vaults"]["bitcoin"],
                    "evm": [
                        *BASE_BODY["vaults"]["evm"],
                        {"chain_id": EVM_CHAIN_ID, "safe_address": OTHER_SAFE},
                    ],
                }
            ),
        ),
        valid(
            "R-TRUST-5",
            "The trust file pins the bundle's asset registry and vault set.",
            bundle_ref="base",
            trust=_trust(
                assets=copy.deepcopy(BASE_BODY["assets"]),
                vaults=copy.deepcopy(BASE_BODY["vaults"]),
            ),
        ),
    ]


def build_vectors() -> dict[str, Any]:
    """Every rule vector, in rule-family order."""
    base = seal(copy.deepcopy(BASE_BODY))
    vectors = [
        *_grammar_vectors(base),
        *_integrity_vectors(base),
        *_snapshot_vectors(),
        *_liability_vectors(),
        *_balance_vectors(),
        *_proof_of_control_vectors(),
        *_trust_vectors(base),
        *_merkle_vectors(),
        *_registry_vectors(),
    ]
    return {
        "version": 1,
        "spec": ["reporting/SPEC-attestation.md", "reporting/SPEC-merkle.md"],
        "generator": "reporting/vectors/generate_attestation_vectors.py",
        "how_to_run": (
            "Verify each vector offline (node checks may be skipped, none may fail). 'bundle', "
            "'bundle_text' or 'bundles'[bundle_ref] is the file; 'package' is an account's proof "
            "package, checked against that file's liability root; 'previous' or "
            "'bundles'[previous_ref] is the previous bundle of the chain; 'trust' / 'trust_text' "
            "is the auditor's trust file. 'valid': nothing fails. 'invalid': something fails (or "
            "the file, package or trust file is refused), and one reason contains "
            "'reason_contains'. 'needs' marks rules only some verifiers implement yet."
        ),
        "bundles": {"base": base},
        "vectors": vectors,
    }


def render(vectors: dict[str, Any]) -> str:
    """Serialise the vectors: sorted keys, one-space indent, a final newline."""
    return json.dumps(vectors, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    """Rewrite the committed vectors file."""
    VECTORS_PATH.write_text(render(build_vectors()), encoding="utf-8")
    print(f"wrote {VECTORS_PATH}")


if __name__ == "__main__":
    main()
