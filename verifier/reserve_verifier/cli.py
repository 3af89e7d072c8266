"""``reserve-verify``: the auditor's command. Exit 0 only if every check holds (1 otherwise, 2 if a
named file cannot be used); ``--offline`` accepts checks skipped for want of a node.

``--trust FILE`` pins the signers' keys and the registry; without it the bundle is checked against
its own claims, the report says so prominently, and a consistent bundle still exits 0.
``--announcements FILE`` applies published key rotations and vault-set changes to those pins.
``--evm-rpc CHAIN_ID=URL``, repeated, names the auditor's node of each EVM chain holding Safes
(a bare ``--evm-rpc URL`` is a node of whichever chain it serves).

``treasury verify`` offers the same options and reads them with :func:`run`, so both commands
print the same report for the same files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reserve_verifier.announcements import (
    Announcement,
    AnnouncementsFileError,
    parse_announcements,
)
from reserve_verifier.bundle import Bundle
from reserve_verifier.exceptions import BundleFormatError, UsageError
from reserve_verifier.inputs import LeafQuery, Nodes
from reserve_verifier.report import Report
from reserve_verifier.trust import TrustAnchors, TrustFileError, parse_trust
from reserve_verifier.verifier import verify_bundle

USAGE_EXIT_CODE = 2
"""Exit code when a file named on the command line cannot be used (argparse's own, too)."""


@dataclass(frozen=True)
class Invocation:
    """What the auditor asked for on the command line."""

    bundle: Path
    leaf: str | None = None
    salt: str | None = None
    proof: Path | None = None
    previous: Path | None = None
    nodes: Nodes = field(default_factory=Nodes)
    trust: Path | None = None
    announcements: Path | None = None


def _read(path: Path, what: str) -> bytes:
    """A named file's bytes, or a usage error naming it."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read the {what} {path}: {error.strerror}.") from None


def _query(invocation: Invocation) -> LeafQuery | None:
    """The account question of ``--leaf``/``--salt`` or ``--proof``, if any."""
    if invocation.proof is not None:
        try:
            package = json.loads(_read(invocation.proof, "proof file"))
        except ValueError:
            raise UsageError(f"the proof file {invocation.proof} is not JSON.") from None
        if not isinstance(package, dict):
            raise UsageError(f"the proof file {invocation.proof} is not a JSON object.")
        stated = package.get("leaf", {})
        account = invocation.leaf or str(
            stated.get("account_id", "") if isinstance(stated, dict) else ""
        )
        return LeafQuery(account, package=package)
    if invocation.leaf is not None:
        try:
            salt = bytes.fromhex(invocation.salt) if invocation.salt else None
        except ValueError:
            raise UsageError("--salt must be hexadecimal.") from None
        return LeafQuery(invocation.leaf, salt)
    if invocation.salt is not None:
        raise UsageError("--salt needs --leaf ACCOUNT.")
    return None


def _anchors(invocation: Invocation) -> TrustAnchors | None:
    """The trust file's pins, if one was named (a malformed file is a usage error naming it)."""
    if invocation.trust is None:
        return None
    data = _read(invocation.trust, "trust file")
    try:
        return parse_trust(data)
    except TrustFileError as error:
        raise UsageError(f"the trust file {invocation.trust} is unusable: {error}") from None


def _announced(invocation: Invocation) -> tuple[Announcement, ...] | None:
    """The announcements file's statements, if one was named (they change pins, so need --trust)."""
    if invocation.announcements is None:
        return None
    if invocation.trust is None:
        raise UsageError(
            "--announcements needs --trust: announced key rotations and vault changes are applied to the keys and vaults you pinned."
        )
    data = _read(invocation.announcements, "announcements file")
    try:
        return parse_announcements(data)
    except AnnouncementsFileError as error:
        raise UsageError(
            f"the announcements file {invocation.announcements} is unusable: {error}"
        ) from None


def evm_node(option: str) -> tuple[int | None, str]:
    """One ``--evm-rpc``: ``CHAIN_ID=URL`` (the node must serve that chain) or a bare URL."""
    chain, sep, url = option.partition("=")
    if not sep or "://" in chain:
        return None, option
    if not (chain.isascii() and chain.isdigit()) or int(chain) < 1 or not url:
        raise UsageError(f"--evm-rpc {chain}=... must be CHAIN_ID=URL with a positive chain id.")
    return int(chain), url


def nodes_of(bitcoin: str | None, evm: Sequence[str], services: str | None) -> Nodes:
    """The nodes named by ``--bitcoin-rpc``, each ``--evm-rpc`` and ``--services-rpc``.

    At most one bare ``--evm-rpc URL`` (of whichever chain it serves), and each chain id once.
    """
    parsed = [evm_node(option) for option in evm]
    bare = [url for chain, url in parsed if chain is None]
    named = [(chain, url) for chain, url in parsed if chain is not None]
    if len(bare) > 1:
        raise UsageError("--evm-rpc without CHAIN_ID= may be given once; name each chain's node.")
    chains = [chain for chain, _ in named]
    if len(set(chains)) != len(chains):
        raise UsageError("--evm-rpc names a chain id twice.")
    return Nodes(
        bitcoin=bitcoin,
        evm=bare[0] if bare else None,
        services=services,
        evm_chains=tuple(named),
    )


def run(invocation: Invocation) -> Report:
    """Read the named files and verify the bundle; raise :class:`UsageError` if a file is unusable."""
    query = _query(invocation)
    anchors = _anchors(invocation)
    announced = _announced(invocation)
    earlier = None
    if invocation.previous is not None:
        try:
            earlier = Bundle.from_bytes(_read(invocation.previous, "previous bundle"))
        except BundleFormatError as error:
            raise UsageError(f"the previous bundle is unusable: {error}") from None
    return verify_bundle(
        _read(invocation.bundle, "bundle"),
        nodes=invocation.nodes,
        leaf=query,
        previous=earlier,
        anchors=anchors,
        announced=announced,
    )


def parser() -> argparse.ArgumentParser:
    """The command's arguments (the same as ``treasury verify``'s)."""
    command = argparse.ArgumentParser(
        prog="reserve-verify",
        description=(
            "Check an attestation bundle (roots, totals, signatures, proofs of control, anchors) "
            "and exit 0 only if every check holds."
        ),
    )
    command.add_argument("bundle", type=Path, help="The attestation bundle (JSON) to check.")
    command.add_argument(
        "--leaf",
        "--account",
        dest="leaf",
        metavar="ACCOUNT",
        help="An account id whose inclusion in the liability tree to check.",
    )
    command.add_argument("--salt", help="With --leaf: the salt (hex) the account was given.")
    command.add_argument(
        "--proof",
        "--package",
        dest="proof",
        type=Path,
        help="An account's proof package (JSON: root, leaf, proof) to check.",
    )
    command.add_argument(
        "--previous",
        type=Path,
        help="The previous bundle of the chain, to check this one follows it.",
    )
    command.add_argument(
        "--trust",
        type=Path,
        help=(
            "Your trust file (JSON): the treasury's and audit office's public keys and the "
            "registry you pin; without it keys and registry are self-declared by the bundle."
        ),
    )
    command.add_argument(
        "--announcements",
        type=Path,
        help=(
            "The treasury's announcements file (JSON): key rotations and vault-set changes, "
            "each signed by the keys in force and announced in the registry; applied to --trust."
        ),
    )
    command.add_argument("--bitcoin-rpc", help="Your bitcoind, as http://user:password@host:port.")
    command.add_argument(
        "--evm-rpc",
        action="append",
        metavar="[CHAIN_ID=]URL",
        help=(
            "Your node of an EVM chain holding Safes, as CHAIN_ID=URL (repeat it for each "
            "chain; the node must serve that chain), or a bare URL of whichever chain it serves."
        ),
    )
    command.add_argument(
        "--services-rpc", help="Your node of the services chain holding the registry."
    )
    command.add_argument(
        "--offline",
        action="store_true",
        help="Accept checks skipped for want of a node (exit 0 if none failed).",
    )
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit code."""
    arguments = parser().parse_args(argv)
    try:
        invocation = Invocation(
            bundle=arguments.bundle,
            leaf=arguments.leaf,
            salt=arguments.salt,
            proof=arguments.proof,
            previous=arguments.previous,
            trust=arguments.trust,
            announcements=arguments.announcements,
            nodes=nodes_of(arguments.bitcoin_rpc, arguments.evm_rpc or (), arguments.services_rpc),
        )
        report = run(invocation)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_EXIT_CODE
    print(report.render())
    return 0 if report.passed(allow_skipped=arguments.offline) else 1
