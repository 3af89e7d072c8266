"""Custody signs only on the officers' statements; break-glass needs every institution, and shows.

A custody-level spend (``treasury btc spend build``, ``treasury safe transfer``) belongs to no
proposal, so it has no approval statements: `spend sign` / `safe sign` refuse it (exit 2) before
any share is read, and nothing is signed (a spy on the signing call records none). The holders'
emergency path, ``--break-glass --reason``, signs without statements; each such signature is
recorded (append-only), audited and raises a BREAK_GLASS alarm, and the transaction is broadcast
or executed only once EVERY institution has signed -- fewer are refused naming who is missing.
Every test runs on SQLite and PostgreSQL, against the session's regtest bitcoind or anvil.
"""

from __future__ import annotations

import json
import logging
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from embit.bip32 import HDKey
from embit.psbt import PSBT
from eth_utils.address import to_checksum_address
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import custody.bitcoin.signer as btc_signer
import custody.ethereum.signer as safe_signer
from custody.authority.gate import IncompleteBreakGlassError
from custody.bitcoin import broadcast_spend, load_spend
from custody.bitcoin.psbt import parse_psbt
from custody.bitcoin.signer import break_glass_marks
from custody.ceremony import CeremonyPlan, ShareFiles, run_ceremony
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import EthChain
from custody.records import SpendRecord, SpendSignatureRecord, SpendState
from treasury import audit, migrate
from treasury.audit import AuditEvent
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV, make_engine, session_factory
from treasury.exceptions import ImmutableRecordError
from treasury.reconcile.alarms import list_alarms
from treasury.reconcile.break_glass import (
    BreakGlassRecordError,
    BreakGlassSignatureRow,
    break_glass_signatures_for,
    record_break_glass,
)
from treasury.reconcile.records import AlarmKind
from treasury.settings import BITCOIN_RPC_URL_ENV, RESERVE_RPC_URL_ENV

log = logging.getLogger("tests.break_glass")

INSTITUTIONS = ("Ministry of Finance", "National Bank", "Accounts Chamber")
REASON = "Officers' key server destroyed; moving the reserve to the cold vault"
EMERGENCY = ("--break-glass", "--reason", REASON)
PAY_SATS = 25_000_000
PAY_WEI = 250_000_000_000_000_000
REFUSAL = "custody signs only a transaction covered by the officers' approval statements"
CLOCK_AT = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


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


def _ceremonies(engine: Engine, folder: Path) -> dict[str, list[str]]:
    """Each institution's 2-of-3 ceremony; returns ``--share-file`` options for a quorum."""
    options: dict[str, list[str]] = {}
    for n, institution in enumerate(INSTITUTIONS):
        rng = random.Random(f"break glass {n}")  # noqa: S311 (reproducible test data)
        delivery = ShareFiles(folder / str(n))
        with session_factory(engine).begin() as session:
            run_ceremony(
                session,
                CeremonyPlan(institution, (f"{n} Ann", f"{n} Ben", f"{n} Cy"), 2),
                delivery,
                random_bytes=rng.randbytes,
                rng=rng,
            )
        options[institution] = [str(path) for path in delivery.written[:2]]
    return options


def _share_options(flag: str, paths: list[str]) -> list[str]:
    return [arg for path in paths for arg in (flag, path)]


@dataclass
class BtcWorld:
    """A migrated database, three ceremonies, one funded 2-of-3 vault, its CLI."""

    cli: Cli
    engine: Engine
    node: BitcoinNode
    vault: str
    shares: dict[str, list[str]]
    payee: str

    def build(self) -> str:
        built = self.cli(
            "btc", "spend", "build", self.vault, "--pay", f"{self.payee}:{PAY_SATS}",
            "--fee-rate", "2", "--max-fee-sats", "20000",
        )  # fmt: skip
        found = re.search(r"^spend (\d+) \(built\)", built, re.M)
        assert found is not None, built
        return found.group(1)

    def sign(self, sid: str, institution: str, *extra: str, **kwargs: Any) -> str:
        return self.cli(
            "btc", "spend", "sign", sid, "--institution", institution,
            *_share_options("--share-file", self.shares[institution]), *extra, **kwargs,
        )  # fmt: skip

    def session(self) -> Session:
        return session_factory(self.engine)()

    def txid(self, sid: str) -> str:
        with self.session() as session:
            return load_spend(session, int(sid)).approval.unsigned_txid


@pytest.fixture
def btc(db_url: str, bitcoin_node: BitcoinNode, tmp_path: Path) -> Iterator[BtcWorld]:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    shares = _ceremonies(engine, tmp_path / "shares")
    rpc_url = (
        f"http://{bitcoin_node.rpc_user}:{bitcoin_node.rpc_password}@127.0.0.1:"
        f"{bitcoin_node.rpc_port}"
    )
    cli = Cli({DATABASE_URL_ENV: db_url, BITCOIN_RPC_URL_ENV: rpc_url})
    vault = f"glass-{uuid.uuid4().hex[:10]}"
    cosigners = [arg for name in INSTITUTIONS for arg in ("--cosigner", name)]
    cli("btc", "vault", "create", vault, "--threshold", "2", *cosigners)
    miner = bitcoin_node.rpc.wallet("miner")
    miner.call("sendtoaddress", cli("btc", "vault", "address", vault).split()[0], Decimal(1))
    bitcoin_node.mine(1)
    payee = str(miner.call("getnewaddress", "", "bech32"))
    yield BtcWorld(cli, engine, bitcoin_node, vault, shares, payee)
    engine.dispose()


@pytest.fixture
def psbt_signing_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every call of the Bitcoin signer's signing step, ``sign_multisig_inputs`` (the only place
    the signer signs a vault input), recorded with the number of inputs it was given."""
    calls: list[int] = []
    original = btc_signer.sign_multisig_inputs

    def spy(psbt: PSBT, root: HDKey) -> int:
        calls.append(len(psbt.inputs))
        return original(psbt, root)

    monkeypatch.setattr(btc_signer, "sign_multisig_inputs", spy)
    return calls


def _nothing_recorded(session: Session) -> None:
    assert session.scalars(select(BreakGlassSignatureRow)).all() == []
    assert [a for a in list_alarms(session) if a.kind is AlarmKind.BREAK_GLASS] == []


def test_btc_spend_sign_without_statements_is_refused_before_any_share(
    btc: BtcWorld, psbt_signing_calls: list[int]
) -> None:
    """A custody-level spend has no officers' statements: refused with exit 2 before the review
    question or any share, nothing signed, the stored PSBT unchanged; a half-given break-glass
    (a reason alone, or the flag without a reason) is refused the same way."""
    sid = btc.build()
    with btc.session() as session:
        before = session.get_one(SpendRecord, int(sid)).unsigned_psbt
    refused = btc.sign(sid, "Ministry of Finance", stdin="y\n", code=2)
    assert REFUSAL in refused
    assert "--break-glass --reason" in refused
    assert "Sign this transaction" not in refused
    assert "Share 1" not in refused
    alone = btc.sign(sid, "Ministry of Finance", "--reason", REASON, "--yes", code=2)
    assert "--reason goes with --break-glass" in alone
    flag_only = btc.sign(sid, "Ministry of Finance", "--break-glass", "--yes", code=2)
    assert "--break-glass needs --reason" in flag_only
    control = btc.sign(
        sid, "Ministry of Finance", "--break-glass", "--reason", "bad\x00reason", "--yes", code=2
    )
    assert "U+0000" in control
    assert psbt_signing_calls == []
    with btc.session() as session:
        record = session.get_one(SpendRecord, int(sid))
        assert record.unsigned_psbt == before
        assert record.signatures == []
        _nothing_recorded(session)
    assert "signed by: (nobody yet)" in btc.cli("btc", "spend", "show", sid)


def test_break_glass_by_every_institution_is_broadcast_mined_and_alarmed(
    btc: BtcWorld, psbt_signing_calls: list[int]
) -> None:
    """Each institution signs with --break-glass (the first after reading the review and the
    reason), each through the signer's signing step; the spend is broadcast and mined; each
    signature is on record with an audit event and a BREAK_GLASS alarm."""
    sid = btc.build()
    txid = btc.txid(sid)
    first = btc.sign(sid, INSTITUTIONS[0], *EMERGENCY, stdin="y\n")
    question = first.index("Sign this transaction as Ministry of Finance?")
    assert first.index(f"pay 0.25 BTC ({PAY_SATS} sat) to {btc.payee}") < question
    assert first.index("BREAK-GLASS: this signature is made WITHOUT") < question
    assert first.index(f"reason: {REASON}") < question
    assert "BREAK-GLASS signature recorded" in first
    for institution in INSTITUTIONS[1:]:
        btc.sign(sid, institution, *EMERGENCY, "--yes")
    with btc.session() as session:
        inputs = len(parse_psbt(session.get_one(SpendRecord, int(sid)).unsigned_psbt).inputs)
    assert psbt_signing_calls == [inputs] * len(INSTITUTIONS)
    shown = btc.cli("btc", "spend", "show", sid)
    assert shown.count("BREAK-GLASS signature by cosigner") == 3
    sent = btc.cli("btc", "spend", "broadcast", sid)
    assert sent.split()[-1] == txid
    btc.node.mine(1)
    with btc.session() as session:
        wallet = btc.node.rpc.wallet(session.get_one(SpendRecord, int(sid)).vault.wallet_name)
        assert wallet.call("gettransaction", txid)["confirmations"] == 1
        recorded = break_glass_signatures_for(session, "bitcoin:regtest", txid)
        assert sorted(r.institution for r in recorded) == sorted(INSTITUTIONS)
        assert {(r.vault, r.reason, r.tx_hash) for r in recorded} == {(btc.vault, REASON, txid)}
        alarms = [a for a in list_alarms(session) if a.kind is AlarmKind.BREAK_GLASS]
        assert len(alarms) == 3
        assert {(a.tx_ref, a.scope) for a in alarms} == {(txid, f"btc:{btc.vault}")}
        assert all(a.open for a in alarms)
        assert sorted(
            next(i for i in INSTITUTIONS if a.detail.startswith(i)) for a in alarms
        ) == sorted(INSTITUTIONS)
        events = [
            json.loads(e.payload)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.sequence))
        ]
        glass = [e for e in events if e.get("event") == "break_glass_signed"]
        assert sorted(e["institution"] for e in glass) == sorted(INSTITUTIONS)
        assert all(e["reason"] == REASON for e in glass)
        assert audit.verify(session).ok


def test_break_glass_by_fewer_than_every_institution_is_not_broadcast(btc: BtcWorld) -> None:
    """Two of three institutions broke the glass: the 2-of-3 threshold is met but the spend is
    refused naming the missing institution, at the CLI and in custody; a database writer who
    strips the marks from the signed PSBTs is still refused, by the treasury's record."""
    sid = btc.build()
    txid = btc.txid(sid)
    for institution in INSTITUTIONS[:2]:
        btc.sign(sid, institution, *EMERGENCY, "--yes")
    refused = btc.cli("btc", "spend", "broadcast", sid, code=1)
    assert "missing: Accounts Chamber." in refused
    assert "Ministry of Finance" not in refused.split("missing:")[1]
    with btc.session() as session, session.begin():
        with pytest.raises(IncompleteBreakGlassError) as caught:
            broadcast_spend(session, btc.node.rpc, int(sid))
        assert caught.value.missing == ("Accounts Chamber",)

    log.info("a database writer strips the break-glass marks from the stored signatures")
    with btc.session() as session, session.begin():
        for row in session.scalars(
            select(SpendSignatureRecord).where(SpendSignatureRecord.spend_id == int(sid))
        ):
            psbt = parse_psbt(row.signed_psbt)
            assert break_glass_marks(psbt)
            for key in [k for k in psbt.unknown if k.startswith(b"\xfc")]:
                del psbt.unknown[key]
            session.execute(
                text("UPDATE custody_btc_spend_signatures SET signed_psbt = :p WHERE id = :i"),
                {"p": psbt.to_string(), "i": row.id},
            )
    refused = btc.cli("btc", "spend", "broadcast", sid, code=1)
    assert "missing: Accounts Chamber." in refused
    assert "break-glass record" in refused
    assert txid not in btc.node.rpc.call("getrawmempool")
    with btc.session() as session:
        assert session.get_one(SpendRecord, int(sid)).state is SpendState.BUILT


def test_break_glass_records_are_append_only_and_refuse_bad_input(db_url: str) -> None:
    """A record is written with its audit event and alarm; an empty or unstorable field writes
    nothing; the database refuses UPDATE and DELETE of a record, the mapper refuses them first."""
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    try:
        fields = {
            "chain": "bitcoin:regtest",
            "vault": "reserve",
            "tx_hash": "AB" * 32,
            "institution": "National Bank",
            "reason": REASON,
        }
        for bad in ({"reason": "  "}, {"reason": "x" * 501}, {"institution": "Bank\x07"}):
            with sessions.begin() as session, pytest.raises(BreakGlassRecordError):
                record_break_glass(session, **(fields | bad), clock=lambda: CLOCK_AT)
        with sessions() as session:
            _nothing_recorded(session)
            assert audit.head(session).sequence == 0
        with sessions.begin() as session:
            made = record_break_glass(session, **fields, clock=lambda: CLOCK_AT)
        assert made.tx_hash == "ab" * 32
        assert made.signed_at == CLOCK_AT
        with sessions() as session:
            assert break_glass_signatures_for(session, "bitcoin:regtest", "AB" * 32) == (made,)
            assert break_glass_signatures_for(session, "bitcoin:main", "ab" * 32) == ()
            (alarm,) = list_alarms(session)
            assert alarm.kind is AlarmKind.BREAK_GLASS
            assert "National Bank" in alarm.detail
            assert REASON in alarm.detail
        for statement in (
            "UPDATE break_glass_signatures SET reason = 'nothing happened'",
            "DELETE FROM break_glass_signatures",
        ):
            with pytest.raises(DBAPIError, match="immutable"), engine.begin() as conn:
                conn.execute(text(statement))
        with sessions() as session:
            session.get_one(BreakGlassSignatureRow, made.id).reason = "edited"
            with pytest.raises(ImmutableRecordError):
                session.flush()
        with sessions() as session:
            assert break_glass_signatures_for(session, "bitcoin:regtest", "ab" * 32) == (made,)
    finally:
        engine.dispose()


# --- Safe -------------------------------------------------------------------------------------


def test_safe_break_glass_needs_every_owner_and_without_statements_signs_nothing(
    db_url: str, evm_node: EvmNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On anvil: `safe sign` of a custody-level SafeTx without statements is refused (exit 2, no
    signing call); two of three owners breaking the glass cannot execute it (the missing one is
    named, nothing moves); with the third it executes, each signature recorded and alarmed."""
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    shares = _ceremonies(engine, tmp_path / "shares")
    cli = Cli({DATABASE_URL_ENV: db_url, RESERVE_RPC_URL_ENV: evm_node.rpc_url})
    cli("safe", "deploy")
    name = f"glass-{uuid.uuid4().hex[:10]}"
    owners = [arg for institution in INSTITUTIONS for arg in ("--owner", institution)]
    created = cli("safe", "create", name, "--threshold", "2", *owners)
    safe = re.findall(r"Safe (0x[0-9a-fA-F]{40})", created)[0]
    chain = EthChain(evm_node.rpc)
    chain.transact(chain.accounts()[0], safe, b"", action="fund the vault", value=10**18)
    recipient = to_checksum_address("0x" + uuid.uuid4().hex[:20] * 2)
    proposed = cli("safe", "transfer", name, "--to", recipient, "--amount", str(PAY_WEI))
    safe_tx_hash = proposed.split("SafeTx ")[1].split()[0]

    calls: list[bytes] = []
    original = safe_signer.sign_safe_tx_hash

    def spy(key: Any, digest: bytes) -> Any:
        calls.append(digest)
        return original(key, digest)

    monkeypatch.setattr(safe_signer, "sign_safe_tx_hash", spy)

    def sign(institution: str, *extra: str, code: int = 0) -> str:
        return cli(
            "safe", "sign", safe_tx_hash, "--institution", institution,
            *_share_options("--shares-file", shares[institution]), "--yes", *extra,
            stdin="\n", code=code,
        )  # fmt: skip

    refused = sign("Ministry of Finance", code=2)
    assert REFUSAL in refused
    assert calls == []
    assert "signed by: none" in cli("safe", "show", name)

    for institution in INSTITUTIONS[:2]:
        assert "BREAK-GLASS signature recorded" in sign(institution, *EMERGENCY)
    assert len(calls) == 2
    before = chain.balance(recipient)
    incomplete = cli("safe", "execute", safe_tx_hash, code=1)
    assert "missing: Accounts Chamber." in incomplete
    assert chain.balance(recipient) == before

    sign("Accounts Chamber", *EMERGENCY)
    cli("safe", "execute", safe_tx_hash)
    assert chain.balance(recipient) == before + PAY_WEI
    try:
        with session_factory(engine)() as session:
            chain_name = f"eip155:{chain.chain_id}"
            recorded = break_glass_signatures_for(session, chain_name, safe_tx_hash)
            assert sorted(r.institution for r in recorded) == sorted(INSTITUTIONS)
            assert {(r.vault, r.reason) for r in recorded} == {(safe, REASON)}
            alarms = [a for a in list_alarms(session) if a.kind is AlarmKind.BREAK_GLASS]
            assert len(alarms) == 3
            assert {(a.tx_ref, a.scope) for a in alarms} == {
                (safe_tx_hash.lower(), f"eth:{chain.chain_id}:{name}")  # the reconciler's scope
            }
    finally:
        engine.dispose()
