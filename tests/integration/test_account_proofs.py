"""Account holders' packages issued again later, from the kept tree, on both databases.

A tree is kept beside its recorded attestation; every issue below happens after the writing
engine is disposed (or in another process), so nothing of the attesting process's memory is
used. Each package is checked with the standalone verifier's code against the bundle's root.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from log_support import rendered
from reserve_verifier.liability_tree import verify_liability_package
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from workflow_support import build_world

from reporting.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, Bundle
from reporting.sumtree import LiabilityTree
from treasury import migrate
from treasury.api import create_app
from treasury.attest.account_proofs import (
    HolderCodeError,
    KeptTreeMismatchError,
    TreeNotKeptError,
    holder_code,
    holder_package,
    issue_package,
    keep_liability_tree,
)
from treasury.attest.records import AttestationRecord, LiabilitySecretRecord
from treasury.db import Base, make_engine, session_factory

NONCE = bytes(range(100, 132))
ASSETS = ("BTC", "ETH")
ROWS = {f"citizen:{i:04d}": (1_000 * i + 7, 10**15 * (i % 4)) for i in range(1, 38)}
HOLDER = "citizen:0007"
OTHER = "citizen:0011"
WHEN = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _bundle(sequence: int, tree: LiabilityTree) -> Bundle:
    """A bundle stating ``tree``'s root (unsigned: the issue path reads only its root)."""
    return Bundle(
        body={
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "sequence": sequence,
            "liabilities": {"root": tree.root.to_dict()},
        }
    )


def _record(
    sessions: sessionmaker[Session], sequence: int, tree: LiabilityTree, *, keep: bool = True
) -> Bundle:
    """Record attestation ``sequence`` of ``tree`` (and keep its tree) as ``attest`` would."""
    bundle = _bundle(sequence, tree)
    with sessions.begin() as session:
        record = AttestationRecord(
            sequence=sequence,
            digest=bundle.digest.hex(),
            previous_digest="00" * 32,
            bitcoin_anchor_txid="11" * 32,
            services_chain_id=31337,
            services_anchor_tx="0x" + "22" * 32,
            anchors_json="{}",
            bundle_json=bundle.to_bytes().decode(),
            created_at=WHEN,
        )
        session.add(record)
        session.flush()
        if keep:
            keep_liability_tree(session, record, tree, clock=lambda: WHEN)
    return bundle


@pytest.fixture
def database(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database (no governance: issuing packages needs none)."""
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def recorded(db_url: str) -> Iterator[tuple[sessionmaker[Session], Bundle]]:
    """Attestation 1 recorded with its tree kept by one engine, which is then disposed; the
    tree object is dropped, and a fresh engine is handed out."""
    migrate.upgrade(db_url)
    writer = make_engine(db_url)
    tree = LiabilityTree.from_rows(ASSETS, list(ROWS.items()), NONCE)
    bundle = _record(session_factory(writer), 1, tree)
    del tree
    writer.dispose()
    reader = make_engine(db_url)
    yield session_factory(reader), bundle
    reader.dispose()


def _table_counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return {
            name: session.scalar(select(func.count()).select_from(table)) or 0
            for name, table in Base.metadata.tables.items()
        }


def test_a_new_process_issues_a_package_the_verifier_accepts(
    recorded: tuple[sessionmaker[Session], Bundle], db_url: str, tmp_path: Path
) -> None:
    """`treasury proofs issue` in another process rebuilds the tree from the database alone; the
    package verifies with the standalone verifier against the bundle's root, holds the holder's
    own salt, and no other account's id or salt."""
    _world, bundle = recorded
    out = tmp_path / "package.json"
    env = {**os.environ, "TREASURY_DATABASE_URL": db_url}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "treasury"), "proofs", "issue", HOLDER, "-a", "1",
         "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    package = json.loads(out.read_text())
    root = bundle.body["liabilities"]["root"]
    leaf = verify_liability_package(package, root_digest=bytes.fromhex(root["digest"]))
    assert (leaf.account_id, leaf.amounts) == (HOLDER, ROWS[HOLDER])
    assert package["attestation"] == {"sequence": 1, "digest": bundle.digest.hex()}
    reference = LiabilityTree.from_rows(ASSETS, list(ROWS.items()), NONCE)
    text_form = json.dumps(package)
    assert reference.leaf(HOLDER).salt.hex() in text_form
    for account in ROWS:
        if account != HOLDER:
            assert account not in text_form
            assert reference.leaf(account).salt.hex() not in text_form
    assert NONCE.hex() not in text_form
    assert NONCE.hex() not in done.stderr


def test_codes_open_only_their_own_account(
    recorded: tuple[sessionmaker[Session], Bundle],
) -> None:
    """A holder's code opens their package; it does not open another account's, and a wrong
    code is refused like an unknown account. The kept row's repr shows no secret."""
    sessions, _bundle = recorded
    with sessions() as session:
        secret = session.scalar(select(LiabilitySecretRecord))
        assert secret is not None
        shown = repr(secret)
        stored = session.execute(text("SELECT nonce FROM liability_secrets")).scalar_one()
    assert bytes(stored) == NONCE
    assert NONCE.hex() not in shown
    assert str(NONCE) not in shown
    assert "root_digest=" in shown
    with sessions() as session:
        own = holder_package(session, 1, HOLDER, holder_code(NONCE, HOLDER).lower())
        assert own["leaf"]["account_id"] == HOLDER
        for account, code in (
            (OTHER, holder_code(NONCE, HOLDER)),
            (HOLDER, holder_code(NONCE, OTHER)),
            ("citizen:9999", holder_code(NONCE, HOLDER)),
        ):
            with pytest.raises(HolderCodeError) as refused:
                holder_package(session, 1, account, code)
            assert "do not open" in str(refused.value)


def test_a_damaged_kept_tree_issues_nothing(
    recorded: tuple[sessionmaker[Session], Bundle],
) -> None:
    """One changed amount byte in the kept leaf level changes the rebuilt root, and the issue is
    refused rather than handing out a package of another tree."""
    sessions, _bundle = recorded
    with sessions() as session:
        assert issue_package(session, 1, HOLDER)["leaf"]["account_id"] == HOLDER
    with sessions.begin() as session:
        secret = session.scalar(select(LiabilitySecretRecord))
        assert secret is not None
        damaged = bytearray(secret.leaf_records)
        damaged[-1] ^= 1
        session.execute(update(LiabilitySecretRecord).values(leaf_records=bytes(damaged)))
    with sessions() as session, pytest.raises(KeptTreeMismatchError):
        issue_package(session, 1, HOLDER)


def test_keeping_refuses_a_tree_that_is_not_the_bundles(
    database: sessionmaker[Session],
) -> None:
    """A tree whose root differs from the recorded bundle's is not kept."""
    tree = LiabilityTree.from_rows(ASSETS, list(ROWS.items()), NONCE)
    other = LiabilityTree.from_rows(ASSETS, [*ROWS.items(), ("citizen:extra", (1, 0))], NONCE)
    bundle = _record(database, 1, tree, keep=False)
    with database.begin() as session:
        record = session.scalar(select(AttestationRecord))
        assert record is not None
        assert record.digest == bundle.digest.hex()
        with pytest.raises(KeptTreeMismatchError):
            keep_liability_tree(session, record, other)
    with database() as session, pytest.raises(TreeNotKeptError):
        issue_package(session, 1, HOLDER)


def test_the_api_answers_holders_and_refuses_everyone_else(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """POST /holders/proof: 200 with the right code; 403 for another account's code, a wrong
    code and an unknown account alike (same body); 401 without a code; 404 for an unknown
    attestation; 422/413 for hostile bodies; nothing is written and nothing secret is logged."""
    world = build_world(db_url)
    tree = LiabilityTree.from_rows(ASSETS, list(ROWS.items()), NONCE)
    bundle = _record(world.sessions, 1, tree)
    client = TestClient(create_app(world.workflow(), world.sessions, clock=world.clock))
    before = _table_counts(world.sessions)
    code = holder_code(NONCE, HOLDER)
    caplog.set_level(logging.DEBUG)

    ok = client.post(
        "/holders/proof",
        content=json.dumps({"attestation": 1, "account_id": HOLDER, "code": code}),
        headers={"Content-Type": "text/plain"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == "*"
    assert ok.headers["cache-control"] == "no-store"
    root = bundle.body["liabilities"]["root"]
    assert verify_liability_package(ok.json(), root_digest=bytes.fromhex(root["digest"]))

    refusals = []
    for account, typed in ((OTHER, code), (HOLDER, "AAAAA-AAAAA"), ("citizen:9999", code)):
        answer = client.post(
            "/holders/proof", json={"attestation": 1, "account_id": account, "code": typed}
        )
        assert answer.status_code == 403, answer.text
        assert answer.headers["access-control-allow-origin"] == "*"
        refusals.append(answer.json())
    assert refusals[0] == refusals[1] == refusals[2]

    cases = [
        ({"attestation": 1, "account_id": HOLDER}, 401),
        ({"attestation": 1, "account_id": HOLDER, "code": "not a code at all"}, 401),
        ({"attestation": 2, "account_id": HOLDER, "code": code}, 404),
        ({"attestation": "1", "account_id": HOLDER, "code": code}, 422),
        ({"attestation": 1, "account_id": "x" * 1025, "code": code}, 422),
        ({"attestation": 1, "account_id": HOLDER, "code": code, "salt": "00"}, 422),
        ([1, 2, 3], 422),
    ]
    for body, status in cases:
        answer = client.post("/holders/proof", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert "detail" in answer.json()
    assert client.post("/holders/proof", content=b"{").status_code == 422
    huge = json.dumps({"attestation": 1, "account_id": "x" * 5000, "code": code})
    assert client.post("/holders/proof", content=huge).status_code == 413
    preflight = client.options("/holders/proof")
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-methods"] == "POST, OPTIONS"

    assert _table_counts(world.sessions) == before
    world.engine.dispose()
    logged = rendered(caplog.records)
    reference = LiabilityTree.from_rows(ASSETS, list(ROWS.items()), NONCE)
    for secret in (code, NONCE.hex(), reference.leaf(HOLDER).salt.hex()):
        assert secret not in logged


def test_wrong_codes_never_make_the_api_rebuild_a_tree(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An anonymous client cycling wrong codes over more attestations than the API caches gets
    403s without a single tree rebuild (each rebuild hashes the whole tree): the code is checked
    against the kept nonce first. The holder's own code then rebuilds once."""
    world = build_world(db_url)
    nonces = [bytes([n]) * 32 for n in range(1, 5)]
    for sequence, nonce in enumerate(nonces, start=1):
        _record(
            world.sessions, sequence, LiabilityTree.from_rows(ASSETS, list(ROWS.items()), nonce)
        )
    client = TestClient(create_app(world.workflow(), world.sessions, clock=world.clock))
    rebuilds: list[int] = []
    original = LiabilityTree.from_leaf_records

    def counted(*args: object, **kwargs: object) -> LiabilityTree:
        rebuilds.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(LiabilityTree, "from_leaf_records", staticmethod(counted))
    for _ in range(3):
        for sequence in range(1, len(nonces) + 1):
            body = {"attestation": sequence, "account_id": HOLDER, "code": "AAAAA-AAAAA"}
            assert client.post("/holders/proof", json=body).status_code == 403
    assert rebuilds == []
    right = {"attestation": 4, "account_id": HOLDER, "code": holder_code(nonces[3], HOLDER)}
    assert client.post("/holders/proof", json=right).status_code == 200
    assert client.post("/holders/proof", json=right).status_code == 200
    assert len(rebuilds) == 1
    world.engine.dispose()
