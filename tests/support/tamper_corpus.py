"""The tamper corpus: named mutations of a real signed bundle, each aimed at one verifier rule.

A :class:`Case` is data: its name, the rule it attacks, the report line expected to fail and a
substring of that line's reason, and one or two small edits of the bundle file (a JSON ``dict``):
``edit`` runs on the body before the file is sealed again, ``after`` on the sealed file. Sealing
(:func:`seal`) is what an insider holding both signing keys can do: re-make the proofs of control
for the new digest and re-sign with every key the body lists, so only the targeted rule can catch
the change. ``resign=False`` leaves the stale digest, signatures and proofs in place (an outsider's
edit). The world that supplies the bundles, keys and provers is a :class:`Kit`; the live test
(``tests/integration/test_tamper_corpus.py``) is one, on regtest bitcoind and anvil.

A case may also hand the auditor an announcements file (``announced``: the statements, made in
the kit's world, that the verifier reads with ``verify_bundle(..., announced=...)``): a key
rotation or vault-set change that must not move the pins, or one that did and the bundle ignores.

A new case is one line in :data:`CASES`. ``pending`` names a rule not enforced yet: the test marks
the case ``xfail(strict=True)``, so it flips to a failure the day the rule lands and the mark must
go. ``check=None`` (used for pending rules whose report line is not named yet) accepts any failed
line other than the anchors a re-signed digest necessarily loses.

Every mutated file is verified twice, offline and against the live nodes; ``online_only`` cases
are invisible without a node (a block hash, a balance, an anchor), so offline they must merely not
pass, their check being skipped. Legitimate :data:`VARIANTS` must still verify (offline with no
failed line, online with nothing failed or skipped).
"""

from __future__ import annotations

import copy
import json
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Protocol
from unittest import mock

from bundle_support import liabilities
from reserve_verifier import Bundle as VerifierBundle
from reserve_verifier import CheckStatus, Report
from reserve_verifier.fields import SECP256K1_ORDER

from reporting import attestation
from reporting.announcement import (
    COUNTERSIGNER,
    INCOMING,
    OUTGOING,
    SignedStatement,
    announcements_document,
    key_rotation,
    vault_set,
)
from reporting.attestation import (
    AttestationInputs,
    KeySigner,
    RegistryRef,
    SignerRole,
    build_attestation,
)
from reporting.bundle import body_digest, canonical_json
from reporting.merkle.account_package import liability_package
from reporting.merkle.encoding import TreeKind
from reporting.merkle.reference_tree import ReferenceTree

File = dict[str, Any]
"""A bundle file as parsed JSON: ``{body, digest, signatures, proofs_of_control, anchors}``."""

Subject = File | str | VerifierBundle
"""What is handed to the verifier: a file (serialised as JSON), raw text, or a bundle object
(an object skips the file grammar, as a library caller's bundle does)."""

COLLATERAL_OF_RESIGNING = frozenset({"bitcoin anchor", "services anchor"})
"""Online lines every re-signed tamper fails besides its own: the anchors carry the honest digest,
and an insider cannot anchor a second attestation under the same number."""


class Base(Enum):
    """Which honest bundle of the live chain a case starts from (later ones are checked with
    their predecessor as ``previous``)."""

    FIRST = "first"
    SECOND = "second"
    THIRD = "third"


class Kit(Protocol):
    """The world a case is made in: honest bundles, their inputs, keys and provers."""

    treasury: KeySigner
    auditor: KeySigner
    insider: KeySigner
    """A treasury-role key the auditor never pinned."""
    insider_auditor: KeySigner
    """An auditor-role key the auditor never pinned."""
    names: Mapping[str, str]
    """Values for a case's ``check`` template: ``safe``, ``chain``, ``utxo``."""
    accounts: tuple[str, ...]
    """Every account of the first bundle's liability tree."""
    successor: KeySigner
    """The treasury key :attr:`rotation` hands the role to."""
    rotation: SignedStatement
    """A treasury key rotation to :attr:`successor`, effective from attestation 3, signed by the
    pinned keys and announced in the registry before attestation 3 was published."""

    @property
    def registry(self) -> RegistryRef:
        """The world's attestation registry (a statement names the registry it belongs to)."""
        ...

    def file(self, base: Base) -> File:
        """A deep copy of the honest, anchored bundle file ``base``."""
        ...

    def inputs(self, base: Base) -> AttestationInputs:
        """The inputs ``base`` was built from."""
        ...

    def prove(self, data: File) -> None:
        """Re-make, for the body's digest, every proof of control the file carries."""
        ...


Edit = Callable[[File, Kit], Subject | None]
"""Mutates the file in place (returning None) or returns what replaces it."""

Announce = Callable[[Kit], tuple[SignedStatement, ...]]
"""The statements of the announcements file the auditor is handed, in order."""


@dataclass(frozen=True)
class Case:
    """One tamper: what it attacks, what it does, and the report line that must name it."""

    name: str
    rule: str
    check: str | None
    """The report line expected to fail (a template over :attr:`Kit.names`); None: any line."""
    reason: str
    """A substring of that line's reason (compared case-insensitively)."""
    edit: Edit | None = None
    after: Edit | None = None
    resign: bool = True
    online_only: bool = False
    pending: str | None = None
    """The rule this case needs that is not enforced yet (the test is a strict xfail)."""
    base: Base = Base.FIRST
    pin_body: bool = False
    """The auditor's trust file pins this file's own asset registry and vault set (so a rule
    behind the pins is reached)."""
    announced: Announce | None = None
    """The announcements file handed to the verifier with the trust file (None: no file)."""

    def expected(self, kit: Kit) -> str | None:
        """The expected check's name in this world."""
        return None if self.check is None else self.check.format(**kit.names)


@dataclass(frozen=True)
class Variant:
    """A legitimate spelling or re-making of an honest bundle that must still verify."""

    name: str
    edit: Edit | None = None
    after: Edit | None = None
    resign: bool = False
    base: Base = Base.FIRST


# --- building mutated files ----------------------------------------------------------------------


def seal(data: File, kit: Kit) -> None:
    """What an insider with the keys does after an edit: new proofs, new signatures, new digest.

    Each role is signed by whichever known key the body lists for it (an unpinned key if the edit
    listed one), matched by public key; a role listing no known key keeps its old signature.
    """
    digest = body_digest(data["body"])
    kit.prove(data)
    signatures = dict(data.get("signatures", {}))
    for role, listed in data["body"].get("signers", {}).items():
        for signer in (kit.treasury, kit.auditor, kit.insider, kit.insider_auditor):
            if signer.identity()["public_key"] == listed.get("public_key"):
                signatures[role] = signer.sign_digest(digest).hex()
                break
    data["signatures"] = signatures
    data["digest"] = digest.hex()


def make(kit: Kit, base: Base, edit: Edit | None, after: Edit | None, resign: bool) -> Subject:
    """The mutated subject: ``edit``, then (if ``resign``) :func:`seal`, then ``after``."""
    data: Subject = kit.file(base)
    for step, sealing in ((edit, resign), (after, False)):
        if step is not None:
            assert isinstance(data, dict), "only the last step may turn the file into text"
            result = step(data, kit)
            data = data if result is None else result
        if sealing and isinstance(data, dict):
            seal(data, kit)
    return data


def subject_input(subject: Subject) -> bytes | VerifierBundle:
    """What ``verify_bundle`` takes for ``subject``."""
    if isinstance(subject, dict):
        return json.dumps(subject, ensure_ascii=False).encode()
    if isinstance(subject, str):
        return subject.encode()
    return subject


@contextmanager
def forger_build() -> Iterator[None]:
    """The producer with its registry refusals switched off: how a forger builds a body whose
    roots, totals, reconciliation and coverage are all consistent with a lying snapshot."""
    with mock.patch.object(attestation, "_check_registry", return_value=None):
        yield


def rebuild(
    changes: Callable[[AttestationInputs, Kit], Mapping[str, Any]], *, forge: bool = False
) -> Edit:
    """An edit that rebuilds the whole body from changed inputs (``forge``: past the producer's
    registry refusals)."""

    def edit(data: File, kit: Kit) -> None:
        # the honest bundle being edited is the one whose stated digest the file still carries
        base = next(b for b in Base if kit.file(b)["digest"] == data["digest"])
        inputs = replace(kit.inputs(base), **changes(kit.inputs(base), kit))
        if forge:
            with forger_build():
                body = build_attestation(inputs).body
        else:
            body = build_attestation(inputs).body
        data["body"] = copy.deepcopy(dict(body))

    return edit


# --- small edits -----------------------------------------------------------------------------


def _walk(data: Any, path: str) -> tuple[Any, str | int]:
    """The container holding ``path`` (dotted; list positions are numbers) and the last key."""
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, int(last) if isinstance(node, list) else last


def put(path: str, value: Any) -> Edit:
    """Set ``path`` to ``value``, or to ``value(old)`` if ``value`` is callable."""

    def edit(data: File, _kit: Kit) -> None:
        node, key = _walk(data, path)
        node[key] = value(node[key]) if callable(value) else value

    return edit


def drop(path: str) -> Edit:
    """Remove ``path``."""

    def edit(data: File, _kit: Kit) -> None:
        node, key = _walk(data, path)
        del node[key]

    return edit


def both(*edits: Edit) -> Edit:
    """Apply ``edits`` in order."""

    def edit(data: File, kit: Kit) -> Subject | None:
        result: Subject | None = None
        for step in edits:
            result = step(data if result is None else result, kit)  # type: ignore[arg-type]
        return result

    return edit


def other(base: Base, path: str) -> Edit:
    """Copy ``path`` from another honest bundle (a signature, proof or anchor of another digest)."""

    def edit(data: File, kit: Kit) -> None:
        source, key = _walk(kit.file(base), path)
        node, key = _walk(data, path)
        node[key] = copy.deepcopy(source[key])

    return edit


def flip_hex(text: str) -> str:
    """Change the first hex digit (keeping the spelling canonical)."""
    return ("1" if text[0] != "1" else "2") + text[1:]


def plus(amount: int) -> Callable[[str], str]:
    """A decimal string raised by ``amount``."""
    return lambda text: str(int(text) + amount)


def swapcase_address(text: str) -> str:
    """An address with every letter's case swapped: no longer its EIP-55 form."""
    return "0x" + text[2:].swapcase()


def _high_s(data: File, _kit: Kit) -> None:
    raw = bytes.fromhex(data["signatures"]["treasury"])
    s = SECP256K1_ORDER - int.from_bytes(raw[32:64], "big")
    data["signatures"]["treasury"] = (raw[:32] + s.to_bytes(32, "big") + bytes([1 - raw[64]])).hex()


def _swap_signatures(data: File, _kit: Kit) -> None:
    signatures = data["signatures"]
    signatures["treasury"], signatures["auditor"] = signatures["auditor"], signatures["treasury"]


def _signed_by_insider(data: File, kit: Kit) -> None:
    digest = bytes.fromhex(data["digest"])
    data["signatures"]["treasury"] = kit.insider.sign_digest(digest).hex()


def _duplicate_key_top(data: File, _kit: Kit) -> str:
    return json.dumps(data)[:-1] + ', "anchors": {}}'


def _duplicate_key_amount(data: File, _kit: Kit) -> str:
    text = json.dumps(data)
    amount = data["body"]["snapshot"]["bitcoin"]["utxos"][0]["amount"]
    forged = text.replace(f'"amount": "{amount}"', f'"amount": "{amount}", "amount": "1"', 1)
    assert forged != text
    return forged


def _utxos(data: File) -> list[dict[str, Any]]:
    utxos: list[dict[str, Any]] = data["body"]["snapshot"]["bitcoin"]["utxos"]
    return utxos


def _unsorted(data: File, _kit: Kit) -> None:
    utxos = _utxos(data)
    utxos[0], utxos[1] = utxos[1], utxos[0]


def _duplicated_outpoint(data: File, _kit: Kit) -> None:
    utxos = _utxos(data)
    utxos.insert(1, {**utxos[0], "amount": str(int(utxos[0]["amount"]) + 100_000_000)})


def _as_object(data: File, _kit: Kit) -> VerifierBundle:
    """The file as a library caller's bundle object: the file grammar is not applied to it."""
    return VerifierBundle(
        body=data["body"],
        signatures=data["signatures"],
        proofs_of_control=data["proofs_of_control"],
        anchors=data["anchors"],
        stated_digest=data["digest"],
    )


def _created_after(data: File, _kit: Kit) -> None:
    _utxos(data)[0]["created_height"] = data["body"]["snapshot"]["bitcoin"]["height"] + 1


def _anchor_below(data: File, _kit: Kit) -> None:
    data["anchors"]["bitcoin"]["height"] = data["body"]["snapshot"]["bitcoin"]["height"] - 1


def _listed(role: str, signer: str) -> Edit:
    """List ``signer``'s identity (a Kit attribute) for ``role``."""

    def edit(data: File, kit: Kit) -> None:
        data["body"]["signers"][role] = getattr(kit, signer).identity()

    return edit


def _swap_listing_leaves(data: File, kit: Kit) -> None:
    """A forged tree of the same accounts with two leaves swapped out of salt order, every
    account published with a valid proof of that tree: only a rebuild in canonical order sees it."""
    tree = kit.inputs(Base.FIRST).liabilities
    leaves = sorted((tree.leaf(account) for account in kit.accounts), key=lambda leaf: leaf.salt)
    leaves[0], leaves[1] = leaves[1], leaves[0]
    forged = ReferenceTree.build(
        TreeKind.LIABILITIES,
        tree.root.assets,
        [(leaf.leaf_hash(), leaf.amounts) for leaf in leaves],
    )
    liabilities = data["body"]["liabilities"]
    liabilities["root"] = forged.root.to_dict()
    liabilities["public_listing"] = [
        {key: package[key] for key in ("leaf", "proof")}
        for package in (
            liability_package(forged.root, leaf, forged.proof(index))
            for index, leaf in enumerate(leaves)
        )
    ]


def _relabel_token_as_ether(inputs: AttestationInputs, kit: Kit) -> Mapping[str, Any]:
    """The Safe's ERC-20 balance listed as its ether (read from the same token contract), the
    real ether balance left out: one (Safe, ETH) line, so only the registry can catch it."""
    snapshot = inputs.evm[0]
    balances = tuple(
        replace(balance, asset="ETH")
        for balance in snapshot.balances
        if balance.token_address is not None
    )
    return {"evm": (replace(snapshot, balances=balances),)}


def _relabel_token_beside_ether(inputs: AttestationInputs, kit: Kit) -> Mapping[str, Any]:
    """The Safe's ERC-20 balance listed as ether beside its real ether balance."""
    snapshot = inputs.evm[0]
    balances = tuple(
        replace(balance, asset="ETH") if balance.token_address is not None else balance
        for balance in snapshot.balances
    )
    return {"evm": (replace(snapshot, balances=balances),)}


def _inflate_ether(inputs: AttestationInputs, kit: Kit) -> Mapping[str, Any]:
    """The Safe's ether balance stated 10 ether higher than the chain holds."""
    snapshot = inputs.evm[0]
    balances = tuple(
        replace(balance, amount=balance.amount + 10 * 10**18) if balance.asset == "ETH" else balance
        for balance in snapshot.balances
    )
    return {"evm": (replace(snapshot, balances=balances),)}


def _redefine_ether(inputs: AttestationInputs, kit: Kit) -> Mapping[str, Any]:
    """ETH registered as the Safe's token contract, and the token's balance listed as ETH."""
    snapshot = inputs.evm[0]
    token = inputs.assets["USDX"]
    assets = {code: info for code, info in inputs.assets.items() if code != "USDX"}
    assets["ETH"] = replace(token, symbol="ETH")
    balances = tuple(
        replace(balance, asset="ETH") for balance in snapshot.balances if balance.token_address
    )
    return {"assets": assets, "evm": (replace(snapshot, balances=balances),)}


def _inflate_utxo(inputs: AttestationInputs, kit: Kit) -> Mapping[str, Any]:
    """The first UTXO stated one bitcoin larger, every root and total rebuilt to match."""
    bitcoin = inputs.bitcoin
    first, *rest = bitcoin.utxos
    utxos = (replace(first, amount_sats=first.amount_sats + 10**8), *rest)
    return {"bitcoin": replace(bitcoin, utxos=utxos)}


def _omit_token(inputs: AttestationInputs, kit: Kit) -> Mapping[str, Any]:
    """The Safe's token balance left out of the snapshot (its holding unattested)."""
    snapshot = inputs.evm[0]
    balances = tuple(balance for balance in snapshot.balances if balance.token_address is None)
    return {"evm": (replace(snapshot, balances=balances),)}


def _drop_vault_script(data: File, _kit: Kit) -> None:
    script = _utxos(data)[0]["script_pubkey"]
    vaults = data["body"]["vaults"]
    vaults["bitcoin"] = [item for item in vaults["bitcoin"] if item != script]


def _created_in_anchor_block(data: File, _kit: Kit) -> None:
    """The first UTXO said to be created in a real block of the chain, but not its own."""
    _utxos(data)[0]["created_block_hash"] = data["anchors"]["bitcoin"]["block_hash"]


def _ledger_above_tree(inputs: AttestationInputs, kit: Kit) -> Mapping[str, Any]:
    return {"ledger_totals": {**inputs.ledger_totals, "BTC": inputs.ledger_totals["BTC"] + 1}}


def _extra_asset(section: str) -> Edit:
    """An asset (XAU) stated under ``section`` though it is in no tree, ledger or snapshot."""

    def edit(data: File, _kit: Kit) -> None:
        model = copy.deepcopy(data["body"][section]["ETH"])
        for key, value in model.items():
            if isinstance(value, str) and key != "statement" and key != "ratio":
                model[key] = "1000"
        data["body"][section]["XAU"] = model

    return edit


def _reverse(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reverse(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse(item) for item in value]
    return value


def announcements_file(statements: tuple[SignedStatement, ...]) -> bytes:
    """The announcements file listing ``statements`` (what the verifier's parser reads)."""
    return canonical_json(announcements_document(statements))


def _signed(statement: SignedStatement, signers: Mapping[str, KeySigner]) -> SignedStatement:
    """``statement`` with each slot signed by the key given for it, bypassing the producer's
    refusal of a wrong key (how a forger fills a slot)."""
    digest = statement.digest
    return replace(
        statement,
        signatures={slot: signer.sign_digest(digest).hex() for slot, signer in signers.items()},
    )


def treasury_rotation(
    kit: Kit, new: KeySigner, effective: int, signers: Mapping[str, KeySigner] | None = None
) -> SignedStatement:
    """The treasury's rotation from its pinned key to ``new`` from attestation ``effective``,
    signed by the old key, the new key and the audit office unless ``signers`` says otherwise."""
    statement = key_rotation(
        kit.registry,
        SignerRole.TREASURY,
        kit.treasury.public_key.to_bytes().hex(),
        new.public_key.to_bytes().hex(),
        effective,
    )
    honest = {OUTGOING: kit.treasury, INCOMING: new, COUNTERSIGNER: kit.auditor}
    return _signed(statement, signers if signers is not None else honest)


EXTRA_VAULT_SCRIPT = "0014" + "5c" * 20
"""A P2WPKH script an insider adds to the vault set (a vault holding nothing)."""


def _with_extra_vault(vaults: Mapping[str, Any]) -> dict[str, Any]:
    return {**vaults, "bitcoin": sorted([*vaults["bitcoin"], EXTRA_VAULT_SCRIPT])}


def _list_extra_vault(data: File, _kit: Kit) -> None:
    data["body"]["vaults"] = _with_extra_vault(data["body"]["vaults"])


def _rotation_by_new_key_only(kit: Kit) -> tuple[SignedStatement, ...]:
    """A thief holding only an unpinned key signs every slot of a rotation to it."""
    slots = dict.fromkeys((OUTGOING, INCOMING, COUNTERSIGNER), kit.insider)
    return (treasury_rotation(kit, kit.insider, 1, slots),)


def _rotation_never_announced(kit: Kit) -> tuple[SignedStatement, ...]:
    """A rotation to the unpinned key, signed by the old key, the new key and the audit office,
    that the registry never recorded."""
    return (treasury_rotation(kit, kit.insider, 1),)


def _vault_set_by_treasury_only(kit: Kit) -> tuple[SignedStatement, ...]:
    """The vault set with the extra script, both slots signed by the treasury's key."""
    vaults = _with_extra_vault(kit.file(Base.FIRST)["body"]["vaults"])
    statement = vault_set(kit.registry, vaults, 1)
    return (_signed(statement, {"treasury": kit.treasury, "auditor": kit.treasury}),)


UTXO0 = "body.snapshot.bitcoin.utxos.0"
BALANCE0 = "body.snapshot.evm.0.balances.0"
LISTING0 = "body.liabilities.public_listing.0"
FORMAT = "bundle format"
DECIMAL = "not a canonical decimal string"
NOT_INT = "not a non-negative JSON integer"

CASES: tuple[Case, ...] = (
    # --- one spelling per value -------------------------------------------------------------
    Case("leading zeros in a UTXO amount", "canonical decimals", FORMAT, DECIMAL,
         put(f"{UTXO0}.amount", lambda t: "00" + t)),
    Case("leading zeros in a Safe balance", "canonical decimals", FORMAT, DECIMAL,
         put(f"{BALANCE0}.amount", lambda t: "0" + t)),
    Case("leading zeros in a holdings total", "canonical decimals", FORMAT, DECIMAL,
         put("body.holdings.totals.BTC", lambda t: "0" + t)),
    Case("plus sign in a ledger total", "canonical decimals", FORMAT, DECIMAL,
         put("body.ledger.totals.BTC", lambda t: "+" + t)),
    Case("negative encumbrance", "canonical decimals", FORMAT, DECIMAL,
         put("body.encumbrances.0.amount", lambda t: "-" + t)),
    Case("amount as a JSON integer", "amounts are strings", FORMAT, DECIMAL,
         put("body.encumbrances.0.amount", int)),
    Case("float amount", "no fractions", FORMAT, "JSON number",
         after=put("body.ledger.totals.BTC", 1.5)),
    Case("float as an output index", "no fractions", FORMAT, "JSON number",
         after=put(f"{UTXO0}.vout", 0.0)),
    Case("NaN audit sequence", "no fractions", FORMAT, "JSON number NaN",
         after=put("body.audit_log.sequence", float("nan"))),
    Case("huge integer sequence", "integers up to 2**53-1", FORMAT, NOT_INT,
         after=put("body.sequence", 2**64)),
    Case("huge integer output index", "integers up to 2**53-1", FORMAT, NOT_INT,
         after=put(f"{UTXO0}.vout", 2**53)),
    Case("sequence as a string", "JSON types", FORMAT, NOT_INT, put("body.sequence", "1")),
    Case("output index as a boolean", "JSON types", FORMAT, NOT_INT, put(f"{UTXO0}.vout", True)),
    Case("duplicate JSON key at the top", "no duplicate keys", FORMAT, "repeats the key",
         after=_duplicate_key_top),
    Case("duplicate JSON key in an amount", "no duplicate keys", FORMAT, "repeats the key",
         after=_duplicate_key_amount),
    Case("unknown top-level field audited_by", "no unknown fields", FORMAT,
         "unknown field 'audited_by'", after=put("audited_by", "the minister")),
    Case("unknown field in the signed body", "no unknown fields", FORMAT,
         "unknown field 'note'", put("body.note", "approved")),
    Case("unknown field in a UTXO", "no unknown fields", FORMAT, "unknown field 'label'",
         put(f"{UTXO0}.label", "cold wallet")),
    Case("unknown field in an anchor", "no unknown fields", FORMAT, "unknown field 'confirmed'",
         after=put("anchors.services.confirmed", True)),
    Case("unknown signature role", "no unknown fields", FORMAT, "unknown field 'minister'",
         after=put("signatures.minister", "00")),
    Case("high-S signature", "low-S signatures", FORMAT, "high S value", after=_high_s),
    Case("signature with r = 0", "signature range", FORMAT, "out of range",
         after=put("signatures.auditor", lambda t: "00" * 32 + t[64:])),
    Case("miscased EIP-55 Safe address", "EIP-55 addresses", FORMAT, "EIP-55",
         put(f"{BALANCE0}.safe_address", swapcase_address)),
    Case("miscased EIP-55 registry address", "EIP-55 addresses", FORMAT, "EIP-55",
         put("body.registry.address", swapcase_address)),
    Case("all-lowercase Safe address", "EIP-55 addresses", FORMAT, "EIP-55",
         put(f"{BALANCE0}.safe_address", str.lower)),
    Case("uppercase hex", "lowercase hex", FORMAT, "lowercase hex",
         put("body.audit_log.head_hash", str.upper)),
    Case("as_of with a space", "as_of format", FORMAT, "not YYYY-MM-DDTHH:MM:SSZ",
         put("body.as_of", lambda t: t.replace("T", " "))),
    Case("as_of with an offset", "as_of format", FORMAT, "not YYYY-MM-DDTHH:MM:SSZ",
         put("body.as_of", lambda t: t[:-1] + "+00:00")),
    Case("as_of with fractions of a second", "as_of format", FORMAT, "not YYYY-MM-DDTHH:MM:SSZ",
         put("body.as_of", lambda t: t[:-1] + ".5Z")),
    Case("body version 2", "format version", FORMAT, "version 1 document", put("body.version", 2)),
    Case("unknown encumbrance kind", "closed vocabularies", FORMAT, "not one of",
         put("body.encumbrances.0.kind", "borrowed")),
    # --- offline consistency of snapshot and anchors ----------------------------------------
    Case("anchor height below the snapshot", "anchor at or above the snapshot", FORMAT,
         "below the snapshot height", after=_anchor_below),
    Case("registry sequence disagreeing", "registry sequence is the body's", FORMAT,
         "records sequence 2, but this is attestation 1",
         after=put("anchors.services.sequence", 2)),
    Case("UTXOs unsorted", "UTXOs sorted by outpoint", FORMAT, "not sorted by (txid, vout)",
         _unsorted),
    Case("duplicated outpoint with another amount", "each outpoint once", FORMAT, "twice",
         _duplicated_outpoint),
    Case("duplicated outpoint, bundle object", "objects get the file grammar too", FORMAT,
         "twice", _duplicated_outpoint, after=_as_object),
    Case("UTXO created after the snapshot", "UTXOs created at or below the snapshot", FORMAT,
         "above the snapshot height", _created_after),
    # --- digest and signatures --------------------------------------------------------------
    Case("stated digest altered", "digest", "digest", "hashes to",
         after=put("digest", flip_hex), resign=False),
    Case("body edited, not re-signed (treasury)", "signature over the digest",
         "signature treasury", "not the listed treasury key",
         put("body.audit_log.sequence", lambda n: n + 1), resign=False),
    Case("body edited, not re-signed (auditor)", "signature over the digest",
         "signature auditor", "not the listed auditor key",
         put("body.audit_log.head_hash", flip_hex), resign=False),
    Case("signatures swapped", "each role signs", "signature treasury",
         "not the listed treasury key", after=_swap_signatures),
    Case("treasury signature removed", "both roles sign", "signature treasury", "missing",
         after=drop("signatures.treasury")),
    Case("auditor countersignature removed", "both roles sign", "signature auditor", "missing",
         after=drop("signatures.auditor")),
    Case("signed by the wrong key", "signature by the listed key", "signature treasury",
         "not the listed treasury key", after=_signed_by_insider),
    Case("signature of another attestation", "signature over this digest", "signature auditor",
         "not the listed auditor key", after=other(Base.SECOND, "signatures.auditor")),
    Case("signer address not its public key", "listed address matches key", "signature treasury",
         "does not match its public key",
         put("body.signers.treasury.address", lambda _t: "0x" + "00" * 20)),
    Case("signed by an unpinned treasury key", "trust file pins the signers",
         "pinned treasury key", "not pinned in the trust file", _listed("treasury", "insider")),
    Case("signed by an unpinned auditor key", "trust file pins the signers",
         "pinned auditor key", "not pinned in the trust file",
         _listed("auditor", "insider_auditor")),
    Case("one key for both roles", "separate signing roles", "separate signing roles",
         "same key", _listed("auditor", "treasury")),
    # --- trees and totals -------------------------------------------------------------------
    Case("UTXO amount changed", "holdings root", "holdings root", "altered",
         put(f"{UTXO0}.amount", plus(1))),
    Case("Safe balance removed", "holdings root", "holdings root", "added or removed",
         drop(BALANCE0)),
    Case("holdings total inflated", "holdings totals", "holdings totals", "do not add up",
         put("body.holdings.totals.BTC", plus(1))),
    Case("liability total changed", "liability totals", "liability root", "do not add up",
         put("body.liabilities.totals.ETH", plus(1))),
    Case("liability root sums altered", "liability root digest", "liability root",
         "digest mismatch", put("body.liabilities.root.sums.0", plus(1))),
    Case("liability root node hash altered", "liability root digest", "liability root",
         "digest mismatch", put("body.liabilities.root.node_hash", flip_hex)),
    Case("liability leaf count altered", "liability root digest", "liability root",
         "digest mismatch", put("body.liabilities.root.leaf_count", lambda n: n + 1)),
    Case("proof path sibling altered", "published proofs", "published liabilities", "mismatch",
         put(f"{LISTING0}.proof.siblings.-1.hash", flip_hex)),
    Case("published amount raised", "published proofs", "published liabilities", "mismatch",
         put(f"{LISTING0}.leaf.amounts.0", plus(1))),
    Case("published account renamed", "published proofs", "published liabilities", "mismatch",
         put(f"{LISTING0}.leaf.account_id", lambda t: t + "x")),
    Case("published entry without its proof", "published proofs", "published liabilities",
         "no proof", drop(f"{LISTING0}.proof")),
    Case("two leaves swapped in a complete listing", "complete listing rebuilds the root",
         "published liabilities", "root hash mismatch", _swap_listing_leaves),
    Case("reconciliation encumbered misstated", "reconciliation", "reconciliation BTC",
         "do not add up", put("body.reconciliation.BTC.encumbered", lambda _t: "0")),
    Case("reconciliation match flag flipped", "reconciliation", "reconciliation ETH",
         "match flag", put("body.reconciliation.ETH.liabilities_match_ledger", False)),
    Case("ledger total differs from the tree", "three-way reconciliation", "reconciliation BTC",
         "three-way reconciliation fails", rebuild(_ledger_above_tree)),
    Case("encumbrance removed", "reconciliation", "reconciliation BTC", "do not add up",
         put("body.encumbrances", [])),
    Case("coverage flag flipped", "coverage", "coverage ETH", "misstated",
         put("body.coverage.ETH.covered", False)),
    Case("coverage numerator inflated", "coverage", "coverage BTC", "misstated",
         put("body.coverage.BTC.numerator", plus(1))),
    Case("under-covered, honestly stated", "coverage", "coverage BTC", "UNDER-COVERED",
         rebuild(lambda inputs, kit: _heavy(inputs, kit))),
    Case("extra coverage asset in no tree", "lines only for the figures' assets",
         "coverage assets", "outside every tree", _extra_asset("coverage")),
    Case("extra reconciliation asset in no tree", "lines only for the figures' assets",
         "reconciliation assets", "outside every tree", _extra_asset("reconciliation")),
    Case("account published twice", "each account once", "published liabilities", "twice",
         lambda data, _kit: data["body"]["liabilities"]["public_listing"].append(
             copy.deepcopy(data["body"]["liabilities"]["public_listing"][0]))),
    Case("holdings root labelled a liability root", "tree labels", "holdings root",
         "digest mismatch", put("body.holdings.root.tree", "liabilities")),
    Case("liability root labelled a holdings root", "tree labels", "liability root",
         "no asset list",
         put("body.liabilities.root.tree", "holdings")),
    Case("snapshot network relabelled", "the BTC asset is the snapshot network's coin",
         "balance assets", "bitcoin:", put("body.snapshot.bitcoin.network", "testnet")),
    # --- the attestation chain --------------------------------------------------------------
    Case("previous digest altered", "chain link", "attestation chain", "chain gap",
         put("body.previous_digest", flip_hex), base=Base.SECOND),
    Case("sequence skipped", "chain link", "attestation chain", "chain gap",
         put("body.sequence", 3), after=put("anchors.services.sequence", 3), base=Base.SECOND),
    Case("first attestation naming a predecessor", "chain link", "attestation chain",
         "only the first may name none", put("body.previous_digest", "11" * 32)),
    Case("later attestation naming none", "chain link", "attestation chain",
         "only the first may name none", put("body.previous_digest", "00" * 32),
         base=Base.SECOND),
    # --- proofs of control ------------------------------------------------------------------
    Case("reserve proof removed", "BIP-127 reserve proof", "reserve proof (BIP-127)", "missing",
         after=drop("proofs_of_control.bitcoin_reserve_proof")),
    Case("reserve proof of another attestation", "BIP-127 commits to this digest",
         "reserve proof (BIP-127)", "not the commitment to this digest",
         after=other(Base.SECOND, "proofs_of_control.bitcoin_reserve_proof")),
    Case("Safe's EIP-1271 slot and signature removed", "every funded Safe proves control",
         "Safe proofs of control", "no EIP-1271 slot",
         both(put("body.proofs_of_control.eip1271", []), put("proofs_of_control.eip1271", []))),
    Case("EIP-1271 slot dropped", "every funded Safe proves control", "Safe proofs of control",
         "no EIP-1271 slot", put("body.proofs_of_control.eip1271", [])),
    Case("EIP-1271 signature removed", "every funded Safe proves control",
         "Safe proofs of control", "no EIP-1271 signature",
         after=put("proofs_of_control.eip1271", [])),
    Case("EIP-1271 signature of another digest", "EIP-1271 signature", "eip1271 {safe}",
         "isValidSignature", after=other(Base.SECOND, "proofs_of_control.eip1271"),
         online_only=True),
    Case("EIP-1271 signature by one owner of two", "EIP-1271 signature", "eip1271 {safe}",
         "isValidSignature", after=put("proofs_of_control.eip1271.0.signature", lambda t: t[:130]),
         online_only=True),
    Case("EIP-1271 slot at an earlier block", "control proven at the snapshot block", FORMAT,
         "not its chain's snapshot block",
         put("body.proofs_of_control.eip1271.0.block_number", lambda n: n - 1)),
    Case("Safe ERC-20 balance relabelled as ETH", "asset registry", "balance assets",
         "read from the token contract", rebuild(_relabel_token_as_ether, forge=True)),
    Case("ERC-20 relabelled as ETH beside the Safe's ether", "each Safe's asset listed once",
         FORMAT, "twice", rebuild(_relabel_token_beside_ether, forge=True)),
    Case("ETH redefined as the token contract", "trust file pins the assets", "pinned assets",
         "ETH", rebuild(_redefine_ether, forge=True)),
    Case("token decimals misstated", "trust file pins the assets", "pinned assets", "USDX",
         put("body.assets.USDX.decimals", 18)),
    Case("UTXO paying a script outside the vault set", "UTXOs pay vault scripts", "vault UTXOs",
         "not in the vault set", _drop_vault_script),
    Case("Safe dropped from the vault set", "balances are vault Safes'", "vault Safes",
         "not in the vault set", put("body.vaults.evm", [])),
    Case("UTXO amount inflated, roots rebuilt", "reserve proof amounts", "reserve proof (BIP-127)",
         "another amount or script", rebuild(_inflate_utxo, forge=True)),
    Case("Safe's token balance left out", "every vault's holdings attested",
         "vault holdings of {safe}", "USDX", rebuild(_omit_token), online_only=True),
    Case("token metadata misstated, pin updated", "registered token metadata", "token USDX",
         "decimals", put("body.assets.USDX.decimals", 18), online_only=True, pin_body=True),
    # --- against the nodes ------------------------------------------------------------------
    Case("bitcoin snapshot block hash changed", "snapshot block on the best chain",
         "bitcoin snapshot block", "not the best chain's block",
         put("body.snapshot.bitcoin.block_hash", flip_hex), online_only=True),
    Case("EVM snapshot block hash changed", "snapshot block on the chain",
         "evm snapshot block {chain}", "not the attested",
         put("body.snapshot.evm.0.block_hash", lambda t: "0x" + flip_hex(t[2:])),
         online_only=True),
    Case("Safe ether balance inflated", "balances at the snapshot block",
         "balance ETH of {safe}", "not the attested", rebuild(_inflate_ether), online_only=True),
    Case("UTXO's creating block changed", "UTXO created as attested", "utxo {utxo}",
         "not on the best chain", _created_in_anchor_block,
         online_only=True),
    Case("bitcoin anchor pointing at another digest", "OP_RETURN carries this digest",
         "bitcoin anchor", "points at another digest", after=other(Base.SECOND, "anchors.bitcoin"),
         online_only=True),
    Case("registry anchor pointing at another digest", "registry logged this digest",
         "services anchor", "another digest",
         after=both(other(Base.SECOND, "anchors.services"), put("anchors.services.sequence", 1)),
         online_only=True),
    Case("bitcoin anchor removed", "anchored on Bitcoin", "bitcoin anchor", "missing",
         after=drop("anchors.bitcoin"), online_only=True),
    Case("registry anchor at another log index", "registry logged this digest",
         "services anchor", "logged nothing", after=put("anchors.services.log_index", 7),
         online_only=True),
    Case("anchor naming another registry", "anchor in the body's registry", FORMAT,
         "not the body's registry",
         after=put("anchors.services.registry", lambda _t: "0x" + "42" * 20)),
    Case("wrong registry address", "trust file pins the registry", "pinned registry",
         "trust file pins 0x", put("body.registry.address", lambda _t: "0x" + "42" * 20),
         after=put("anchors.services.registry", lambda _t: "0x" + "42" * 20)),
    Case("wrong registry chain", "trust file pins the registry", "pinned registry",
         "trust file pins chain", put("body.registry.chain_id", 1),
         after=put("anchors.services.chain_id", 1)),
    Case("wrong registry publisher", "trust file pins the registry", "pinned registry",
         "publisher", put("body.registry.publisher", lambda _t: "0x" + "42" * 20)),
    # --- announced changes of what the auditor trusts ---------------------------------------
    Case("key rotation signed only by the new key", "only the key in force hands over",
         "announcements", "not signed by the old treasury key", _listed("treasury", "insider"),
         announced=_rotation_by_new_key_only),
    Case("key rotation never announced in the registry", "a change counts once announced",
         "announcements", "not announced in the registry", _listed("treasury", "insider"),
         announced=_rotation_never_announced, online_only=True),
    Case("signed by the rotated-out key after the rotation", "the rotated key is retired",
         "pinned treasury key", "not pinned", resign=False, base=Base.THIRD,
         announced=lambda kit: (kit.rotation,)),
    Case("vault-set change signed by one office only", "a vault set needs both offices",
         "announcements", "not signed by a key in force for the auditor", _list_extra_vault,
         announced=_vault_set_by_treasury_only),
)  # fmt: skip
"""Every tamper; add one as one line."""


def _heavy(inputs: AttestationInputs, kit: Kit) -> Mapping[str, Any]:
    """Liabilities far above the holdings (an honest, but under-covered, attestation)."""
    tree = inputs.liabilities
    rows = {account: tree.leaf(account).amounts for account in kit.accounts}
    rows["citizen:9999"] = (10**12, *(0,) * (len(tree.root.assets) - 1))
    heavy, totals = liabilities(tree.root.assets, rows, HEAVY_NONCE)
    return {"liabilities": heavy, "ledger_totals": {**inputs.ledger_totals, **totals}}


HEAVY_NONCE = bytes(range(1, 33))
"""The snapshot nonce of the under-covered case's tree."""


VARIANTS: tuple[Variant, ...] = (
    Variant("as produced"),
    Variant("keys in reverse order", after=lambda data, _kit: _reverse(data)),
    Variant("indented, spaced", after=lambda data, _kit: json.dumps(data, indent=3)),
    Variant("odd whitespace", after=lambda data, _kit: json.dumps(data, separators=(" ,\n", " :\t"))),
    Variant("ASCII-escaped Unicode", after=lambda data, _kit: json.dumps(data), base=Base.SECOND),
    Variant("re-signed by the pinned keys, body unchanged", resign=True),
    Variant("Unicode account ids (number 2)", base=Base.SECOND),
    Variant("5-leaf tree, every account published (number 3)", base=Base.THIRD),
)  # fmt: skip
"""Spellings and re-makings that change no signed fact: each must still verify."""


# --- reading reports ---------------------------------------------------------------------------


def verdict(report: Report) -> str:
    """REJECTED (a line failed), VERIFIED (nothing failed or skipped), or NOT VERIFIED (nothing
    failed, but checks needing a node were skipped: what offline can and cannot see)."""
    if report.failed():
        return "REJECTED"
    return "VERIFIED" if report.passed() else "NOT VERIFIED (nothing failed; node checks skipped)"


def named_failure(
    report: Report, check: str | None, reason: str, *, ignore: frozenset[str] = frozenset()
) -> str | None:
    """The failed line matching ``check`` (any line outside ``ignore`` if None) whose reason
    holds ``reason`` (case-insensitive), as ``name: reason``; None if there is none."""
    for line in report.checks:
        if line.status is not CheckStatus.FAILED or line.name in ignore:
            continue
        if (check is None or line.name == check) and reason.lower() in line.reason.lower():
            return f"{line.name}: {line.reason}"
    return None


def others(report: Report, named: str | None) -> list[str]:
    """The names of the failed lines besides ``named`` (``name: reason``)."""
    own = None if named is None else named.split(": ", 1)[0]
    return [line.name for line in report.failed() if line.name != own]


def summary(report: Report, check: str | None, reason: str) -> str:
    """One table cell: the verdict, the line that names the case (or the first failure),
    shortened, and the names of any other failed lines."""
    found = named_failure(report, check, reason)
    if found is None and report.failed():
        first = report.failed()[0]
        found = f"{first.name}: {first.reason}"
    text = verdict(report)
    if found:
        text += " — " + (found if len(found) <= 140 else found[:137] + "...")
    also = others(report, found)
    if also:
        text += f" (also failed: {', '.join(also)})"
    return unicodedata.normalize("NFC", text).replace("|", "\\|").replace("\n", " ")
