"""The auditor's trust file: a bundle verifies only against the keys and registry the auditor
pinned, each mismatch refused with its own reason; without a trust file the report says the keys
and registry are self-declared; malformed trust files are refused clearly (exit code 2).

Bundles are real ones, built and signed by the producer's code (``reporting.attestation``) from
fixed values and checked offline, so these tests need no node.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bundle_support import failed, liabilities
from eth_utils.address import to_checksum_address
from registry_support import asset_registry, snapshot_vaults, with_offline_safe_signatures
from reserve_verifier import CheckStatus, verify_bundle
from reserve_verifier.cli import main as verify_command
from reserve_verifier.report import SELF_DECLARED_WARNING
from reserve_verifier.trust import RegistryPin, parse_trust, trust_document
from typer.testing import CliRunner

from reporting.attestation import (
    AttestationInputs,
    AuditHead,
    BitcoinSnapshot,
    BlockRef,
    EvmSnapshot,
    KeySigner,
    RegistryRef,
    SignerRole,
    build_attestation,
    sign_bundle,
)
from reporting.bundle import GENESIS_DIGEST_HEX, Bundle
from reporting.holdings import SafeBalanceHolding
from treasury.attest import AttestResult
from treasury.cli import app
from treasury.story.proofs import TRUST_FILE_NAME, write_trust_file

NONCE = bytes(range(32))
TREASURY = KeySigner(SignerRole.TREASURY, hashlib.sha256(b"trust test treasury").digest())
AUDITOR = KeySigner(SignerRole.AUDITOR, hashlib.sha256(b"trust test audit office").digest())
INSIDER = KeySigner(SignerRole.TREASURY, hashlib.sha256(b"an unpinned treasury key").digest())
SAFE = to_checksum_address("0x" + "5a" * 20)
REGISTRY = RegistryRef(
    31338, to_checksum_address("0x" + "ab" * 20), to_checksum_address("0x" + "cd" * 20)
)
ROWS = {"budget:health": (10**18,), "citizen:0001": (2 * 10**18,)}


def inputs(**changes: Any) -> AttestationInputs:
    """Inputs of a first attestation: one Safe holding ether, two accounts owed some."""
    tree, totals = liabilities(("ETH",), ROWS, NONCE)
    evm = EvmSnapshot(
        31337,
        BlockRef(50, "0x" + "77" * 32),
        (SafeBalanceHolding(31337, SAFE, "ETH", None, 4 * 10**18),),
    )
    base = AttestationInputs(
        sequence=1,
        previous_digest=GENESIS_DIGEST_HEX,
        as_of=datetime(2026, 3, 1, tzinfo=UTC),
        bitcoin=BitcoinSnapshot("regtest", BlockRef(110, "66" * 32), ()),
        evm=(evm,),
        liabilities=tree,
        ledger_totals=totals,
        audit_head=AuditHead(9, "cd" * 32),
        registry=REGISTRY,
        treasury=TREASURY,
        auditor=AUDITOR,
        assets=asset_registry(31337),
        vaults=snapshot_vaults(BitcoinSnapshot("regtest", BlockRef(110, "66" * 32), ()), (evm,)),
        public_accounts=("budget:health",),
    )
    return replace(base, **changes)


def signed(attestation: AttestationInputs) -> Bundle:
    """The bundle of ``attestation`` (its Safe's proof of control a placeholder, offline), signed
    by both keys it lists."""
    bundle = with_offline_safe_signatures(build_attestation(attestation))
    return sign_bundle(sign_bundle(bundle, attestation.treasury), attestation.auditor)


def pins(**changes: Any) -> dict[str, Any]:
    """The trust file an auditor keeps for the honest treasury (``changes`` override fields)."""
    document = trust_document(
        [TREASURY.identity()["public_key"]],
        [AUDITOR.identity()["public_key"]],
        RegistryPin(REGISTRY.chain_id, REGISTRY.address, REGISTRY.publisher),
        genesis_digest=signed(inputs()).digest.hex(),
    )
    document.update(changes)
    return document


@pytest.fixture(scope="module")
def honest() -> Bundle:
    return signed(inputs())


def write(folder: Path, name: str, content: bytes | dict[str, Any]) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return path


def test_bundle_verifies_with_the_right_trust_file(honest: Bundle, tmp_path: Path) -> None:
    """With the auditor's pins, every pin check passes and no self-declared warning is shown."""
    report = verify_bundle(honest.to_bytes(), anchors=parse_trust(json.dumps(pins())))
    assert report.passed(allow_skipped=True), report.render()
    for name in ("pinned treasury key", "pinned auditor key", "pinned registry", "pinned genesis"):
        assert report.status_of(name) is CheckStatus.OK
    assert SELF_DECLARED_WARNING not in report.render()
    assert "pinned by the auditor's trust file" in report.render()
    bundle = write(tmp_path, "attestation.json", honest.to_bytes())
    trust = write(tmp_path, "trust.json", pins())
    assert verify_command([str(bundle), "--offline", "--trust", str(trust)]) == 0


def test_bundle_signed_by_an_unpinned_key_is_refused(tmp_path: Path) -> None:
    """A bundle listing and signed by a key the auditor did not pin is self-consistent, and is
    refused with the pin as the reason once the trust file is given."""
    forged = signed(inputs(treasury=INSIDER))
    alone = verify_bundle(forged.to_bytes())
    assert alone.passed(allow_skipped=True), alone.render()
    report = verify_bundle(forged.to_bytes(), anchors=parse_trust(json.dumps(pins())))
    reasons = failed(report)
    assert "not pinned in the trust file for the treasury" in reasons["pinned treasury key"]
    assert INSIDER.identity()["address"] in reasons["pinned treasury key"]
    assert report.status_of("pinned auditor key") is CheckStatus.OK
    bundle = write(tmp_path, "forged.json", forged.to_bytes())
    trust = write(tmp_path, "trust.json", pins())
    assert verify_command([str(bundle), "--offline", "--trust", str(trust)]) == 1


@pytest.mark.parametrize(
    ("registry", "reason"),
    [
        (
            replace(REGISTRY, address=to_checksum_address("0x" + "ef" * 20)),
            "but the trust file pins 0x" + "ab" * 20,
        ),
        (replace(REGISTRY, chain_id=1), "but the trust file pins chain 31338"),
        (
            replace(REGISTRY, publisher=to_checksum_address("0x" + "99" * 20)),
            "registry publisher",
        ),
    ],
    ids=["address", "chain", "publisher"],
)
def test_registry_other_than_the_pin_is_refused(registry: RegistryRef, reason: str) -> None:
    """A bundle naming another registry (address, chain or publisher) fails 'pinned registry'."""
    bundle = signed(inputs(registry=registry))
    anchors = pins()
    anchors.pop("genesis_digest")
    report = verify_bundle(bundle.to_bytes(), anchors=parse_trust(json.dumps(anchors)))
    assert reason in failed(report)["pinned registry"]
    assert not report.passed(allow_skipped=True)


def test_genesis_other_than_the_pin_is_refused(honest: Bundle) -> None:
    """A first attestation that is not the pinned genesis is refused by name."""
    report = verify_bundle(
        honest.to_bytes(), anchors=parse_trust(json.dumps(pins(genesis_digest="12" * 32)))
    )
    assert "not the pinned genesis" in failed(report)["pinned genesis"]


def test_report_without_trust_file_says_self_declared(
    honest: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --trust, a consistent bundle still exits 0 offline, but the report warns that the
    keys and registry are self-declared, and no longer claims the registry was consulted."""
    bundle = write(tmp_path, "attestation.json", honest.to_bytes())
    assert verify_command([str(bundle), "--offline"]) == 0
    text = capsys.readouterr().out
    assert text.count(f"WARNING: {SELF_DECLARED_WARNING}") == 2
    assert "registry: not consulted (no --services-rpc)" in text
    assert "mode: offline (no node consulted)" in text
    assert "checked against the registry" not in text
    assert "the registry was not consulted" in text
    assert not any(name.startswith("pinned") for name in text.splitlines())


def test_treasury_verify_passes_the_trust_file_through(honest: Bundle, tmp_path: Path) -> None:
    """`treasury verify --trust` refuses the same unpinned key as `reserve-verify`."""
    bundle = write(tmp_path, "attestation.json", honest.to_bytes())
    good = write(tmp_path, "trust.json", pins())
    other = pins()
    other["signers"]["auditor"] = [INSIDER.identity()["public_key"]]
    wrong = write(tmp_path, "wrong.json", other)
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", str(bundle), "--offline", "--trust", str(good)])
    assert ok.exit_code == 0, ok.output
    refused = runner.invoke(app, ["verify", str(bundle), "--offline", "--trust", str(wrong)])
    assert refused.exit_code == 1
    assert "not pinned in the trust file for the auditor" in refused.output


KEY = TREASURY.identity()["public_key"]
AUDITOR_KEY = AUDITOR.identity()["public_key"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b'{"format": "reserve-verifier-trust", "format": "x"}', "'format' twice"),
        ({**pins(), "note": "audited"}, "unknown field 'note'"),
        ({k: v for k, v in pins().items() if k != "registry"}, "no 'registry' field"),
        (pins(version=True), "version must be 1"),
        (pins(format="other"), "format is not"),
        (pins(signers={"treasury": [], "auditor": [KEY]}), "non-empty list"),
        (pins(signers={"treasury": [KEY.upper()], "auditor": [KEY]}), "lower-case hex"),
        (pins(signers={"treasury": ["0x" + KEY], "auditor": [KEY]}), "without 0x"),
        (pins(signers={"treasury": ["ff" * 64], "auditor": [KEY]}), "not a point of secp256k1"),
        (pins(signers={"treasury": [KEY], "auditor": [KEY]}), "same key"),
        (pins(signers={"treasury": [KEY, KEY], "auditor": [AUDITOR_KEY]}), "lists a key twice"),
        (pins(registry={"chain_id": "31338", "address": REGISTRY.address}), "chain_id"),
        (
            pins(registry={"chain_id": 31338, "address": "0xAb" + "ab" * 19}),
            "wrong EIP-55 checksum",
        ),
        (pins(registry={"chain_id": 31338, "address": "0x1234"}), "40 hex digits"),
        (pins(genesis_digest="00"), "genesis_digest must be 64"),
    ],
)
def test_malformed_trust_file_is_refused_clearly(
    honest: Bundle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | dict[str, Any],
    reason: str,
) -> None:
    """A malformed trust file stops the command with exit code 2 and a sentence naming the fault."""
    bundle = write(tmp_path, "attestation.json", honest.to_bytes())
    trust = write(tmp_path, "trust.json", content)
    assert verify_command([str(bundle), "--trust", str(trust)]) == 2
    error = capsys.readouterr().err
    assert f"the trust file {trust} is unusable" in error
    assert reason in error


def test_missing_trust_file_is_a_usage_error(
    honest: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trust file that cannot be read stops the command (exit 2) before any check runs."""
    bundle = write(tmp_path, "attestation.json", honest.to_bytes())
    assert verify_command([str(bundle), "--trust", str(tmp_path / "absent.json")]) == 2
    captured = capsys.readouterr()
    assert "cannot read the trust file" in captured.err
    assert captured.out == ""


def test_demo_writes_the_trust_file_the_auditor_pins(honest: Bundle, tmp_path: Path) -> None:
    """The story's trust file (beside, not among, the bundles) pins the keys it signed with, the
    registry and the genesis: the honest bundle verifies with it, an unpinned key does not."""
    result = AttestResult(honest, inputs().liabilities, 1, None)
    path = write_trust_file(tmp_path, result, TREASURY, AUDITOR)
    assert path == tmp_path / TRUST_FILE_NAME
    anchors = parse_trust(path.read_bytes())
    assert anchors.genesis_digest == honest.digest.hex()
    assert verify_bundle(honest.to_bytes(), anchors=anchors).passed(allow_skipped=True)
    forged = signed(inputs(treasury=INSIDER))
    assert "pinned treasury key" in failed(verify_bundle(forged.to_bytes(), anchors=anchors))
