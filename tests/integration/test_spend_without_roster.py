"""No roster, no signature: `treasury spend sign` on both chains and both databases, attacked.

The chain spenders hand custody's signers the roster chain and the officers' signed statements on
every signature; there is no unchecked path. So a treasury that never founded its roster cannot
sign at all, and a database writer who deletes the roster (triggers dropped) or the approval
statements gets a refusal: a spy on the custody signing calls (the Bitcoin signer's
``sign_multisig_inputs``, the Safe signer's ``sign_safe_tx_hash``) records no signature, and
without a roster no share is even parsed.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from embit.bip32 import HDKey
from embit.psbt import PSBT
from spend_roster_support import FoundedRoster
from sqlalchemy import func, select, text
from test_spend_cli import (
    DECREE,
    INSTITUTIONS,
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
    _single_error,
    _wait_until,
)
from token_files import token_file

import custody.bitcoin.signer as btc_signer
import treasury.spenders
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import EthChain
from custody.ethereum import signer as safe_signer
from custody.ethereum.safe_signature import sign_safe_tx_hash
from custody.shamir import parse_shares
from treasury.authority.tables import ApprovalStatementRow, RosterRecordRow
from treasury.db import DATABASE_URL_ENV, make_engine

log = logging.getLogger("tests.spend_without_roster")

ETH_SPEND_WEI = WEI_PER_ETH // 2
NO_GENESIS = "No roster genesis is stored, so nothing can be signed"


@dataclass
class Spy:
    """What reached the custody signing calls and the spenders' share parsing."""

    signatures: list[str]
    share_parses: int = 0


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """Record every Bitcoin input signing, every SafeTx signature, every share parse."""
    recorded = Spy([])
    sign_multisig_inputs = btc_signer.sign_multisig_inputs

    def psbt_spy(psbt: PSBT, root: HDKey) -> int:
        recorded.signatures.append(f"psbt with {len(psbt.inputs)} input(s)")
        return sign_multisig_inputs(psbt, root)

    def safe_spy(key: Any, safe_tx_hash: bytes) -> Any:
        recorded.signatures.append(f"SafeTx {safe_tx_hash.hex()}")
        return sign_safe_tx_hash(key, safe_tx_hash)

    def parse_spy(*args: Any, **kwargs: Any) -> Any:
        recorded.share_parses += 1
        return parse_shares(*args, **kwargs)

    monkeypatch.setattr(btc_signer, "sign_multisig_inputs", psbt_spy)
    monkeypatch.setattr(safe_signer, "sign_safe_tx_hash", safe_spy)
    monkeypatch.setattr(treasury.spenders, "parse_shares", parse_spy)
    return recorded


@dataclass(frozen=True)
class Approved:
    """A proposal approved by NBKR and ACH, ready to be signed."""

    cli: Cli
    officers: Officers
    shares: dict[str, list[Path]]
    pid: str
    tx_hash: str

    def sign(self, code: str, *, refused: bool) -> str:
        """``code``'s approver signs with two of its holders' share files."""
        files = [arg for path in self.shares[code][:2] for arg in ("--share-file", str(path))]
        return self.cli(
            "spend", "sign", self.pid, *files, "--yes", *token_file(self.officers.approvers[code]),
            code=1 if refused else 0,
        )  # fmt: skip

    def signed_by(self) -> str:
        """The status line naming the institutions that signed (empty if none)."""
        status = self.cli("spend", "status", self.pid, *token_file(self.officers.proposer))
        assert status.startswith(f"proposal {self.pid}: approved"), status
        found = re.search(r"signed by ([^\n]*)", status)
        return found.group(1) if found else ""


def _vault(cli: Cli, bitcoin_node: BitcoinNode, evm_node: EvmNode, asset: str) -> str:
    """A funded 2-of-3 vault of the three institutions; returns the payee's address."""
    if asset == "BTC":
        cosigners = [arg for name in INSTITUTIONS.values() for arg in ("--cosigner", name)]
        vault = f"noroster-{uuid.uuid4().hex[:10]}"
        cli("btc", "vault", "create", vault, "--threshold", "2", *cosigners)
        miner = bitcoin_node.rpc.wallet("miner")
        miner.call("sendtoaddress", cli("btc", "vault", "address", vault).split()[0], Decimal(1))
        bitcoin_node.mine(1)
        return str(miner.call("getnewaddress", "", "bech32"))
    cli("safe", "deploy")
    owners = [arg for name in INSTITUTIONS.values() for arg in ("--owner", _safe_owner(cli, name))]
    created = cli(
        "safe", "create", f"noroster-{uuid.uuid4().hex[:10]}", "--threshold", "2", *owners
    )
    safe = re.findall(r"Safe (0x[0-9a-fA-F]{40})", created)[0]
    chain = EthChain(evm_node.rpc)
    chain.transact(chain.accounts()[0], safe, b"", action="fund the Safe", value=2 * WEI_PER_ETH)
    return str(chain.accounts()[7])


def _approved(
    db_url: str,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    tmp_path: Path,
    asset: str,
    *,
    with_roster: bool,
) -> Approved:
    """A spend of ``asset`` proposed, prepared and approved by NBKR and ACH: with signed
    statements on a founded roster, or (no roster) as the workflow still accepts it."""
    cli = _cli(bitcoin_node, evm_node, tmp_path)
    cli.env[DATABASE_URL_ENV] = db_url
    cli("db", "upgrade")
    shares = {
        code: _ceremony(cli, tmp_path / code.lower(), name) for code, name in INSTITUTIONS.items()
    }
    payee = _vault(cli, bitcoin_node, evm_node, asset)
    officers = _govern(cli, tmp_path)
    roster: FoundedRoster | None = None
    if with_roster:
        roster = _roster(cli, tmp_path, shares, {asset: payee})
    active_from = _allow(cli, officers, asset, payee)
    assert "succeeded" in cli("reconcile", "now")
    _wait_until(active_from)
    amount = SPEND_SATS if asset == "BTC" else ETH_SPEND_WEI
    proposed = cli(
        "spend", "propose", "--asset", asset, "--amount", str(amount), "--destination", payee,
        "--purpose", "Reserve rebalancing", "--legal-basis", DECREE, *token_file(officers.proposer),
    )  # fmt: skip
    pid = proposed.split(":")[0].split()[1]
    prepared = cli("spend", "prepare", pid, *token_file(officers.proposer))
    tx_hash = prepared.split("hash to approve: ")[1].split()[0]
    for code in ("NBKR", "ACH"):
        if roster is None:
            cli(
                "spend", "approve", pid, "--tx-hash", tx_hash, *token_file(officers.approvers[code])
            )
        else:
            _approve(cli, roster, officers, pid, tx_hash, code)
    return Approved(cli, officers, shares, pid, tx_hash)


def _as_database_writer(db_url: str, table: str, statement: str) -> None:
    """Disable ``table``'s protective triggers (a database owner can) and run ``statement``."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            else:
                triggers = connection.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
                    {"t": table},
                ).scalars()
                for name in list(triggers):
                    connection.execute(text(f'DROP TRIGGER "{name}"'))
            connection.execute(text(statement))
    finally:
        engine.dispose()


def _count(db_url: str, table: type[RosterRecordRow | ApprovalStatementRow]) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture(params=["BTC", "ETH"])
def asset(request: pytest.FixtureRequest) -> str:
    """Each attack runs on both chains: a PSBT from a Bitcoin vault, a SafeTx from a Safe."""
    return str(request.param)


def test_without_a_roster_genesis_nothing_is_signed(
    db_url: str,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    tmp_path: Path,
    asset: str,
    spy: Spy,
) -> None:
    """A treasury that never founded its roster approves, but `spend sign` refuses with one line
    saying to found the genesis first: no share parsed, no signature, nothing recorded."""
    approved = _approved(db_url, bitcoin_node, evm_node, tmp_path, asset, with_roster=False)
    assert _count(db_url, RosterRecordRow) == 0

    refused = _single_error(approved.sign("NBKR", refused=True))
    assert NO_GENESIS in refused
    assert "treasury roster genesis" in refused
    assert spy == Spy([], 0)
    assert approved.signed_by() == ""


def test_a_deleted_roster_stops_the_next_signer(
    db_url: str,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    tmp_path: Path,
    asset: str,
    spy: Spy,
) -> None:
    """NBKR signs on the founded roster; a database writer then drops the roster's triggers and
    deletes every roster record: ACH's signer is refused before any share, and signs nothing."""
    approved = _approved(db_url, bitcoin_node, evm_node, tmp_path, asset, with_roster=True)
    approved.sign("NBKR", refused=False)
    assert approved.signed_by() == "NBKR"
    signatures = list(spy.signatures)
    assert signatures, "the spy saw NBKR's signature"
    parses = spy.share_parses

    log.info("a database writer drops the roster triggers and deletes the roster")
    _as_database_writer(db_url, "roster_records", "DELETE FROM roster_records")
    assert _count(db_url, RosterRecordRow) == 0

    refused = _single_error(approved.sign("ACH", refused=True))
    assert NO_GENESIS in refused
    assert "treasury roster genesis" in refused
    assert spy.signatures == signatures
    assert spy.share_parses == parses
    assert approved.signed_by() == "NBKR"


def test_deleted_statements_leave_the_signer_nothing_to_sign_on(
    db_url: str,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    tmp_path: Path,
    asset: str,
    spy: Spy,
) -> None:
    """The roster stands, but a database writer deletes the proposal's signed statements (the
    workflow's approval rows remain): the signer itself refuses, and signs nothing."""
    approved = _approved(db_url, bitcoin_node, evm_node, tmp_path, asset, with_roster=True)
    assert _count(db_url, ApprovalStatementRow) == 2

    log.info("a database writer drops the statements' triggers and deletes the statements")
    _as_database_writer(db_url, "approval_statements", "DELETE FROM approval_statements")

    refused = _single_error(approved.sign("NBKR", refused=True))
    assert "No approval statements were presented for this spend" in refused
    assert spy.signatures == []
    assert approved.signed_by() == ""
