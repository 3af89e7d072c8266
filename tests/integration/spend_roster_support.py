"""A founded roster for the tests that sign spends through the chain spenders on a real chain.

The spenders refuse to sign without a roster genesis (nothing is signed without the officers'
signed statements), so a test that drives a spend to a signature first founds the roster exactly
as ``make demo`` does (``treasury.story.roster.found_roster``): each ceremony institution's quorum
signs the genesis with its ceremony key, each first admin signs in its institution's approvers,
two admins sign the policy in force, the destinations the spends pay and the decree they cite
(the signers pay only chain-listed destinations, under a chain decree). The approvers then approve with their key files
(``approve_options`` gives the ``--key-file``/``--passphrase-file`` pair of `spend approve`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from custody.ceremony import read_share_file
from treasury.db import make_engine, session_factory
from treasury.officers import list_officers
from treasury.story.officer_keys import OfficerKeyring
from treasury.story.roster import AllowlistItem, RosterSummary, found_roster

TEST_SCRYPT_N = 2**10
"""Cheap scrypt for the tests' officer key files (production uses the library's default)."""


@dataclass(frozen=True)
class FoundedRoster:
    """The officers' key files of a founded roster, by officer name."""

    keys: OfficerKeyring
    summary: RosterSummary

    def approve_options(self, officer: str) -> list[str]:
        """`spend approve` options that sign the shown statement with ``officer``'s key file."""
        key = self.keys[officer]
        return ["--key-file", str(key.key_file), "--passphrase-file", str(key.passphrase_file)]


def found_spend_roster(
    database_url: str,
    folder: Path,
    *,
    admins: Mapping[str, str],
    approvers: Iterable[str],
    shares: Mapping[str, Sequence[Path]],
    destinations: Mapping[str, str],
    decree: str,
    passphrases: Mapping[str, str] | None = None,
    policy_signers: Sequence[str] | None = None,
) -> FoundedRoster:
    """Found the roster on ``database_url``: genesis, approvers, policy in force.

    ``admins`` maps each institution with a ceremony to its first admin's officer name;
    ``approvers`` are the officer names signed in by their institution's admin; ``shares`` holds
    each institution's share files (its first two, a quorum of a 2-of-3 split, are used) and
    ``passphrases`` the SLIP-39 passphrases that are not empty. The admins of ``policy_signers``
    (the first two institutions by default) sign the policy, each ``destinations`` address (asset
    -> address) and the treasury's legal basis ``decree`` into the chain.
    """
    passphrases = dict(passphrases or {})
    keys = OfficerKeyring(folder / "officer-keys", scrypt_n=TEST_SCRYPT_N)
    for name in (*admins.values(), *approvers):
        keys.create(name)

    def shares_of(code: str) -> tuple[list[str], str]:
        return [read_share_file(path) for path in shares[code][:2]], passphrases.get(code, "")

    engine = make_engine(database_url)
    try:
        sessions = session_factory(engine)
        with sessions() as session:
            officers = {o.name: o for o in list_officers(session) if o.name in keys}
        summary = found_roster(
            sessions,
            officers,
            keys,
            admins=admins,
            shares_of=shares_of,
            policy_signers=list(policy_signers or list(admins)[:2]),
            clock=lambda: datetime.now(UTC),
            allowlist=[
                AllowlistItem(asset, address, f"{asset} payee")
                for asset, address in destinations.items()
            ],
            decree=decree,
        )
    finally:
        engine.dispose()
    return FoundedRoster(keys, summary)
