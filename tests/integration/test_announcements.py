"""Key rotations and vault-set changes: signed by the keys in force, announced in the registry
before they take effect, and applied by the verifier to the auditor's pins.

One registry on the services anvil (module scope); each test announces its own statements in a
registry it deploys, so the order of tests does not matter. Bundles are built and signed by the
producer's code, and read by the verifier's own.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bundle_support import failed, liabilities
from eth_account import Account
from eth_account.signers.local import LocalAccount
from registry_support import asset_registry, snapshot_vaults
from reserve_verifier import CheckStatus, verify_bundle
from reserve_verifier.announcements import Announcement, effective_trust, parse_announcements
from reserve_verifier.exceptions import VerifierError
from reserve_verifier.trust import RegistryPin, TrustAnchors, parse_trust, trust_document
from sqlalchemy import select
from typer.testing import CliRunner, Result
from web3 import Web3

from custody.devnet import EvmNode
from reporting.anchor import announce_digest, deploy_registry, publish_digest
from reporting.announcement import (
    COUNTERSIGNER,
    INCOMING,
    OUTGOING,
    AnnouncementError,
    SignedStatement,
    announcements_document,
    key_rotation,
    publish_statement,
    registry_publisher,
    sign_statement,
    vault_set,
)
from reporting.attestation import (
    AttestationInputs,
    AuditHead,
    BitcoinSnapshot,
    BlockRef,
    EvmSnapshot,
    KeySigner,
    RegistryRef,
    SignerRole,
    build_attestation,
    sign_bundle,
)
from reporting.bundle import Bundle, canonical_json
from reporting.holdings import SafeBalanceHolding
from treasury import migrate
from treasury.attest.records import RegistryRecord
from treasury.cli import app
from treasury.db import make_engine, session_factory


def _key(role: SignerRole, label: str) -> KeySigner:
    return KeySigner(role, hashlib.sha256(label.encode()).digest())


TREASURY = _key(SignerRole.TREASURY, "announce test treasury")
TREASURY_NEXT = _key(SignerRole.TREASURY, "announce test treasury, rotated")
AUDITOR = _key(SignerRole.AUDITOR, "announce test audit office")
THIEF = _key(SignerRole.TREASURY, "announce test thief")
DEPLOYER = Account.from_key(hashlib.sha256(b"announce test deployer").digest())
PUBLISHER: LocalAccount = Account.from_key(TREASURY.private_key)
SAFE_RETIRED = Web3.to_checksum_address("0x" + "4b" * 20)
SAFE = Web3.to_checksum_address("0x" + "5a" * 20)
VAULTS_BEFORE = {"bitcoin": [], "evm": [{"chain_id": 31337, "safe_address": SAFE_RETIRED}]}
"""The pinned vault set: one Safe, retired by the announced change."""
VAULTS_AFTER = {"bitcoin": [], "evm": [{"chain_id": 31337, "safe_address": SAFE}]}
"""The announced vault set (the body's ``vaults`` form): the new Safe replaces the old one."""


def _public(signer: KeySigner) -> str:
    return signer.public_key.to_bytes().hex()


@pytest.fixture(scope="module")
def w3(services_node: EvmNode) -> Web3:
    w3 = Web3(Web3.HTTPProvider(services_node.rpc_url))
    for account in (DEPLOYER, PUBLISHER):
        w3.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])  # type: ignore[arg-type]
    return w3


@pytest.fixture
def registry(w3: Web3) -> RegistryRef:
    """A fresh registry whose publisher is the treasury's key, with attestation 1 published."""
    address = deploy_registry(w3, DEPLOYER, PUBLISHER.address)
    publish_digest(w3, address, PUBLISHER, hashlib.sha256(b"attestation 1").digest())
    return RegistryRef(w3.eth.chain_id, address, PUBLISHER.address)


def pinned(registry: RegistryRef) -> TrustAnchors:
    """The auditor's pins: the first treasury and audit-office keys, this registry, the vaults."""
    document = trust_document(
        [_public(TREASURY)],
        [_public(AUDITOR)],
        RegistryPin(registry.chain_id, registry.address.lower(), registry.publisher.lower()),
        vaults=VAULTS_BEFORE,
    )
    return parse_trust(json.dumps(document))


def rotation(registry: RegistryRef, *, outgoing: KeySigner = TREASURY) -> SignedStatement:
    """The treasury's rotation to ``TREASURY_NEXT`` from attestation 2; ``outgoing`` signs as
    the old key (the producer's own slot check is bypassed to forge a statement)."""
    statement = key_rotation(
        registry, SignerRole.TREASURY, _public(TREASURY), _public(TREASURY_NEXT), 2
    )
    statement = replace(
        statement,
        signatures={OUTGOING: outgoing.sign_digest(statement.digest).hex()},
    )
    statement = sign_statement(statement, INCOMING, TREASURY_NEXT)
    return sign_statement(statement, COUNTERSIGNER, AUDITOR)


def new_vaults(registry: RegistryRef, *, auditor: KeySigner = AUDITOR) -> SignedStatement:
    """The vault set with a second Bitcoin vault from attestation 2, signed by both offices."""
    statement = sign_statement(vault_set(registry, VAULTS_AFTER, 2), "treasury", TREASURY)
    return replace(
        statement,
        signatures={**statement.signatures, "auditor": auditor.sign_digest(statement.digest).hex()},
    )


def read(*statements: SignedStatement) -> tuple[Announcement, ...]:
    """The statements as the verifier reads them from the announcements file."""
    return parse_announcements(canonical_json(announcements_document(statements)))


def second_bundle(registry: RegistryRef, treasury: KeySigner = TREASURY) -> Bundle:
    """Attestation 2 of this registry (its vault is the new Safe), signed by ``treasury`` and
    the audit office."""
    tree, totals = liabilities(("ETH",), {"budget:health": (10**18,)}, bytes(range(32)))
    bitcoin = BitcoinSnapshot("regtest", BlockRef(110, "66" * 32), ())
    evm = (
        EvmSnapshot(
            31337,
            BlockRef(50, "0x" + "77" * 32),
            (SafeBalanceHolding(31337, SAFE, "ETH", None, 2 * 10**18),),
        ),
    )
    inputs = AttestationInputs(
        sequence=2,
        previous_digest=hashlib.sha256(b"attestation 1").hexdigest(),
        as_of=datetime(2026, 3, 1, tzinfo=UTC),
        bitcoin=bitcoin,
        evm=evm,
        liabilities=tree,
        ledger_totals=totals,
        audit_head=AuditHead(9, "cd" * 32),
        registry=registry,
        treasury=treasury,
        auditor=AUDITOR,
        assets=asset_registry(31337),
        vaults=snapshot_vaults(bitcoin, evm),
        public_accounts=("budget:health",),
    )
    bundle = build_attestation(inputs)
    return sign_bundle(sign_bundle(bundle, treasury), AUDITOR)


def test_rotation_signed_by_old_key_and_announced_takes_effect(
    w3: Web3, registry: RegistryRef, services_node: EvmNode
) -> None:
    """A rotation signed by the old key, the new key and the audit office, announced before
    attestation 2, makes the new key the one in force from 2, and a bundle signed by it passes
    the pinned-key check that the pins alone refuse."""
    statement = rotation(registry)
    listed, where = publish_statement(w3, registry.address, PUBLISHER, (), statement)
    assert where.before_sequence == 2
    pins = pinned(registry)
    effective = effective_trust(pins, read(*listed), 2, services_node.rpc_url)
    assert effective.signers["treasury"] == (_public(TREASURY_NEXT),)
    assert effective.signers["auditor"] == (_public(AUDITOR),)
    assert effective.applied[0].announced_before == 2
    assert "announced in the registry" in effective.describe()
    earlier = effective_trust(pins, read(*listed), 1, services_node.rpc_url)
    assert earlier.signers["treasury"] == (_public(TREASURY),)
    assert earlier.later == 1
    bundle = second_bundle(registry, TREASURY_NEXT)
    alone = verify_bundle(bundle, anchors=pins)
    assert alone.status_of("pinned treasury key") is CheckStatus.FAILED
    rotated = verify_bundle(bundle, anchors=effective.anchors(pins))
    assert rotated.status_of("pinned treasury key") is CheckStatus.OK, rotated.render()


def test_offline_the_rotation_is_checked_by_signature_only(registry: RegistryRef) -> None:
    """Without the services node the rotation applies on its signatures, and the result says the
    registry was not consulted."""
    effective = effective_trust(pinned(registry), read(rotation(registry)), 2)
    assert effective.signers["treasury"] == (_public(TREASURY_NEXT),)
    assert not effective.online
    assert "checked by signature only" in effective.describe()


def test_rotation_signed_by_the_new_key_only_is_refused(registry: RegistryRef) -> None:
    """A thief holding only the new key cannot hand the role to it: the outgoing signature must
    recover the pinned old key (the same statement with the old key's signature is accepted)."""
    forged = rotation(registry, outgoing=TREASURY_NEXT)
    with pytest.raises(VerifierError, match="not signed by the old treasury key"):
        effective_trust(pinned(registry), read(forged), 2)
    with pytest.raises(AnnouncementError, match="outgoing signature must be by the old"):
        sign_statement(forged, OUTGOING, TREASURY_NEXT)


def test_rotation_away_from_an_unpinned_key_is_refused(registry: RegistryRef) -> None:
    """A rotation whose old key is not in force (a thief's own key) changes nothing: refused."""
    statement = key_rotation(
        registry, SignerRole.TREASURY, _public(THIEF), _public(TREASURY_NEXT), 2
    )
    statement = sign_statement(statement, OUTGOING, THIEF)
    statement = sign_statement(statement, INCOMING, TREASURY_NEXT)
    statement = sign_statement(statement, COUNTERSIGNER, AUDITOR)
    with pytest.raises(VerifierError, match="not a treasury key in force"):
        effective_trust(pinned(registry), read(statement), 2)


def test_rotation_without_the_other_office_is_refused(registry: RegistryRef) -> None:
    """One stolen treasury key cannot rotate the treasury alone: the countersignature must be
    an audit-office key in force."""
    statement = rotation(registry)
    forged = replace(
        statement,
        signatures={
            **statement.signatures,
            COUNTERSIGNER: THIEF.sign_digest(statement.digest).hex(),
        },
    )
    with pytest.raises(VerifierError, match="not countersigned by a key in force for the auditor"):
        effective_trust(pinned(registry), read(forged), 2)


def test_rotation_not_announced_is_refused_online(
    registry: RegistryRef, services_node: EvmNode
) -> None:
    """A correctly signed rotation the registry never recorded passes offline (by signature) but
    is refused against the registry: a change the public was never shown does not count."""
    statement = rotation(registry)
    assert effective_trust(pinned(registry), read(statement), 2).signers["treasury"] == (
        _public(TREASURY_NEXT),
    )
    with pytest.raises(VerifierError, match="not announced in the registry"):
        effective_trust(pinned(registry), read(statement), 2, services_node.rpc_url)


def test_rotation_announced_after_it_took_effect_is_refused(
    w3: Web3, registry: RegistryRef, services_node: EvmNode
) -> None:
    """A rotation effective from 2 but announced only after attestation 2 was published is
    refused online (the producer refuses to send it; the registry call is made directly)."""
    statement = rotation(registry)
    publish_digest(w3, registry.address, PUBLISHER, hashlib.sha256(b"attestation 2").digest())
    with pytest.raises(AnnouncementError, match="must take effect at 3 or later"):
        publish_statement(w3, registry.address, PUBLISHER, (), statement)
    assert announce_digest(w3, registry.address, PUBLISHER, statement.digest).before_sequence == 3
    with pytest.raises(VerifierError, match="announced only before attestation 3"):
        effective_trust(pinned(registry), read(statement), 2, services_node.rpc_url)


def test_statements_out_of_order_are_refused(registry: RegistryRef) -> None:
    """Statements are applied in file order and may not go back in sequence."""
    later = sign_statement(
        sign_statement(vault_set(registry, VAULTS_AFTER, 3), "treasury", TREASURY),
        "auditor",
        AUDITOR,
    )
    earlier = rotation(registry)
    with pytest.raises(VerifierError, match="out of order"):
        effective_trust(pinned(registry), read(later, earlier), 3)


def test_vault_set_change_signed_and_announced_takes_effect(
    w3: Web3, registry: RegistryRef, services_node: EvmNode
) -> None:
    """A new vault set signed by both offices and announced before attestation 2 is the set in
    force from 2 (a bundle listing the new Safe passes the pinned-vaults check the pins alone
    refuse); before it, the set in force is the pinned one."""
    statement = new_vaults(registry)
    listed, _ = publish_statement(w3, registry.address, PUBLISHER, (), statement)
    pins = pinned(registry)
    effective = effective_trust(pins, read(*listed), 2, services_node.rpc_url)
    assert effective.vaults == VAULTS_AFTER
    assert effective.signers == pins.signers
    assert effective_trust(pins, read(*listed), 1, services_node.rpc_url).vaults == VAULTS_BEFORE
    bundle = second_bundle(registry)
    alone = verify_bundle(bundle, anchors=pins)
    assert "omits the pinned Safe" in failed(alone)["pinned vaults"]
    changed = verify_bundle(bundle, anchors=effective.anchors(pins))
    assert changed.status_of("pinned vaults") is CheckStatus.OK, changed.render()


def test_vault_set_not_signed_by_both_offices_is_refused(registry: RegistryRef) -> None:
    """A vault set the audit office did not sign (a second treasury-side key instead) is refused."""
    with pytest.raises(VerifierError, match="not signed by a key in force for the auditor"):
        effective_trust(pinned(registry), read(new_vaults(registry, auditor=THIEF)), 2)


def test_vault_set_not_announced_is_refused_online(
    registry: RegistryRef, services_node: EvmNode
) -> None:
    """A signed vault set the registry never recorded is refused against the registry."""
    statement = new_vaults(registry)
    assert effective_trust(pinned(registry), read(statement), 2).vaults == VAULTS_AFTER
    with pytest.raises(VerifierError, match="not announced in the registry"):
        effective_trust(pinned(registry), read(statement), 2, services_node.rpc_url)


def test_vault_set_after_rotation_is_signed_by_the_new_key(
    w3: Web3, registry: RegistryRef, services_node: EvmNode
) -> None:
    """After a rotation, a later statement is checked against the rotated key: the old one no
    longer signs for the treasury."""
    listed, _ = publish_statement(w3, registry.address, PUBLISHER, (), rotation(registry))
    by_old = new_vaults(registry)
    with pytest.raises(VerifierError, match="not signed by a key in force for the treasury"):
        effective_trust(pinned(registry), read(*listed, by_old), 2)
    by_new = sign_statement(
        sign_statement(vault_set(registry, VAULTS_AFTER, 2), "treasury", TREASURY_NEXT),
        "auditor",
        AUDITOR,
    )
    listed, _ = publish_statement(w3, registry.address, PUBLISHER, listed, by_new)
    effective = effective_trust(pinned(registry), read(*listed), 2, services_node.rpc_url)
    assert effective.vaults == VAULTS_AFTER
    assert effective.signers["treasury"] == (_public(TREASURY_NEXT),)


def test_statement_for_another_registry_is_refused(registry: RegistryRef) -> None:
    """A statement names its registry, so one made for a test deployment is void here."""
    elsewhere = replace(registry, address=Web3.to_checksum_address("0x" + "ee" * 20))
    with pytest.raises(VerifierError, match="not the pinned one"):
        effective_trust(pinned(registry), read(rotation(elsewhere)), 2)


def _key_file(path: Path, signer: KeySigner) -> Path:
    path.write_text(signer.private_key.hex() + "\n")
    path.chmod(0o600)
    return path


def test_cli_announces_a_rotation_and_a_vault_set(
    w3: Web3, services_node: EvmNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`treasury announce key-rotation` and `treasury announce vaults` sign with the key files,
    announce in the recorded registry and append to the file the verifier then applies online;
    the treasury rotation hands the registry's publisher to the new key (on chain and in the
    record), so the vault set is announced by the new key."""
    address = deploy_registry(w3, DEPLOYER, PUBLISHER.address)
    db_url = f"sqlite:///{tmp_path / 'announce.sqlite3'}"
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    with session_factory(engine)() as session, session.begin():
        session.add(
            RegistryRecord(
                chain_id=w3.eth.chain_id,
                address=address,
                publisher=PUBLISHER.address,
                deployed_at=datetime(2026, 3, 1, tzinfo=UTC),
            )
        )
    engine.dispose()
    monkeypatch.setenv("TREASURY_DATABASE_URL", db_url)
    monkeypatch.setenv("TREASURY_SERVICES_RPC_URL", services_node.rpc_url)
    old = _key_file(tmp_path / "treasury.key", TREASURY)
    auditor = _key_file(tmp_path / "auditor.key", AUDITOR)
    new = tmp_path / "treasury-next.key"
    announcements = tmp_path / "announcements.json"
    runner = CliRunner()
    rotated = runner.invoke(
        app,
        ["announce", "key-rotation", "--role", "treasury", "--old-key", str(old),
         "--new-key", str(new), "--generate-new-key", "--countersign-key", str(auditor),
         "--publisher-key", str(old), "--announcements", str(announcements)],
    )  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    assert "effective from attestation 1" in rotated.output
    next_key = Account.from_key(bytes.fromhex(new.read_text().strip()))
    assert f"publisher handed to {next_key.address}" in rotated.output
    assert registry_publisher(w3, address) == next_key.address
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        assert session.scalar(select(RegistryRecord.publisher)) == next_key.address
    engine.dispose()
    w3.provider.make_request("anvil_setBalance", [next_key.address, hex(10**20)])  # type: ignore[arg-type]
    vaults_file = tmp_path / "vaults.json"
    vaults_file.write_text(
        json.dumps({"evm": [{"chain_id": 31337, "safe_address": SAFE.lower()}], "bitcoin": []})
    )

    def announce_vaults(treasury_key: Path, publisher_key: Path) -> Result:
        """`treasury announce vaults` signed by ``treasury_key``, sent by ``publisher_key``."""
        return runner.invoke(
            app,
            ["announce", "vaults", "--vaults", str(vaults_file), "--treasury-key", str(treasury_key),
             "--auditor-key", str(auditor), "--publisher-key", str(publisher_key),
             "--announcements", str(announcements)],
        )  # fmt: skip

    refused = announce_vaults(old, old)
    assert refused.exit_code == 1
    assert "a key an earlier rotation retired" in refused.output
    by_old_publisher = announce_vaults(new, old)
    assert by_old_publisher.exit_code == 1
    assert "only the publisher may announce" in by_old_publisher.output
    changed = announce_vaults(new, new)
    assert changed.exit_code == 0, changed.output
    registry = RegistryRef(w3.eth.chain_id, address, PUBLISHER.address)
    effective = effective_trust(
        pinned(registry), parse_announcements(announcements.read_bytes()), 1, services_node.rpc_url
    )
    assert effective.signers["treasury"] == (
        KeySigner(SignerRole.TREASURY, bytes(next_key.key)).public_key.to_bytes().hex(),
    )
    assert effective.vaults == VAULTS_AFTER
    assert effective.publisher == next_key.address.lower()


WIRED = "announced" in inspect.signature(verify_bundle).parameters
"""Whether ``reserve-verify`` reads ``--announcements`` yet (its wiring is another change)."""


@pytest.mark.skipif(not WIRED, reason="reserve-verify does not take --announcements yet")
def test_reserve_verify_applies_the_announcements_file(
    w3: Web3, registry: RegistryRef, services_node: EvmNode, tmp_path: Path
) -> None:
    """`reserve-verify --trust --announcements --services-rpc` checks attestation 2, signed by
    the rotated key and listing the new vault set, against the pins moved by the announced
    statements; without the file the same bundle fails both pins."""
    from reserve_verifier.cli import Invocation, run
    from reserve_verifier.inputs import Nodes

    listed, _ = publish_statement(w3, registry.address, PUBLISHER, (), rotation(registry))
    by_new = sign_statement(
        sign_statement(vault_set(registry, VAULTS_AFTER, 2), "treasury", TREASURY_NEXT),
        "auditor",
        AUDITOR,
    )
    listed, _ = publish_statement(w3, registry.address, PUBLISHER, listed, by_new)
    bundle = tmp_path / "attestation-2.json"
    bundle.write_bytes(second_bundle(registry, TREASURY_NEXT).to_bytes())
    trust = tmp_path / "trust.json"
    trust.write_text(
        json.dumps(
            trust_document(
                [_public(TREASURY)],
                [_public(AUDITOR)],
                RegistryPin(registry.chain_id, registry.address, registry.publisher),
                vaults=VAULTS_BEFORE,
            )
        )
    )
    announcements = tmp_path / "announcements.json"
    announcements.write_bytes(canonical_json(announcements_document(listed)))
    nodes = Nodes(services=services_node.rpc_url)
    report = run(Invocation(bundle, trust=trust, announcements=announcements, nodes=nodes))
    for name in ("announcements", "pinned treasury key", "pinned auditor key", "pinned vaults"):
        assert report.status_of(name) is CheckStatus.OK, report.render()
    assert "announced in the registry" in report.render()
    alone = failed(run(Invocation(bundle, trust=trust, nodes=nodes)))
    assert "not pinned" in alone["pinned treasury key"]
    assert "omits the pinned Safe" in alone["pinned vaults"]
