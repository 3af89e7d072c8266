"""Signed approvals end to end on bitcoind, on both databases: a roster founded with the real
ceremonies' keys, approvals signed with officers' key files through `treasury spend approve`, and
`treasury spend sign` handing the roster and the statements to custody's signer, which verifies
them itself before it signs and names the approvers whose signatures it verified."""

from __future__ import annotations

import logging
import re
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from authority_support import k1_public, k1_sign, private_key
from sqlalchemy import select, text
from test_spend_cli import (
    DECREE,
    INSTITUTIONS,
    SPEND_SATS,
    Cli,
    _allow,
    _ceremony,
    _cli,
    _govern,
    _officer_id,
    _wait_until,
)

from custody.authority import (
    CEREMONY_KEY_ID,
    Genesis,
    InstitutionEntry,
    OfficerAdded,
    OfficerEntry,
    OfficerPublicKey,
    OfficerRole,
    PolicySet,
    RecordKind,
    RecordSignature,
    RosterRecord,
    RosterRules,
    Secp256k1Signature,
    ceremony_public_key,
    create_key_file,
    load_public_key,
    next_record,
    policy_hash_of,
    sign_with_ceremony_key,
)
from custody.authority.roster_bodies import RecordBody
from custody.ceremony import read_share_file
from custody.devnet import BitcoinNode, EvmNode
from custody.keys import signing_keys
from custody.shamir import combine_shares, parse_shares
from treasury.authority.store import append_record
from treasury.db import DATABASE_URL_ENV, make_engine, session_factory
from treasury.policy.tables import PolicyVersionRow

log = logging.getLogger("tests.signed_approvals_bitcoin")

KEY_PASSPHRASE = "officer key passphrase"
TEST_SCRYPT_N = 2**10
CEREMONY_CODES = ("MOF", "NBKR", "ACH")
"""Institutions with a key ceremony; PARL (none) is not in the roster."""


def _admin_secret(code: str) -> bytes:
    return private_key(f"roster admin of {code}")


def _found_roster(
    cli: Cli, admin_token: str, shares: dict[str, list[Path]], approver_keys: dict[str, Path]
) -> None:
    """A genesis signed with each ceremony's key (recombined from its holders' share files), the
    approvers with their key files' public keys, and the policy in force."""
    ids = {
        name: str(_officer_id(cli, admin_token, name))
        for name in ["Admin", *(f"{c} admin" for c in CEREMONY_CODES[1:])]
        + [f"{c} approver" for c in approver_keys]
    }
    admin_name = {"MOF": "Admin", "NBKR": "NBKR admin", "ACH": "ACH admin"}
    roots = {}
    for code in CEREMONY_CODES:
        shown = cli("ceremony", "show", "--institution", INSTITUTIONS[code])
        fingerprint = re.findall(r"fingerprint:\s+(\S+)", shown)[0]
        words = [read_share_file(path) for path in shares[code][:2]]
        with signing_keys(combine_shares(parse_shares(words)), fingerprint) as keys:
            roots[code] = keys.bitcoin_root
    genesis = next_record(
        None,
        RecordKind.GENESIS,
        Genesis(
            "bitcoin-test",
            tuple(
                InstitutionEntry(
                    code,
                    INSTITUTIONS[code],
                    roots[code].my_fingerprint.hex(),
                    ceremony_public_key(roots[code]),
                )
                for code in CEREMONY_CODES
            ),
            tuple(
                OfficerEntry(
                    ids[admin_name[code]],
                    admin_name[code],
                    code,
                    frozenset({OfficerRole.ADMIN}),
                    (k1_public(_admin_secret(code)),),
                )
                for code in CEREMONY_CODES
            ),
            RosterRules(),
        ),
    )
    for code in CEREMONY_CODES:
        signature = sign_with_ceremony_key(roots[code], genesis.record_hash())
        genesis = genesis.with_signature(
            RecordSignature(code, CEREMONY_KEY_ID, Secp256k1Signature(signature))
        )
    records = [genesis]

    def signed(body: RecordBody, kind: RecordKind, codes: list[str]) -> RosterRecord:
        record = next_record(records[-1], kind, body)
        for code in codes:
            record = record.with_signature(
                RecordSignature(
                    ids[admin_name[code]],
                    k1_public(_admin_secret(code)).key_id,
                    k1_sign(_admin_secret(code), record.record_hash()),
                )
            )
        return record

    for code, path in approver_keys.items():
        key: OfficerPublicKey = load_public_key(path)
        entry = OfficerEntry(
            ids[f"{code} approver"],
            f"{code} approver",
            code,
            frozenset({OfficerRole.APPROVER}),
            (key,),
        )
        records.append(signed(OfficerAdded(entry), RecordKind.OFFICER_ADDED, [code]))
    engine = make_engine(str(cli.env[DATABASE_URL_ENV]))
    try:
        sessions = session_factory(engine)
        with sessions() as session:
            document = session.scalars(
                select(PolicyVersionRow.document).order_by(PolicyVersionRow.version.desc())
            ).first()
        assert document is not None
        records.append(
            signed(
                PolicySet(policy_hash_of(document), document),
                RecordKind.POLICY_SET,
                ["MOF", "NBKR"],
            )
        )
        for record in records:
            with sessions.begin() as session:
                append_record(session, record)
    finally:
        engine.dispose()


def test_the_bitcoin_signer_verifies_the_officers_signed_approvals(
    db_url: str,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Approvals signed with key files are verified by the signer (its log names the approvers),
    the spend is signed and broadcast; a statement deleted behind the server's back (triggers
    dropped) makes the next signer refuse before any signature."""
    cli = _cli(bitcoin_node, evm_node, tmp_path)
    cli.env[DATABASE_URL_ENV] = db_url
    cli("db", "upgrade")
    shares = {
        code: _ceremony(cli, tmp_path / code.lower(), name) for code, name in INSTITUTIONS.items()
    }
    vault = f"signed-{uuid.uuid4().hex[:10]}"
    cosigners = [arg for name in INSTITUTIONS.values() for arg in ("--cosigner", name)]
    cli("btc", "vault", "create", vault, "--threshold", "2", *cosigners)
    miner = bitcoin_node.rpc.wallet("miner")
    miner.call("sendtoaddress", cli("btc", "vault", "address", vault).split()[0], Decimal(1))
    bitcoin_node.mine(1)
    officers = _govern(cli, tmp_path)
    key_files = {}
    for code in ("NBKR", "ACH"):
        key_files[code] = tmp_path / f"{code.lower()}-approver.key"
        create_key_file(key_files[code], KEY_PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    passphrase_file = tmp_path / "key-passphrase"
    passphrase_file.write_text(KEY_PASSPHRASE)
    _found_roster(cli, officers.admin, shares, key_files)
    destination = str(miner.call("getnewaddress", "", "bech32"))
    active_from = _allow(cli, officers, "BTC", destination)
    assert "succeeded" in cli("reconcile", "now")
    _wait_until(active_from)

    proposed = cli(
        "spend", "propose", "--asset", "BTC", "--amount", str(SPEND_SATS), "--destination",
        destination, "--purpose", "Reserve rebalancing", "--legal-basis", DECREE,
        "--token", officers.proposer,
    )  # fmt: skip
    pid = proposed.split(":")[0].split()[1]
    prepared = cli("spend", "prepare", pid, "--token", officers.proposer)
    tx_hash = prepared.split("hash to approve: ")[1].split()[0]
    refused = cli(
        "spend", "approve", pid, "--tx-hash", tx_hash, "--token", officers.approvers["NBKR"],
        code=1,
    )  # fmt: skip
    assert "must carry your signed statement" in refused
    for code in ("NBKR", "ACH"):
        approved = cli(
            "spend", "approve", pid, "--tx-hash", tx_hash, "--key-file", str(key_files[code]),
            "--passphrase-file", str(passphrase_file), "--token", officers.approvers[code],
        )  # fmt: skip
        assert f"0.1 BTC (10000000 sat) to {destination}" in approved
        assert "from vault " + vault + " on bitcoin:regtest" in approved

    log.info("NBKR signs: the signer verifies both statements and names the approvers")
    files = [arg for path in shares["NBKR"][:2] for arg in ("--share-file", str(path))]
    with caplog.at_level(logging.INFO, logger="treasury.spenders"):
        cli("spend", "sign", pid, *files, "--yes", "--token", officers.approvers["NBKR"])
    verified = [r.getMessage() for r in caplog.records if r.name == "treasury.spenders"]
    assert "signatures verified: NBKR approver (NBKR), ACH approver (ACH)" in verified

    log.info("a database writer deletes ACH's statement: ACH's signer refuses, signs nothing")
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("ALTER TABLE approval_statements DISABLE TRIGGER USER"))
            else:
                for (name,) in connection.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                        "AND tbl_name = 'approval_statements'"
                    )
                ):
                    connection.execute(text(f'DROP TRIGGER "{name}"'))
            connection.execute(
                text(
                    "DELETE FROM approval_statements WHERE id = "
                    "(SELECT MAX(id) FROM approval_statements)"
                )
            )
    finally:
        engine.dispose()
    files = [arg for path in shares["ACH"][:2] for arg in ("--share-file", str(path))]
    refused = cli(
        "spend", "sign", pid, *files, "--yes", "--token", officers.approvers["ACH"], code=1
    )
    assert "Approvals come from 1 institution(s) (['NBKR'])" in refused
    status = cli("spend", "status", pid, "--token", officers.proposer)
    assert "signed by NBKR" in status
    assert "ACH" not in status.split("signed by", 1)[1].splitlines()[0]
