"""A treasury key rotation hands the registry's publisher over, end to end on the devnets.

One module-scoped world (a reserve built by ``attest_support``): attestation 1 by the first
treasury key; `treasury announce key-rotation` to a new key, crashed (an exception injected) after
``set_publisher`` and before the database records it, then run again to completion; attestation 2
through the attest service with the new key. The auditor's original trust file (first key,
registry and its first publisher pinned) plus the announcements file verifies attestation 2
against the live nodes; without the file the rotated key and publisher are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from attest_support import Reserve, reserve_fixture
from bundle_support import failed
from eth_account import Account
from reserve_verifier import CheckStatus, verify_bundle
from reserve_verifier.announcements import parse_announcements
from reserve_verifier.trust import RegistryPin, TrustAnchors, parse_trust, trust_document
from sqlalchemy import select
from typer.testing import CliRunner
from web3 import Web3
from web3.types import RPCEndpoint

from custody.devnet import EvmNode
from reporting.anchor import deploy_registry
from reporting.announcement import (
    announced_before,
    hand_over_publisher,
    read_announcements,
    registry_publisher,
)
from reporting.attestation import SignerRole
from treasury import audit, migrate
from treasury.attest import AttestError, AttestResult, RegistryRecord
from treasury.attest.keys import load_role_key
from treasury.attest.service import ensure_registry, publisher_account
from treasury.cli import announce as announce_command
from treasury.cli import app
from treasury.db import make_engine, session_factory

GAS_WEI = 10**21
"""Devnet ether for the new key's publications (a real rotation funds it the same way)."""

reserve = reserve_fixture("publisher-handover")


class SimulatedCrashError(RuntimeError):
    """Stands for the process dying between the chain call and the database write."""


@dataclass(frozen=True)
class Handover:
    """What the rotation did, observed at each step, and the two attestations around it."""

    first: AttestResult
    second: AttestResult
    new_key: Path
    announcements: Path
    crashed: Any
    """The CLI result of the run that died after ``set_publisher``."""
    after_crash: tuple[str, str]
    """(registry's publisher on chain, recorded publisher) right after the crash."""
    rerun: Any
    """The CLI result of the run that completed the hand-over."""


def _recorded_publisher(reserve: Reserve) -> str:
    with reserve.sessions() as session:
        publisher = session.scalar(select(RegistryRecord.publisher))
    assert publisher is not None
    return str(publisher)


def _rotate(reserve: Reserve, new_key: Path, announcements: Path) -> Any:
    """`treasury announce key-rotation --role treasury` with the reserve's key files."""
    return CliRunner().invoke(
        app,
        ["announce", "key-rotation", "--role", "treasury",
         "--old-key", str(reserve.treasury_key_file), "--new-key", str(new_key),
         "--generate-new-key", "--countersign-key", str(reserve.auditor_key_file),
         "--publisher-key", str(reserve.treasury_key_file),
         "--announcements", str(announcements)],
    )  # fmt: skip


@pytest.fixture(scope="module")
def handover(reserve: Reserve, tmp_path_factory: pytest.TempPathFactory) -> Handover:
    """Attest with key 1; rotate to key 2 (crashing once before the record); attest with key 2."""
    folder = tmp_path_factory.mktemp("handover")
    first = reserve.attest(out=folder / "attestation-1.json")
    new_key = reserve.treasury_key_file.with_name("treasury-next.key")
    announcements = folder / "announcements.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TREASURY_DATABASE_URL", reserve.url)
        patch.setenv("TREASURY_SERVICES_RPC_URL", reserve.services_node.rpc_url)
        with mock.patch.object(
            announce_command, "_record_publisher", side_effect=SimulatedCrashError
        ):
            crashed = _rotate(reserve, new_key, announcements)
        registry = first.bundle.body["registry"]["address"]
        after_crash = (registry_publisher(reserve.services, registry), _recorded_publisher(reserve))
        rerun = _rotate(reserve, new_key, announcements)
    rotated = load_role_key(new_key, SignerRole.TREASURY)
    address = publisher_account(rotated).address
    reserve.services.provider.make_request(RPCEndpoint("anvil_setBalance"), [address, hex(GAS_WEI)])
    second = dataclasses.replace(reserve, treasury=rotated).attest(
        out=folder / "attestation-2.json"
    )
    return Handover(first, second, new_key, announcements, crashed, after_crash, rerun)


def _new_address(handover: Handover) -> str:
    return publisher_account(load_role_key(handover.new_key, SignerRole.TREASURY)).address


def _trust(reserve: Reserve, first: AttestResult) -> TrustAnchors:
    """The auditor's trust file, written before the rotation: key 1, the registry and its first
    publisher, the genesis attestation."""
    registry = first.bundle.body["registry"]
    document = trust_document(
        [reserve.treasury.public_key.to_bytes().hex()],
        [reserve.auditor.public_key.to_bytes().hex()],
        RegistryPin(registry["chain_id"], registry["address"], registry["publisher"]),
        first.bundle.digest.hex(),
    )
    return parse_trust(json.dumps(document))


def test_a_crash_after_the_chain_call_is_completed_by_a_rerun(
    reserve: Reserve, handover: Handover
) -> None:
    """The crashed run announced the rotation and moved the publisher on chain but recorded
    nothing; the re-run sends nothing twice (the announcement, the hand-over) and records the
    publisher the chain already has."""
    old_address = publisher_account(reserve.treasury).address
    new_address = _new_address(handover)
    assert isinstance(handover.crashed.exception, SimulatedCrashError)
    assert handover.after_crash == (new_address, old_address)
    assert handover.rerun.exit_code == 0, handover.rerun.output
    assert "announced by an earlier run, not resent" in handover.rerun.output
    assert f"publisher handed to {new_address} (already on chain, now recorded)" in (
        handover.rerun.output
    )
    (statement,) = read_announcements(handover.announcements.read_bytes())
    assert statement.new_publisher == new_address
    assert statement.effective_from_sequence == 2
    registry = handover.first.bundle.body["registry"]["address"]
    assert announced_before(reserve.services, registry, statement.digest) == 2
    with reserve.sessions() as session:
        (event,) = _publisher_events(session)
        assert event.actor == "announce key-rotation"
        assert json.loads(event.payload)["publisher"] == new_address
        assert audit.verify(session).ok


def test_the_new_key_attests_and_publishes(reserve: Reserve, handover: Handover) -> None:
    """Attestation 2 is signed by the new key, names it as the registry's publisher, and was
    published by it; the record follows."""
    body = handover.second.bundle.body
    assert body["sequence"] == 2
    new = load_role_key(handover.new_key, SignerRole.TREASURY)
    assert body["signers"]["treasury"]["public_key"] == new.public_key.to_bytes().hex()
    assert body["registry"]["publisher"] == _new_address(handover)
    assert body["registry"]["address"] == handover.first.bundle.body["registry"]["address"]
    assert handover.second.bundle.anchors["services"]["sequence"] == 2
    assert _recorded_publisher(reserve) == _new_address(handover)


def test_the_original_trust_file_and_the_announcements_verify_attestation_2_online(
    reserve: Reserve, handover: Handover
) -> None:
    """With the announcements file, the pins moved by the announced rotation (key and publisher)
    accept attestation 2 against the live nodes: nothing fails. Without it, the same bundle fails
    the pinned treasury key and the pinned publisher."""
    pins = _trust(reserve, handover.first)
    bundle = handover.second.bundle.to_bytes()
    announced = parse_announcements(handover.announcements.read_bytes())
    report = verify_bundle(
        bundle,
        nodes=reserve.verify_nodes,
        previous=handover.first.bundle,
        anchors=pins,
        announced=announced,
    )
    assert not report.failed(), report.render()
    for name in ("announcements", "pinned treasury key", "pinned registry", "services anchor"):
        assert report.status_of(name) is CheckStatus.OK, report.render()
    assert "registry publisher handed to" in report.render()
    alone = failed(
        verify_bundle(
            bundle, nodes=reserve.verify_nodes, previous=handover.first.bundle, anchors=pins
        )
    )
    assert "not pinned" in alone["pinned treasury key"]
    assert "publisher" in alone["pinned registry"]


def test_the_rotated_out_key_can_no_longer_attest(reserve: Reserve, handover: Handover) -> None:
    """After the hand-over the old key is refused before anything is built or sent."""
    with pytest.raises(AttestError, match="accepts only publisher"):
        reserve.attest()
    assert _recorded_publisher(reserve) == _new_address(handover)


def test_attest_records_a_hand_over_the_command_did_not(
    services_node: EvmNode, tmp_path: Path
) -> None:
    """If the command died after ``set_publisher`` and is not re-run, the next attestation's
    registry step reads the chain's publisher and records it for the new key, while the old key
    (the stale record's) is refused."""
    w3 = Web3(Web3.HTTPProvider(services_node.rpc_url))
    old, new = (
        Account.from_key(hashlib.sha256(f"handover recovery {n}".encode()).digest())
        for n in ("old", "new")
    )
    w3.provider.make_request("anvil_setBalance", [old.address, hex(GAS_WEI)])  # type: ignore[arg-type]
    address = deploy_registry(w3, old, old.address)
    url = f"sqlite:///{tmp_path / 'recovery.sqlite3'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        session.add(
            RegistryRecord(
                chain_id=w3.eth.chain_id,
                address=address,
                publisher=old.address,
                deployed_at=datetime(2026, 3, 1, tzinfo=UTC),
            )
        )
    assert hand_over_publisher(w3, address, old, new.address) is not None
    assert hand_over_publisher(w3, address, old, new.address) is None
    with sessions.begin() as session, pytest.raises(AttestError, match=r"recorded: 0x"):
        ensure_registry(session, w3, old)
    with sessions.begin() as session:
        assert ensure_registry(session, w3, new).publisher == new.address
    with sessions() as session:
        assert session.scalar(select(RegistryRecord.publisher)) == new.address
        (event,) = _publisher_events(session)
        assert event.actor == "attest"
        assert json.loads(event.payload) == {
            "previous_publisher": old.address,
            "publisher": new.address,
        }
    engine.dispose()


def _publisher_events(session: Any) -> list[audit.AuditEvent]:
    """The audit log's records of registry publisher changes."""
    return list(
        session.scalars(
            select(audit.AuditEvent).where(
                audit.AuditEvent.kind == audit.AuditKind.REGISTRY_PUBLISHER.value
            )
        )
    )
