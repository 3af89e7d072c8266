"""``treasury attest``: produce, prove, sign, anchor, record and write the next attestation.

Share words come from the holders' files (``--share INSTITUTION=FILE``, repeated) and a
passphrase, if the transcript says there is one, is typed without echo; neither is an argument.
The treasury's and the audit office's keys are files (0600); ``--generate-keys`` creates missing
ones on a devnet. Nodes come from ``TREASURY_*_RPC_URL`` or the running ``treasury devnet up``
(``treasury.settings``).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError
from web3.exceptions import Web3Exception

from custody.ceremony import load_transcript, read_share_file
from custody.ethereum.chain import EthChain
from custody.ethereum.rpc import EvmRPC
from custody.ethereum.web3_client import web3_client
from custody.exceptions import CustodyError
from custody.shamir import ShareMnemonic
from reporting.attestation import SignerRole
from reporting.exceptions import ReportingError
from treasury.attest.keys import role_key
from treasury.attest.nodes import confirmation_waiter
from treasury.attest.service import (
    AttestNodes,
    AttestOptions,
    InstitutionShares,
)
from treasury.attest.service import (
    attest as produce_attestation,
)
from treasury.chains import connect
from treasury.cli.context import fail, settings
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError


def parse_share_options(values: list[str]) -> dict[str, list[Path]]:
    """``INSTITUTION=FILE`` options grouped by institution, in the order given."""
    grouped: dict[str, list[Path]] = defaultdict(list)
    for value in values:
        institution, sep, path = value.rpartition("=")
        if not sep or not institution or not path:
            raise typer.BadParameter(f"--share {value!r} must be INSTITUTION=FILE.")
        grouped[institution].append(Path(path))
    return dict(grouped)


def attest(
    out: Annotated[Path, typer.Option(help="Where to write the bundle (JSON).")] = Path(
        "attestation.json"
    ),
    csv: Annotated[
        Path | None,
        typer.Option(help="Extra liabilities: CSV rows 'account id, asset, amount in base units'."),
    ] = None,
    csv_itemises: Annotated[
        str | None,
        typer.Option(help="The ledger fund account the CSV itemises (its own leaf is left out)."),
    ] = None,
    treasury_key: Annotated[
        Path, typer.Option(help="The treasury's attestation key file (hex, mode 0600).")
    ] = Path("keys/treasury-attestation.key"),
    auditor_key: Annotated[
        Path, typer.Option(help="The state audit office's countersigning key file (hex, 0600).")
    ] = Path("keys/audit-office-attestation.key"),
    generate_keys: Annotated[
        bool, typer.Option(help="Devnets only: create missing key files (0600) first.")
    ] = False,
    share: Annotated[
        list[str] | None,
        typer.Option(help="INSTITUTION=SHARE_FILE of a holder present; repeat for a quorum."),
    ] = None,
    token: Annotated[
        list[str] | None,
        typer.Option(help="ASSET=0xCONTRACT of a token to attest (default: the ledger's ERC-20s)."),
    ] = None,
    public: Annotated[
        list[str] | None,
        typer.Option(help="An account to publish in full (default: every ledger fund account)."),
    ] = None,
    anchor_wallet: Annotated[
        str, typer.Option(help="The bitcoind wallet paying the OP_RETURN anchor's fee.")
    ] = "miner",
    mine: Annotated[
        bool, typer.Option(help="Devnets only: mine the anchor's block instead of waiting.")
    ] = False,
    confirmations: Annotated[
        int, typer.Option(help="Confirmations the snapshot block needs on each chain.")
    ] = 1,
) -> None:
    """Attest the reserve: snapshot the vaults, prove control with share quorums, sign, countersign, anchor on both chains and write the bundle."""
    configured = settings()
    try:
        shares = parse_share_options(share or [])
        tokens = {}
        for item in token or []:
            asset, sep, address = item.partition("=")
            if not sep:
                raise typer.BadParameter(f"--token {item!r} must be ASSET=0xCONTRACT.")
            tokens[asset] = address
        treasury = role_key(treasury_key, SignerRole.TREASURY, generate=generate_keys)
        auditor = role_key(auditor_key, SignerRole.AUDITOR, generate=generate_keys)
        endpoint = configured.bitcoin_endpoint()
        nodes = AttestNodes(
            bitcoin=endpoint,
            anchor_wallet=anchor_wallet,
            reserve=EthChain(EvmRPC(configured.reserve_rpc_url())),
            services=web3_client(configured.services_rpc_url()),
            evm_chains=connect(configured.evm_chains),
        )
        engine = make_engine(configured.database_url)
        try:
            with session_factory(engine)() as session, session.begin():
                institutions = []
                for institution, paths in shares.items():
                    transcript = load_transcript(session, institution)
                    words = [ShareMnemonic(read_share_file(path)) for path in paths]
                    passphrase = (
                        typer.prompt(f"SLIP-39 passphrase of {institution}", hide_input=True)
                        if transcript.passphrase_protected
                        else ""
                    )
                    institutions.append(InstitutionShares(institution, words, passphrase))
                result = produce_attestation(
                    session,
                    nodes,
                    treasury=treasury,
                    auditor=auditor,
                    institutions=institutions,
                    await_bitcoin_confirmation=confirmation_waiter(
                        endpoint, anchor_wallet, mine=mine
                    ),
                    options=AttestOptions(
                        confirmations_bitcoin=confirmations,
                        confirmations_evm=confirmations,
                        csv=csv,
                        csv_itemises=csv_itemises,
                        tokens=tokens or None,
                        public_accounts=tuple(public) if public else None,
                        out=out,
                    ),
                    progress=typer.echo,
                )
        finally:
            engine.dispose()
    except (CustodyError, TreasuryError, ReportingError) as exc:
        raise fail(exc) from None
    except (OSError, Web3Exception) as exc:
        raise fail(f"a file or node could not be used: {exc}") from None
    except SQLAlchemyError as exc:
        raise fail(
            f"the database refused the operation ({type(exc).__name__}); is its schema current? "
            "Run `treasury db upgrade`."
        ) from None
    typer.echo(f"attestation {result.bundle.sequence}: {result.bundle.digest.hex()} -> {out}")
