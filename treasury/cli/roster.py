"""``treasury roster``: officer keys, and the signed roster chain anchored in the key ceremonies.

The genesis is made in four steps, each by the people who hold what it needs::

    treasury roster keygen --out cb-admin.key                     # each first admin, own machine
    treasury roster ceremony-key --institution CB --share-file ... --out cb.ceremony.json
    treasury roster genesis --admin-key CB=cb-admin.key --ceremony-key CB=cb.ceremony.json ...
    treasury roster sign-genesis genesis.json --institution CB --share-file ...   # per institution
    treasury roster commit genesis.json

Every later change follows three steps (``treasury.authority.changes``)::

    treasury roster draft allowlist-add --asset BTC --address bc1q... --label Supplier --out c.json
    treasury roster sign c.json --key-file cb-admin.key      # each admin the rules require
    treasury roster commit c.json                            # refused unless the rules are met

``show`` prints the chain and who signed each record; ``verify`` replays it and exits 1 naming the
first bad record. Shares and passphrases are never command-line arguments: they come from the
holders' files or prompts without echo.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from custody.authority import (
    CEREMONY_KEY_ID,
    OfficerPublicKey,
    OfficerRole,
    RecordKind,
    RosterRecord,
    RosterRules,
    RosterState,
    create_key_file,
    load_public_key,
)
from treasury.authority import changes
from treasury.authority.genesis import (
    DEFAULT_ROSTER_NAME,
    build_genesis,
    ceremony_key_of,
    genesis_body,
    sign_genesis,
    transcript_of,
)
from treasury.authority.store import load_records
from treasury.authority.verify import RosterVerdict, verify_roster
from treasury.cli.context import committed_session, fail
from treasury.cli.share_input import share_words, slip39_passphrase
from treasury.exceptions import TreasuryError
from treasury.officers import institution_by_code

app = typer.Typer(
    help=(
        "Officer keys and the signed roster chain, anchored in the institutions' key ceremonies."
        "\n\nOnce the genesis is committed, every change (officer, key, role, policy, allowlist "
        "entry, decree) goes: `roster draft KIND ... --out change.json`, then `roster sign "
        "change.json --key-file ADMIN.key` by each admin the rules require (an admin of the "
        "officer's own institution; admins of enough institutions for policy, allowlist and "
        "decrees), then `roster commit change.json`."
    ),
    no_args_is_help=True,
)
draft_app = typer.Typer(
    help=(
        "Draft the next roster record as a file, for the admins to sign.\n\n"
        "The sequence: (1) `roster draft KIND ... --out change.json` writes the unsigned record "
        "(refused at once if it could never apply); (2) each required admin runs `roster sign "
        "change.json --key-file THEIR.key`, which shows the change and asks to confirm; "
        "(3) `roster commit change.json` stores it, refused with nothing written unless the "
        "signatures meet the rules: one active admin of the officer's institution for "
        "officer-add/remove, key-rotate and role-grant/revoke; admins of the genesis's "
        "change_institutions distinct institutions for policy-set, allowlist-add and decree-add."
    ),
    no_args_is_help=True,
)
app.add_typer(draft_app, name="draft")

CEREMONY_KEY_FORMAT = "national-reserve/ceremony-key/1"
"""The ``format`` of the public file ``ceremony-key --out`` writes."""
COMPRESSED_KEY_HEX_CHARS = 66


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise fail(f"cannot read the {what} {path}: {reason}.") from None


def _pairs(values: list[str], option: str) -> dict[str, str]:
    """``CODE=VALUE`` options as a mapping, each code once."""
    pairs: dict[str, str] = {}
    for value in values:
        code, sep, rest = value.partition("=")
        if not sep or not code.strip() or not rest.strip():
            raise fail(f"{option} takes INSTITUTION=VALUE, got {value!r}.")
        if code.strip() in pairs:
            raise fail(f"{option} names institution {code.strip()} twice.")
        pairs[code.strip()] = rest.strip()
    return pairs


def _write_new(path: Path, text: str) -> None:
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise fail(f"{path} already exists; it is not overwritten.") from None
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror}.") from None


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a crash leaves the old file whole."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _record_text(record: RosterRecord) -> str:
    return changes.record_file_text(record)


def _load_record(path: Path) -> RosterRecord:
    return changes.load_record_file(_read_text(path, "record file"), str(path))


def _passphrase_file(path: Path | None) -> str | None:
    if path is None:
        return None
    return _read_text(path, "passphrase file").rstrip("\r\n")


ShareFileOption = Annotated[
    list[Path] | None,
    typer.Option(
        help="A holder's share file; repeat per holder (without it, shares are prompted without echo)."
    ),
]
PassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        help="File holding the SLIP-39 passphrase (without it, prompted if the ceremony set one)."
    ),
]


# --- Officer keys -----------------------------------------------------------------------------


@app.command()
def keygen(
    out: Annotated[Path, typer.Option(help="Where to write the new encrypted key file (0600).")],
    passphrase_file: Annotated[
        Path | None,
        typer.Option(help="File holding the key's passphrase (for scripts); else prompted twice."),
    ] = None,
) -> None:
    """Create an officer's signing key in a passphrase-encrypted file; print its key id and public key."""
    passphrase = _passphrase_file(passphrase_file)
    if passphrase is None:
        passphrase = str(
            typer.prompt("Passphrase for the key file", hide_input=True, confirmation_prompt=True)
        )
    key = create_key_file(out, passphrase)
    typer.echo(f"key file:   {out}")
    typer.echo(f"key id:     {key.key_id}")
    typer.echo(f"public key: {key.public.hex()}")


# --- The genesis ------------------------------------------------------------------------------


@app.command("ceremony-key")
def ceremony_key(
    institution: Annotated[str, typer.Option(help="The institution's code, e.g. CB.")],
    share_file: ShareFileOption = None,
    passphrase_file: PassphraseFileOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Also write the public key to this JSON file.")
    ] = None,
) -> None:
    """Recombine an institution's shares and print its ceremony public key (needed by `genesis`)."""
    with committed_session() as session:
        transcript = transcript_of(session, institution_by_code(session, institution))
        if transcript is None:
            raise fail(f"institution {institution} has no key ceremony recorded under its name.")
        passphrase = slip39_passphrase(
            passphrase_file, transcript.passphrase_protected, transcript.institution
        )
        words = share_words(share_file, transcript.threshold)
        fingerprint, public = ceremony_key_of(session, institution, words, passphrase)
    typer.echo(f"institution:          {institution}")
    typer.echo(f"ceremony fingerprint: {fingerprint}")
    typer.echo(f"ceremony public key:  {public.hex()}")
    if out is not None:
        document = {
            "format": CEREMONY_KEY_FORMAT,
            "institution": institution,
            "ceremony_fingerprint": fingerprint,
            "ceremony_public_key": public.hex(),
        }
        _write_new(out, json.dumps(document, indent=2, sort_keys=True) + "\n")
        typer.echo(f"written:              {out}")


def _ceremony_public_key(code: str, value: str) -> bytes:
    """A ``--ceremony-key`` value: 66 hex characters, or a file ``ceremony-key --out`` wrote."""
    text = value
    if len(value) != COMPRESSED_KEY_HEX_CHARS:
        try:
            document = json.loads(_read_text(Path(value), "ceremony key file"))
        except ValueError:
            raise fail(f"{value} is not a ceremony key file (JSON).") from None
        if (
            not isinstance(document, dict)
            or document.get("format") != CEREMONY_KEY_FORMAT
            or document.get("institution") != code
        ):
            raise fail(f"{value} is not {code}'s ceremony key file ({CEREMONY_KEY_FORMAT}).")
        text = str(document.get("ceremony_public_key"))
    try:
        public = bytes.fromhex(text)
    except ValueError:
        raise fail(f"the ceremony public key of {code} is not hex.") from None
    if len(public) != COMPRESSED_KEY_HEX_CHARS // 2:
        raise fail(f"the ceremony public key of {code} is not a 33-byte compressed key.")
    return public


@app.command()
def genesis(
    admin_key: Annotated[
        list[str],
        typer.Option(
            help="INSTITUTION=KEYFILE: the first admin's officer key file; per institution."
        ),
    ],
    ceremony_key: Annotated[
        list[str],
        typer.Option(
            help="INSTITUTION=FILE|HEX: the ceremony public key (`roster ceremony-key`); per institution."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Where to write the unsigned genesis (JSON).")],
    name: Annotated[
        str, typer.Option(help="The roster's name (keeps two rosters' genesis hashes apart).")
    ] = DEFAULT_ROSTER_NAME,
    change_institutions: Annotated[
        int, typer.Option(help="Institutions whose admins must sign a policy/allowlist/decree.")
    ] = 2,
    approval_institutions: Annotated[
        int, typer.Option(help="Institutions whose approvers must approve a spend.")
    ] = 2,
) -> None:
    """Build the unsigned genesis: every institution with a ceremony, and its first admin's key."""
    admin_keys: dict[str, OfficerPublicKey] = {
        code: load_public_key(Path(path)) for code, path in _pairs(admin_key, "--admin-key").items()
    }
    ceremony_keys = {
        code: _ceremony_public_key(code, value)
        for code, value in _pairs(ceremony_key, "--ceremony-key").items()
    }
    rules = RosterRules(change_institutions, approval_institutions)
    with committed_session() as session:
        record = build_genesis(session, admin_keys, ceremony_keys, name=name, rules=rules)
    _write_new(out, _record_text(record))
    _echo_genesis(record)
    typer.echo(f"written to {out}; each institution's share holders now run `roster sign-genesis`.")


def _echo_genesis(record: RosterRecord) -> None:
    body = genesis_body(record)
    typer.echo(f"roster genesis {body.name!r}, hash {record.record_hash().hex()}")
    for entry in body.institutions:
        signed = any(s.signer == entry.code for s in record.signatures)
        typer.echo(
            f"  institution {entry.code} ({entry.name}): ceremony {entry.ceremony_fingerprint} "
            f"key {entry.ceremony_public_key.hex()} — {'signed' if signed else 'not signed yet'}"
        )
    for admin in body.admins:
        keys = ", ".join(key.key_id for key in admin.keys)
        typer.echo(
            f"  first admin of {admin.institution}: {admin.name} (officer {admin.officer_id}), key {keys}"
        )
    typer.echo(
        f"  rules: changes by admins of {body.rules.change_institutions} institutions, spends "
        f"approved by {body.rules.approval_institutions} institutions"
    )


@app.command("sign-genesis")
def sign_genesis_command(
    genesis_file: Annotated[
        Path, typer.Argument(help="The genesis file; the signature is added to it.")
    ],
    institution: Annotated[str, typer.Option(help="The signing institution's code, e.g. CB.")],
    share_file: ShareFileOption = None,
    passphrase_file: PassphraseFileOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Sign without asking to confirm the genesis shown.")
    ] = False,
) -> None:
    """Show the genesis, then sign its hash with the institution's ceremony key (its share quorum)."""
    record = _load_record(genesis_file)
    _echo_genesis(record)
    if not yes and not typer.confirm(f"Sign this genesis for {institution}?", default=False):
        raise fail("not signed: the share holders did not confirm.")
    with committed_session() as session:
        transcript = transcript_of(session, institution_by_code(session, institution))
        if transcript is None:
            raise fail(f"institution {institution} has no key ceremony recorded under its name.")
        passphrase = slip39_passphrase(
            passphrase_file, transcript.passphrase_protected, transcript.institution
        )
        words = share_words(share_file, transcript.threshold)
        signed = sign_genesis(session, record, institution, words, passphrase)
    _replace(genesis_file, _record_text(signed))
    missing = [
        entry.code
        for entry in genesis_body(signed).institutions
        if not any(s.signer == entry.code for s in signed.signatures)
    ]
    typer.echo(f"signed for {institution}: {genesis_file}")
    typer.echo(
        f"still to sign: {', '.join(missing)}"
        if missing
        else "every institution signed: run `roster commit`."
    )


@app.command()
def commit(
    record_file: Annotated[
        Path,
        typer.Argument(help="A genesis every institution signed, or a change the admins signed."),
    ],
) -> None:
    """Store a signed record as the next link: replayed first, refused with nothing written unless its signatures meet the rules."""
    record = _load_record(record_file)
    with committed_session() as session:
        changes.commit_record(session, record)
    if record.kind is RecordKind.GENESIS:
        typer.echo(f"roster genesis stored: #0 {record.record_hash().hex()}")
        typer.echo("publish this genesis hash: `roster verify --genesis-hash` compares against it.")
        return
    signers = ", ".join(s.signer for s in record.signatures)
    typer.echo(
        f"roster record stored: #{record.sequence} {record.kind.value} "
        f"{record.record_hash().hex()} (signed by officers {signers})"
    )


# --- Changes after the genesis: draft, sign, commit -------------------------------------------

OutOption = Annotated[
    Path, typer.Option(help="Where to write the unsigned record (never overwritten).")
]
OfficerIdOption = Annotated[str, typer.Option(help="The roster officer id (`roster show`).")]


def _drafted(out: Path, build: Callable[[Session], RosterRecord]) -> None:
    """Draft with ``build``, write the record file, and show what it says and who must sign."""
    with committed_session() as session:
        record = build(session)
        state = changes.chain_state(session)
        decimals = _decimals_of(session, record)
    _write_new(out, _record_text(record))
    for line in changes.describe(record, state, decimals):
        typer.echo(line)
    typer.echo(
        f"written to {out}; each required admin now runs `roster sign {out} --key-file ...`."
    )


def _decimals_of(session: Session, record: RosterRecord) -> dict[str, int]:
    if record.kind is not RecordKind.DECREE_ADDED:
        return {}
    body = json.loads(record.body)
    found: dict[str, int] = {}
    for asset in body.get("ceilings", {}):
        with contextlib.suppress(TreasuryError):
            found[asset] = changes.asset_decimals(session, asset)
    return found


def _role(value: str) -> OfficerRole:
    try:
        return OfficerRole(value)
    except ValueError:
        names = ", ".join(role.value for role in OfficerRole)
        raise fail(f"unknown role {value!r}; roles are {names}.") from None


@draft_app.command("officer-add")
def draft_officer_add(
    officer_id: Annotated[
        int, typer.Option(help="The treasury officer's id (`treasury officers list`).")
    ],
    key_file: Annotated[
        list[Path], typer.Option(help="The officer's key file (`roster keygen`); repeatable.")
    ],
    out: OutOption,
    role: Annotated[
        list[str] | None,
        typer.Option(help="A roster role (default: the officer's treasury roles); repeatable."),
    ] = None,
) -> None:
    """Add a treasury officer and their public key(s) to the roster (signed by an admin of their institution)."""
    keys = changes.public_keys(key_file)
    roles = None if not role else [_role(r) for r in role]
    _drafted(out, lambda session: changes.draft_officer_added(session, officer_id, keys, roles))


@draft_app.command("officer-remove")
def draft_officer_remove(officer_id: OfficerIdOption, out: OutOption) -> None:
    """Remove an officer from the roster: all their keys stop counting (signed by an admin of their institution)."""
    _drafted(out, lambda session: changes.draft_officer_removed(session, officer_id))


@draft_app.command("key-rotate")
def draft_key_rotate(
    officer_id: OfficerIdOption,
    out: OutOption,
    add_key_file: Annotated[
        list[Path] | None, typer.Option(help="A new key file of the officer; repeatable.")
    ] = None,
    revoke: Annotated[
        list[str] | None, typer.Option(help="A key id to revoke (e.g. k1:...); repeatable.")
    ] = None,
) -> None:
    """Add and/or revoke an officer's keys (signed by an admin of their institution)."""
    added = changes.public_keys(add_key_file or [])
    _drafted(
        out,
        lambda session: changes.draft_key_rotated(session, officer_id, added, revoke or []),
    )


@draft_app.command("role-grant")
def draft_role_grant(
    officer_id: OfficerIdOption,
    role: Annotated[str, typer.Option(help="proposer, approver, oversight, auditor or admin.")],
    out: OutOption,
) -> None:
    """Grant an officer a role (signed by an admin of their institution)."""
    chosen = _role(role)
    _drafted(
        out, lambda session: changes.draft_role_changed(session, officer_id, chosen, grant=True)
    )


@draft_app.command("role-revoke")
def draft_role_revoke(
    officer_id: OfficerIdOption,
    role: Annotated[str, typer.Option(help="proposer, approver, oversight, auditor or admin.")],
    out: OutOption,
) -> None:
    """Revoke an officer's role (signed by an admin of their institution)."""
    chosen = _role(role)
    _drafted(
        out, lambda session: changes.draft_role_changed(session, officer_id, chosen, grant=False)
    )


@draft_app.command("policy-set")
def draft_policy_set(
    out: OutOption,
    version: Annotated[
        int | None, typer.Option(help="The stored policy version (default: the newest).")
    ] = None,
) -> None:
    """Put a stored policy version in force in the chain (signed by admins of enough institutions)."""
    _drafted(out, lambda session: changes.draft_policy_set(session, version))


@draft_app.command("allowlist-add")
def draft_allowlist_add(
    asset: Annotated[str, typer.Option(help="The asset code, e.g. BTC, ETH, ERC20:0x...")],
    address: Annotated[str, typer.Option(help="The destination address spends may pay.")],
    label: Annotated[str, typer.Option(help="Who the destination is, for people.")],
    out: OutOption,
) -> None:
    """Let spends of an asset pay a destination (signed by admins of enough institutions)."""
    _drafted(out, lambda session: changes.draft_allowlist_added(session, asset, address, label))


@draft_app.command("decree-add")
def draft_decree_add(
    reference: Annotated[str, typer.Option(help="The decree's reference, as spends cite it.")],
    title: Annotated[str, typer.Option(help="The decree's title.")],
    expires: Annotated[
        str, typer.Option(help="Expiry, ISO 8601 with a timezone, e.g. 2027-01-01T00:00:00+00:00.")
    ],
    ceiling: Annotated[
        list[str],
        typer.Option(
            help="ASSET=AMOUNT in coin units, exact (e.g. BTC=1.5, ETH=10); the most one spend "
            "citing the decree may pay; repeat per asset."
        ),
    ],
    out: OutOption,
) -> None:
    """Record a decree spends may cite, with a ceiling per asset and an expiry (signed by admins of enough institutions)."""
    try:
        expires_at = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"--expires {expires!r} is not an ISO 8601 date and time.") from None
    amounts = _pairs(ceiling, "--ceiling")

    def build(session: Session) -> RosterRecord:
        ceilings = {
            asset: changes.base_units(
                amount, changes.asset_decimals(session, asset), f"ceiling for {asset}"
            )
            for asset, amount in amounts.items()
        }
        return changes.draft_decree_added(session, reference, title, expires_at, ceilings)

    _drafted(out, build)


@app.command()
def sign(
    record_file: Annotated[
        Path, typer.Argument(help="The drafted record; the signature is added to it.")
    ],
    key_file: Annotated[Path, typer.Option(help="Your officer key file (you must be an admin).")],
    passphrase_file: Annotated[
        Path | None, typer.Option(help="File holding the key's passphrase (else prompted).")
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Sign without asking to confirm the change shown.")
    ] = False,
) -> None:
    """Show a drafted change in human terms, then sign it with your officer key (an admin's)."""
    record = _load_record(record_file)
    with committed_session() as session:
        state = changes.chain_state(session)
        decimals = _decimals_of(session, record)
    for line in changes.describe(record, state, decimals):
        typer.echo(line)
    if not yes and not typer.confirm("Sign this change with your key?", default=False):
        raise fail("not signed: you did not confirm.")
    passphrase = _passphrase_file(passphrase_file)
    if passphrase is None:
        passphrase = str(typer.prompt("Passphrase of your key file", hide_input=True))
    with committed_session() as session:
        signed = changes.sign_record(session, record, key_file, passphrase)
        after = changes.requirement(changes.chain_state(session), signed)
    _replace(record_file, _record_text(signed))
    typer.echo(f"signed by officer {signed.signatures[-1].signer}: {record_file}")
    typer.echo(
        f"every required signature is there: run `roster commit {record_file}`."
        if after.met
        else f"still to sign: the rule {after.text}."
    )


# --- Reading ----------------------------------------------------------------------------------


def _signer_label(signer: str, key_id: str, state: RosterState | None) -> str:
    if key_id == CEREMONY_KEY_ID:
        return f"{signer} (ceremony key)"
    officer = state.officers.get(signer) if state is not None else None
    who = f"{officer.name}, {officer.institution}" if officer is not None else "unknown"
    return f"officer {signer} ({who}) with {key_id}"


def echo_verdict(verdict: RosterVerdict) -> None:
    """One line for the roster's verdict (``audit verify`` prints it too)."""
    if verdict.brk is not None:
        typer.secho(
            f"roster broken at record {verdict.brk.sequence}: {verdict.brk.message}",
            err=True,
            fg=typer.colors.RED,
        )
    elif verdict.state is not None:
        typer.echo(
            f"roster intact: {verdict.records_checked} records, head {verdict.state.head_hash.hex()}"
        )
    else:
        typer.echo("no roster genesis is stored.")


@app.command()
def show() -> None:
    """Print the chain (sequence, kind, who signed) and the officers and keys it yields now."""
    with committed_session() as session:
        records = load_records(session)
        verdict = verify_roster(session)
    if not records:
        typer.echo("no roster genesis is stored.")
        return
    state = verdict.state
    for record in records:
        signers = "; ".join(_signer_label(s.signer, s.key_id, state) for s in record.signatures)
        typer.echo(
            f"#{record.sequence} {record.kind.value} {record.record_hash().hex()[:16]} "
            f"signed by {signers or 'nobody'}"
        )
    if state is None:
        echo_verdict(verdict)
        raise typer.Exit(code=1)
    typer.echo("officers:")
    for officer in sorted(state.officers.values(), key=lambda o: (o.institution, o.officer_id)):
        status = "" if officer.active else " (removed)"
        roles = ",".join(sorted(role.value for role in officer.roles))
        keys = ", ".join(f"{key_id} {key.kind.value}" for key_id, key in officer.keys.items())
        typer.echo(
            f"  {officer.officer_id}\t{officer.name}\t{officer.institution}\t{roles}\t"
            f"keys: {keys or 'none'}{status}"
        )
    typer.echo(f"policy: {state.policy_hash or 'none set'}")
    typer.echo(f"allowlist entries: {len(state.allowlist)}; decrees: {len(state.decrees)}")
    echo_verdict(verdict)


@app.command()
def verify(
    genesis_hash: Annotated[
        str | None, typer.Option(help="The genesis hash published at commit, to compare against.")
    ] = None,
) -> None:
    """Replay the stored chain: exit 0 if intact, 1 naming the first bad record."""
    with committed_session() as session:
        verdict = verify_roster(session, genesis_hash)
    echo_verdict(verdict)
    if verdict.state is None:
        raise typer.Exit(code=1)
