"""``treasury passkeys``: the passkeys officers registered in the console, and their admins' signature.

A passkey registered in the console is only a public key the server holds; it counts for the
signers once an admin of the officer's own institution signs a roster record adding it::

    treasury passkeys list
    treasury passkeys approve 3 --key-file mof-admin.key        # shows the key, asks, signs

The admin checks the key id shown against the one the officer reads on their own console page
before confirming (a database writer could have slipped in a key of their own). The record is
signed with the admin's key file here, on the admin's machine, and stored only if the custody
library's replay of the whole chain accepts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.authority import RecordSignature, Secp256k1Signature, load_public_key, sign_digest
from treasury.authority.passkeys import (
    PasskeyRegistration,
    approval_record,
    approving_admin,
    registrations,
)
from treasury.authority.store import append_record, require_roster_state
from treasury.cli.context import committed_session, fail

app = typer.Typer(
    help="Officers' console passkeys: list them, and sign one into the roster as its admin.",
    no_args_is_help=True,
)


def _passphrase(path: Path | None) -> str:
    if path is None:
        return str(typer.prompt("Passphrase of your officer key file", hide_input=True))
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise fail(f"cannot read the passphrase file {path}: {reason}.") from None


def _echo(registration: PasskeyRegistration) -> None:
    key = registration.key
    typer.echo(
        f"#{registration.id}\t{registration.key_id}\t{registration.state.value}\t"
        f"officer {registration.officer_id} {registration.officer_name} "
        f"({registration.institution})\t{key.origin}\t"
        f"registered {registration.registered_at.isoformat()}"
    )


@app.command("list")
def list_passkeys(
    pending: Annotated[
        bool, typer.Option("--pending", help="Only passkeys still waiting for an admin.")
    ] = False,
) -> None:
    """Every registered passkey: number, key id, state (pending admin signature / active), officer."""
    with committed_session() as session:
        found = registrations(session)
    shown = [r for r in found if not pending or r.state.name == "PENDING"]
    if not shown:
        typer.echo("no passkey registrations" + (" pending." if pending else "."))
    for registration in shown:
        _echo(registration)


@app.command()
def approve(
    registration_id: Annotated[int, typer.Argument(help="The registration's number (`list`).")],
    key_file: Annotated[
        Path, typer.Option(help="Your admin officer key file: the roster record is signed with it.")
    ],
    passphrase_file: Annotated[
        Path | None,
        typer.Option(help="File holding the key file's passphrase (without it, prompted)."),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Sign without asking to confirm the key shown.")
    ] = False,
) -> None:
    """As an admin of the officer's institution, sign the passkey into the roster (KEY_ROTATED)."""
    admin_key = load_public_key(key_file)
    with committed_session() as session:
        registration, record = approval_record(session, registration_id)
        admin = approving_admin(require_roster_state(session), registration, admin_key.key_id)
    key = registration.key
    typer.echo(
        f"passkey #{registration.id} of officer {registration.officer_id} "
        f"{registration.officer_name} ({registration.institution})"
    )
    typer.echo(f"  key id:  {registration.key_id}  (check it with the officer's console page)")
    typer.echo(f"  for:     {key.origin} (RP id {key.rp_id})")
    typer.echo(f"  record:  #{record.sequence} key_rotated {record.record_hash().hex()}")
    typer.echo(f"  signer:  admin {admin.officer_id} {admin.name} with key {admin_key.key_id}")
    if not yes and not typer.confirm("Sign this passkey into the roster?", default=False):
        raise fail("not signed: the admin did not confirm.")
    signature = sign_digest(key_file, _passphrase(passphrase_file), record.record_hash())
    signed = record.with_signature(
        RecordSignature(admin.officer_id, admin_key.key_id, Secp256k1Signature(signature))
    )
    with committed_session() as session:
        append_record(session, signed)
    typer.echo(f"passkey #{registration.id} ({registration.key_id}) is active: roster record "
               f"#{signed.sequence} stored.")  # fmt: skip
