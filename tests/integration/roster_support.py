"""A treasury with real key ceremonies and first admins, ready for a signed roster genesis.

Two institutions hold a ceremony (CB, MOF: 2-of-3 SLIP-39 shares in files, MOF's with a
passphrase); a third (PARL) has none, so it stays out of the genesis. Each institution's first
admin is founded and holds an officer key file (cheap scrypt: tests only). The helpers sign roster
records with those key files exactly as an admin's CLI would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from custody.authority import (
    OfficerAdded,
    OfficerEntry,
    OfficerPublicKey,
    OfficerRole,
    RecordKind,
    RecordSignature,
    RosterRecord,
    Secp256k1Signature,
    create_key_file,
    load_public_key,
    next_record,
    sign_digest,
)
from custody.authority.roster_bodies import RecordBody
from custody.ceremony import CeremonyPlan, ShareFiles, read_share_file, run_ceremony
from treasury.audit import AuditEvent
from treasury.authority.genesis import (
    DEFAULT_ROSTER_NAME,
    build_genesis,
    ceremony_key_of,
    commit_genesis,
    sign_genesis,
)
from treasury.authority.store import load_records
from treasury.authority.tables import RosterRecordRow
from treasury.officers import Founding, Officer, Role, add_institution, add_officer

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
KEY_PASSPHRASE = "correct horse battery staple"
TEST_SCRYPT_N = 2**10
"""Cheap scrypt for the tests' key files (production uses the library's default)."""
MOF_PASSPHRASE = "mof slip39 passphrase"
CEREMONIES = {"CB": ("Central Bank", ""), "MOF": ("Ministry of Finance", MOF_PASSPHRASE)}
"""Code -> (institution name as the ceremony records it, SLIP-39 passphrase)."""
WITHOUT_CEREMONY = ("PARL", "Parliament Oversight")


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - deterministic test randomness


@dataclass
class RosterWorld:
    """Institutions, ceremonies, first admins and their key files on one migrated database."""

    sessions: sessionmaker[Session]
    folder: Path
    admins: dict[str, Officer] = field(default_factory=dict)
    key_files: dict[str, Path] = field(default_factory=dict)
    admin_keys: dict[str, OfficerPublicKey] = field(default_factory=dict)
    share_files: dict[str, list[Path]] = field(default_factory=dict)

    def shares(self, code: str) -> list[str]:
        """Two of the institution's three shares (a quorum), as the holders' files hold them."""
        return [read_share_file(path) for path in self.share_files[code][:2]]

    def passphrase(self, code: str) -> str:
        return CEREMONIES[code][1]

    def new_key(self, label: str) -> tuple[Path, OfficerPublicKey]:
        path = self.folder / f"{label}.key"
        return path, create_key_file(path, KEY_PASSPHRASE, scrypt_n=TEST_SCRYPT_N)

    def sign(self, record: RosterRecord, signer: str, key_file: Path) -> RosterRecord:
        """``record`` with a signature of officer ``signer`` made with ``key_file``."""
        signature = sign_digest(key_file, KEY_PASSPHRASE, record.record_hash())
        key_id = load_public_key(key_file).key_id
        return record.with_signature(RecordSignature(signer, key_id, Secp256k1Signature(signature)))

    def add_officer(self, code: str, name: str, roles: set[Role]) -> Officer:
        with self.sessions.begin() as session:
            return add_officer(session, code, name, roles, actor=self.admins[code], now=NOW)

    def officer_record(
        self,
        officer: Officer,
        key: OfficerPublicKey,
        *,
        signer: Officer,
        roles: set[OfficerRole] | None = None,
    ) -> RosterRecord:
        """The next OFFICER_ADDED record for ``officer``, signed by admin ``signer``."""
        entry = OfficerEntry(
            str(officer.id),
            officer.name,
            officer.institution_code,
            frozenset(roles or {OfficerRole(r.value) for r in officer.roles}),
            (key,),
        )
        return self.signed_next(RecordKind.OFFICER_ADDED, OfficerAdded(entry), signer)

    def signed_next(self, kind: RecordKind, body: RecordBody, signer: Officer) -> RosterRecord:
        with self.sessions() as session:
            previous = load_records(session)[-1]
        record = next_record(previous, kind, body)
        return self.sign(record, str(signer.id), self.key_files[signer.institution_code])

    def genesis(self, name: str = DEFAULT_ROSTER_NAME) -> RosterRecord:
        """The genesis built, signed by both ceremonies' share quorums, and committed."""
        with self.sessions() as session:
            ceremony_keys = {
                code: ceremony_key_of(session, code, self.shares(code), self.passphrase(code))[1]
                for code in CEREMONIES
            }
            record = build_genesis(
                session, self.admin_keys, ceremony_keys, name=name, clock=lambda: NOW
            )
            for code in CEREMONIES:
                record = sign_genesis(
                    session, record, code, self.shares(code), self.passphrase(code)
                )
        with self.sessions.begin() as session:
            commit_genesis(session, record, clock=lambda: NOW)
        return record


def build_roster_world(
    engine: Engine, sessions: sessionmaker[Session], folder: Path
) -> RosterWorld:
    """Register the institutions, run both ceremonies, found the admins and make their keys."""
    world = RosterWorld(sessions, folder)
    founding = Founding("setup")
    with sessions.begin() as session:
        for seed, (code, (name, passphrase)) in enumerate(CEREMONIES.items(), start=11):
            add_institution(session, code, name, actor=founding, now=NOW)
            shares_folder = folder / f"shares-{code.lower()}"
            run_ceremony(
                session,
                CeremonyPlan(name, ("Holder A", "Holder B", "Holder C"), 2),
                ShareFiles(shares_folder),
                passphrase,
                random_bytes=_rng(seed).randbytes,
                rng=_rng(seed),
                clock=lambda: NOW,
            )
            world.share_files[code] = sorted(shares_folder.glob("*.txt"))
        add_institution(session, *WITHOUT_CEREMONY, actor=founding, now=NOW)
        for code in (*CEREMONIES, WITHOUT_CEREMONY[0]):
            world.admins[code] = add_officer(
                session, code, f"Admin of {code}", [Role.ADMIN], actor=founding, now=NOW
            )
    for code in CEREMONIES:
        path, key = world.new_key(f"{code.lower()}-admin")
        world.key_files[code] = path
        world.admin_keys[code] = key
    return world


def roster_rows(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(RosterRecordRow)) or 0


def audit_rows(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def drop_roster_triggers(engine: Engine) -> None:
    """What a database owner can do: drop the append-only triggers of the roster table."""
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            for name in (
                "roster_records_immutable_update",
                "roster_records_immutable_delete",
                "roster_records_extend_head",
            ):
                connection.execute(text(f"DROP TRIGGER {name}"))
        else:
            for name in (
                "roster_records_immutable",
                "roster_records_no_truncate",
                "roster_records_extend_head",
            ):
                connection.execute(text(f"DROP TRIGGER {name} ON roster_records"))
