"""``treasury announce``: publish a key rotation or a new vault set before it takes effect.

Each command builds the statement (``reporting.announcement``), has it signed by every key the
format asks for, announces its digest in the attestation registry (by the registry's publisher,
the treasury's attestation key in force) and appends it to the announcements file that auditors
read beside the bundles (``reserve-verify --announcements FILE``). Nothing is sent or written if
a key is the wrong one, the statement is out of order, or it would take effect before the
registry's next attestation.

After a rotation takes effect, the attest command must be given the new key file. A rotation of
the treasury's key, while the registry's publisher is that key, also hands publishing over: the
statement carries ``new_publisher`` (the new key's address), and once it is announced the old key
calls ``set_publisher`` and the new publisher is recorded (``RegistryRecord.publisher``). The
registry is the truth on who publishes: if the command stops between the chain call and the
record, running it again (nothing is sent twice) or the next ``treasury attest`` records it.
The new key needs gas on the services chain before it publishes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select
from web3 import Web3
from web3.exceptions import Web3Exception

from custody.ethereum.web3_client import web3_client
from reporting.anchor import registry_contract
from reporting.announcement import (
    COUNTERSIGNER,
    INCOMING,
    OUTGOING,
    Announced,
    AnnouncementError,
    SignedStatement,
    announcements_document,
    ensure_announced,
    hand_over_publisher,
    key_rotation,
    read_announcements,
    registry_publisher,
    sign_statement,
    vault_set,
)
from reporting.attestation import KeySigner, RegistryRef, SignerRole, VaultSet
from reporting.bundle import canonical_json, parse_json
from reporting.exceptions import ReportingError
from treasury.attest.keys import role_key
from treasury.attest.records import RegistryRecord
from treasury.attest.service import publisher_account, record_publisher
from treasury.cli.context import committed_session, fail, settings
from treasury.exceptions import TreasuryError

DEFAULT_ANNOUNCEMENTS = Path("var") / "announcements.json"
"""The announcements file published beside the bundles unless ``--announcements`` says otherwise."""

app = typer.Typer(
    help=(
        "Announce a change of what auditors trust (a signing key, the vault set) in the "
        "registry, before the first attestation it governs."
    ),
    no_args_is_help=True,
)

AnnouncementsOption = Annotated[
    Path, typer.Option(help="The announcements file to append to (created if missing).")
]
EffectiveOption = Annotated[
    int | None,
    typer.Option(
        help="The first attestation the change governs (default: the registry's next one)."
    ),
]
PublisherOption = Annotated[
    Path,
    typer.Option(
        help="The registry publisher's key file: the treasury's attestation key in force."
    ),
]


def _registry(chain_id: int) -> RegistryRef:
    """The recorded registry of the services chain (deployed by the first attestation)."""
    with committed_session() as session:
        record = session.scalar(select(RegistryRecord).where(RegistryRecord.chain_id == chain_id))
        if record is None:
            raise fail(
                f"no attestation registry is recorded for chain {chain_id}; attest once first."
            )
        return RegistryRef(record.chain_id, record.address, record.publisher)


def _listed(path: Path) -> tuple[SignedStatement, ...]:
    """The statements already in the file (none if it does not exist yet)."""
    if not path.exists():
        return ()
    return read_announcements(path.read_bytes())


def _write(path: Path, statements: tuple[SignedStatement, ...]) -> None:
    """Replace the file atomically with the whole list (canonical JSON, one trailing newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(canonical_json(announcements_document(statements)) + b"\n")
    os.replace(partial, path)


def _vault_set(path: Path) -> dict[str, Any]:
    """The vault file in the body's own ``vaults`` form (scripts and Safes sorted, Safes EIP-55),
    so the set announced compares equal to the bundles' whatever order the file lists it in."""
    try:
        document = parse_json(path.read_bytes())
        scripts = tuple(bytes.fromhex(script) for script in document["bitcoin"])
        safes = tuple(
            (int(safe["chain_id"]), str(safe["safe_address"])) for safe in document["evm"]
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise fail(
            f"the vault set {path} is not {{'bitcoin': [script hex], 'evm': [{{chain_id, "
            f"safe_address}}]}}: {exc}"
        ) from None
    return VaultSet(scripts, safes).to_dict()


Build = Callable[[Web3, RegistryRef, int], SignedStatement]
"""Builds and signs the statement from the services chain, the registry and its next sequence."""

Then = Callable[[Web3, RegistryRef, SignedStatement], None]
"""What follows a statement once it is announced and listed (the publisher hand-over)."""


def _record_publisher(chain_id: int, publisher: str) -> None:
    """Record the registry's new publisher (one transaction; the chain already says so)."""
    with committed_session() as session:
        record = session.scalar(select(RegistryRecord).where(RegistryRecord.chain_id == chain_id))
        if record is None:
            raise fail(f"no attestation registry is recorded for chain {chain_id}.")
        if record.publisher != publisher:
            record_publisher(session, record, publisher, actor="announce key-rotation")


def _announce(path: Path, publisher_key: Path, build: Build, then: Then | None = None) -> None:
    """Build and sign with ``build``, announce (unless an earlier run did), append, then
    ``then``; print where."""
    try:
        w3 = web3_client(settings().services_rpc_url())
        registry = _registry(int(w3.eth.chain_id))
        publisher = publisher_account(role_key(publisher_key, SignerRole.TREASURY, generate=False))
        following = int(registry_contract(w3, registry.address).functions.count().call()) + 1
        statement = build(w3, registry, following)
        announced: Announced = ensure_announced(
            w3, registry.address, publisher, _listed(path), statement
        )
        _write(path, announced.statements)
        if then is not None:
            then(w3, registry, statement)
    except (ReportingError, TreasuryError) as exc:
        raise fail(exc) from None
    except (OSError, Web3Exception) as exc:
        raise fail(f"a file or node could not be used: {exc}") from None
    where = announced.where
    sent = f"tx {where.tx_hash}" if where is not None else "announced by an earlier run, not resent"
    typer.echo(
        f"announced {statement.kind.value} {statement.digest.hex()} effective from attestation "
        f"{statement.effective_from_sequence}: registry {registry.address} {sent} "
        f"(before attestation {announced.before_sequence}) -> {path}"
    )


@app.command("key-rotation")
def announce_key_rotation(
    role: Annotated[SignerRole, typer.Option(help="Whose key is rotated.")],
    old_key: Annotated[Path, typer.Option(help="The role's key file in force (0600).")],
    new_key: Annotated[Path, typer.Option(help="The role's new key file (0600).")],
    countersign_key: Annotated[
        Path, typer.Option(help="The other office's key file in force (0600).")
    ],
    publisher_key: PublisherOption = Path("keys/treasury-attestation.key"),
    effective_from: EffectiveOption = None,
    announcements: AnnouncementsOption = DEFAULT_ANNOUNCEMENTS,
    generate_new_key: Annotated[
        bool, typer.Option(help="Create the new key file (0600) if it does not exist.")
    ] = False,
) -> None:
    """Rotate the treasury's or the audit office's key: signed by the old key, the new key and the other office, announced in the registry."""
    other = SignerRole.AUDITOR if role is SignerRole.TREASURY else SignerRole.TREASURY
    outgoing: list[KeySigner] = []

    def build(w3: Web3, registry: RegistryRef, following: int) -> SignedStatement:
        old = role_key(old_key, role, generate=False)
        incoming = role_key(new_key, role, generate=generate_new_key)
        countersigner: KeySigner = role_key(countersign_key, other, generate=False)
        outgoing.append(old)
        effective = effective_from or following
        new_publisher = _hand_over_to(w3, registry, role, old, incoming, effective, following)
        statement = key_rotation(
            registry,
            role,
            old.public_key.to_bytes().hex(),
            incoming.public_key.to_bytes().hex(),
            effective,
            new_publisher=new_publisher,
        )
        statement = sign_statement(statement, OUTGOING, old)
        statement = sign_statement(statement, INCOMING, incoming)
        return sign_statement(statement, COUNTERSIGNER, countersigner)

    def hand_over(w3: Web3, registry: RegistryRef, statement: SignedStatement) -> None:
        new_publisher = statement.new_publisher
        if new_publisher is None:
            return
        tx_hash = hand_over_publisher(
            w3, registry.address, publisher_account(outgoing[0]), new_publisher
        )
        _record_publisher(registry.chain_id, new_publisher)
        sent = f"tx {tx_hash}" if tx_hash else "already on chain, now recorded"
        typer.echo(f"registry {registry.address} publisher handed to {new_publisher} ({sent})")

    _announce(announcements, publisher_key, build, hand_over)


def _hand_over_to(
    w3: Web3,
    registry: RegistryRef,
    role: SignerRole,
    old: KeySigner,
    new: KeySigner,
    effective: int,
    following: int,
) -> str | None:
    """The ``new_publisher`` of this rotation: the new key's address if it rotates the treasury
    key that publishes (or already published: a resumed run), else None (the publisher stays).

    A hand-over is immediate, so the rotation must govern the very next attestation: otherwise
    attestations before it would be signed by the old key but publishable only by the new one.
    """
    if role is not SignerRole.TREASURY:
        return None
    old_address = publisher_account(old).address
    new_address = publisher_account(new).address
    if registry_publisher(w3, registry.address) not in (old_address, new_address):
        return None
    if effective != following:
        raise AnnouncementError(
            f"This rotation hands the registry's publisher to the new key at once, so it must take effect at the registry's next attestation {following}, not {effective}."
        )
    return new_address


@app.command("vaults")
def announce_vaults(
    vaults: Annotated[
        Path, typer.Option(help="The whole new vault set (JSON object, the body's 'vaults' form).")
    ],
    treasury_key: Annotated[
        Path, typer.Option(help="The treasury's attestation key file in force (0600).")
    ] = Path("keys/treasury-attestation.key"),
    auditor_key: Annotated[
        Path, typer.Option(help="The audit office's attestation key file in force (0600).")
    ] = Path("keys/audit-office-attestation.key"),
    publisher_key: PublisherOption = Path("keys/treasury-attestation.key"),
    effective_from: EffectiveOption = None,
    announcements: AnnouncementsOption = DEFAULT_ANNOUNCEMENTS,
) -> None:
    """Announce a new vault set (a vault added or removed), signed by both offices' keys in force."""

    def build(_w3: Web3, registry: RegistryRef, following: int) -> SignedStatement:
        statement = vault_set(registry, _vault_set(vaults), effective_from or following)
        for role, path in ((SignerRole.TREASURY, treasury_key), (SignerRole.AUDITOR, auditor_key)):
            statement = sign_statement(statement, role.value, role_key(path, role, generate=False))
        return statement

    _announce(announcements, publisher_key, build)
