"""``treasury window`` against a real services-chain anvil, on both databases.

The registry is deployed by ``treasury window deploy``; the commands then run on the workflow
tests' world (a founded roster whose signed policy puts BTC spends of 5 BTC or more under a
24-hour window) through the CLI's own argument parsing, token and key-file reading. The signer's
side is ``check_delay_window``, the check the custody gate runs before every signature, reading
the same registry and the roster from the database: it must refuse inside the window (naming
when it opens) and for good after a veto. Each test attacks one promise: announcing twice,
announcing what is not prepared, vetoing with a key the roster does not hold.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from authority_support import k1_sign, private_key
from signed_approvals_support import Roster, StatementChain, found_roster
from sqlalchemy import select
from token_files import token_file
from typer.testing import CliRunner, Result
from workflow_support import DECREE, DESTINATION, SHARES, World, build_world

from custody.authority import StatementKind, create_key_file
from custody.authority.delay import (
    VetoedOnChainError,
    WindowOpenError,
    WindowVerdict,
    check_delay_window,
    proposal_key,
)
from custody.authority.quorum import SpendUnderReview
from custody.devnet import EvmNode
from custody.ethereum import EthChain
from custody.ethereum.announcements import ServicesChainWindow, submit_veto
from custody.exceptions import CustodyError
from custody.nodes import NodeEndpoints
from treasury.announcements import AnnouncementRow, SpendVetoRow
from treasury.authority.store import require_roster_state
from treasury.cli import app
from treasury.cli import window as window_cli
from treasury.cli.context import fail
from treasury.cli.officers import CliContext, OfficerContext, read_token
from treasury.exceptions import TreasuryError
from treasury.officers import authenticate
from treasury.proposals import ProposalState, ProposalView
from treasury.proposals.signed_statements import statement_subject
from treasury.settings import SERVICES_RPC_URL_ENV, Settings, SpendSettings

SATS_PER_BTC = 100_000_000
LARGE_SATS = 6 * SATS_PER_BTC
"""At or above the world's signed veto threshold (5 BTC), within its per-spend limit."""
WINDOW_SECONDS = 24 * 3600
"""The world's signed ``veto_window_seconds``."""
PASSPHRASE = "correct horse battery staple"
TEST_SCRYPT_N = 2**10
"""A cheap scrypt cost: the tests check the signing path, not the stretching."""


@dataclass(frozen=True)
class Registry:
    """The registry ``treasury window deploy`` deployed, as its printed settings name it."""

    address: str
    from_block: int
    window: ServicesChainWindow


@dataclass(frozen=True)
class OfficerKey:
    key_file: Path
    passphrase_file: Path

    def options(self) -> list[str]:
        return ["--key-file", str(self.key_file), "--passphrase-file", str(self.passphrase_file)]


@pytest.fixture(scope="module")
def chain(services_node: EvmNode) -> EthChain:
    return EthChain(services_node.rpc)


@pytest.fixture
def registry(services_node: EvmNode, chain: EthChain) -> Registry:
    """A fresh registry, deployed through the CLI from the environment's services node."""
    result = CliRunner().invoke(
        app, ["window", "deploy"], env={SERVICES_RPC_URL_ENV: services_node.rpc_url}
    )
    assert result.exit_code == 0, result.stderr
    address = re.search(r"^TREASURY_WINDOW_REGISTRY=(0x[0-9a-fA-F]{40})$", result.stdout, re.M)
    from_block = re.search(r"^TREASURY_WINDOW_FROM_BLOCK=(\d+)$", result.stdout, re.M)
    assert address is not None, result.stdout
    assert from_block is not None, result.stdout
    assert "checked against the committed artifact" in result.stdout
    window = ServicesChainWindow(chain, address[1], from_block=int(from_block[1]))
    return Registry(address[1], int(from_block[1]), window)


@pytest.fixture
def founded(db_url: str) -> Iterator[Roster]:
    """The workflow tests' world with its roster founded (genesis, approvers, signed policy)."""
    built = build_world(db_url)
    built.chain = StatementChain(SHARES, required_signatures=2)
    yield found_roster(built)
    built.engine.dispose()


@pytest.fixture
def world(founded: Roster) -> World:
    return founded.world


def _key(folder: Path, name: str, secret: bytes | None = None) -> OfficerKey:
    """An encrypted officer key file; with ``secret``, the key the roster registered for them."""
    key_file = folder / f"{name}.key"
    if secret is None:
        create_key_file(key_file, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    else:
        create_key_file(key_file, PASSPHRASE, scrypt_n=TEST_SCRYPT_N, random_bytes=lambda _: secret)
    passphrase_file = folder / f"{name}.passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    return OfficerKey(key_file, passphrase_file)


def _roster_key(folder: Path, name: str) -> OfficerKey:
    """The officer's key file holding the key ``found_roster`` signed into the roster."""
    return _key(folder, name, private_key(f"officer key of {name}"))


def _use_world(
    world: World, monkeypatch: pytest.MonkeyPatch, services: EvmNode, registry: Registry | None
) -> None:
    """Run the window commands on the world's database and workflow, with the services chain
    and (if given) the deployed registry as the settings would configure them."""
    configured = Settings(
        database_url=world.url,
        nodes=NodeEndpoints(services_rpc_url=services.rpc_url),
        spends=SpendSettings(
            window_registry=None if registry is None else registry.address,
            window_from_block=0 if registry is None else registry.from_block,
        ),
    )

    @contextlib.contextmanager
    def cli_context(token_file: str | None) -> Iterator[OfficerContext]:
        token = read_token(token_file)  # the CLI's own reading of --token-file
        with world.sessions() as session:
            actor = authenticate(session, token, now=world.clock())
        with _errors_as_lines():
            yield OfficerContext(configured, world.sessions, world.workflow(), actor)

    @contextlib.contextmanager
    def workflow_context() -> Iterator[CliContext]:
        with _errors_as_lines():
            yield CliContext(configured, world.sessions, world.workflow())

    monkeypatch.setattr(window_cli, "cli_context", cli_context)
    monkeypatch.setattr(window_cli, "workflow_context", workflow_context)


@contextlib.contextmanager
def _errors_as_lines() -> Iterator[None]:
    """What the real contexts add around a command: its domain errors as one line, exit 1."""
    try:
        yield
    except (TreasuryError, CustodyError) as exc:
        raise fail(str(exc)) from None


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, ["window", *args])


def _as(world: World, officer: str) -> tuple[str, str]:
    return token_file(world.tokens[officer])


def _proposed(world: World, amount: int = LARGE_SATS, *, prepare: bool = True) -> ProposalView:
    wf = world.workflow()
    view = wf.propose(
        world.officers["proposer"],
        asset="BTC",
        amount=amount,
        destination=DESTINATION,
        purpose="Pay for the new data centre",
        legal_basis=DECREE,
    )
    if prepare:
        view = wf.prepare(world.officers["proposer"], view.id, world.chain)
    return view


def _signer_check(world: World, proposal_id: int, registry: Registry) -> WindowVerdict | None:
    """The custody gate's window check on the proposal's transaction, as a signer that decoded
    it sees it: the roster replayed from the database, a reader of its own on the registry."""
    with world.sessions() as session:
        state = require_roster_state(session)
        subject = statement_subject(session, proposal_id)
    spend = SpendUnderReview(
        chain=subject.chain,
        vault_id=subject.vault_id,
        asset=subject.asset,
        amount=subject.amount,
        destination=subject.destination,
        tx_hash=subject.tx_hash,
        fee=1_000,
        safe_nonce=subject.safe_nonce,
    )
    reader = ServicesChainWindow(registry.window.chain, registry.address)
    return check_delay_window(state, spend, str(proposal_id), reader)


def _advance(chain: EthChain, seconds: int) -> None:
    chain.rpc.call("evm_increaseTime", seconds)
    chain.rpc.call("evm_mine")


def _status_json(proposal_id: int) -> dict[str, object]:
    result = _run("status", str(proposal_id), "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    (spend,) = document["pending_spends"]
    assert isinstance(spend, dict)
    return spend


def test_announce_then_the_signer_waits_out_the_window_and_status_follows(
    world: World,
    registry: Registry,
    services_node: EvmNode,
    chain: EthChain,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`window announce` puts the spend on chain and says when its window opens (UTC and block
    time); the signer refuses inside it naming the same time; a second run sends nothing and
    prints the same announcement; `status` says waiting, then open once the services chain's
    time passes the window, and the signer then signs."""
    _use_world(world, monkeypatch, services_node, registry)
    view = _proposed(world)

    result = _run("announce", str(view.id), *_as(world, "proposer"))
    assert result.exit_code == 0, result.stderr
    with world.sessions() as session:
        row = session.scalars(
            select(AnnouncementRow).where(AnnouncementRow.proposal_id == view.id)
        ).one()
    assert f"proposal {view.id} announced" in result.stdout
    assert "6 BTC (600000000 sat)" in result.stdout
    assert f"opens at {row.opens_at.isoformat()} UTC" in result.stdout
    assert f"services-chain block time {int(row.opens_at.timestamp())}" in result.stdout
    assert "1 day" in result.stdout
    ((announced, _, tx_hash),) = registry.window.announcements()
    assert announced.digest().hex() == row.announcement_digest
    assert tx_hash == row.services_tx

    with pytest.raises(WindowOpenError) as refused:
        _signer_check(world, view.id, registry)
    assert refused.value.opens_at == row.opens_at
    assert row.opens_at.isoformat() in str(refused.value)

    again = _run("announce", str(view.id), *_as(world, "proposer"))
    assert again.exit_code == 0, again.stderr
    assert f"proposal {view.id} already announced" in again.stdout
    assert row.services_tx in again.stdout
    assert len(registry.window.announcements()) == 1

    listed = _run("status")
    assert listed.exit_code == 0, listed.stderr
    assert f"proposal {view.id}: 6 BTC (600000000 sat)" in listed.stdout
    assert "waiting: the window ends" in listed.stdout
    spend = _status_json(view.id)
    assert (spend["status"], spend["vetoed_by"]) == ("waiting", None)
    assert spend["opens_at"] == row.opens_at.isoformat()

    _advance(chain, WINDOW_SECONDS + 1)
    assert _status_json(view.id)["status"] == "open"
    assert "open: the window ended" in _run("status", str(view.id)).stdout
    verdict = _signer_check(world, view.id, registry)
    assert verdict is not None
    assert verdict.opens_at == row.opens_at


def test_a_veto_through_the_cli_is_final(
    world: World,
    registry: Registry,
    services_node: EvmNode,
    chain: EthChain,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The oversight officer's veto, signed with their key file, lands on chain: status says
    vetoed by PARL, the workflow cancels the proposal, and the signer refuses, also long after
    the window."""
    _use_world(world, monkeypatch, services_node, registry)
    view = _proposed(world)
    assert _run("announce", str(view.id), *_as(world, "proposer")).exit_code == 0
    oversight = _roster_key(tmp_path, "oversight")

    result = _run(
        "veto",
        str(view.id),
        *oversight.options(),
        "--reason",
        "The payee is under investigation",
        *_as(world, "oversight"),
    )
    assert result.exit_code == 0, result.stderr
    assert f"VETO proposal {view.id}: 6 BTC (600000000 sat)" in result.stdout
    assert "a veto is final" in result.stdout
    assert "is rejected" in result.stdout
    assert len(registry.window.vetoes(proposal_key(str(view.id)))) == 1

    spend = _status_json(view.id)
    assert (spend["status"], spend["vetoed_by"]) == ("vetoed", "PARL")
    assert spend["vetoed_by_officer"] == str(world.officers["oversight"].id)
    assert "vetoed by officer" in _run("status", str(view.id)).stdout
    assert world.workflow().status(world.officers["oversight"], view.id).state is (
        ProposalState.REJECTED
    )

    with pytest.raises(VetoedOnChainError):
        _signer_check(world, view.id, registry)
    _advance(chain, 10 * WINDOW_SECONDS)
    with pytest.raises(VetoedOnChainError):
        _signer_check(world, view.id, registry)
    assert _status_json(view.id)["status"] == "vetoed"


def test_a_veto_with_a_key_the_roster_does_not_hold_sends_nothing(
    world: World,
    registry: Registry,
    services_node: EvmNode,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key file that is not the officer's registered key is refused before anything is sent
    or recorded; the same officer's registered key then vetoes (an approver of one institution
    needs no one else)."""
    _use_world(world, monkeypatch, services_node, registry)
    view = _proposed(world)
    assert _run("announce", str(view.id), *_as(world, "proposer")).exit_code == 0
    stranger = _key(tmp_path, "stranger")

    refused = _run("veto", str(view.id), *stranger.options(), *_as(world, "cb_approver"))
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: The veto does not verify against the roster")
    assert "Traceback" not in refused.stderr
    assert registry.window.vetoes(proposal_key(str(view.id))) == ()
    with world.sessions() as session:
        assert session.scalars(select(SpendVetoRow)).first() is None
    assert _status_json(view.id)["status"] == "waiting"

    genuine = _roster_key(tmp_path, "cb_approver")
    result = _run("veto", str(view.id), *genuine.options(), *_as(world, "cb_approver"))
    assert result.exit_code == 0, result.stderr
    assert _status_json(view.id)["vetoed_by"] == "CB"
    with pytest.raises(VetoedOnChainError, match="CB"):
        _signer_check(world, view.id, registry)


def test_status_finds_a_veto_an_institution_sent_itself(
    founded: Roster,
    registry: Registry,
    services_node: EvmNode,
    chain: EthChain,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A veto submitted straight to the registry from another account (no treasury involved)
    shows in `status` and is recorded; a forged one submitted beside it counts for nothing."""
    world = founded.world
    _use_world(world, monkeypatch, services_node, registry)
    view = _proposed(world)
    assert _run("announce", str(view.id), *_as(world, "proposer")).exit_code == 0
    statement = world.workflow().statement(
        world.officers["parl_approver"], view.id, StatementKind.VETO
    )
    genuine = founded.sign("parl_approver", statement)
    forged = replace(
        genuine, signature=k1_sign(private_key("not a roster key"), statement.digest())
    )
    outsider = chain.accounts()[6]
    submit_veto(chain, registry.address, outsider, forged)
    assert _status_json(view.id)["status"] == "waiting"

    submit_veto(chain, registry.address, outsider, genuine)
    spend = _status_json(view.id)
    assert (spend["status"], spend["vetoed_by"]) == ("vetoed", "PARL")
    with world.sessions() as session:
        (recorded,) = session.scalars(select(SpendVetoRow)).all()
    assert recorded.officer_id == str(world.officers["parl_approver"].id)


def test_announcing_what_cannot_be_announced_is_one_clear_error(
    world: World,
    registry: Registry,
    services_node: EvmNode,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unprepared proposal, an unknown one, one below the signed threshold, an officer who
    may not announce, and a treasury with no registry configured: one error line each, and
    nothing reaches the registry."""
    _use_world(world, monkeypatch, services_node, registry)
    unprepared = _proposed(world, prepare=False)
    small = _proposed(world, SATS_PER_BTC)
    cases = [
        (unprepared.id, "proposer", "has no prepared transaction yet"),
        (999_999, "proposer", "999999"),
        (small.id, "proposer", "below the signed policy's veto threshold"),
        (unprepared.id, "cb_approver", "error: "),
    ]
    for proposal_id, officer, message in cases:
        result = _run("announce", str(proposal_id), *_as(world, officer))
        assert result.exit_code == 1, (proposal_id, result.stdout)
        assert result.stderr.startswith("error: "), result.stderr
        assert message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr
    assert registry.window.announcements() == ()

    _use_world(world, monkeypatch, services_node, None)
    large = _proposed(world)
    result = _run("announce", str(large.id), *_as(world, "proposer"))
    assert result.exit_code == 1
    assert "TREASURY_WINDOW_REGISTRY" in result.stderr
    assert registry.window.announcements() == ()


@pytest.mark.parametrize(
    ("command", "teaches"),
    [
        ([], ["veto threshold", "any one institution", "final", "TREASURY_WINDOW_REGISTRY"]),
        (["deploy"], ["committed artifact", "--publisher"]),
        (["announce"], ["prepared", "veto_window_seconds", "existing announcement"]),
        (["veto"], ["--key-file", "--officer-key", "roster", "never sign"]),
        (["status"], ["waiting", "open", "vetoed", "--json"]),
    ],
)
def test_every_command_explains_itself(command: list[str], teaches: list[str]) -> None:
    """`--help` says what the window is, who may veto and what the signers check."""
    result = CliRunner().invoke(app, ["window", *command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.replace("│", " ").split()).lower()
    for phrase in teaches:
        assert phrase.lower() in text, (command, phrase)
