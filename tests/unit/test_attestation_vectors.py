"""The rule vectors of SPEC-attestation.md and SPEC-merkle.md: reproducible from their script,
one or more for every numbered rule of both specs, and each judged by the standalone verifier as
the vector says (valid: no check fails; invalid: a failure names the rule's reason).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from reserve_verifier import Bundle as VerifierBundle
from reserve_verifier import CheckStatus, LeafQuery, verify_bundle
from reserve_verifier.exceptions import VerifierError
from reserve_verifier.trust import parse_trust

from reporting.vectors.generate_attestation_vectors import VECTORS_PATH, build_vectors, render

SPECS = (
    Path(__file__).resolve().parents[2] / "reporting" / "SPEC-attestation.md",
    Path(__file__).resolve().parents[2] / "reporting" / "SPEC-merkle.md",
)
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

NOT_YET: dict[str, str] = {}
"""Why a vector marked ``needs`` is expected to fail against today's verifier."""

FORMAT = "bundle format"
"""The report line of a file the grammar refuses (nothing else is checked then)."""

PACKAGE = "inclusion of"
"""The report line of an account's package (its tree rules and its spelling)."""

RULE_CHECKS: dict[str, tuple[str, ...]] = {
    "R-JSON": (FORMAT,),
    "R-FILE": (FORMAT,),
    "R-GRAM": (FORMAT, PACKAGE),
    "R-DIG-1": ("digest", "signature ", "reserve proof"),
    "R-SIG": (FORMAT, "signature ", "separate signing roles"),
    "R-CHAIN": ("attestation chain",),
    "R-SNAP": (FORMAT,),
    "R-HOLD-1": ("holdings root",),
    "R-HOLD-2": ("holdings totals",),
    "R-HOLD-3": (FORMAT,),
    "R-LIAB-1": ("liability root",),
    "R-LIAB-2": ("liability root",),
    "R-LIAB-3": ("published liabilities", FORMAT),
    "R-ENC": (FORMAT,),
    "R-REC-1": ("reconciliation ",),
    "R-REC-2": ("reconciliation ", "coverage "),
    "R-REC-3": ("reconciliation ",),
    "R-COV": ("coverage ",),
    "R-POC-1": ("reserve proof",),
    "R-POC-2": (FORMAT,),
    "R-ANC": (FORMAT,),
    "R-ASSET-1": ("asset registry",),
    "R-ASSET-2": ("asset registry", FORMAT),
    "R-ASSET-3": ("balance assets",),
    "R-ASSET-4": ("reconciliation assets", "coverage assets"),
    "R-VAULT-1": ("vault UTXOs",),
    "R-VAULT-2": ("vault Safes",),
    "R-VAULT-3": ("Safe proofs of control",),
    "R-VAULT-4": (FORMAT,),
    "R-TRUST-1": ("trust file",),
    "R-TRUST": ("pinned ",),
    "R-PKG": (PACKAGE,),
    "R-ROOT": (PACKAGE,),
    "R-LEAF": (PACKAGE,),
    "R-TREE": (PACKAGE,),
}
"""The report lines (name prefixes) of each rule, by rule or family: an invalid vector may fail
only these, so it shows its own rule breaking and not a side effect of how it was made."""

CASCADES: dict[str, tuple[str, ...]] = {
    # Nothing re-signed: the signatures and the reserve proof are of the old digest.
    "The body changed after signing (as_of), nothing re-signed.": ("signature ", "reserve proof"),
    # A changed token address is a new leaf and, by R-ASSET-3, a token that is not the asset's.
    "A Safe balance's token address changed (its leaf hash changes; re-signed).": (
        "balance assets",
    ),
    # The registry check reads every code, the broken liability root's included.
    "The liability root states a digest its fields do not hash to (re-signed).": (
        "asset registry",
    ),
    "The liability root's asset list is not in byte order (re-signed).": ("asset registry",),
    "A holdings root stated as the liability root (re-signed).": ("asset registry",),
    # A missing line is both a missing reconciliation and an asset set that is not the figures'.
    "The reconciliation has no line for USDC (re-signed).": ("reconciliation assets",),
    # An unregistered USDC is also a balance of no registered asset.
    "USDC is held and owed but not in the asset registry (re-signed).": ("balance assets",),
}
"""Vectors whose one change necessarily breaks a second rule too, and which lines it fails."""


def _spec_rules() -> set[str]:
    """Every rule number the specs define (a table row or heading opening with ``R-...``)."""
    rules: set[str] = set()
    for spec in SPECS:
        rules |= set(re.findall(r"\*\*(R-[A-Z0-9]+-\d+)\*\*", spec.read_text(encoding="utf-8")))
    return rules


def _file(vector: dict[str, Any], prefix: str = "bundle") -> bytes | None:
    """The vector's bundle (or previous bundle) file bytes, if it has one."""
    if f"{prefix}_text" in vector:
        return str(vector[f"{prefix}_text"]).encode()
    if prefix in vector:
        return json.dumps(vector[prefix]).encode()
    if f"{prefix}_ref" in vector:
        return json.dumps(VECTORS["bundles"][vector[f"{prefix}_ref"]]).encode()
    return None


def judge(vector: dict[str, Any]) -> list[str]:
    """The reasons the verifier refuses the vector's inputs (empty if it accepts them)."""
    return [reason for _, reason in failures(vector)]


def failures(vector: dict[str, Any]) -> list[tuple[str, str]]:
    """The report lines (name, reason) the verifier fails for the vector's inputs; a refused
    trust file is the line ``trust file``."""
    data = _file(vector)
    assert data is not None, vector["description"]
    anchors = None
    if "trust" in vector or "trust_text" in vector:
        text = vector.get("trust_text") or json.dumps(vector["trust"])
        try:
            anchors = parse_trust(text)
        except VerifierError as error:
            return [("trust file", str(error))]
    previous_bytes = _file(vector, "previous")
    previous = VerifierBundle.from_bytes(previous_bytes) if previous_bytes else None
    package = vector.get("package")
    leaf = None
    if package is not None:
        account = package.get("leaf", {}).get("account_id", "")
        leaf = LeafQuery(account_id=account, package=package)
    report = verify_bundle(data, leaf=leaf, previous=previous, anchors=anchors)
    return [
        (check.name, check.reason) for check in report.checks if check.status is CheckStatus.FAILED
    ]


def _own_checks(rule: str) -> tuple[str, ...]:
    """The report lines of ``rule``: its own entry, else its family's (``R-TRUST``)."""
    family = rule.rsplit("-", 1)[0]
    return RULE_CHECKS.get(rule) or RULE_CHECKS[family]


def _cases() -> list[Any]:
    cases = []
    for position, vector in enumerate(VECTORS["vectors"]):
        marks = []
        if vector.get("needs") in NOT_YET:
            marks.append(pytest.mark.xfail(strict=True, reason=NOT_YET[vector["needs"]]))
        cases.append(
            pytest.param(
                vector, id=f"{position:03d}-{vector['rule']}-{vector['expected']}", marks=marks
            )
        )
    return cases


def test_committed_vectors_match_the_generator_byte_for_byte() -> None:
    """Re-running the generator (fixed keys, RFC 6979 signatures) reproduces the committed file."""
    assert render(build_vectors()) == VECTORS_PATH.read_text(encoding="utf-8")


def test_every_numbered_rule_has_a_vector_and_every_vector_a_rule() -> None:
    """The specs' rule numbers and the vectors' rules are the same set, so no rule is untested
    and no vector points at a rule that does not exist."""
    specified = _spec_rules()
    covered = {vector["rule"] for vector in VECTORS["vectors"]}
    assert specified, "no rule numbers found in the specs"
    assert sorted(specified - covered) == [], "rules without a vector"
    assert sorted(covered - specified) == [], "vectors naming an unknown rule"


@pytest.mark.parametrize("vector", _cases())
def test_vector_is_judged_as_expected(vector: dict[str, Any]) -> None:
    """The standalone verifier accepts a valid vector (no failed check) and refuses an invalid
    one with a reason that names its rule's failure."""
    reasons = judge(vector)
    if vector["expected"] == "valid":
        assert reasons == [], vector["description"]
    else:
        assert any(vector["reason_contains"] in reason for reason in reasons), (
            vector["description"],
            reasons,
        )


@pytest.mark.parametrize(
    "vector", [case for case in _cases() if case.values[0]["expected"] == "invalid"]
)
def test_invalid_vector_fails_only_its_own_rule(vector: dict[str, Any]) -> None:
    """Each invalid vector changes one thing, so it fails only its rule's report lines (plus the
    documented ``CASCADES``): a vector that also broke another rule could pass for the wrong
    reason in a verifier that misses its own."""
    allowed = _own_checks(vector["rule"]) + CASCADES.get(vector["description"], ())
    names = [name for name, _ in failures(vector)]
    assert names, vector["description"]
    stray = [name for name in names if not name.startswith(allowed)]
    assert stray == [], (vector["rule"], vector["description"], names)


def test_every_cascade_names_a_vector() -> None:
    """A cascade allowance is kept only while its vector exists."""
    descriptions = {vector["description"] for vector in VECTORS["vectors"]}
    assert sorted(set(CASCADES) - descriptions) == []
