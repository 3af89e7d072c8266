"""Offline attestation checks: an honest bundle passes, and each kind of tampering is named.

Bundles are built from fixed values; the BIP-127 reserve proof is made and signed with ``embit``
(the custody side's library), so the verifier's ``bitcoinlib`` checks an independent implementation.
Tampering done by an insider who holds both signing keys is re-signed, so the failing check is the
logical one, not only the signature.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bundle_support import failed, liabilities
from embit import ec
from embit.psbt import PSBT
from embit.script import Script, Witness, p2wpkh
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from registry_support import asset_registry, snapshot_vaults, with_offline_safe_signatures
from reserve_verifier import CheckStatus, LeafQuery, verify_bundle
from reserve_verifier.cli import main as verify_command
from reserve_verifier.exceptions import TreeError
from reserve_verifier.tree import parse_root

from reporting.attestation import (
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
    build_attestation,
    reserve_commitment_txid,
    sign_bundle,
)
from reporting.bundle import GENESIS_DIGEST_HEX, AttestationError, Bundle, SigningError
from reporting.exceptions import NegativeAmountError
from reporting.holdings import SafeBalanceHolding
from reporting.sumtree import LiabilityTree

NONCE = bytes(range(32))
TREASURY = KeySigner(SignerRole.TREASURY, hashlib.sha256(b"unit treasury").digest())
AUDITOR = KeySigner(SignerRole.AUDITOR, hashlib.sha256(b"unit auditor").digest())
VAULT_KEY = ec.PrivateKey(hashlib.sha256(b"unit vault key").digest())
VAULT_SCRIPT = p2wpkh(VAULT_KEY.get_public_key()).data
SAFE = "0x" + "5a" * 20
TOKEN = "0x" + "70" * 20
ASSETS = ("BTC", "ETH", "USDX")
LIABILITIES = {
    "budget:health": (40_000, 10**18, 5 * 10**6),
    "budget:roads": (25_000, 0, 10**6),
    "citizen:0001": (10_000, 2 * 10**18, 0),
    "citizen:0002": (5_000, 0, 3 * 10**6),
}


def _block(height: int) -> BlockRef:
    return BlockRef(height, hashlib.sha256(f"block {height}".encode()).hexdigest())


def inputs(
    rows: dict[str, tuple[int, int, int]] = LIABILITIES, **changes: Any
) -> AttestationInputs:
    utxos = tuple(
        SnapshotUtxo(
            hashlib.sha256(f"tx {i}".encode()).hexdigest(), i, amount, VAULT_SCRIPT, _block(100 + i)
        )
        for i, amount in enumerate((60_000, 30_000, 15_000))
    )
    tree, totals = liabilities(ASSETS, rows, NONCE)
    evm = EvmSnapshot(
        31337,
        BlockRef(50, "0x" + "77" * 32),
        (SafeBalanceHolding(31337, SAFE, "ETH", None, 4 * 10**18),
         SafeBalanceHolding(31337, SAFE, "USDX", TOKEN, 10**7)),
    )  # fmt: skip
    base = AttestationInputs(
        sequence=1,
        previous_digest=GENESIS_DIGEST_HEX,
        as_of=datetime(2026, 3, 1, tzinfo=UTC),
        bitcoin=BitcoinSnapshot("regtest", _block(110), utxos),
        evm=(evm,),
        liabilities=tree,
        ledger_totals=totals,
        audit_head=AuditHead(9, "cd" * 32),
        registry=RegistryRef(31338, "0x" + "11" * 20, "0x" + "22" * 20),
        treasury=TREASURY,
        auditor=AUDITOR,
        assets=asset_registry(31337, {"USDX": (TOKEN, 6, "USDX")}),
        vaults=snapshot_vaults(BitcoinSnapshot("regtest", _block(110), utxos), (evm,)),
        encumbrances=(
            Encumbrance(
                "BTC",
                5_000,
                EncumbranceKind.PENDING_SPEND,
                "psbt:1",
                "A payment awaiting confirmation.",
            ),
        ),
        public_accounts=("budget:health", "budget:roads"),
    )
    changed = replace(base, **changes)
    if "vaults" in changes:
        return changed
    return replace(changed, vaults=snapshot_vaults(changed.bitcoin, changed.evm))


def reserve_psbt(bundle: Bundle, utxos: list[dict[str, Any]] | None = None, fee: int = 0) -> str:
    """A finalised BIP-127 PSBT over ``utxos`` (default: the attested ones), signed with embit."""
    listed = bundle.body["snapshot"]["bitcoin"]["utxos"] if utxos is None else utxos
    total = sum(int(u["amount"]) for u in listed)
    tx = Transaction(
        vin=[TransactionInput(bytes.fromhex(reserve_commitment_txid(bundle.digest)), 0)]
        + [TransactionInput(bytes.fromhex(u["txid"]), u["vout"]) for u in listed],
        vout=[TransactionOutput(total - fee, Script(VAULT_SCRIPT))],
    )
    psbt = PSBT(tx)
    psbt.inputs[0].witness_utxo = TransactionOutput(0, Script(b"\x51"))  # BIP-127: value 0
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
    text: str = psbt.to_string()
    return text


def signed(bundle: Bundle, psbt: Callable[[Bundle], str] = reserve_psbt) -> Bundle:
    """Attach the reserve proof, each Safe slot's signature and both signatures (what an insider
    with the keys can do)."""
    bundle = Bundle(bundle.body).with_proof("bitcoin_reserve_proof", {"psbt": psbt(bundle)})
    bundle = with_offline_safe_signatures(bundle)
    return sign_bundle(sign_bundle(bundle, TREASURY), AUDITOR)


def tampered(edit: Callable[[dict[str, Any]], None], *, resign: bool = True) -> Bundle:
    honest = signed(build_attestation(inputs()))
    body = copy.deepcopy(dict(honest.body))
    edit(body)
    if resign:
        return signed(Bundle(body))
    return Bundle(body, honest.signatures, honest.proofs_of_control, honest.anchors)


@pytest.fixture(scope="module")
def honest() -> Bundle:
    return signed(build_attestation(inputs()))


def test_honest_bundle_has_no_failed_check_offline(honest: Bundle) -> None:
    """Every offline check of an honest bundle holds; node checks are skipped, not passed."""
    report = verify_bundle(honest.to_bytes())
    assert not report.failed(), report.render()
    assert report.passed(allow_skipped=True)
    assert not report.passed()
    assert report.status_of("reserve proof (BIP-127)") is CheckStatus.OK


def test_bundle_states_reconciliation_encumbrance_and_coverage(honest: Bundle) -> None:
    """The body states holdings, the pending spend, both liability totals and exact coverage."""
    line = honest.body["reconciliation"]["BTC"]
    assert (line["chain_holdings"], line["encumbered"], line["available"]) == (
        "105000",
        "5000",
        "100000",
    )
    assert line["liability_root_total"] == line["ledger_total"] == "80000"
    coverage = honest.body["coverage"]["BTC"]
    assert (coverage["numerator"], coverage["denominator"], coverage["ratio"]) == (
        "100000",
        "80000",
        "125.00%",
    )
    assert honest.body["encumbrances"][0]["kind"] == "pending_spend"


def test_amount_changed_is_caught() -> None:
    """Changing one UTXO amount (even re-signed) no longer rebuilds the stated holdings root."""
    bundle = tampered(lambda b: b["snapshot"]["bitcoin"]["utxos"][0].update(amount="60001"))
    assert "holdings root is altered" in failed(verify_bundle(bundle))["holdings root"]


def test_unsigned_edit_fails_the_digest_and_signatures() -> None:
    """An edit without re-signing fails the stated digest and both signatures."""
    bundle = tampered(lambda b: b["audit_log"].update(sequence=10), resign=False)
    data = bundle.to_dict() | {"digest": signed(build_attestation(inputs())).digest.hex()}
    found = failed(verify_bundle(Bundle.from_dict(data, strict=False)))
    assert "hashes to" in found["digest"]
    assert "not the listed treasury key" in found["signature treasury"]
    assert "not the listed auditor key" in found["signature auditor"]


def test_leaf_removed_is_caught() -> None:
    """A holding dropped from the snapshot no longer rebuilds the stated holdings root."""
    bundle = tampered(lambda b: b["snapshot"]["evm"][0]["balances"].pop())
    assert "holding was added or removed" in failed(verify_bundle(bundle))["holdings root"]


def test_published_proof_path_altered_is_caught() -> None:
    """Altering one sibling hash of a published account's proof fails the listing check."""

    def edit(body: dict[str, Any]) -> None:
        sibling = body["liabilities"]["public_listing"][0]["proof"]["siblings"][0]
        sibling["hash"] = ("00" if sibling["hash"][:2] != "00" else "01") + sibling["hash"][2:]

    assert "mismatch" in failed(verify_bundle(tampered(edit)))["published liabilities"]


def test_root_altered_is_caught() -> None:
    """A liability root whose node hash was altered fails against its own stated digest."""

    def edit(body: dict[str, Any]) -> None:
        body["liabilities"]["root"]["node_hash"] = "00" * 32

    assert "digest mismatch" in failed(verify_bundle(tampered(edit)))["liability root"].lower()


def test_signature_removed_is_caught(honest: Bundle) -> None:
    """Without the treasury signature the treasury check fails and the report does not pass."""
    bundle = Bundle(
        honest.body, {"auditor": honest.signatures["auditor"]}, honest.proofs_of_control
    )
    report = verify_bundle(bundle)
    assert "treasury signature is missing" in failed(report)["signature treasury"]
    assert not report.passed(allow_skipped=True)


def test_missing_auditor_countersignature_is_caught(honest: Bundle) -> None:
    """A bundle only the treasury signed lacks the audit office's countersignature."""
    bundle = Bundle(
        honest.body, {"treasury": honest.signatures["treasury"]}, honest.proofs_of_control
    )
    assert "auditor signature is missing" in failed(verify_bundle(bundle))["signature auditor"]


def test_negative_liability_is_refused_by_builder_and_verifier() -> None:
    """The builder refuses a negative balance, and a bundle stating one is refused."""
    with pytest.raises(NegativeAmountError):
        inputs({**LIABILITIES, "citizen:0003": (-1, 0, 0)})

    def edit(body: dict[str, Any]) -> None:
        body["liabilities"]["root"]["sums"][0] = "-80000"
        body["liabilities"]["root"].pop("digest")

    # The file grammar refuses the sign; the root check (reached by a reader without the
    # grammar, through the tree code) names the negative amount itself.
    assert "'-80000'" in failed(verify_bundle(tampered(edit)))["bundle format"]
    with pytest.raises(TreeError, match="-80000; amounts are zero or more"):
        parse_root(tampered(edit).body["liabilities"]["root"])


def test_totals_that_do_not_add_up_are_caught() -> None:
    """Stated totals or reconciliation figures that differ from the roots' sums fail by name."""
    found = failed(verify_bundle(tampered(lambda b: b["holdings"]["totals"].update(BTC="1"))))
    assert "holdings totals do not add up" in found["holdings totals"]
    found = failed(verify_bundle(tampered(lambda b: b["liabilities"]["totals"].update(ETH="7"))))
    assert "liability totals do not add up" in found["liability root"]
    found = failed(
        verify_bundle(tampered(lambda b: b["reconciliation"]["BTC"].update(encumbered="0")))
    )
    assert "totals do not add up" in found["reconciliation BTC"]


def test_ledger_differing_from_liability_tree_fails_reconciliation() -> None:
    """A ledger total above the tree's total (an account left out) is stated and fails."""
    bundle = signed(
        build_attestation(
            inputs(ledger_totals={"BTC": 90_000, "ETH": 3 * 10**18, "USDX": 9 * 10**6})
        )
    )
    assert "MISMATCH" in bundle.body["reconciliation"]["BTC"]["statement"]
    assert (
        "Three-way reconciliation fails for BTC"
        in failed(verify_bundle(bundle))["reconciliation BTC"]
    )


def test_under_coverage_is_stated_plainly_and_fails() -> None:
    """Liabilities above available holdings give an UNDER-COVERED statement and a failed line."""
    heavy = {**LIABILITIES, "citizen:0009": (30_000, 0, 0)}
    bundle = signed(build_attestation(inputs(heavy)))
    line = bundle.body["coverage"]["BTC"]
    assert line["covered"] is False
    assert line["shortfall"] == "10000"
    assert line["statement"].startswith("BTC: UNDER-COVERED")
    found = failed(verify_bundle(bundle))
    assert "UNDER-COVERED" in found["coverage BTC"]
    assert "coverage ETH" not in found


def test_misstated_coverage_is_caught() -> None:
    """A bundle claiming coverage its figures do not give fails the coverage check."""
    heavy = {**LIABILITIES, "citizen:0009": (30_000, 0, 0)}
    honest = build_attestation(inputs(heavy))
    body = copy.deepcopy(dict(honest.body))
    body["coverage"]["BTC"].update(covered=True, shortfall="0")
    assert "misstated" in failed(verify_bundle(signed(Bundle(body))))["coverage BTC"]


def test_chain_gap_against_previous_bundle_is_caught(honest: Bundle) -> None:
    """Attestation 3 naming attestation 1 as its predecessor is a gap; 2 after 1 is not."""
    second = signed(build_attestation(inputs(sequence=2, previous_digest=honest.digest.hex())))
    assert verify_bundle(second, previous=honest).status_of("attestation chain") is CheckStatus.OK
    third = signed(build_attestation(inputs(sequence=3, previous_digest=honest.digest.hex())))
    assert (
        "Attestation chain gap"
        in failed(verify_bundle(third, previous=honest))["attestation chain"]
    )
    with pytest.raises(AttestationError, match="previous digest must be all zeros"):
        build_attestation(inputs(previous_digest="ab" * 32))


def test_reserve_proof_must_spend_exactly_the_attested_utxos(honest: Bundle) -> None:
    """A proof leaving out a UTXO, paying a fee, or committing to another digest is refused."""
    utxos = honest.body["snapshot"]["bitcoin"]["utxos"]
    short = signed(build_attestation(inputs()), lambda b: reserve_psbt(b, utxos[1:]))
    assert "missing" in failed(verify_bundle(short))["reserve proof (BIP-127)"]
    fee = signed(build_attestation(inputs()), lambda b: reserve_psbt(b, fee=1))
    assert "no fee" in failed(verify_bundle(fee))["reserve proof (BIP-127)"]
    other = build_attestation(inputs(audit_head=AuditHead(10, "cd" * 32)))
    stolen = signed(build_attestation(inputs()), lambda _b: reserve_psbt(other))
    assert (
        "not the commitment to this digest"
        in failed(verify_bundle(stolen))["reserve proof (BIP-127)"]
    )


def test_reserve_proof_missing_is_a_failure(honest: Bundle) -> None:
    """A bundle with UTXOs but no reserve proof fails the proof-of-control check."""
    bundle = Bundle(honest.body, honest.signatures, {})
    assert "missing" in failed(verify_bundle(bundle))["reserve proof (BIP-127)"]


def test_leaf_query_with_wrong_salt_is_refused(honest: Bundle) -> None:
    """A published account checks with its salt and fails with another one."""
    entry = next(
        e
        for e in honest.body["liabilities"]["public_listing"]
        if e["leaf"]["account_id"] == "budget:roads"
    )
    ok = verify_bundle(honest, leaf=LeafQuery("budget:roads", bytes.fromhex(entry["leaf"]["salt"])))
    assert ok.status_of("inclusion of 'budget:roads'") is CheckStatus.OK
    bad = verify_bundle(honest, leaf=LeafQuery("budget:roads", b"\x00" * 32))
    assert "another salt" in failed(bad)["inclusion of 'budget:roads'"]


def test_private_account_package_verifies_against_the_bundle(honest: Bundle) -> None:
    """An account's private proof package checks against the bundle's liability root."""
    tree = inputs().liabilities
    report = verify_bundle(
        honest, leaf=LeafQuery("citizen:0002", package=tree.package("citizen:0002"))
    )
    assert report.status_of("inclusion of 'citizen:0002'") is CheckStatus.OK
    other_tree = LiabilityTree.from_rows(ASSETS, [("citizen:0002", (1, 0, 0))], NONCE)
    report = verify_bundle(
        honest, leaf=LeafQuery("citizen:0002", package=other_tree.package("citizen:0002"))
    )
    assert "mismatch" in failed(report)["inclusion of 'citizen:0002'"].lower()


def test_signer_must_be_the_listed_key_and_roles_separate() -> None:
    """Signing with an unlisted key, or one key for both roles, is refused."""
    bundle = build_attestation(inputs())
    with pytest.raises(SigningError, match="not the one the attestation lists"):
        sign_bundle(bundle, KeySigner(SignerRole.TREASURY, hashlib.sha256(b"intruder").digest()))
    with pytest.raises(SigningError, match="separate keys"):
        build_attestation(inputs(auditor=KeySigner(SignerRole.AUDITOR, TREASURY.private_key)))


def test_signing_key_never_appears_in_repr_or_bundle(honest: Bundle) -> None:
    """The private key is absent from the signer's repr and from the bundle bytes."""
    assert TREASURY.private_key.hex() not in repr(TREASURY)
    assert TREASURY.private_key.hex().encode() not in honest.to_bytes()
    assert NONCE.hex().encode() not in honest.to_bytes()


def test_reserve_verify_command_exit_codes(
    honest: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reserve-verify` exits 0 on an honest bundle offline, 1 if checks were skipped without
    --offline or one failed, and 2 with a one-line error for every unusable file or option."""
    path = tmp_path / "bundle.json"
    path.write_bytes(honest.to_bytes())
    assert verify_command([str(path), "--offline"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(" 0 failed, 6 skipped")
    assert verify_command([str(path)]) == 1
    data = honest.to_dict()
    data["body"]["snapshot"]["bitcoin"]["utxos"][0]["amount"] = "1"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    capsys.readouterr()
    assert verify_command([str(tampered), "--offline"]) == 1
    assert "failed  holdings root: The holdings root is altered" in capsys.readouterr().out
    package = tmp_path / "package.json"
    package.write_text(json.dumps(inputs().liabilities.package("citizen:0002")))
    assert verify_command([str(path), "--offline", "--proof", str(package)]) == 0
    assert "ok  inclusion of 'citizen:0002'" in capsys.readouterr().out
    entry = honest.body["liabilities"]["public_listing"][0]["leaf"]
    assert verify_command([str(path), "--offline", "--account", entry["account_id"],
                           "--salt", entry["salt"]]) == 0  # fmt: skip
    capsys.readouterr()
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    for arguments, error in (
        ([str(tmp_path / "absent.json")], f"cannot read the bundle {tmp_path / 'absent.json'}"),
        ([str(path), "--salt", "00"], "--salt needs --leaf ACCOUNT."),
        ([str(path), "--leaf", "x", "--salt", "zz"], "--salt must be hexadecimal."),
        ([str(path), "--proof", str(not_json)], f"the proof file {not_json} is not JSON."),
        ([str(path), "--previous", str(tampered)], "the previous bundle is unusable: The bundle states digest"),
    ):  # fmt: skip
        assert verify_command(arguments) == 2, arguments
        assert capsys.readouterr().err.startswith(f"error: {error}")


def test_treasury_verify_prints_what_reserve_verify_prints(
    honest: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`treasury verify` and the auditor's `reserve-verify` print the same report and exit alike."""
    from typer.testing import CliRunner

    from treasury.cli import app

    path = tmp_path / "bundle.json"
    path.write_bytes(honest.to_bytes())
    for extra in ([], ["--offline"]):
        code = verify_command([str(path), *extra])
        printed = capsys.readouterr().out
        result = CliRunner().invoke(app, ["verify", str(path), *extra])
        assert (result.exit_code, result.output) == (code, printed)
