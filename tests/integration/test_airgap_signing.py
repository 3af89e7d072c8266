"""A spend signed entirely through files, on both chains and both databases.

The coordinator (`treasury airgap export` / `import`, in this process) never opens a share file
nor recombines a share (``ShareGuard``); the offline signer (`custody-sign`) runs in its own
virtualenv without the treasury package and without network. On regtest, bitcoind's
``analyzepsbt`` tells at each step how far the PSBT is (no signature, one, complete) and its
``combinepsbt`` takes the signed files; on anvil the typed data hashes to the Safe's own
``getTransactionHash`` and the Safe executes the transaction. The offline signer's refusals (a
tampered PSBT, statements that do not authorise the spend, wrong shares) each name their error
and leave no signed file.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from airgap_support import OfflineSigner, make_offline_signer, share_guard
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from test_spend_cli import (
    DECREE,
    INSTITUTIONS,
    PASSPHRASE,
    SPEND_SATS,
    WEI_PER_ETH,
    Cli,
    Officers,
    _allow,
    _approve,
    _ceremony,
    _cli,
    _govern,
    _roster,
    _safe_owner,
    _wait_until,
)
from token_files import token_file

from custody import shamir
from custody.airgap.psbt_files import psbt_from_bytes
from custody.airgap.request import read_request
from custody.airgap.typed_data import safe_tx_from_typed_data
from custody.bitcoin.psbt import unsigned_txid
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import EthChain, SafeVaults
from treasury.db import DATABASE_URL_ENV, make_engine, session_factory

log = logging.getLogger("tests.airgap_signing")


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> OfflineSigner:
    """The offline signer's virtualenv: custody and its libraries, no treasury, no network."""
    signer = make_offline_signer(tmp_path_factory.mktemp("offline-signer"))
    refused = signer.run("-c", "import treasury", check=False)
    assert refused.returncode != 0
    assert "No module named 'treasury'" in refused.stderr
    return signer


def _assert_offline(offline: OfflineSigner, port: int) -> None:
    """The offline signer cannot reach the node the coordinator talks to."""
    probe = offline.run(
        "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)",
        check=False,
    )  # fmt: skip
    assert probe.returncode != 0, "the offline signer reached the network"


def _setup(
    db_url: str, bitcoin_node: BitcoinNode, evm_node: EvmNode, tmp_path: Path
) -> tuple[Cli, dict[str, list[Path]], Path]:
    cli = _cli(bitcoin_node, evm_node, tmp_path)
    cli.env[DATABASE_URL_ENV] = db_url
    cli("db", "upgrade")
    shares = {
        "MOF": _ceremony(cli, tmp_path / "mof", INSTITUTIONS["MOF"]),
        "NBKR": _ceremony(cli, tmp_path / "nbkr", INSTITUTIONS["NBKR"], "--passphrase"),
        "ACH": _ceremony(cli, tmp_path / "ach", INSTITUTIONS["ACH"]),
    }
    passphrase_file = tmp_path / "nbkr-passphrase.txt"
    passphrase_file.write_text(PASSPHRASE + "\n")
    return cli, shares, passphrase_file


def _propose_and_approve(
    cli: Cli, roster: Any, officers: Officers, asset: str, amount: int, destination: str
) -> tuple[str, str]:
    proposed = cli(
        "spend", "propose", "--asset", asset, "--amount", str(amount), "--destination",
        destination, "--purpose", "Reserve rebalancing", "--legal-basis", DECREE,
        *token_file(officers.proposer),
    )  # fmt: skip
    pid = proposed.split(":")[0].split()[1]
    prepared = cli("spend", "prepare", pid, *token_file(officers.proposer))
    tx_hash = prepared.split("hash to approve: ")[1].split()[0]
    for code in ("NBKR", "ACH"):
        _approve(cli, roster, officers, pid, tx_hash, code)
    return pid, tx_hash


def _export(cli: Cli, officers: Officers, pid: str, code: str, folder: Path) -> Path:
    out = cli("airgap", "export", pid, "--out", str(folder), *token_file(officers.approvers[code]))
    return Path(re.findall(r"wrote (\S+\.request\.json)", out)[0])


def _signing_args(
    shares: dict[str, list[Path]], code: str, passphrase_file: Path, out: Path
) -> list[str]:
    files = [arg for path in shares[code][:2] for arg in ("--share-file", str(path))]
    extra = ["--passphrase-file", str(passphrase_file)] if code == "NBKR" else []
    return [*files, *extra, "--yes", "--out-dir", str(out)]


def _analyze(bitcoin_node: BitcoinNode, psbt_b64: str) -> dict[str, Any]:
    analyzed: dict[str, Any] = bitcoin_node.rpc.call("analyzepsbt", psbt_b64)
    return analyzed


def _b64(path: Path) -> str:
    return path.with_name(path.name + ".b64").read_text().strip()


def _check_refusals(
    offline: OfflineSigner,
    request_path: Path,
    shares: dict[str, list[Path]],
    passphrase_file: Path,
    tmp_path: Path,
) -> None:
    """Each refusal names its own error and writes no signed file."""
    body = json.loads(request_path.read_text())
    cases: dict[str, tuple[dict[str, Any], list[str], str]] = {}

    log.info("a PSBT whose payment was raised after export: the request no longer hashes")
    tampered = json.loads(json.dumps(body))
    raw = bytearray(base64.b64decode(tampered["bitcoin"]["psbt"]))
    amount = SPEND_SATS.to_bytes(8, "little")
    at = raw.index(amount)
    raw[at : at + 8] = (SPEND_SATS * 2).to_bytes(8, "little")
    tampered["bitcoin"]["psbt"] = base64.b64encode(bytes(raw)).decode()
    cases["tampered"] = (tampered, [], "was altered after it was exported")

    log.info("the same PSBT with its hash and payment updated too: the statements refuse it")
    rehashed = json.loads(json.dumps(tampered))
    rehashed["tx_hash"] = unsigned_txid(psbt_from_bytes(bytes(raw), "tampered"))
    rehashed["bitcoin"]["payments"][0]["amount_sats"] = str(SPEND_SATS * 2)
    cases["rehashed"] = (rehashed, [], "names amount")

    log.info("statements that do not authorise it: only one institution's approval")
    one = json.loads(json.dumps(body))
    one["evidence"]["statements"] = one["evidence"]["statements"][:1]
    cases["unauthorised"] = (one, [], "Approvals come from 1 institution(s)")

    log.info("wrong shares: ACH's shares for NBKR's key")
    wrong = ["--share-file", str(shares["ACH"][0]), "--share-file", str(shares["ACH"][1])]
    cases["wrong-shares"] = (body, wrong, "fingerprint")

    for name, (request, share_args, expected) in cases.items():
        folder = tmp_path / f"refused-{name}"
        folder.mkdir()
        path = folder / request_path.name
        path.write_text(json.dumps(request))
        args = share_args or _signing_args(shares, "NBKR", passphrase_file, folder)[:4]
        done = offline.sign(
            "sign", str(path), *args, "--passphrase-file", str(passphrase_file), "--yes",
            "--out-dir", str(folder), check=False,
        )  # fmt: skip
        log.info("refusal %s: %s", name, done.stderr.strip())
        assert done.returncode == 1, name
        assert done.stderr.startswith("error: "), done.stderr
        assert done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr
        assert expected in done.stderr, (name, done.stderr)
        assert sorted(p.name for p in folder.iterdir()) == [path.name], name


def test_a_bitcoin_spend_is_signed_through_files_by_an_offline_signer(
    db_url: str,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    offline: OfflineSigner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Export, sign offline (no treasury, no network), import: analyzepsbt shows no signature,
    then one, then a complete PSBT; combinepsbt takes the signed files; the spend is broadcast,
    confirmed and booked; the coordinator never opened or recombined a share."""
    _assert_offline(offline, bitcoin_node.rpc_port)
    cli, shares, passphrase_file = _setup(db_url, bitcoin_node, evm_node, tmp_path)
    vault = f"airgap-{uuid.uuid4().hex[:10]}"
    cosigners = [arg for name in INSTITUTIONS.values() for arg in ("--cosigner", name)]
    cli("btc", "vault", "create", vault, "--threshold", "2", *cosigners)
    miner = bitcoin_node.rpc.wallet("miner")
    miner.call("sendtoaddress", cli("btc", "vault", "address", vault).split()[0], Decimal(1))
    bitcoin_node.mine(1)
    officers = _govern(cli, tmp_path)
    destination = str(miner.call("getnewaddress", "", "bech32"))
    roster = _roster(cli, tmp_path, shares, {"BTC": destination}, {"NBKR": PASSPHRASE})
    active_from = _allow(cli, officers, "BTC", destination)
    assert "succeeded" in cli("reconcile", "now")
    _wait_until(active_from)
    pid, tx_hash = _propose_and_approve(cli, roster, officers, "BTC", SPEND_SATS, destination)
    all_shares = [path for files in shares.values() for path in files]
    guard = share_guard()
    exchange = tmp_path / "usb-stick"

    log.info("the guard itself: it sees a share file opened and a recombination attempted")
    with guard.watching(monkeypatch, all_shares):
        all_shares[0].read_text()
        with pytest.raises(AssertionError, match="must never handle a share"):
            shamir.combine_shares([], "")
    assert guard.opened == [os.path.realpath(all_shares[0])]
    assert guard.calls == ["custody.shamir.combine_shares"]
    guard = share_guard()

    log.info("NBKR exports: a PSBT no one has signed; bitcoind reads it")
    with guard.watching(monkeypatch, all_shares):
        nbkr_request = _export(cli, officers, pid, "NBKR", exchange / "nbkr")
    psbt_file = nbkr_request.with_name(nbkr_request.name.replace(".request.json", ".psbt"))
    assert base64.b64encode(psbt_file.read_bytes()).decode() == _b64(psbt_file)
    analyzed = _analyze(bitcoin_node, _b64(psbt_file))
    assert analyzed["next"] == "signer"
    assert all(len(i["missing"]["signatures"]) == 3 for i in analyzed["inputs"])
    assert bitcoin_node.rpc.call("decodepsbt", _b64(psbt_file))["tx"]["txid"] == tx_hash

    log.info("offline, NBKR's holders review in coin units and sign")
    shown = offline.sign("show", str(nbkr_request)).stdout
    assert f"pay 0.10000000 BTC ({SPEND_SATS} sat) to {destination}" in shown
    assert "approved by NBKR approver (NBKR), ACH approver (ACH)" in shown
    _check_refusals(offline, nbkr_request, shares, passphrase_file, tmp_path)
    signed = offline.sign(
        "sign",
        str(nbkr_request),
        *_signing_args(shares, "NBKR", passphrase_file, exchange / "nbkr"),
    ).stdout
    nbkr_signed = Path(re.findall(r"wrote (\S+\.signed\.psbt)\n", signed)[0])
    analyzed = _analyze(bitcoin_node, _b64(nbkr_signed))
    assert analyzed["next"] == "signer"
    assert all(i["next"] == "signer" for i in analyzed["inputs"])

    log.info("the coordinator refuses NBKR's file imported as ACH's, and a forged signature")
    with guard.watching(monkeypatch, all_shares):
        refused = cli(
            "airgap", "import", str(nbkr_signed), *token_file(officers.approvers["ACH"]), code=1
        )
        assert "carries no valid signature of Accounts Chamber" in refused
        forged = psbt_from_bytes(nbkr_signed.read_bytes(), "signed")
        for inp in forged.inputs:
            for pub, sig in inp.partial_sigs.items():
                inp.partial_sigs[pub] = sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]
        forged_path = tmp_path / "forged.psbt"
        forged_path.write_bytes(forged.serialize())
        refused = cli(
            "airgap", "import", str(forged_path), *token_file(officers.approvers["NBKR"]), code=1
        )
        assert "carries no valid signature of National Bank" in refused
        status = cli("spend", "status", pid, *token_file(officers.proposer))
        assert "signed by" not in status

    log.info("NBKR imports; ACH exports a PSBT that carries NBKR's signature")
    with guard.watching(monkeypatch, all_shares):
        imported = cli(
            "airgap", "import", str(nbkr_signed), *token_file(officers.approvers["NBKR"])
        )
        assert f"proposal {pid}: approved; signed by NBKR" in imported
        ach_request = _export(cli, officers, pid, "ACH", exchange / "ach")
    assert read_request(ach_request).tx_hash == tx_hash
    ach_psbt = ach_request.with_name(ach_request.name.replace(".request.json", ".psbt"))
    assert _analyze(bitcoin_node, _b64(ach_psbt))["next"] == "signer"

    log.info("offline, ACH signs: the PSBT is complete; combinepsbt merges the two files")
    signed = offline.sign(
        "sign", str(ach_request), *_signing_args(shares, "ACH", passphrase_file, exchange / "ach")
    ).stdout
    ach_signed = Path(re.findall(r"wrote (\S+\.signed\.psbt)\n", signed)[0])
    assert _analyze(bitcoin_node, _b64(ach_signed))["next"] == "finalizer"
    combined = bitcoin_node.rpc.call("combinepsbt", [_b64(nbkr_signed), _b64(ach_signed)])
    assert bitcoin_node.rpc.call("finalizepsbt", combined)["complete"] is True

    log.info("ACH imports: the quorum has signed, the spend is broadcast, confirmed and booked")
    with guard.watching(monkeypatch, all_shares):
        imported = cli("airgap", "import", str(ach_signed), *token_file(officers.approvers["ACH"]))
        assert f"proposal {pid}: broadcast" in imported
        assert f"txid: {tx_hash}" in imported
        bitcoin_node.mine(1)
        refreshed = cli("spend", "refresh", pid, *token_file(officers.proposer))
    assert refreshed.startswith(f"proposal {pid}: confirmed")
    assert miner.call("gettransaction", tx_hash)["confirmations"] >= 1
    assert guard.opened == []
    assert guard.calls == []


def test_a_safe_spend_is_signed_through_typed_data_files_and_executes(
    db_url: str,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    offline: OfflineSigner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exported typed data hashes (by eth-account's EIP-712 and by the Safe contract) to the
    approved SafeTx hash; two institutions sign it offline, their signatures are imported (the
    coordinator never handling a share) and the Safe executes the payment on chain."""
    _assert_offline(offline, int(evm_node.rpc_url.rsplit(":", 1)[1]))
    cli, shares, passphrase_file = _setup(db_url, bitcoin_node, evm_node, tmp_path)
    cli("safe", "deploy")
    owners = [arg for name in INSTITUTIONS.values() for arg in ("--owner", _safe_owner(cli, name))]
    name = f"safe-{uuid.uuid4().hex[:10]}"
    created = cli("safe", "create", name, "--threshold", "2", *owners)
    safe = re.findall(r"Safe (0x[0-9a-fA-F]{40})", created)[0]
    chain = EthChain(evm_node.rpc)
    relayer, payee = chain.accounts()[0], chain.accounts()[8]
    chain.transact(relayer, safe, b"", action="fund the Safe", value=2 * WEI_PER_ETH)
    officers = _govern(cli, tmp_path)
    roster = _roster(cli, tmp_path, shares, {"ETH": payee}, {"NBKR": PASSPHRASE})
    active_from = _allow(cli, officers, "ETH", payee)
    assert "succeeded" in cli("reconcile", "now")
    _wait_until(active_from)
    amount = WEI_PER_ETH // 4
    pid, safe_tx_hash = _propose_and_approve(cli, roster, officers, "ETH", amount, payee)
    all_shares = [path for files in shares.values() for path in files]
    guard = share_guard()
    exchange = tmp_path / "usb-stick"

    log.info("NBKR exports the SafeTx as EIP-712 typed data")
    with guard.watching(monkeypatch, all_shares):
        nbkr_request = _export(cli, officers, pid, "NBKR", exchange / "nbkr")
    typed_file = nbkr_request.with_name(
        nbkr_request.name.replace(".request.json", ".typed-data.json")
    )
    typed = json.loads(typed_file.read_text())
    signable = encode_typed_data(full_message=typed)
    assert "0x" + keccak(b"\x19" + signable.version + signable.header + signable.body).hex() == (
        safe_tx_hash
    )
    engine = make_engine(db_url)
    try:
        vaults = SafeVaults(chain, session_factory(engine))
        assert "0x" + vaults.contract_hash(safe_tx_from_typed_data(typed)).hex() == safe_tx_hash
    finally:
        engine.dispose()

    log.info("offline, NBKR and ACH sign; each signature file is imported")
    shown = offline.sign("show", str(nbkr_request)).stdout
    assert f"send 0.25 ETH ({amount} wei) to {payee}" in shown
    for code, request in (("NBKR", nbkr_request), ("ACH", None)):
        if request is None:
            with guard.watching(monkeypatch, all_shares):
                request = _export(cli, officers, pid, code, exchange / code.lower())
            assert len(json.loads(request.read_text())["safe"]["signatures"]) == 1
        out = offline.sign(
            "sign", str(request), *_signing_args(shares, code, passphrase_file, request.parent)
        ).stdout
        signature_file = re.findall(r"wrote (\S+\.signature\.json)", out)[0]
        before = chain.balance(payee)
        with guard.watching(monkeypatch, all_shares):
            imported = cli(
                "airgap", "import", signature_file, *token_file(officers.approvers[code])
            )
    assert f"proposal {pid}: broadcast" in imported
    assert chain.balance(payee) - before == amount
    assert chain.balance(safe) == 2 * WEI_PER_ETH - amount
    with guard.watching(monkeypatch, all_shares):
        refreshed = cli("spend", "refresh", pid, *token_file(officers.proposer))
    assert refreshed.startswith(f"proposal {pid}: confirmed")
    assert guard.opened == []
    assert guard.calls == []
