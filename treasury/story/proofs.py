"""The story's last acts: proof of reserves, the auditor's check, the parliament site.

Each function is the library call an operator or auditor makes, given the story's folder, database
and nodes explicitly (``treasury.story.reserve.Reserve`` calls them with its own).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reserve_verifier import LeafQuery, Nodes, Report, verify_bundle
from reserve_verifier.trust import RegistryPin, parse_trust, trust_document
from sqlalchemy.orm import Session, sessionmaker

from custody.clock import Clock
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import EthChain
from custody.ethereum.web3_client import web3_client
from reporting.attestation import KeySigner, SignerRole
from reporting.site import PublishedSite, load_bundles, load_export, publish_site
from treasury.attest import (
    AttestNodes,
    AttestOptions,
    AttestResult,
    BitcoinEndpoint,
    InstitutionShares,
    attest,
)
from treasury.attest.account_proofs import kept_tree
from treasury.attest.keys import role_key
from treasury.chains import ConnectedChain
from treasury.publication import EXPORT_FILE_NAME, write_export

__all__ = [
    "TRUST_FILE_NAME",
    "HolderProof",
    "attest_reserve",
    "holder_proof",
    "node_endpoints",
    "publish_reserve",
    "verify_reserve",
    "write_trust_file",
]

Echo = Callable[[str], None]
DEVNET_GAS_WEI = 10**20
"""Test money for the treasury key that publishes anchors on the services devnet."""
TRUST_FILE_NAME = "trust.json"
"""The auditor's trust file, in the working folder (not in ``attestations/``, whose every
``*.json`` is read as a bundle)."""


def node_endpoints(bitcoin: BitcoinNode, evm: EvmNode, services: EvmNode) -> Nodes:
    """The live nodes as the auditor's verifier reaches them."""
    return Nodes(
        bitcoin=f"http://{bitcoin.rpc_user}:{bitcoin.rpc_password}@127.0.0.1:{bitcoin.rpc_port}",
        evm=evm.rpc_url,
        services=services.rpc_url,
    )


def _next_bundle_path(workdir: Path) -> Path:
    """``attestations/attestation-NNNN.json``: the folder ``treasury publish`` reads."""
    folder = workdir / "attestations"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"attestation-{len(list(folder.glob('*.json'))) + 1:04d}.json"


def attest_reserve(
    sessions: sessionmaker[Session],
    workdir: Path,
    bitcoin: BitcoinNode,
    chain: EthChain,
    services: EvmNode,
    quorum: Sequence[InstitutionShares],
    *,
    clock: Clock,
    echo: Echo,
    evm_chains: Sequence[ConnectedChain] = (),
) -> AttestResult:
    """Snapshot Bitcoin and every EVM reserve chain (``chain``, and ``evm_chains``), prove control
    through the share quorums given, sign as treasury and audit office, and anchor on Bitcoin and
    the services chain."""
    keys = workdir / "keys"
    treasury_key = role_key(keys / "treasury.key", SignerRole.TREASURY, generate=True)
    auditor_key = role_key(keys / "auditor.key", SignerRole.AUDITOR, generate=True)
    services_w3 = web3_client(services.rpc_url)
    publisher = treasury_key.identity()["address"]
    services.rpc.call("anvil_setBalance", publisher, hex(DEVNET_GAS_WEI))

    def mine_one(_txid: str) -> None:
        bitcoin.mine(1)

    with sessions.begin() as session:
        result = attest(
            session,
            AttestNodes(
                BitcoinEndpoint(bitcoin.rpc_url, bitcoin.rpc_user, bitcoin.rpc_password),
                "miner",
                chain,
                services_w3,
                evm_chains=tuple(evm_chains),
            ),
            treasury=treasury_key,
            auditor=auditor_key,
            institutions=list(quorum),
            await_bitcoin_confirmation=mine_one,
            options=AttestOptions(out=_next_bundle_path(workdir)),
            clock=clock,
            progress=lambda line: echo(f"   {line}"),
        )
    trust = write_trust_file(workdir, result, treasury_key, auditor_key)
    echo(
        f"   the trust file an auditor pins (keys, registry, genesis, asset registry, vault set): {trust}"
    )
    return result


def write_trust_file(
    workdir: Path, result: AttestResult, treasury: KeySigner, auditor: KeySigner
) -> Path:
    """Write ``trust.json``: what the treasury hands its auditor to pin, once, out of band.

    The keys come from the treasury's own key files, the registry, asset registry and vault set
    from the attestation; the genesis digest is the first attestation's (kept from an earlier trust file if there is one).
    """
    path = workdir / TRUST_FILE_NAME
    genesis = result.bundle.digest.hex() if result.bundle.sequence == 1 else None
    if genesis is None and path.exists():
        genesis = parse_trust(path.read_bytes()).genesis_digest
    registry = result.bundle.body["registry"]
    document = trust_document(
        [treasury.identity()["public_key"]],
        [auditor.identity()["public_key"]],
        RegistryPin(registry["chain_id"], registry["address"], registry["publisher"]),
        genesis_digest=genesis,
        assets=result.bundle.body["assets"],
        vaults=result.bundle.body["vaults"],
    )
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def publish_reserve(
    sessions: sessionmaker[Session], workdir: Path, nodes: Nodes, *, clock: Clock
) -> PublishedSite:
    """The parliament site: every attestation verified against the live nodes, the spends, the
    funds, in Kyrgyz, Russian and English, in ``site/`` of the working folder."""
    bundles = load_bundles(workdir / "attestations", nodes=nodes)
    export = write_export(
        sessions, workdir / EXPORT_FILE_NAME, exported_at=clock(), bitcoin_network="regtest"
    )
    return publish_site(bundles, load_export(export), workdir / "site", published_at=clock())


def verify_reserve(bundle_path: Path, nodes: Nodes, trust: Path | None = None) -> Report:
    """What an auditor runs: the independent verifier against the live nodes (and, if given,
    the pins of the trust file)."""
    anchors = parse_trust(trust.read_bytes()) if trust is not None else None
    return verify_bundle(bundle_path.read_bytes(), nodes=nodes, anchors=anchors)


@dataclass(frozen=True)
class HolderProof:
    """An account holder's proof package, the code that fetches it, and the verifier's verdict."""

    account_id: str
    path: Path
    code: str
    report: Report


def holder_proof(
    sessions: sessionmaker[Session], bundle_path: Path, sequence: int, account_id: str
) -> HolderProof:
    """Issue ``account_id``'s package for attestation ``sequence`` as ``treasury proofs issue``
    does (the tree rebuilt from what the database kept, not from this process's memory), write
    it to ``proofs/`` beside ``attestations/``, and check it with the auditor's verifier against the bundle's root."""
    with sessions() as session:
        tree = kept_tree(session, sequence)
        package = tree.package(account_id)
        code = tree.holder_code(account_id)
    folder = bundle_path.parent.parent / "proofs"
    folder.mkdir(exist_ok=True)
    safe_name = "".join(char if char.isalnum() else "-" for char in account_id)
    path = folder / f"attestation-{sequence:04d}-{safe_name}.json"
    path.write_text(json.dumps(package, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    report = verify_bundle(bundle_path.read_bytes(), leaf=LeafQuery(account_id, package=package))
    return HolderProof(account_id, path, code, report)
