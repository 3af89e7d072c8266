"""``treasury roster`` end to end on both databases: keys, ceremony keys, genesis, signing, commit,
show and verify; and ``roster verify`` and ``audit verify`` naming a database writer's edit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from roster_support import MOF_PASSPHRASE, RosterWorld, build_roster_world, drop_roster_triggers
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from custody.authority import RosterRecord, load_public_key
from treasury.authority.store import load_records
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV


@pytest.fixture
def world(
    engine: Engine,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> RosterWorld:
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)
    return build_roster_world(engine, sessions, tmp_path)


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _shares(world: RosterWorld, code: str) -> list[str]:
    files = world.share_files[code][1:]  # holders B and C: any quorum will do
    return [arg for path in files for arg in ("--share-file", str(path))]


def _commit_genesis_through_the_cli(world: RosterWorld, tmp_path: Path) -> str:
    """Every step a deployment takes; returns the genesis hash printed at commit."""
    mof_passphrase = tmp_path / "mof-passphrase"
    mof_passphrase.write_text(MOF_PASSPHRASE + "\n")
    code, out, err = _run(
        "roster", "ceremony-key", "--institution", "CB", *_shares(world, "CB"),
        "--out", str(tmp_path / "cb.ceremony.json"),
    )  # fmt: skip
    assert code == 0, err
    assert "ceremony public key:" in out
    code, out, err = _run(
        "roster", "ceremony-key", "--institution", "MOF", *_shares(world, "MOF"),
        "--passphrase-file", str(mof_passphrase),
    )  # fmt: skip
    assert code == 0, err
    mof_key = out.split("ceremony public key:")[1].split()[0]
    genesis = tmp_path / "genesis.json"
    code, out, err = _run(
        "roster", "genesis",
        "--admin-key", f"CB={world.key_files['CB']}",
        "--admin-key", f"MOF={world.key_files['MOF']}",
        "--ceremony-key", f"CB={tmp_path / 'cb.ceremony.json'}",
        "--ceremony-key", f"MOF={mof_key}",
        "--out", str(genesis),
    )  # fmt: skip
    assert code == 0, err
    assert "not signed yet" in out
    assert "PARL" not in out  # no ceremony, so not in the genesis
    code, out, err = _run(
        "roster", "sign-genesis", str(genesis), "--institution", "CB", *_shares(world, "CB"),
        "--yes",
    )  # fmt: skip
    assert code == 0, err
    assert "still to sign: MOF" in out
    code, _, err = _run("roster", "commit", str(genesis))
    assert code == 1
    assert err.startswith("error: ")
    assert "MOF" in err or "ceremony" in err
    code, out, err = _run(
        "roster", "sign-genesis", str(genesis), "--institution", "MOF", *_shares(world, "MOF"),
        "--passphrase-file", str(mof_passphrase), "--yes",
    )  # fmt: skip
    assert code == 0, err
    assert "every institution signed" in out
    code, out, err = _run("roster", "commit", str(genesis))
    assert code == 0, err
    return out.split("#0 ")[1].split()[0]


def test_keygen_writes_an_encrypted_key_and_prints_its_id(
    world: RosterWorld, tmp_path: Path
) -> None:
    """`roster keygen` creates a 0600 key file whose public key and id it prints; it never overwrites one."""
    passphrase = tmp_path / "pass"
    passphrase.write_text("an officer's passphrase\n")
    out_file = tmp_path / "officer.key"
    code, out, err = _run(
        "roster", "keygen", "--out", str(out_file), "--passphrase-file", str(passphrase)
    )
    assert code == 0, err
    key = load_public_key(out_file)
    assert f"key id:     {key.key_id}" in out
    assert key.public.hex() in out
    assert out_file.stat().st_mode & 0o777 == 0o600
    assert "an officer's passphrase" not in out_file.read_text()
    code, _, err = _run(
        "roster", "keygen", "--out", str(out_file), "--passphrase-file", str(passphrase)
    )
    assert code == 1
    assert "not overwritten" in err
    # The same command under the officers' own name.
    second = tmp_path / "second.key"
    code, out, err = _run(
        "officers", "keygen", "--out", str(second), "--passphrase-file", str(passphrase)
    )
    assert code == 0, err
    assert f"key id:     {load_public_key(second).key_id}" in out
    assert load_public_key(second).key_id != key.key_id


def test_a_genesis_made_with_the_cli_is_shown_and_verifies(
    world: RosterWorld, tmp_path: Path
) -> None:
    """Genesis, signatures by both share quorums, commit; `show` lists who signed and the admins; both verifies pass."""
    genesis_hash = _commit_genesis_through_the_cli(world, tmp_path)
    code, out, err = _run("roster", "show")
    assert code == 0, err
    assert "#0 genesis" in out
    assert "CB (ceremony key)" in out
    assert "MOF (ceremony key)" in out
    for code_ in ("CB", "MOF"):
        assert f"Admin of {code_}\t{code_}\tadmin" in out
    assert "roster intact: 1 records" in out
    code, out, err = _run("roster", "verify", "--genesis-hash", genesis_hash)
    assert code == 0, err
    code, _, err = _run("roster", "verify", "--genesis-hash", "00" * 32)
    assert code == 1
    assert "roster broken at record 0" in err
    assert "published" in err
    code, out, err = _run("audit", "verify")
    assert code == 0, err
    assert out.startswith("intact:")
    assert "roster intact: 1 records" in out
    code, _, err = _run("roster", "commit", str(tmp_path / "genesis.json"))
    assert code == 1
    assert err.startswith("error: Record 1 ")


def test_a_database_writers_edit_is_named_by_both_verifies(
    world: RosterWorld, engine: Engine, tmp_path: Path
) -> None:
    """With the triggers dropped, an edited genesis body is named at record 0 by `roster verify`, `roster show` and `audit verify`."""
    _commit_genesis_through_the_cli(world, tmp_path)
    drop_roster_triggers(engine)
    with engine.begin() as connection:
        body = connection.execute(text("SELECT body FROM roster_records")).scalar_one()
        document = json.loads(body)
        document["rules"]["approval_institutions"] = "1"
        edited = json.dumps(document, sort_keys=True, separators=(",", ":"))
        connection.execute(text("UPDATE roster_records SET body = :body"), {"body": edited})
    for command in (("roster", "verify"), ("audit", "verify"), ("roster", "show")):
        code, _, err = _run(*command)
        assert code == 1, command
        assert "roster broken at record 0" in err, command


def test_a_record_inserted_behind_the_treasurys_back_is_named(
    world: RosterWorld, engine: Engine, tmp_path: Path
) -> None:
    """A second, forged genesis row appended without the triggers is named at record 1 by both verifies."""
    _commit_genesis_through_the_cli(world, tmp_path)
    drop_roster_triggers(engine)
    with world.sessions() as session:
        genesis = load_records(session)[0]
    copy = RosterRecord(1, genesis.record_hash(), genesis.kind, genesis.body, genesis.signatures)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO roster_records (sequence, kind, body, prev_hash, hash, signatures, "
                "recorded_at) SELECT 1, kind, body, :prev, :hash, signatures, recorded_at "
                "FROM roster_records WHERE sequence = 0"
            ),
            {"prev": genesis.record_hash().hex(), "hash": copy.record_hash().hex()},
        )
    for command in (("roster", "verify"), ("audit", "verify")):
        code, _, err = _run(*command)
        assert code == 1, command
        assert "roster broken at record 1" in err, command
        assert "second genesis" in err, command
