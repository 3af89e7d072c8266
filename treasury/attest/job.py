"""A scheduled attestation: an importable job function for APScheduler (e.g. daily).

Everything it needs is plain, picklable arguments (paths and names), so ``SQLAlchemyJobStore``
can persist the job; the EVM nodes come from the environment (``treasury.settings``), read once
when the job runs, like every scheduled job's settings. Proof of control needs a quorum of each cosigner institution's share
holders: a scheduled run reads the share files given (mounted for the run by the institutions,
e.g. from sealed media) exactly as ``treasury attest --share`` does; passphrase-protected seeds
need their passphrase files. The bundle goes to ``out_dir/attestation-<sequence>.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from custody.ceremony import read_share_file
from custody.ethereum.chain import EthChain
from custody.ethereum.rpc import EvmRPC
from custody.ethereum.web3_client import web3_client
from custody.shamir import ShareMnemonic
from reporting.attestation import SignerRole
from treasury.attest.keys import load_role_key
from treasury.attest.nodes import confirmation_waiter
from treasury.attest.service import (
    AttestNodes,
    AttestOptions,
    BitcoinEndpoint,
    InstitutionShares,
    attest,
    previous_attestation,
)
from treasury.chains import connect
from treasury.db import make_engine, session_factory
from treasury.settings import Settings


def run_daily_attestation(
    database_url: str,
    bitcoin_rpc_url: str,
    out_dir: str,
    treasury_key: str,
    auditor_key: str,
    share_files: Mapping[str, Sequence[str]],
    passphrase_files: Mapping[str, str] | None = None,
    anchor_wallet: str = "miner",
    mine: bool = False,
    csv: str | None = None,
) -> str:
    """Produce and anchor the next attestation; return the bundle file's path.

    ``bitcoin_rpc_url`` is ``http://user:password@host:port``; the EVM nodes come from
    ``TREASURY_RESERVE_RPC_URL`` / ``TREASURY_SERVICES_RPC_URL`` and ``TREASURY_EVM_CHAINS``
    (every further reserve chain), or the devnet state.
    """
    settings = Settings.from_env(os.environ)  # a scheduled job is an edge: read once, here
    endpoint = BitcoinEndpoint.from_url(bitcoin_rpc_url)
    nodes = AttestNodes(
        bitcoin=endpoint,
        anchor_wallet=anchor_wallet,
        reserve=EthChain(EvmRPC(settings.reserve_rpc_url())),
        services=web3_client(settings.services_rpc_url()),
        evm_chains=connect(settings.evm_chains),
    )
    passphrases = passphrase_files or {}
    institutions = [
        InstitutionShares(
            institution,
            [ShareMnemonic(read_share_file(Path(path))) for path in paths],
            Path(passphrases[institution]).read_text().strip()
            if institution in passphrases
            else "",
        )
        for institution, paths in share_files.items()
    ]
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session, session.begin():
            previous = previous_attestation(session)
            sequence = previous.sequence + 1 if previous else 1
            out = Path(out_dir) / f"attestation-{sequence}.json"
            attest(
                session,
                nodes,
                treasury=load_role_key(Path(treasury_key), SignerRole.TREASURY),
                auditor=load_role_key(Path(auditor_key), SignerRole.AUDITOR),
                institutions=institutions,
                await_bitcoin_confirmation=confirmation_waiter(endpoint, anchor_wallet, mine=mine),
                options=AttestOptions(csv=Path(csv) if csv else None, out=out),
            )
    finally:
        engine.dispose()
    return str(out)
