"""Canonical JSON of attestation bundles: byte-exact, float-free, and the digest over the body."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reserve_verifier import canonical_json as verifier_canonical_json

from reporting.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    Bundle,
    BundleFormatError,
    body_digest,
    canonical_json,
)
from reporting.contracts.build import ARTIFACT_PATH, compile_registry, render

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def test_canonical_json_is_sorted_compact_utf8() -> None:
    """Keys are sorted, there is no whitespace, and text is raw UTF-8, not escaped."""
    assert canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()


@given(json_values)
def test_canonical_json_round_trips_to_the_same_bytes(value: object) -> None:
    """Parsing canonical bytes and encoding again gives the same bytes (one encoding per value)."""
    data = canonical_json(value)
    assert canonical_json(json.loads(data)) == data


def test_floats_and_big_integers_are_refused() -> None:
    """A float anywhere, or an integer past 2**53, is refused with the field's path."""
    with pytest.raises(BundleFormatError, match=r"\$\.coverage\.ratio"):
        canonical_json({"coverage": {"ratio": 1.25}})
    with pytest.raises(BundleFormatError, match="decimal string"):
        canonical_json({"amount": 2**64})


def test_parsing_refuses_float_numbers() -> None:
    """A bundle file carrying a JSON fraction is refused on reading."""
    body = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "sequence": 1}
    text = Bundle(body).to_bytes().replace(b'"sequence":1', b'"sequence":1.0')
    with pytest.raises(BundleFormatError, match=r"JSON number 1\.0"):
        Bundle.from_bytes(text)


def test_digest_is_sha256_of_the_canonical_body_only() -> None:
    """The digest covers the body; signatures and anchors added later leave it unchanged."""
    body = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "sequence": 1}
    bundle = Bundle(body)
    assert bundle.digest == hashlib.sha256(canonical_json(body)).digest() == body_digest(body)
    later = bundle.with_signature("treasury", b"\x01" * 65).with_anchor("bitcoin", {"txid": "ab"})
    assert later.digest == bundle.digest
    assert Bundle.from_bytes(later.to_bytes()) == later


def test_strict_parse_refuses_a_wrong_stated_digest() -> None:
    """A bundle whose stated digest is not its body's is refused when read strictly."""
    data = Bundle({"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION}).to_dict() | {
        "digest": "00" * 32
    }
    with pytest.raises(BundleFormatError, match="hashes to"):
        Bundle.from_dict(data)
    assert Bundle.from_dict(data, strict=False).stated_digest == "00" * 32


def test_registry_artifact_matches_a_fresh_compile() -> None:
    """The committed registry artifact is byte for byte what the pinned vyper compiles now."""
    assert ARTIFACT_PATH.read_text(encoding="utf-8") == render(compile_registry())


PROJECT_PACKAGES = ("custody", "treasury", "reporting")
"""The producer's packages, none of which the auditor's verifier may import."""

VERIFIER_SOURCE = Path(__file__).resolve().parents[2] / "verifier" / "reserve_verifier"


def test_verifier_imports_nothing_of_custody_treasury_or_reporting(tmp_path: Path) -> None:
    """Importing every module of the verifier in a fresh interpreter loads no module of custody,
    treasury or reporting."""
    code = (
        "import importlib, pkgutil, sys, reserve_verifier\n"
        "for found in pkgutil.walk_packages(reserve_verifier.__path__, 'reserve_verifier.'):\n"
        "    importlib.import_module(found.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {PROJECT_PACKAGES!r}]\n"
        "print(','.join(bad))\n"
        "print(len([m for m in sys.modules if m.startswith('reserve_verifier.')]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    bad, loaded = result.stdout.splitlines()
    assert bad == ""
    assert int(loaded) == len(list(VERIFIER_SOURCE.glob("*.py"))) - 1


def test_verifier_source_names_no_project_package() -> None:
    """No import statement in the verifier's source, lazy ones included, names custody, treasury
    or reporting."""
    sources = sorted(VERIFIER_SOURCE.rglob("*.py"))
    assert sources
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            named = {name.split(".")[0] for name in names} & set(PROJECT_PACKAGES)
            assert not named, f"{path.name}:{node.lineno} imports {sorted(named)}"


@given(json_values)
def test_verifier_and_producer_write_the_same_canonical_json(value: object) -> None:
    """The verifier's own canonical JSON (and so its digest) is byte for byte the producer's."""
    assert verifier_canonical_json(value) == canonical_json(value)
