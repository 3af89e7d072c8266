"""`treasury attest` end to end: ceremonies, a 2-of-3 P2WSH vault and a 2-of-3 Safe on the devnets,
ledger fund accounts; the attestation is anchored on both chains and the auditors' verifier passes
it against the live nodes; the next ones chain to it; under-coverage is stated and reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from attest_support import (
    FUND_BTC,
    FUND_BTC_SATS,
    FUND_ETH,
    INSTITUTIONS,
    OPENING_BTC,
    OPENING_ETH,
    PASSPHRASES,
    VAULT_FUNDING_SATS,
    Reserve,
    reserve_fixture,
)
from bundle_support import failed
from reserve_verifier import CheckStatus, LeafQuery, verify_bundle
from sqlalchemy import select, text
from typer.testing import CliRunner

from reporting.bundle import Bundle
from reporting.merkle.liability_leaf import LiabilityLeaf
from treasury.attest import AttestationRecord, AttestResult, RegistryRecord
from treasury.cli import app
from treasury.ledger import Leg

HOLDERS_ACCOUNT = "fund:eth:token-holders"
HOLDER_WEI = (3 * 10**17, 2 * 10**17)


reserve = reserve_fixture("end-to-end")


@pytest.fixture(scope="module")
def first(reserve: Reserve, tmp_path_factory: pytest.TempPathFactory) -> AttestResult:
    """The first attestation of the chain, written to a file."""
    return reserve.attest(out=tmp_path_factory.mktemp("bundles") / "first.json")


@pytest.fixture(scope="module")
def second(
    reserve: Reserve, first: AttestResult, tmp_path_factory: pytest.TempPathFactory
) -> AttestResult:
    """The second: a token-holder fund itemised by a CSV, after one more vault deposit."""
    from treasury.ledger import AccountType, open_account

    with reserve.sessions.begin() as session:
        open_account(
            session, HOLDERS_ACCOUNT, name="Token holders", account_type=AccountType.LIABILITY,
            asset_code="ETH", actor="attest-tests",
        )  # fmt: skip
    reserve.post(
        "holders",
        [Leg.debit(OPENING_ETH, sum(HOLDER_WEI)), Leg.credit(HOLDERS_ACCOUNT, sum(HOLDER_WEI))],
    )
    folder = tmp_path_factory.mktemp("csv")
    csv = folder / "holders.csv"
    csv.write_text(
        "account_id,asset,amount\n"
        + "".join(f"holder:{i},ETH,{wei}\n" for i, wei in enumerate(HOLDER_WEI))
    )
    reserve.fund_vault(30_000_000)
    return reserve.attest(out=folder / "second.json", csv=csv, csv_itemises=HOLDERS_ACCOUNT)


def test_first_attestation_passes_every_check_against_live_nodes(
    reserve: Reserve, first: AttestResult
) -> None:
    """The anchored bundle passes the verifier on live nodes: P2WSH reserve proof, EIP-1271, anchors."""
    report = verify_bundle(first.bundle.to_bytes(), nodes=reserve.verify_nodes)
    assert report.passed(), report.render()
    names = {check.name for check in report.checks}
    assert {
        "reserve proof (BIP-127)",
        f"eip1271 {reserve.safe.address}",
        "bitcoin anchor",
        "services anchor",
        "signature treasury",
        "signature auditor",
    } <= names
    utxos = first.bundle.body["snapshot"]["bitcoin"]["utxos"]
    assert len(utxos) == len(VAULT_FUNDING_SATS)
    assert all(u["script_pubkey"].startswith("0020") for u in utxos)  # P2WSH multisig
    assert first.bundle.body["holdings"]["totals"]["BTC"] == str(sum(VAULT_FUNDING_SATS))
    assert first.bundle.body["ledger"]["totals"] == {
        "BTC": str(FUND_BTC_SATS),
        "ETH": str(4 * 10**18),
    }
    assert first.bundle.body["coverage"]["BTC"]["covered"] is True
    assert reserve.token_asset in first.bundle.body["holdings"]["totals"]


def test_bundle_file_and_records_match_the_anchored_bundle(
    reserve: Reserve, first: AttestResult
) -> None:
    """The written file is the bundle; the database records its digest, anchors and registry."""
    assert first.path is not None
    assert Bundle.from_bytes(first.path.read_bytes()) == first.bundle
    with reserve.sessions() as session:
        record = session.scalars(
            select(AttestationRecord).where(AttestationRecord.sequence == 1)
        ).one()
        registry = session.scalars(select(RegistryRecord)).one()
    assert record.digest == first.bundle.digest.hex()
    assert record.bitcoin_anchor_txid == first.bundle.anchors["bitcoin"]["txid"]
    assert Bundle.from_bytes(record.bundle_json.encode()) == first.bundle
    assert registry.address == first.bundle.body["registry"]["address"]
    assert registry.publisher == first.bundle.body["signers"]["treasury"]["address"]


def test_published_fund_account_is_provable_by_the_verifier(first: AttestResult) -> None:
    """Every ledger fund account is a published budget line the verifier proves by name."""
    report = verify_bundle(first.bundle, leaf=LeafQuery(FUND_BTC))
    assert report.status_of(f"inclusion of {FUND_BTC!r}") is CheckStatus.OK
    listed = {
        entry["leaf"]["account_id"] for entry in first.bundle.body["liabilities"]["public_listing"]
    }
    assert listed == {FUND_BTC, FUND_ETH}


def test_second_attestation_chains_to_the_first(
    reserve: Reserve, first: AttestResult, second: AttestResult
) -> None:
    """Attestation 2 names attestation 1's digest, reuses the registry and verifies as its successor."""
    body = second.bundle.body
    assert body["sequence"] == 2
    assert body["previous_digest"] == first.bundle.digest.hex()
    assert body["registry"] == first.bundle.body["registry"]
    report = verify_bundle(second.bundle, nodes=reserve.verify_nodes, previous=first.bundle)
    assert report.passed(), report.render()
    assert report.status_of("attestation chain") is CheckStatus.OK
    wrong = verify_bundle(second.bundle, previous=second.bundle)
    assert "Attestation chain gap" in failed(wrong)["attestation chain"]


def test_csv_itemises_a_fund_account_and_reconciles(second: AttestResult) -> None:
    """CSV holders replace the fund account they itemise: the tree total equals the ledger total."""
    line = second.bundle.body["reconciliation"]["ETH"]
    assert line["liabilities_match_ledger"] is True
    assert line["liability_root_total"] == str(4 * 10**18 + sum(HOLDER_WEI))
    assert second.bundle.body["liabilities"]["root"]["leaf_count"] == 2 + len(HOLDER_WEI)
    listed = {
        entry["leaf"]["account_id"] for entry in second.bundle.body["liabilities"]["public_listing"]
    }
    assert HOLDERS_ACCOUNT not in listed
    assert "holder:0" not in listed
    holder = second.liabilities.package("holder:1")
    amounts = LiabilityLeaf.from_dict(holder["leaf"]).amounts
    assets = second.bundle.body["liabilities"]["root"]["assets"]
    assert dict(zip(assets, amounts, strict=True))["ETH"] == HOLDER_WEI[1]
    report = verify_bundle(second.bundle, leaf=LeafQuery("holder:1", package=holder))
    assert report.status_of("inclusion of 'holder:1'") is CheckStatus.OK


def test_under_covered_reserve_is_stated_and_reported(
    reserve: Reserve, second: AttestResult
) -> None:
    """Allocating more BTC than the vault holds yields an anchored bundle saying UNDER-COVERED."""
    extra = 10 * sum(VAULT_FUNDING_SATS)
    reserve.post("over-allocate", [Leg.debit(OPENING_BTC, extra), Leg.credit(FUND_BTC, extra)])
    result = reserve.attest()
    line = result.bundle.body["coverage"]["BTC"]
    assert line["covered"] is False
    assert line["statement"].startswith("BTC: UNDER-COVERED:")
    report = verify_bundle(result.bundle, nodes=reserve.verify_nodes, previous=second.bundle)
    reasons = failed(report)
    assert set(reasons) == {"coverage BTC"}, report.render()
    assert "UNDER-COVERED" in reasons["coverage BTC"]
    assert report.status_of("coverage ETH") is CheckStatus.OK
    assert report.status_of("reserve proof (BIP-127)") is CheckStatus.OK


def test_cli_attest_then_cli_verify(reserve: Reserve, second: AttestResult, tmp_path: Path) -> None:
    """`treasury attest` with share files writes an anchored bundle that `treasury verify` passes."""
    out = tmp_path / "cli.json"
    node = reserve.bitcoin_node
    env = {
        "TREASURY_DATABASE_URL": reserve.url,
        "TREASURY_BITCOIN_RPC_URL": f"http://{node.rpc_user}:{node.rpc_password}@127.0.0.1:{node.rpc_port}",
        "TREASURY_RESERVE_RPC_URL": reserve.evm_node.rpc_url,
        "TREASURY_SERVICES_RPC_URL": reserve.services_node.rpc_url,
    }
    signers = INSTITUTIONS[1:]
    shares = [
        f"--share={name}={path}" for name in signers for path in reserve.share_files[name][:2]
    ]
    args = ["attest", "--out", str(out), "--treasury-key", str(reserve.treasury_key_file),
            "--auditor-key", str(reserve.auditor_key_file), "--mine", *shares]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env, input=PASSPHRASES["National Bank"] + "\n")
    assert result.exit_code == 0, result.output
    assert "reserve proof (BIP-127) signed and checked" in result.output
    assert "anchored: bitcoin" in result.output
    verify = ["verify", str(out), "--bitcoin-rpc", env["TREASURY_BITCOIN_RPC_URL"],
              "--evm-rpc", env["TREASURY_RESERVE_RPC_URL"], "--services-rpc", env["TREASURY_SERVICES_RPC_URL"]]  # fmt: skip
    checked = CliRunner().invoke(app, verify)
    failures = [line for line in checked.output.splitlines() if line.strip().startswith("failed")]
    assert all("coverage" in line for line in failures), checked.output
    assert checked.exit_code == (1 if failures else 0)
    assert " 0 skipped" in checked.output
    assert "ok  reserve proof (BIP-127)" in checked.output
    assert "ok  services anchor" in checked.output


def test_cli_attest_refuses_an_unsafe_key_file(reserve: Reserve, tmp_path: Path) -> None:
    """A treasury key file readable by others is refused with one error line and nothing anchored."""
    loose = tmp_path / "loose.key"
    loose.write_text(reserve.treasury_key_file.read_text())
    os.chmod(loose, 0o644)
    with reserve.sessions() as session:
        before = session.scalar(select(text("count(*)")).select_from(AttestationRecord))
    result = CliRunner().invoke(
        app, ["attest", "--treasury-key", str(loose), "--auditor-key", str(reserve.auditor_key_file)],
        env={"TREASURY_DATABASE_URL": reserve.url},
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.output.startswith("error: The treasury key file")
    assert "chmod 600" in result.output
    assert "Traceback" not in result.output
    with reserve.sessions() as session:
        assert session.scalar(select(text("count(*)")).select_from(AttestationRecord)) == before


def test_no_key_material_in_logs_database_or_reprs(reserve: Reserve, second: AttestResult) -> None:
    """Neither attestation key, nor any share word, nor a passphrase reaches logs, rows or reprs."""
    secrets = [
        reserve.treasury.private_key.hex(),
        reserve.auditor.private_key.hex(),
        *PASSPHRASES.values(),
    ]
    for institution in INSTITUTIONS:
        secrets += [share.reveal() for share in reserve.shares(institution)]
    with reserve.engine.connect() as conn:
        tables = [
            row[0]
            for row in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
        ]
        dump = "\n".join(
            repr(row)
            for table in tables
            for row in conn.execute(text(f'SELECT * FROM "{table}"'))  # noqa: S608 (names from the schema)
        )
    logs = "\n".join(reserve.logs.lines)
    assert logs  # the runs did log
    reprs = " ".join(
        repr(x)
        for x in (
            *reserve.institutions(),
            reserve.treasury,
            reserve.auditor,
            reserve.endpoint,
            second,
        )
    )
    for secret in secrets:
        for where, content in (("database", dump), ("logs", logs), ("reprs", reprs)):
            assert secret not in content, f"a secret reached the {where}"
    assert reserve.bitcoin_node.rpc_password not in reprs


def test_scheduled_job_attests_from_share_files(
    reserve: Reserve, second: AttestResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The APScheduler job, found by its reference string, writes the next chained, anchored bundle."""
    from apscheduler.util import ref_to_obj

    monkeypatch.setenv("TREASURY_RESERVE_RPC_URL", reserve.evm_node.rpc_url)
    monkeypatch.setenv("TREASURY_SERVICES_RPC_URL", reserve.services_node.rpc_url)
    passphrase = tmp_path / "bank.pass"
    passphrase.write_text(PASSPHRASES["National Bank"])
    job = ref_to_obj("treasury.attest:run_daily_attestation")
    path = job(
        reserve.url,
        reserve.verify_nodes.bitcoin,
        str(tmp_path),
        str(reserve.treasury_key_file),
        str(reserve.auditor_key_file),
        {name: [str(p) for p in reserve.share_files[name][1:]] for name in INSTITUTIONS[:2]},
        {"National Bank": str(passphrase)},
        mine=True,
    )
    bundle = Bundle.from_bytes(Path(path).read_bytes())
    with reserve.sessions() as session:
        latest = session.scalars(
            select(AttestationRecord).order_by(AttestationRecord.sequence.desc())
        ).first()
    assert latest is not None
    assert latest.digest == bundle.digest.hex()
    assert Path(path).name == f"attestation-{bundle.sequence}.json"
    report = verify_bundle(bundle, nodes=reserve.verify_nodes)
    assert {c.name for c in report.failed()} <= {"coverage BTC"}, report.render()
    assert report.status_of("services anchor") is CheckStatus.OK
