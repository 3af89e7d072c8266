"""Test support for the database attacker: one signed reserve per database, copied per attack.

The reserve is the story's own (``treasury.story.Reserve``): ceremonies, a Bitcoin vault and a
Safe on the session's devnets, deposits reconciled, officers with key files, a roster genesis
signed by the ceremony keys, the policy signed into the roster, and proposals approved with the
officers' signed statements. Building it takes seconds and every attack spoils its database, so
``ReserveTemplates`` builds one per database kind per module, then drops every trigger of that
database once -- what a database owner can do -- and ``clone`` hands each test its own copy
(SQLite through the backup API, PostgreSQL through ``CREATE DATABASE ... TEMPLATE``).

The copies share the chains: nothing here broadcasts or executes a transaction, so a signature
made in one copy changes nothing another copy sees. The attacker's writes go through
SQLAlchemy Core statements on a bare connection (``AttackWorld.insert``/``update``/``execute``):
plain SQL with the column types applied, none of the treasury's code or ORM guards.
"""

from __future__ import annotations

import copy
import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address
from sqlalchemy import Engine, create_engine, insert, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.sql.dml import Delete, Insert, Update
from sqlalchemy.sql.elements import TextClause
from typer.testing import CliRunner, Result

from custody.authority import ApprovalStatement, SignedStatement, StatementKind
from custody.bitcoin import Payment, build_spend
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import EthChain, SafeVaults
from custody.ethereum.records import SafeTxRow
from custody.records import SpendRecord
from treasury import migrate
from treasury.authority.tables import ApprovalStatementRow
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV, make_engine, session_factory
from treasury.officers import Officer
from treasury.policy.tables import (
    AllowlistActivationRow,
    AllowlistApprovalRow,
    AllowlistEntryRow,
)
from treasury.proposals import PreparedTx, ProposalState, Workflow
from treasury.proposals.rows import current_tx, prepared
from treasury.proposals.signed_statements import statement_for
from treasury.proposals.tables import ApprovalRow, PreparedTxRow, SpendProposalRow
from treasury.spenders import BitcoinSpender, SafeSpender
from treasury.story import SAFE_VAULT, SATS_PER_BTC, WEI_PER_ETH, Reserve
from treasury.story.cast import (
    APPROVERS,
    DECREE,
    FEE_RATE_SAT_VB,
    MAX_FEE_SATS,
    OVERSIGHT,
    PROPOSER,
)
from treasury.story.officer_keys import OfficerKeyring
from treasury.story.reserve import OFFICER_KEYS_FOLDER

log = logging.getLogger("tests.database_attacker")

TEST_SCRYPT_N = 2**10
"""Cheap scrypt for the story's officer key files (tests only; the story uses 2^15)."""
BTC_DEPOSITS_SATS = (SATS_PER_BTC, SATS_PER_BTC, SATS_PER_BTC, SATS_PER_BTC // 2)
ETH_DEPOSIT_WEI = 20 * WEI_PER_ETH
TOKEN_DEPOSIT = 10**21
BTC_PAYMENT_SATS = SATS_PER_BTC // 10
"""A spend below the story's veto threshold (half a bitcoin): signable once approved."""
VETOED_SATS = 6 * SATS_PER_BTC // 10
"""A spend above the veto threshold, so oversight may veto it after its approval."""
ETH_PAYMENT_WEI = WEI_PER_ETH
APPROVER_CODES = tuple(APPROVERS)
"""The two institutions whose approvers approve and whose share holders sign (NBKR, ACH)."""


def attacker_btc_address(node: BitcoinNode) -> str:
    """An address of a wallet no institution controls (the devnet miner's)."""
    return str(node.rpc.wallet("miner").call("getnewaddress", "", "bech32"))


ATTACKER_ETH = to_checksum_address("0x" + "66" * 20)
"""The attacker's ether address: on no allowlist, in no statement."""


@dataclass
class _ReserveOn(Reserve):
    """The story's reserve on a database the test chooses (the story itself always uses SQLite).

    Repeats ``Reserve.__post_init__`` with ``url`` in place of the story's SQLite file, and cheap
    officer key files.
    """

    url: str = ""

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = self.url
        migrate.upgrade(self.database_url)
        self.engine = make_engine(self.database_url)
        self.sessions = session_factory(self.engine)
        self.chain = EthChain(self.evm.rpc)
        self.safes = SafeVaults(self.chain, self.sessions)
        self.officer_keys = OfficerKeyring(
            self.workdir / OFFICER_KEYS_FOLDER, scrypt_n=TEST_SCRYPT_N
        )


@dataclass(frozen=True)
class Proposals:
    """The proposals the template holds, by what the officers did with them."""

    btc_approved: int
    """0.1 BTC to the allowlisted payee, approved by NBKR and ACH with signed statements."""
    btc_half: int
    """0.1 BTC to the payee, approved by NBKR only (one institution: not signable)."""
    btc_vetoed: int
    """0.6 BTC, approved by NBKR and ACH, then vetoed by oversight with a signed VETO statement."""
    eth_approved: int
    """1 ETH to the allowlisted payee, approved by NBKR and ACH with signed statements."""


def approve_with_keys(
    reserve: Reserve, wf: Workflow, proposal_id: int, codes: tuple[str, ...]
) -> None:
    """The approvers of ``codes`` each sign the statement the server builds, and approve with it."""
    for code in codes:
        officer = reserve.officers[APPROVERS[code]]
        signed = reserve.officer_keys[APPROVERS[code]].sign_statement(
            wf.statement(officer, proposal_id)
        )
        tx_hash = wf.view(proposal_id).tx_hash
        assert tx_hash is not None
        wf.approve(officer, proposal_id, tx_hash, signed=signed)


def open_proposal(reserve: Reserve, wf: Workflow, asset: str, amount: int, destination: str) -> int:
    """A proposal by the story's proposer under the decree, prepared by the asset's spender."""
    proposer = reserve.officers[PROPOSER]
    view = wf.propose(
        proposer,
        asset=asset,
        amount=amount,
        destination=destination,
        purpose="Reserve rebalancing",
        legal_basis=DECREE,
    )
    return wf.prepare(proposer, view.id, reserve.spenders()[asset]).id


def _open_proposals(reserve: Reserve, payees: Mapping[str, str]) -> Proposals:
    wf = reserve.workflow()
    btc_approved = open_proposal(reserve, wf, "BTC", BTC_PAYMENT_SATS, payees["BTC"])
    approve_with_keys(reserve, wf, btc_approved, APPROVER_CODES)
    btc_half = open_proposal(reserve, wf, "BTC", BTC_PAYMENT_SATS, payees["BTC"])
    approve_with_keys(reserve, wf, btc_half, APPROVER_CODES[:1])
    btc_vetoed = open_proposal(reserve, wf, "BTC", VETOED_SATS, payees["BTC"])
    approve_with_keys(reserve, wf, btc_vetoed, APPROVER_CODES)
    oversight = reserve.officers[OVERSIGHT]
    veto = reserve.officer_keys[OVERSIGHT].sign_statement(
        wf.statement(oversight, btc_vetoed, StatementKind.VETO)
    )
    wf.veto(oversight, btc_vetoed, "Not in this quarter's plan", signed=veto)
    eth_approved = open_proposal(reserve, wf, "ETH", ETH_PAYMENT_WEI, payees["ETH"])
    approve_with_keys(reserve, wf, eth_approved, APPROVER_CODES)
    return Proposals(btc_approved, btc_half, btc_vetoed, eth_approved)


def drop_every_trigger(engine: Engine) -> list[str]:
    """Drop every trigger of the database (immutability, append-only heads, ledger balance):
    what a database owner can do. Returns ``table.trigger`` for each one dropped."""
    dropped: list[str] = []
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            found = connection.execute(
                text("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            for table, name in found:
                connection.execute(text(f'DROP TRIGGER "{name}"'))
                dropped.append(f"{table}.{name}")
        else:
            found = connection.execute(
                text(
                    "SELECT c.relname, t.tgname FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
                )
            ).all()
            for table, name in found:
                connection.execute(text(f'DROP TRIGGER "{name}" ON "{table}"'))
                dropped.append(f"{table}.{name}")
    return dropped


@dataclass
class Template:
    """A built reserve whose database every clone copies."""

    kind: str
    url: str
    reserve: Reserve
    proposals: Proposals
    payees: dict[str, str]
    dropped_triggers: list[str]
    server_url: str | None


@dataclass
class AttackWorld:
    """One test's copy of the reserve, and the attacker's raw access to its database."""

    reserve: Reserve
    url: str
    engine: Engine
    proposals: Proposals
    payees: dict[str, str]
    dropped_triggers: list[str]
    attacker_btc: str
    runner: CliRunner = field(default_factory=CliRunner)

    # --- the attacker: SQL on a bare connection --------------------------------------------

    def execute(self, *statements: Insert | Update | Delete | TextClause) -> None:
        """Run the statements in one transaction, as any database writer can."""
        with self.engine.begin() as connection:
            for statement in statements:
                connection.execute(statement)

    def scalar(self, statement: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(statement).scalar()

    # --- what the server holds ----------------------------------------------------------------

    def prepared(self, proposal_id: int) -> PreparedTx:
        """The proposal's current transaction, exactly as ``treasury spend sign`` hands it on."""
        with self.reserve.sessions() as session:
            row = current_tx(session, proposal_id)
            assert row is not None, f"proposal {proposal_id} has no prepared transaction"
            return prepared(row)

    def statement(
        self, proposal_id: int, officer: Officer, kind: StatementKind = StatementKind.APPROVE
    ) -> ApprovalStatement:
        """The statement the server would put before ``officer`` for the proposal as stored now."""
        with self.reserve.sessions() as session:
            return statement_for(session, proposal_id, officer, kind, self.reserve.clock())

    def officer(self, name: str) -> Officer:
        return self.reserve.officers[name]

    def spender(self, asset: str) -> BitcoinSpender | SafeSpender:
        return self.reserve.spenders()[asset]

    def build_btc(self, destination: str, amount: int) -> dict[str, Any]:
        """The attacker's own PSBT from the vault's coins, made with the server's bitcoind wallet;
        returns the custody spend columns that describe it."""
        with self.reserve.sessions.begin() as session:
            spend = build_spend(
                session,
                self.reserve.bitcoin.rpc,
                self.reserve.btc_vault,
                [Payment(destination, amount)],
                FEE_RATE_SAT_VB,
                MAX_FEE_SATS,
            )
        return {
            "unsigned_psbt": spend.unsigned_psbt,
            "unsigned_txid": spend.approval.unsigned_txid,
            "payments": [{"address": destination, "amount_sats": amount}],
            "fee_sats": spend.fee_sats,
        }

    def inserted_id(self, statement: Insert) -> int:
        """Run one INSERT and return the id the database gave the row."""
        with self.engine.begin() as connection:
            key = connection.execute(statement).inserted_primary_key
        assert key is not None
        return int(key[0])

    # --- the attacker's rows ------------------------------------------------------------------

    def statement_row(self, proposal_id: int, signed: SignedStatement) -> Insert:
        """An ``approval_statements`` row holding ``signed`` as the treasury stores one."""
        return insert(ApprovalStatementRow).values(
            proposal_id=proposal_id,
            statement=signed.statement.encode().decode("utf-8"),
            statement_digest=signed.statement.digest().hex(),
            key_id=signed.key_id,
            signature=json.dumps(signed.signature.to_json(), sort_keys=True),
            recorded_at=self.reserve.clock(),
        )

    def approval_row(self, proposal_id: int, officer_id: int, institution_id: int) -> Insert:
        """A ``proposal_approvals`` row for the proposal's current transaction."""
        return insert(ApprovalRow).values(
            proposal_id=proposal_id,
            officer_id=officer_id,
            institution_id=institution_id,
            tx_hash=self.prepared(proposal_id).tx_hash,
            approved_at=self.reserve.clock(),
            attempt=1,
        )

    def mark_approved(self, proposal_id: int) -> Update:
        """The proposal row as if its quorum had been reached and nothing had closed it."""
        return (
            update(SpendProposalRow)
            .where(SpendProposalRow.id == proposal_id)
            .values(
                state=ProposalState.APPROVED.value,
                quorum_reached_at=self.reserve.clock(),
                closed_at=None,
                closed_by=None,
                closed_reason=None,
            )
        )

    def repoint(
        self, proposal_id: int, tx_hash: str, summary: dict[str, Any], payload: str, **proposal: Any
    ) -> list[Update]:
        """The workflow's rows of the proposal re-pointed to another transaction: its prepared
        transaction, its approvals' hash, and the proposal's own columns in ``proposal``."""
        return [
            update(PreparedTxRow)
            .where(PreparedTxRow.proposal_id == proposal_id, PreparedTxRow.superseded_at.is_(None))
            .values(tx_hash=tx_hash, summary=json.dumps(summary), payload=payload),
            update(ApprovalRow)
            .where(ApprovalRow.proposal_id == proposal_id)
            .values(tx_hash=tx_hash),
            update(SpendProposalRow).where(SpendProposalRow.id == proposal_id).values(**proposal),
        ]

    def repoint_btc(self, proposal_id: int, destination: str, amount: int) -> str:
        """Rewrite the proposal's custody spend (PSBT, txid, payments, fee) into the attacker's
        own PSBT, and the workflow's rows with it; returns the new txid."""
        current = self.prepared(proposal_id)
        spend_id = int(json.loads(current.payload)["spend_id"])
        other = self.build_btc(destination, amount)
        txid = str(other["unsigned_txid"])
        summary = {
            **current.summary,
            "payments": [{"address": destination, "amount_sats": str(amount)}],
            "fee_sats": str(other["fee_sats"]),
            "unsigned_txid": txid,
        }
        payload = json.dumps({"spend_id": spend_id, "psbt": other["unsigned_psbt"]})
        self.execute(
            update(SpendRecord).where(SpendRecord.id == spend_id).values(**other),
            *self.repoint(
                proposal_id, txid, summary, payload, destination=destination, amount=amount
            ),
        )
        return txid

    def repoint_eth(self, proposal_id: int, destination: str, amount: int) -> str:
        """Rewrite the proposal's stored SafeTx into a transfer of ``amount`` wei to
        ``destination`` (its hash recomputed, so it is self-consistent), and the workflow's rows
        with it; returns the new SafeTx hash."""
        current = self.prepared(proposal_id)
        forged = self.reserve.safes.new_safe_tx(SAFE_VAULT, destination, amount)
        new_hash = forged.hash_hex
        summary = {
            **current.summary,
            "action": f"send {amount} wei to {destination}",
            "safe_tx_hash": new_hash,
        }
        payload = json.dumps({"safe_tx_hash": new_hash})
        self.execute(
            update(SafeTxRow)
            .where(SafeTxRow.safe_tx_hash == current.tx_hash.lower())
            .values(to_address=destination, value=amount, data=b"", safe_tx_hash=new_hash),
            *self.repoint(
                proposal_id, new_hash, summary, payload, destination=destination, amount=amount
            ),
        )
        return new_hash

    def allowlist(self, asset: str, address: str) -> None:
        """An allowlist entry for ``address``, approved by two institutions, active since a day."""
        now = self.reserve.clock()
        requester = self.officer(PROPOSER)
        entry_id = self.inserted_id(
            insert(AllowlistEntryRow).values(
                asset=asset,
                address=address,
                label="new payee",
                requested_by=requester.id,
                requested_at=now - timedelta(days=3),
            )
        )
        approvals = [
            insert(AllowlistApprovalRow).values(
                entry_id=entry_id,
                institution_id=self.officer(APPROVERS[code]).institution_id,
                officer_id=self.officer(APPROVERS[code]).id,
                approved_at=now - timedelta(days=3),
            )
            for code in APPROVER_CODES
        ]
        self.execute(
            *approvals,
            insert(AllowlistActivationRow).values(
                entry_id=entry_id, active_from=now - timedelta(days=1)
            ),
        )

    # --- the custody signer, as `treasury spend sign` calls it --------------------------------

    def sign(self, proposal_id: int, code: str, asset: str) -> PreparedTx:
        """Institution ``code``'s share holders sign the proposal's stored transaction through the
        treasury's spender (the custody signer behind it checks the officers' authority)."""
        words, passphrase = self.reserve.shares_of(code)
        return self.spender(asset).sign(self.prepared(proposal_id), code, words, passphrase)

    # --- the auditor's commands ---------------------------------------------------------------

    def verify(self, group: str) -> Result:
        """``treasury <group> verify`` on this database (policy, audit, roster)."""
        result = self.runner.invoke(app, [group, "verify"], env={DATABASE_URL_ENV: self.url})
        log.info("$ treasury %s verify -> %d\n%s", group, result.exit_code, result.output)
        return result

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_path(url: str) -> str:
    database = make_url(url).database
    assert database, url
    return database


def _copy_sqlite(source_url: str, target_url: str) -> None:
    source = sqlite3.connect(_sqlite_path(source_url))
    target = sqlite3.connect(_sqlite_path(target_url))
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _admin(server_url: str) -> Engine:
    return create_engine(server_url, isolation_level="AUTOCOMMIT")


def _copy_postgres(server_url: str, template_url: str, target_url: str) -> None:
    """Replace the (empty) database of ``target_url`` by a copy of the template's."""
    template, target = make_url(template_url).database, make_url(target_url).database
    admin = _admin(server_url)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{target}" TEMPLATE "{template}"'))
    finally:
        admin.dispose()


class ReserveTemplates:
    """One built reserve per database kind, made on first use and copied for each test."""

    def __init__(self, bitcoin: BitcoinNode, evm: EvmNode, folder: Path) -> None:
        self._bitcoin = bitcoin
        self._evm = evm
        self._folder = folder
        self._built: dict[str, Template] = {}

    def _build(self, kind: str, server_url: str | None) -> Template:
        workdir = self._folder / kind
        if server_url is None:
            url = f"sqlite:///{workdir / 'template.sqlite3'}"
        else:
            name = f"attacker_template_{uuid.uuid4().hex[:12]}"
            admin = _admin(server_url)
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
            finally:
                admin.dispose()
            url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        reserve = _ReserveOn(
            workdir, self._bitcoin, self._evm, btc_vault=f"attack-{uuid.uuid4().hex[:8]}", url=url
        )
        reserve.hold_ceremonies(log.info)
        reserve.open_vaults(log.info)
        reserve.deposit(log.info, BTC_DEPOSITS_SATS, ETH_DEPOSIT_WEI, TOKEN_DEPOSIT)
        self._evm.rpc.call("evm_mine")
        reserve.reconcile(log.info)
        payees = {
            "BTC": str(self._bitcoin.rpc.wallet("miner").call("getnewaddress", "payee", "bech32")),
            "ETH": to_checksum_address("0x" + "ab" * 20),
        }
        reserve.govern(log.info, payees)
        proposals = _open_proposals(reserve, payees)
        dropped = drop_every_trigger(reserve.engine)
        reserve.engine.dispose()
        return Template(kind, url, reserve, proposals, payees, dropped, server_url)

    def clone(self, target_url: str, server_url: str | None) -> AttackWorld:
        """A copy of the template of ``target_url``'s kind at ``target_url``, with its reserve."""
        kind = "sqlite" if server_url is None else "postgresql"
        template = self._built.get(kind)
        if template is None:
            template = self._built[kind] = self._build(kind, server_url)
        if server_url is None:
            _copy_sqlite(template.url, target_url)
        else:
            _copy_postgres(server_url, template.url, target_url)
        reserve = copy.copy(template.reserve)
        reserve.database_url = target_url
        reserve.engine = make_engine(target_url)
        reserve.sessions = session_factory(reserve.engine)
        reserve.safes = SafeVaults(reserve.chain, reserve.sessions)
        reserve.verifications = []
        return AttackWorld(
            reserve,
            target_url,
            reserve.engine,
            template.proposals,
            dict(template.payees),
            list(template.dropped_triggers),
            attacker_btc_address(self._bitcoin),
        )

    def close(self) -> None:
        for template in self._built.values():
            template.reserve.engine.dispose()
            if template.server_url is not None:
                admin = _admin(template.server_url)
                try:
                    with admin.connect() as connection:
                        connection.execute(
                            text(
                                f'DROP DATABASE IF EXISTS "{make_url(template.url).database}" '
                                "WITH (FORCE)"
                            )
                        )
                finally:
                    admin.dispose()


def templates_for(bitcoin: BitcoinNode, evm: EvmNode, folder: Path) -> Iterator[ReserveTemplates]:
    """The module's templates, their PostgreSQL databases dropped at the end."""
    templates = ReserveTemplates(bitcoin, evm, folder)
    try:
        yield templates
    finally:
        templates.close()


__all__ = [
    "APPROVER_CODES",
    "ATTACKER_ETH",
    "BTC_PAYMENT_SATS",
    "ETH_PAYMENT_WEI",
    "VETOED_SATS",
    "AttackWorld",
    "Proposals",
    "ReserveTemplates",
    "approve_with_keys",
    "drop_every_trigger",
    "open_proposal",
    "templates_for",
]
