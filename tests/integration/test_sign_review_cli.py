"""Share holders see what they sign: `treasury btc spend sign` and `treasury safe sign` print the
transaction decoded from the PSBT or SafeTx itself, in coin units, and ask before any share is
read; declining signs and writes nothing. The ceremony's own share files (``#`` header lines) are
accepted everywhere, and all three shares of a 2-of-3 split sign instead of failing."""

from __future__ import annotations

import logging
import random
import re
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address
from sqlalchemy import text
from typer.testing import CliRunner

from custody.ceremony import CeremonyPlan, ShareFiles, read_share_file, run_ceremony
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import EthChain
from treasury import migrate
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV, make_engine, session_factory
from treasury.settings import BITCOIN_RPC_URL_ENV, RESERVE_RPC_URL_ENV

log = logging.getLogger("tests.sign_review")

INSTITUTIONS = ("Ministry of Finance", "National Bank", "Accounts Chamber")
PAY_SATS = 25_000_000
OTHER_SATS = 30_000_000
PAY_WEI = 250_000_000_000_000_000
BREAK_GLASS = ["--break-glass", "--reason", "custody-level spend with no proposal (review test)"]
"""These spends are custody's own, with no proposal and so no officers' statements: custody signs
them only on the holders' documented break-glass choice, which is what the review shows here."""


class Cli:
    """Runs `treasury ...` in-process against one database and the session's nodes."""

    def __init__(self, env: dict[str, str]) -> None:
        self.runner = CliRunner()
        self.env = env

    def __call__(self, *args: str, stdin: str | None = None, code: int = 0) -> str:
        result = self.runner.invoke(app, list(args), input=stdin, env=self.env)
        log.info("$ treasury %s\n%s", " ".join(args), result.output)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output


def _ceremonies(url: str, folder: Path) -> dict[str, list[Path]]:
    """Each institution's 2-of-3 ceremony, its shares delivered as the ceremony writes files."""
    files: dict[str, list[Path]] = {}
    engine = make_engine(url)
    try:
        for n, institution in enumerate(INSTITUTIONS):
            rng = random.Random(f"sign review {n}")  # noqa: S311 (reproducible test data)
            delivery = ShareFiles(folder / str(n))
            with session_factory(engine).begin() as session:
                run_ceremony(
                    session,
                    CeremonyPlan(institution, (f"{n} Ann", f"{n} Ben", f"{n} Cy"), 2),
                    delivery,
                    random_bytes=rng.randbytes,
                    rng=rng,
                )
            files[institution] = list(delivery.written)
            assert all(path.read_text().startswith("#") for path in files[institution])
    finally:
        engine.dispose()
    return files


def _share_options(flag: str, paths: list[Path]) -> list[str]:
    return [arg for path in paths for arg in (flag, str(path))]


def _spend(cli: Cli, vault: str, address: str, sats: int) -> str:
    built = cli(
        "btc", "spend", "build", vault, "--pay", f"{address}:{sats}", "--fee-rate", "2",
        "--max-fee-sats", "20000",
    )  # fmt: skip
    found = re.search(r"^spend (\d+) \(built\)", built, re.M)
    assert found is not None, built
    return found.group(1)


def _run(url: str, sql: str, **params: object) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(sql), params)
    finally:
        engine.dispose()


def test_btc_spend_sign_shows_the_decoded_psbt_and_asks_before_any_share(
    db_url: str, bitcoin_node: BitcoinNode, tmp_path: Path
) -> None:
    """The PSBT's payment, change, fee and txid come first, in BTC and sat; declining signs
    nothing; a rewritten PSBT is refused or shown as it really pays, before any share is read."""
    migrate.upgrade(db_url)
    files = _ceremonies(db_url, tmp_path / "shares")
    rpc_url = (
        f"http://{bitcoin_node.rpc_user}:{bitcoin_node.rpc_password}@127.0.0.1:"
        f"{bitcoin_node.rpc_port}"
    )
    cli = Cli({DATABASE_URL_ENV: db_url, BITCOIN_RPC_URL_ENV: rpc_url})
    vault = f"review-{uuid.uuid4().hex[:10]}"
    cosigners = [arg for name in INSTITUTIONS for arg in ("--cosigner", name)]
    cli("btc", "vault", "create", vault, "--threshold", "2", *cosigners)
    miner = bitcoin_node.rpc.wallet("miner")
    for _ in range(3):  # one coin per spend: each built spend locks the coins it uses
        miner.call("sendtoaddress", cli("btc", "vault", "address", vault).split()[0], Decimal(1))
    bitcoin_node.mine(1)
    payee = str(miner.call("getnewaddress", "", "bech32"))
    other = str(miner.call("getnewaddress", "", "bech32"))
    sid = _spend(cli, vault, payee, PAY_SATS)
    mof = files["Ministry of Finance"]

    log.info("declining: the decoded spend is shown, nothing is signed")
    declined = cli(
        "btc", "spend", "sign", sid, *BREAK_GLASS, "--institution", "Ministry of Finance",
        *_share_options("--share-file", mof[:2]), stdin="n\n", code=1,
    )  # fmt: skip
    assert f"pay 0.25 BTC (25000000 sat) to {payee}" in declined
    assert "change back to the vault: 0.7" in declined
    assert re.search(r"fee 0\.0000\d+ BTC \(\d+ sat\)", declined)
    txid = re.findall(r"transaction hash \(unsigned txid\): ([0-9a-f]{64})", declined)[0]
    assert "error: Not signed" in declined
    shown = cli("btc", "spend", "show", sid)
    assert "signed by: (nobody yet)" in shown
    assert f"approval bound to unsigned txid {txid}" in shown
    unanswered = cli(
        "btc", "spend", "sign", sid, *BREAK_GLASS, "--institution", "Ministry of Finance",
        *_share_options("--share-file", mof[:2]), code=1,
    )  # fmt: skip
    assert "no answer to the confirmation question (pass --yes" in unanswered
    assert "signed by: (nobody yet)" in cli("btc", "spend", "show", sid)

    log.info("prompted shares: the summary and the question come before the first share prompt")
    words = [read_share_file(path) for path in mof]
    signed = cli(
        "btc", "spend", "sign", sid, *BREAK_GLASS, "--institution", "Ministry of Finance",
        stdin=f"y\n{words[0]}\n{words[2]}\n",
    )  # fmt: skip
    first_prompt = signed.index("Share 1 of 2")
    assert signed.index(f"pay 0.25 BTC (25000000 sat) to {payee}") < first_prompt
    assert signed.index("Sign this transaction as Ministry of Finance?") < first_prompt
    assert words[0] not in signed
    assert "signed by: Ministry of Finance" in signed

    log.info("--yes, all three share files of the National Bank's 2-of-3 split: signed")
    signed = cli(
        "btc", "spend", "sign", sid, *BREAK_GLASS, "--institution", "National Bank",
        *_share_options("--share-file", files["National Bank"]), "--yes",
    )  # fmt: skip
    assert "signed by: Ministry of Finance, National Bank" in signed

    log.info("a database writer swaps spend A's PSBT for spend B's, keeping A's payments")
    a_id, b_id = _spend(cli, vault, payee, PAY_SATS), _spend(cli, vault, other, OTHER_SATS)
    _run(
        db_url,
        "UPDATE custody_btc_spends SET unsigned_psbt = "
        "(SELECT s.unsigned_psbt FROM custody_btc_spends s WHERE s.id = :b), unsigned_txid = "
        "(SELECT s.unsigned_txid FROM custody_btc_spends s WHERE s.id = :b) WHERE id = :a",
        a=int(a_id),
        b=int(b_id),
    )
    refused = cli(
        "btc", "spend", "sign", a_id, *BREAK_GLASS, "--institution", "Ministry of Finance",
        stdin=f"y\n{words[0]}\n{words[1]}\n", code=1,
    )  # fmt: skip
    assert f"pays 30000000 sats to {other}" in refused
    assert "neither an approved payment nor the vault's change" in refused
    assert "Share 1" not in refused
    assert "Sign this" not in refused

    log.info("... and rewrites the payments too: the holders see where the PSBT really pays")
    _run(
        db_url,
        "UPDATE custody_btc_spends SET payments = "
        "(SELECT s.payments FROM custody_btc_spends s WHERE s.id = :b) WHERE id = :a",
        a=int(a_id),
        b=int(b_id),
    )
    declined = cli(
        "btc", "spend", "sign", a_id, *BREAK_GLASS, "--institution", "Ministry of Finance",
        *_share_options("--share-file", mof[:2]), stdin="n\n", code=1,
    )  # fmt: skip
    assert f"pay 0.3 BTC (30000000 sat) to {other}" in declined
    assert payee not in declined
    assert "signed by: (nobody yet)" in cli("btc", "spend", "show", a_id)


def test_safe_sign_reads_ceremony_share_files_and_shows_the_decoded_safe_tx_first(
    db_url: str, evm_node: EvmNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`safe sign --shares-file` takes the files the ceremony wrote (``#`` headers and all, and
    all three of a 2-of-3 split); the action in ETH and wei, Safe, nonce and hash are shown before
    any share is asked for; declining stores no signature."""
    migrate.upgrade(db_url)
    files = _ceremonies(db_url, tmp_path / "shares")
    cli = Cli({DATABASE_URL_ENV: db_url, RESERVE_RPC_URL_ENV: evm_node.rpc_url})
    cli("safe", "deploy")
    owners = [arg for name in INSTITUTIONS for arg in ("--owner", name)]
    name = f"review-{uuid.uuid4().hex[:10]}"
    created = cli("safe", "create", name, "--threshold", "2", *owners)
    safe = re.findall(r"Safe (0x[0-9a-fA-F]{40})", created)[0]
    chain = EthChain(evm_node.rpc)
    chain.transact(chain.accounts()[0], safe, b"", action="fund the vault", value=10**18)
    recipient = to_checksum_address("0x" + uuid.uuid4().hex[:20] * 2)
    proposed = cli("safe", "transfer", name, "--to", recipient, "--amount", str(PAY_WEI))
    safe_tx_hash = proposed.split("SafeTx ")[1].split()[0]
    sign = ["safe", "sign", safe_tx_hash, *BREAK_GLASS, "--institution"]

    log.info("declining with the ceremony's share files: shown, nothing stored")
    declined = cli(
        *sign, "Ministry of Finance",
        *_share_options("--shares-file", files["Ministry of Finance"][:2]), stdin="n\n", code=1,
    )  # fmt: skip
    assert f"action: send 0.25 ETH ({PAY_WEI} wei) to {recipient}" in declined
    assert f"from Safe {safe} on chain {chain.chain_id}, nonce 0" in declined
    assert f"SafeTx hash: {safe_tx_hash}" in declined
    assert "signed so far by: nobody yet" in declined
    assert "error: Not signed" in declined
    assert "signed by: none" in cli("safe", "show", name)

    log.info("prompted shares: the decoded action comes before the first share prompt")
    words = [read_share_file(path) for path in files["Ministry of Finance"]]
    signed = cli(*sign, "Ministry of Finance", stdin=f"y\n{words[1]}\n{words[2]}\n\n")
    assert signed.index("action: send 0.25 ETH") < signed.index("Share 1")
    assert signed.index("Sign this as Ministry of Finance?") < signed.index("Share 1")
    assert "signed by Ministry of Finance" in signed

    log.info("--yes with all three of the National Bank's ceremony files (the bug: '#' lines)")
    signed = cli(
        *sign, "National Bank", *_share_options("--shares-file", files["National Bank"]),
        "--yes", stdin="\n",
    )  # fmt: skip
    assert "signed by National Bank" in signed
    signers = re.findall(r"signed by: (.*)", cli("safe", "show", name))[0]
    assert sorted(signers.split(", ")) == ["Ministry of Finance", "National Bank"]
    log.info("break-glass: every owner signs before the Safe executes (the Accounts Chamber too)")
    cli(
        *sign, "Accounts Chamber", *_share_options("--shares-file", files["Accounts Chamber"][:2]),
        "--yes", stdin="\n",
    )  # fmt: skip
    before = chain.balance(recipient)
    cli("safe", "execute", safe_tx_hash)
    assert chain.balance(recipient) == before + PAY_WEI
