"""`treasury spend` end to end on regtest: a real spend prepared, approved, signed from share files,
broadcast, confirmed and booked through the CLI, with the configuration errors officers meet."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from spend_roster_support import FoundedRoster, found_spend_roster
from token_files import token_file
from typer.testing import CliRunner

from custody.devnet import BitcoinNode, EvmNode
from custody.devnet.binaries import NODES_DIR_ENV
from custody.ethereum import EthChain
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV, make_engine, session_factory
from treasury.ledger import format_amount
from treasury.officers import get_officer
from treasury.policy import approve_destination, current_policy, request_destination
from treasury.settings import (
    BITCOIN_RPC_URL_ENV,
    BTC_VAULT_ENV,
    RESERVE_RPC_URL_ENV,
    SAFE_VAULT_ENV,
)

log = logging.getLogger("tests.spend_cli")

SATS_PER_BTC = 100_000_000
WEI_PER_ETH = 10**18
SPEND_SATS = 10_000_000
ALLOWLIST_DELAY_S = 1
DECREE = "DECREE-2026-31"
INSTITUTIONS = {
    "MOF": "Ministry of Finance",
    "NBKR": "National Bank",
    "ACH": "Accounts Chamber",
}
PASSPHRASE = "bank secret"
POLICY: dict[str, Any] = {
    "quorum": {"institutions": ["MOF", "NBKR", "ACH", "PARL"], "required": 2},
    "assets": {
        "BTC": {
            "per_tx_limit": SATS_PER_BTC,
            "daily_limit": 2 * SATS_PER_BTC,
            "veto_threshold": SATS_PER_BTC,
        },
        "ETH": {
            "per_tx_limit": WEI_PER_ETH,
            "daily_limit": 2 * WEI_PER_ETH,
            "veto_threshold": WEI_PER_ETH,
        },
    },
    "veto_window_seconds": 3600,
    "allowlist": {"required": 2, "delay_seconds": ALLOWLIST_DELAY_S},
    "reconciliation_max_age_seconds": 600,
    "proposal_ttl_seconds": 24 * 3600,
}


class Cli:
    """Runs `treasury ...` in-process with one database and the session's nodes."""

    def __init__(self, env: dict[str, str | None]) -> None:
        self.runner = CliRunner()
        self.env = env

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        code: int = 0,
        env: dict[str, str | None] | None = None,
    ) -> str:
        result = self.runner.invoke(app, list(args), input=stdin, env={**self.env, **(env or {})})
        log.info("$ treasury %s\n%s", " ".join(args), result.output)
        assert result.exit_code == code, result.output
        return result.output if code == 0 else result.stderr


def _single_error(text: str) -> str:
    """The one `error:` line a failing command prints (and nothing else on stderr)."""
    assert text.startswith("error: "), text
    assert text.count("\n") == 1, text
    assert "Traceback" not in text
    return text


def _ceremony(cli: Cli, folder: Path, name: str, *extra: str) -> list[Path]:
    """Run ``name``'s ceremony into ``folder``; returns the holders' share files."""
    holders = [f"{name} holder {n}" for n in (1, 2, 3)]
    args = ["ceremony", "run", "--institution", name, "--threshold", "2", "--out-dir", str(folder)]
    for holder in holders:
        args += ["--holder", holder]
    stdin = f"{PASSPHRASE}\n{PASSPHRASE}\n" if "--passphrase" in extra else None
    cli(*args, *extra, stdin=stdin)
    return sorted(folder.glob("*.txt"))


def _safe_owner(cli: Cli, name: str) -> str:
    """``INSTITUTION=FINGERPRINT:0xADDRESS`` from the ceremony transcript, for `safe create`."""
    shown = cli("ceremony", "show", "--institution", name)
    fingerprint = re.findall(r"fingerprint:\s+(\S+)", shown)[0]
    address = re.findall(r"eth address:\s+(\S+)", shown)[0]
    return f"{name}={fingerprint}:{address}"


def _token(cli: Cli, admin: str, name: str, institution: str, role: str) -> str:
    out = cli(
        "officers", "add", name, "--institution", institution, "--role", role, *token_file(admin)
    )
    officer_id = out.split()[1]
    return cli("officers", "issue-token", officer_id, *token_file(admin)).strip()


def _allowlist(
    database_url: str, asset: str, address: str, requester: int, approvers: list[int]
) -> datetime:
    """Request ``address`` and approve it by two institutions; returns when it becomes active."""
    engine = make_engine(database_url)
    try:
        with session_factory(engine).begin() as session:
            now = datetime.now(UTC)
            entry = request_destination(
                session, get_officer(session, requester), asset, address, "payee", now=now
            )
            for officer_id in approvers:
                entry = approve_destination(
                    session,
                    get_officer(session, officer_id),
                    entry.id,
                    current_policy(session),
                    now=now,
                )
        assert entry.active_from is not None
        return entry.active_from
    finally:
        engine.dispose()


def _officer_id(cli: Cli, admin: str, name: str) -> int:
    for line in cli("officers", "list", *token_file(admin)).splitlines():
        fields = line.split("\t")
        if fields[2] == name:
            return int(fields[0])
    raise AssertionError(f"no officer {name}")


@dataclass(frozen=True)
class Officers:
    """API tokens of the officers the tests act as."""

    admin: str
    proposer: str
    approvers: dict[str, str]


def _cli(bitcoin_node: BitcoinNode, evm_node: EvmNode, tmp_path: Path) -> Cli:
    """A CLI on a fresh migrated database, pointed at the session's nodes."""
    no_devnet = tmp_path / "no-devnet"
    no_devnet.mkdir()
    cli = Cli(
        {
            DATABASE_URL_ENV: f"sqlite:///{tmp_path / 'treasury.sqlite3'}",
            BITCOIN_RPC_URL_ENV: (
                f"http://{bitcoin_node.rpc_user}:{bitcoin_node.rpc_password}@127.0.0.1:"
                f"{bitcoin_node.rpc_port}"
            ),
            RESERVE_RPC_URL_ENV: evm_node.rpc_url,
            NODES_DIR_ENV: str(no_devnet),  # a developer's running `treasury devnet up` is not used
            BTC_VAULT_ENV: None,
            SAFE_VAULT_ENV: None,
        }
    )
    cli("db", "upgrade")
    return cli


def _govern(
    cli: Cli,
    tmp_path: Path,
    policy: Mapping[str, Any] = POLICY,
    ceilings: Sequence[str] = (f"BTC={SATS_PER_BTC}", f"ETH={WEI_PER_ETH}"),
) -> Officers:
    """Institutions (PARL registered but without a ceremony), officers, ``policy``, and the
    decree with ``ceilings`` (``ASSET=BASE_UNITS`` each)."""
    admin = cli(
        "officers", "bootstrap", "--institution", "MOF", "--institution-name",
        INSTITUTIONS["MOF"], "--admin-name", "Admin",
    ).strip().rsplit(" ", 1)[1]  # fmt: skip
    admins = {"MOF": admin}
    for code, name in [*list(INSTITUTIONS.items())[1:], ("PARL", "Parliament")]:
        cli("officers", "add-institution", code, name, *token_file(admin))
        # each institution's first admin is founded; it then staffs its own institution
        found = cli("officers", "found", code, "--admin-name", f"{code} admin")
        admins[code] = found.strip().rsplit(" ", 1)[1]
    proposer = _token(cli, admin, "Pat Proposer", "MOF", "proposer")
    approvers = {
        code: _token(cli, admins[code], f"{code} approver", code, "approver")
        for code in ("NBKR", "ACH", "PARL")
    }
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(policy))
    cli("policy", "set", str(policy_file), *token_file(admin))
    ceiling_options = [option for ceiling in ceilings for option in ("--ceiling", ceiling)]
    cli(
        "policy", "add-legal-basis", DECREE, "--title", "Rebalancing", "--expires",
        "2099-01-01T00:00:00+00:00", *ceiling_options, *token_file(admin),
    )  # fmt: skip
    return Officers(admin, proposer, approvers)


def _roster(
    cli: Cli,
    tmp_path: Path,
    shares: dict[str, list[Path]],
    destinations: dict[str, str],
    passphrases: dict[str, str] | None = None,
) -> FoundedRoster:
    """The signed roster over the ceremonies (MOF, NBKR, ACH; PARL has none) and their admins,
    with the NBKR and ACH approvers' keys, the payees and the decree: nothing is signed without
    the approvers' statements."""
    return found_spend_roster(
        str(cli.env[DATABASE_URL_ENV]),
        tmp_path,
        admins={"MOF": "Admin", "NBKR": "NBKR admin", "ACH": "ACH admin"},
        approvers=[f"{code} approver" for code in ("NBKR", "ACH")],
        shares=shares,
        destinations=destinations,
        decree=DECREE,
        passphrases=passphrases,
    )


def _approve(
    cli: Cli, roster: FoundedRoster, officers: Officers, pid: str, tx_hash: str, code: str
) -> str:
    """``code``'s approver approves ``tx_hash``, signing the statement with its key file."""
    return cli(
        "spend", "approve", pid, "--tx-hash", tx_hash,
        *roster.approve_options(f"{code} approver"), *token_file(officers.approvers[code]),
    )  # fmt: skip


def _allow(cli: Cli, officers: Officers, asset: str, address: str) -> datetime:
    """Allowlist ``address`` (NBKR and ACH approve); returns when it becomes active."""
    return _allowlist(
        str(cli.env[DATABASE_URL_ENV]),
        asset,
        address,
        _officer_id(cli, officers.admin, "Pat Proposer"),
        [_officer_id(cli, officers.admin, f"{code} approver") for code in ("NBKR", "ACH")],
    )


def _wait_until(moment: datetime) -> None:
    """Let real time reach ``moment`` (the policy's allowlist delay is one second)."""
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def test_a_bitcoin_spend_goes_from_proposal_to_booked_confirmation_through_the_cli(
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Officers prepare, approve, sign (share files), broadcast and confirm a real spend, the ledger
    posts it into the reconciler's accounts, and misconfiguration gives one clear error line."""
    cli = _cli(bitcoin_node, evm_node, tmp_path)

    log.info("ceremonies for three institutions; the National Bank's shares need a passphrase")
    shares = {
        "MOF": _ceremony(cli, tmp_path / "mof", INSTITUTIONS["MOF"]),
        "NBKR": _ceremony(cli, tmp_path / "nbkr", INSTITUTIONS["NBKR"], "--passphrase"),
        "ACH": _ceremony(cli, tmp_path / "ach", INSTITUTIONS["ACH"]),
    }
    vault = f"spend-{uuid.uuid4().hex[:10]}"
    cosigners = [arg for name in INSTITUTIONS.values() for arg in ("--cosigner", name)]
    cli("btc", "vault", "create", vault, "--threshold", "2", *cosigners)
    deposit = cli("btc", "vault", "address", vault).split()[0]
    miner = bitcoin_node.rpc.wallet("miner")
    miner.call("sendtoaddress", deposit, Decimal(1))
    bitcoin_node.mine(1)

    log.info("officers, policy, decree, allowlist")
    officers = _govern(cli, tmp_path)
    proposer, approvers = officers.proposer, officers.approvers
    destination = str(miner.call("getnewaddress", "", "bech32"))
    roster = _roster(cli, tmp_path, shares, {"BTC": destination}, {"NBKR": PASSPHRASE})
    active_from = _allow(cli, officers, "BTC", destination)

    log.info("a second vault (3-of-3, so other addresses): spends must now name theirs")
    other = f"other-{uuid.uuid4().hex[:10]}"
    cli("btc", "vault", "create", other, "--threshold", "3", *cosigners)
    assert "succeeded" in cli("reconcile", "now")
    _wait_until(active_from)

    log.info("proposing needs no node; preparing says exactly what to configure")
    no_node: dict[str, str | None] = {BITCOIN_RPC_URL_ENV: None, RESERVE_RPC_URL_ENV: None}
    proposed = cli(
        "spend", "propose", "--asset", "BTC", "--amount", str(SPEND_SATS), "--destination",
        destination, "--purpose", "Reserve rebalancing", "--legal-basis", DECREE,
        *token_file(proposer), env=no_node,
    )  # fmt: skip
    proposal = re.match(r"proposal (\d+): proposed", proposed)
    assert proposal is not None, proposed
    pid = proposal.group(1)
    err = _single_error(cli("spend", "prepare", pid, *token_file(proposer), code=1))
    assert "2 Bitcoin vaults are in the database" in err
    assert f"set {BTC_VAULT_ENV} to the one spends are paid from" in err
    cli.env[BTC_VAULT_ENV] = vault
    err = _single_error(cli("spend", "prepare", pid, *token_file(proposer), code=1, env=no_node))
    assert err.startswith(
        f"error: Spends of BTC need bitcoind. No node configured: set {BITCOIN_RPC_URL_ENV}"
    )

    log.info("prepare: the decoded transaction and the hash to approve")
    prepared = cli("spend", "prepare", pid, *token_file(proposer))
    assert f"pay {SPEND_SATS} sats to {destination}" in prepared
    assert f"vault: {vault}" in prepared
    tx_hash = prepared.split("hash to approve: ")[1].split()[0]
    fee = int(re.findall(r"fee_sats: (\d+)", prepared)[0])
    assert 0 < fee <= 50_000
    for code in ("NBKR", "ACH"):
        _approve(cli, roster, officers, pid, tx_hash, code)
    status = cli("spend", "status", pid, *token_file(proposer))
    assert status.startswith(f"proposal {pid}: approved")
    assert f"unsigned_txid: {tx_hash}" in status

    log.info("an institution without a ceremony cannot sign; NBKR and ACH sign from share files")
    err = _single_error(
        cli("spend", "sign", pid, "--share-file", str(shares["MOF"][0]), *token_file(approvers["PARL"]), code=1)
    )  # fmt: skip
    assert "Institution PARL is registered as 'Parliament', but no key ceremony" in err
    nbkr_files = [arg for path in shares["NBKR"][:2] for arg in ("--share-file", str(path))]
    signed = cli(
        "spend", "sign", pid, *nbkr_files, "--yes", *token_file(approvers["NBKR"]),
        stdin=f"{PASSPHRASE}\n",
    )  # fmt: skip
    assert "signed by NBKR" in signed
    assert PASSPHRASE not in signed
    ach_files = [arg for path in shares["ACH"][1:] for arg in ("--share-file", str(path))]
    signed = cli("spend", "sign", pid, *ach_files, "--yes", *token_file(approvers["ACH"]))
    assert signed.startswith(f"proposal {pid}: signed")

    log.info("broadcast, one block, refresh: confirmed and posted")
    sent = cli("spend", "broadcast", pid, *token_file(proposer))
    assert sent.startswith(f"proposal {pid}: broadcast")
    txid = sent.split("txid ")[1].split()[0]
    assert txid == tx_hash  # segwit: the approved unsigned txid is the final txid
    assert cli("spend", "refresh", pid, *token_file(proposer)).startswith(
        f"proposal {pid}: broadcast"
    )
    bitcoin_node.mine(1)
    assert cli("spend", "refresh", pid, *token_file(proposer)).startswith(
        f"proposal {pid}: confirmed"
    )
    assert miner.call("gettransaction", txid)["confirmations"] == 1

    balances = cli("ledger", "balances", "--asset", "BTC")
    posted = dict(re.findall(r"^(\S+)\s+posted\s+(\S+) BTC", balances, re.MULTILINE))
    assert posted["reserve:approved-outflows:BTC"] == format_amount(SPEND_SATS, 8)
    assert posted["fees:BTC"] == format_amount(fee, 8)
    left = SATS_PER_BTC - SPEND_SATS - fee
    assert posted[f"vault:btc:{vault}:BTC"] == format_amount(left, 8)
    assert "trial balance BTC" in balances
    assert "NOT BALANCED" not in balances
    cli("reconcile", "now")
    assert "MISMATCH" not in cli("reconcile", "status")

    log.info(
        "the API serves the same wiring: prepare builds a transaction, ETH says what is missing"
    )
    second = cli(
        "spend", "propose", "--asset", "BTC", "--amount", str(SPEND_SATS), "--destination",
        destination, "--purpose", "Second payment", "--legal-basis", DECREE, *token_file(proposer),
    ).split(":")[0].split()[1]  # fmt: skip
    served: dict[str, FastAPI] = {}
    monkeypatch.setattr(uvicorn, "run", lambda api, **_: served.setdefault("app", api))
    runner = CliRunner()
    result = runner.invoke(app, ["api", "serve"], env=cli.env)
    assert result.exit_code == 0, result.output
    assert (
        "note: ETH spends cannot be prepared: No Safe vault is in the database yet" in result.stderr
    )
    client = TestClient(served["app"])
    answer = client.post(
        f"/proposals/{second}/prepare", headers={"Authorization": f"Bearer {proposer}"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tx_summary"]["vault"] == vault
    assert body["tx_summary"]["payments"] == [
        {"address": destination, "amount_sats": str(SPEND_SATS)}
    ]


def test_an_ether_spend_from_a_safe_is_signed_relayed_and_booked_through_the_cli(
    bitcoin_node: BitcoinNode, evm_node: EvmNode, tmp_path: Path
) -> None:
    """A Safe spend signed by two institutions is executed by the node's first account (the
    devnet relayer, so the Safe pays no fee), confirmed, and booked against the Safe's holdings."""
    cli = _cli(bitcoin_node, evm_node, tmp_path)
    shares = {
        "MOF": _ceremony(cli, tmp_path / "mof", INSTITUTIONS["MOF"]),
        "NBKR": _ceremony(cli, tmp_path / "nbkr", INSTITUTIONS["NBKR"], "--passphrase"),
        "ACH": _ceremony(cli, tmp_path / "ach", INSTITUTIONS["ACH"]),
    }
    cli("safe", "deploy")
    owners = [arg for name in INSTITUTIONS.values() for arg in ("--owner", _safe_owner(cli, name))]
    name = f"safe-{uuid.uuid4().hex[:10]}"
    created = cli("safe", "create", name, "--threshold", "2", *owners)
    safe = re.findall(r"Safe (0x[0-9a-fA-F]{40})", created)[0]
    chain = EthChain(evm_node.rpc)
    relayer, payee = chain.accounts()[0], chain.accounts()[7]
    chain.transact(relayer, safe, b"", action="fund the Safe", value=2 * WEI_PER_ETH)
    officers = _govern(cli, tmp_path)
    roster = _roster(cli, tmp_path, shares, {"ETH": payee}, {"NBKR": PASSPHRASE})
    active_from = _allow(cli, officers, "ETH", payee)
    assert "succeeded" in cli("reconcile", "now")
    _wait_until(active_from)

    proposed = cli(
        "spend", "propose", "--asset", "ETH", "--amount", str(WEI_PER_ETH // 2), "--destination",
        payee, "--purpose", "Reserve rebalancing", "--legal-basis", DECREE,
        *token_file(officers.proposer),
    )  # fmt: skip
    pid = proposed.split(":")[0].split()[1]
    prepared = cli("spend", "prepare", pid, *token_file(officers.proposer))
    assert f"safe: {safe}" in prepared
    assert f"vault: {name}" in prepared
    safe_tx_hash = prepared.split("hash to approve: ")[1].split()[0]
    for code in ("NBKR", "ACH"):
        _approve(cli, roster, officers, pid, safe_tx_hash, code)
    passphrase_file = tmp_path / "nbkr-passphrase.txt"
    passphrase_file.write_text(PASSPHRASE + "\n")
    for code, files, extra in (
        ("NBKR", shares["NBKR"][1:], ["--passphrase-file", str(passphrase_file)]),
        ("ACH", shares["ACH"][:2], []),
    ):
        paths = [arg for path in files for arg in ("--share-file", str(path))]
        cli("spend", "sign", pid, *paths, *extra, "--yes", *token_file(officers.approvers[code]))
    before = chain.balance(payee)
    sent = cli("spend", "broadcast", pid, *token_file(officers.proposer))
    assert sent.startswith(f"proposal {pid}: broadcast")
    assert chain.balance(payee) - before == WEI_PER_ETH // 2
    assert chain.balance(safe) == 2 * WEI_PER_ETH - WEI_PER_ETH // 2  # gas came from the relayer
    refreshed = cli("spend", "refresh", pid, *token_file(officers.proposer))
    assert refreshed.startswith(f"proposal {pid}: confirmed")

    balances = cli("ledger", "balances", "--asset", "ETH")
    posted = dict(re.findall(r"^(\S+)\s+posted\s+(\S+) ETH", balances, re.MULTILINE))
    assert posted["reserve:approved-outflows:ETH"] == format_amount(WEI_PER_ETH // 2, 18)
    assert posted["fees:ETH"] == format_amount(0, 18)
    holdings = f"vault:eth:{chain.chain_id}:{name}:ETH"
    assert posted[holdings] == format_amount(2 * WEI_PER_ETH - WEI_PER_ETH // 2, 18)
    cli("reconcile", "now")
    assert "MISMATCH" not in cli("reconcile", "status")
