"""The site's in-browser verifier (reporting/site/static/verify.js) judges the rule vectors that
concern an account's package (SPEC-merkle R-PKG, R-ROOT, R-LEAF, R-TREE, and the spelling rules
applied to packages) as the vectors say, in Debian's Chromium, with no network.

verify.js is loaded alone into an empty local page (no published site or node is needed), and each
package is checked against the liability root of the vector's bundle, as the verify page does.
Beyond the vectors, one valid package is spoilt one field at a time (R-GRAM-1 to R-GRAM-3 at every
level, R-ROOT-2): verify.js must refuse each with the message that names that field, and the
standalone verifier must refuse each too, so the two never tell a holder different things.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from page_guard import guarded_page
from playwright.sync_api import Browser
from reserve_verifier.exceptions import VerifierError
from reserve_verifier.liability_tree import verify_liability_package

REPO = Path(__file__).resolve().parents[2]
VERIFY_JS = REPO / "reporting" / "site" / "static" / "verify.js"
VECTORS: dict[str, Any] = json.loads(
    (REPO / "reporting" / "vectors" / "attestation_rules_v1.json").read_text(encoding="utf-8")
)

CHECK = """([pkg, root]) => ReserveProof.verifyPackage(pkg, root).then(
    () => "valid", (error) => "invalid:" + (error && error.key ? error.key : String(error)))"""


def _package_vectors() -> list[Any]:
    return [
        pytest.param(vector, id=f"{position:03d}-{vector['rule']}-{vector['expected']}")
        for position, vector in enumerate(VECTORS["vectors"])
        if "package" in vector
    ]


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty local page that loads verify.js from the repository (it defines ReserveProof)."""
    page = tmp_path_factory.mktemp("verify-js") / "vectors.html"
    page.write_text(
        f'<!doctype html><meta charset="utf-8"><title>vectors</title>'
        f'<script src="{VERIFY_JS.as_uri()}"></script>',
        encoding="utf-8",
    )
    return page


def _root(vector: dict[str, Any]) -> dict[str, Any]:
    bundle = (
        VECTORS["bundles"][vector["bundle_ref"]] if "bundle_ref" in vector else vector["bundle"]
    )
    root: dict[str, Any] = bundle["body"]["liabilities"]["root"]
    return root


@pytest.mark.parametrize("vector", _package_vectors())
def test_verify_js_judges_package_vector(
    browser: Browser, page_file: Path, vector: dict[str, Any]
) -> None:
    """verify.js accepts each valid package vector and refuses each invalid one, against the
    liability root of the vector's bundle, making no request."""
    with guarded_page(browser) as (page, traffic):
        page.goto(page_file.as_uri())
        outcome = page.evaluate(CHECK, [vector["package"], _root(vector)])
    traffic.assert_clean()
    if vector["expected"] == "valid":
        assert outcome == "valid", vector["description"]
    else:
        assert outcome.startswith("invalid:"), (vector["description"], outcome)


def test_there_are_package_vectors_of_every_merkle_rule_family() -> None:
    """The browser run covers packages, roots, leaves and tree folding, valid and invalid."""
    rules = {vector["rule"] for vector in VECTORS["vectors"] if "package" in vector}
    for family in ("R-PKG-", "R-ROOT-", "R-LEAF-", "R-TREE-"):
        assert any(rule.startswith(family) for rule in rules), family
    expected = {vector["expected"] for vector in VECTORS["vectors"] if "package" in vector}
    assert expected == {"valid", "invalid"}


BASE = next(
    vector
    for vector in VECTORS["vectors"]
    if vector["rule"] == "R-PKG-1" and vector["expected"] == "valid" and "package" in vector
)
"""A valid package of three leaves and three assets (two siblings), against the base bundle."""

DIGEST = "ab" * 32
DELETE = object()
"""Marks a field a spoilt package leaves out."""

SPOILS: dict[str, tuple[tuple[str | int, ...], Any, str, str]] = {
    # name: (where in the package, new value, verify.js error key, the JSON path it names)
    "amount-minus-zero": (("leaf", "amounts", 0), "-0", "bad_amount", "leaf.amounts[0]"),
    "amount-plus-sign": (("leaf", "amounts", 0), "+20000", "bad_amount", "leaf.amounts[0]"),
    "amount-json-number": (("leaf", "amounts", 0), 20000, "bad_amount", "leaf.amounts[0]"),
    "amount-negative": (("leaf", "amounts", 0), "-20000", "negative", "leaf.amounts[0]"),
    "root-sum-leading-zero": (
        ("root", "sums", 1), "03000000000000000000", "bad_amount", "root.sums[1]"
    ),
    "sibling-sum-space": (
        ("proof", "siblings", 1, "sums", 2), " 0", "bad_amount", "proof.siblings[1].sums[2]"
    ),
    "salt-upper-case": (("leaf", "salt"), None, "bad_hex", "leaf.salt"),
    "node-hash-upper-case": (("root", "node_hash"), None, "bad_hex", "root.node_hash"),
    "digest-upper-case": (("root", "digest"), None, "bad_hex", "root.digest"),
    "sibling-hash-upper-case": (
        ("proof", "siblings", 0, "hash"), None, "bad_hex", "proof.siblings[0].hash"
    ),
    "sibling-hash-31-bytes": (
        ("proof", "siblings", 0, "hash"), "ab" * 31, "bad_hex", "proof.siblings[0].hash"
    ),
    "package-unknown-field": (("issued_to",), "citizen", "unknown_field", "issued_to"),
    "root-unknown-field": (("root", "audited_by"), "x", "unknown_field", "root.audited_by"),
    "leaf-unknown-field": (("leaf", "name"), "x", "unknown_field", "leaf.name"),
    "proof-unknown-field": (("proof", "note"), "x", "unknown_field", "proof.note"),
    "sibling-unknown-field": (
        ("proof", "siblings", 0, "note"), "x", "unknown_field", "proof.siblings[0].note"
    ),
    "label-unknown-field": (
        ("attestation",), {"sequence": 1, "digest": DIGEST, "note": "x"},
        "unknown_field", "attestation.note",
    ),
    "label-digest-upper-case": (
        ("attestation",), {"sequence": 1, "digest": DIGEST.upper()},
        "bad_hex", "attestation.digest",
    ),
    "label-sequence-zero": (
        ("attestation",), {"sequence": 0, "digest": DIGEST}, "bad_format", "attestation.sequence"
    ),
    "asset-code-with-space": (("root", "assets", 0), "B C", "asset_code", "root.assets[0]"),
    "asset-code-repeated": (
        ("root", "assets"), ["BTC", "BTC", "USDC"], "asset_order", "root.assets"
    ),
    "version-as-string": (("version",), "1", "bad_format", "version"),
    "salt-missing": (("leaf", "salt"), DELETE, "missing", "leaf.salt"),
    "proof-missing": (("proof",), DELETE, "missing", "proof"),
}  # fmt: skip
"""Each a valid package with one field spoilt; ``None`` as the value upper-cases the hex there."""

REASON = """([pkg, root]) => ReserveProof.verifyPackage(pkg, root).then(
    () => "valid", (error) => error.key + " " + error.detail)"""


def spoilt(name: str) -> dict[str, Any]:
    """The base package with the spoil ``name`` applied."""
    where, value, _key, _path = SPOILS[name]
    package: dict[str, Any] = copy.deepcopy(BASE["package"])
    holder: Any = package
    for step in where[:-1]:
        holder = holder[step]
    if value is DELETE:
        del holder[where[-1]]
    elif value is None:
        holder[where[-1]] = holder[where[-1]].upper()
    else:
        holder[where[-1]] = value
    return package


def test_verify_js_refuses_each_spoilt_package_naming_the_field(
    browser: Browser, page_file: Path
) -> None:
    """verify.js accepts the base package with a well-formed attestation label, and refuses it
    with any one field spoilt, with the error key and JSON path of that field."""
    labelled = {**BASE["package"], "attestation": {"sequence": 1, "digest": DIGEST}}
    with guarded_page(browser) as (page, traffic):
        page.goto(page_file.as_uri())
        accepted = page.evaluate(REASON, [labelled, _root(BASE)])
        outcomes = {name: page.evaluate(REASON, [spoilt(name), _root(BASE)]) for name in SPOILS}
    traffic.assert_clean()
    assert accepted == "valid"
    assert outcomes == {name: f"{key} {path}" for name, (_w, _v, key, path) in SPOILS.items()}


@pytest.mark.parametrize("name", sorted(SPOILS))
def test_the_standalone_verifier_refuses_each_spoilt_package(name: str) -> None:
    """reserve_verifier refuses every package verify.js refuses (N-version agreement)."""
    verify_liability_package(BASE["package"])
    with pytest.raises(VerifierError):
        verify_liability_package(spoilt(name))
