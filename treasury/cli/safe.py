"""``treasury safe``: Safe multisig vaults on the reserve's EVM chains.

``deploy`` and ``create`` act on the chain ``--chain`` names (``reserve``, the default, or a
further chain of ``TREASURY_EVM_CHAINS`` such as ``bnb``); every other command acts on the chain
its vault or SafeTx was recorded on, through that chain's configured node (which must serve it).

Amounts are integers in base units (wei for ether, the token's smallest unit for ERC-20s). Gas is
paid by a relayer account the node holds (``--relayer``, else the node's own first account, as
``custody.ethereum.relayer`` picks it: on the devnet, anvil's first development account).
Signing first shows the SafeTx's action decoded from the SafeTx itself, in coin units, with its
Safe, chain, nonce and hash, and asks to confirm (``--yes`` skips the question); only then are
share words read from the holders' share files (as the ceremony writes them) or typed without
echo. They are never printed or stored.

Custody signs only a SafeTx covered by the officers' approval statements (those of the proposal
whose current transaction it is, verified by the signer itself); without them ``sign`` refuses
with exit code 2 before any share is read, unless the holders choose ``--break-glass --reason``
(see ``treasury.cli.btc``). A break-glass signature is recorded, audited and alarmed, and
``execute`` then requires every owner's signature, not just the threshold.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from custody.authority.gate import approvers_line
from custody.authority.statement import EVM_CHAIN_PREFIX
from custody.ceremony import load_transcript, read_share_file
from custody.clock import utc_now
from custody.ethereum.chain import EthChain
from custody.ethereum.deploy import deploy_safe_contracts
from custody.ethereum.relayer import node_gas_payer
from custody.ethereum.rpc import EvmRPC
from custody.ethereum.safe_vaults import SafeVaults
from custody.ethereum.signer import KeyQuorum, SigningPolicy, TokenTransfer
from custody.ethereum.vault import VaultOwner
from custody.ethereum.vault_store import VaultStore
from custody.exceptions import CustodyError
from custody.shamir import ShareMnemonic, parse_shares
from treasury.chains import RESERVE_CHAIN_NAME, chain_for
from treasury.cli.btc import (
    BREAK_GLASS_HELP,
    REASON_HELP,
    SIGN_EPILOG,
    authority_lines,
    break_glass_choice,
    signing_authority,
)
from treasury.cli.context import fail, settings
from treasury.cli.review import confirm_before_shares, known_token, safe_lines
from treasury.db import make_engine, session_factory
from treasury.exceptions import TreasuryError
from treasury.logs import bound_ids
from treasury.reconcile.break_glass import break_glass_signatures_for, record_break_glass

app = typer.Typer(
    help="Safe (v1.4.1) multisig vaults owned by the institutions' cosigner keys.",
    no_args_is_help=True,
)


class _CliError(Exception):
    """A usage problem found by the CLI itself."""


@contextmanager
def _errors() -> Iterator[None]:
    """Turn every expected failure into one `error: ...` line and exit code 1."""
    try:
        yield
    except (CustodyError, TreasuryError, _CliError) as exc:
        raise fail(exc) from None
    except SQLAlchemyError as exc:
        raise fail(
            f"the database refused the operation ({type(exc).__name__}); "
            "run `treasury db upgrade` if its Safe tables are missing."
        ) from None


def _chain(name: str = RESERVE_CHAIN_NAME) -> EthChain:
    """The configured EVM chain called ``name``, its node checked to serve its chain id."""
    chains = settings().reserve_chains()
    for chain in chains:
        if chain.name == name:
            if chain.name == RESERVE_CHAIN_NAME:
                return EthChain(EvmRPC(settings().reserve_rpc_url()))
            return chain.client()
    known = ", ".join(chain.name for chain in chains)
    raise _CliError(f"No EVM chain is configured as {name!r} (configured: {known}).")


def _store() -> VaultStore:
    return VaultStore(session_factory(make_engine(settings().database_url)))


def _vault_chain(name: str) -> EthChain:
    """The configured node of the chain vault ``name`` lives on."""
    return chain_for(settings().reserve_chains(), _store().vault(name).chain_id)


def _safe_tx_chain(safe_tx_hash: str) -> EthChain:
    """The configured node of the chain the SafeTx ``safe_tx_hash`` was proposed on."""
    return chain_for(settings().reserve_chains(), _store().proposal(safe_tx_hash).safe_tx.chain_id)


def _vaults(chain: EthChain) -> SafeVaults:
    return SafeVaults(chain, session_factory(make_engine(settings().database_url)))


def _gas_payer(chain: EthChain, given: str | None) -> str:
    payer = given or node_gas_payer(chain)
    if payer is None:
        raise _CliError("The node holds no account to pay gas; pass --relayer ADDRESS.")
    return payer


def _owner(text: str) -> VaultOwner:
    """An owner from its ceremony transcript ('National Bank'), or given in full."""
    if "=" not in text:
        with session_factory(make_engine(settings().database_url))() as session:
            transcript = load_transcript(session, text.strip())
        return VaultOwner(transcript.institution, transcript.eth_address, transcript.fingerprint)
    institution, _, rest = text.partition("=")
    fingerprint, _, address = rest.partition(":")
    if not (institution and fingerprint and address):
        raise _CliError(
            f"--owner {text!r} must name an institution with a ceremony transcript, or look "
            "like 'INSTITUTION=FINGERPRINT:0xADDRESS'."
        )
    return VaultOwner(institution.strip(), address.strip(), fingerprint.strip())


PAYER_OPTION = typer.Option(
    None, "--relayer", help="Account that pays gas (default: node's first)."
)
CHAIN_OPTION = typer.Option(
    RESERVE_CHAIN_NAME,
    "--chain",
    help="The EVM reserve chain by its configured name (reserve, or one of TREASURY_EVM_CHAINS).",
)


@app.command()
def deploy(relayer: str | None = PAYER_OPTION, chain_name: str = CHAIN_OPTION) -> None:
    """Deploy the audited Safe v1.4.1 contracts at their canonical addresses (no-op if present)."""
    with _errors():
        chain = _chain(chain_name)
        report = deploy_safe_contracts(chain, _gas_payer(chain, relayer))
        d = report.deployment
        typer.echo(f"chain {d.chain_id}: Safe v1.4.1 ready")
        typer.echo(f"  SafeL2 singleton     {d.singleton}")
        typer.echo(f"  proxy factory        {d.proxy_factory}")
        typer.echo(f"  fallback handler     {d.fallback_handler}")
        typer.echo(f"  deployed now: {', '.join(report.deployed) or 'nothing (already there)'}")


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="The vault's name in the database.")],
    threshold: Annotated[
        int, typer.Option(help="How many institutions must sign each transaction.")
    ],
    owner: Annotated[
        list[str],
        typer.Option(
            help="An institution whose ceremony transcript gives its owner key (repeat), or "
            "INSTITUTION=FINGERPRINT:0xADDRESS."
        ),
    ],
    relayer: str | None = PAYER_OPTION,
    chain_name: str = CHAIN_OPTION,
) -> None:
    """Create a THRESHOLD-of-N Safe owned by the given institutions and record its roster."""
    with _errors():
        chain = _chain(chain_name)
        owners = [_owner(text) for text in owner]
        vault = _vaults(chain).create(name, owners, threshold, payer=_gas_payer(chain, relayer))
        typer.echo(f"vault {vault.name}: Safe {vault.address} ({vault.threshold}-of-{len(owners)})")


@app.command()
def show(name: str = typer.Argument(..., help="The vault's name.")) -> None:
    """Show a vault's roster, its on-chain check, balance and proposed transactions."""
    with _errors():
        chain = _vault_chain(name)
        vaults = _vaults(chain)
        vault = vaults.vault(name)
        state = vaults.verify(vault)
        typer.echo(f"vault {vault.name}: Safe {vault.address} on chain {vault.chain_id}")
        typer.echo(
            f"  {vault.threshold}-of-{len(vault.owners)}, nonce {state.nonce} (matches chain)"
        )
        for o in vault.owners:
            typer.echo(f"  owner {o.institution}: {o.address} (fingerprint {o.fingerprint})")
        typer.echo(f"  balance {chain.balance(vault.address)} wei")
        for p in vaults.proposals(name):
            signers = ", ".join(inst for inst, _sig in p.signatures) or "none"
            typer.echo(f"  SafeTx {p.safe_tx.hash_hex} nonce {p.safe_tx.nonce} {p.state.value}")
            typer.echo(f"    signed by: {signers}")


@app.command()
def transfer(
    name: str = typer.Argument(..., help="The vault to pay from."),
    to: str = typer.Option(..., help="Recipient address."),
    amount: int = typer.Option(
        ..., help="Amount in base units: wei, or the token's smallest unit."
    ),
    token: str | None = typer.Option(None, help="ERC-20 contract; omit to send ether."),
) -> None:
    """Propose an ether or ERC-20 transfer from the vault and print the SafeTx hash to sign."""
    with _errors():
        vaults = _vaults(_vault_chain(name))
        if token:
            safe_tx = vaults.propose_token_transfer(name, token, to, amount)
        else:
            safe_tx = vaults.propose_ether_transfer(name, to, amount)
        typer.echo(f"proposed SafeTx {safe_tx.hash_hex} (nonce {safe_tx.nonce})")


@app.command("rotate-owner")
def rotate_owner(
    name: str = typer.Argument(..., help="The vault."),
    institution: str = typer.Option(..., help="Whose owner key is replaced."),
    new_owner: str = typer.Option(..., help="FINGERPRINT:0xADDRESS of the new ceremony's key."),
) -> None:
    """Propose a swapOwner SafeTx replacing an institution's key; it needs the threshold too."""
    with _errors():
        owner = _owner(f"{institution}={new_owner}")
        safe_tx = _vaults(_vault_chain(name)).propose_owner_swap(name, owner)
        typer.echo(f"proposed SafeTx {safe_tx.hash_hex} (nonce {safe_tx.nonce})")


def _read_shares(files: list[Path]) -> list[ShareMnemonic]:
    """Shares from the holders' files as the ceremony writes them, else prompted without echo."""
    if files:
        return parse_shares([read_share_file(path) for path in files])
    first = parse_shares([typer.prompt("Share 1", hide_input=True)])[0]
    more = [
        typer.prompt(f"Share {i}", hide_input=True)
        for i in range(2, first.info.member_threshold + 1)
    ]
    return [first, *parse_shares(more)]


@app.command(epilog=SIGN_EPILOG)
def sign(
    safe_tx_hash: str = typer.Argument(..., help="The proposed SafeTx's hash."),
    institution: str = typer.Option(..., help="The institution whose key signs."),
    shares_file: Annotated[
        list[Path] | None,
        typer.Option(
            help="A holder's share file as the ceremony wrote it (repeat); else shares are "
            "prompted without echo."
        ),
    ] = None,
    allow_token: Annotated[
        list[str] | None, typer.Option(help="ERC-20 contract the signer may call (repeat).")
    ] = None,
    yes: bool = typer.Option(False, "--yes", help="Sign without asking to confirm."),
    break_glass: Annotated[bool, typer.Option("--break-glass", help=BREAK_GLASS_HELP)] = False,
    reason: Annotated[str | None, typer.Option(help=REASON_HELP)] = None,
) -> None:
    """Show the action decoded from the SafeTx and its hash, then sign it with the institution's recombined key on the officers' approval statements (or, in an emergency, with --break-glass --reason)."""
    emergency = break_glass_choice(break_glass, reason)
    with _errors(), bound_ids(safe_tx_hash=safe_tx_hash):
        chain = _safe_tx_chain(safe_tx_hash)
        vaults = _vaults(chain)
        policy = SigningPolicy(frozenset(allow_token or ()))
        approval = vaults.approval(safe_tx_hash, policy)
        proposal = vaults.proposal(safe_tx_hash)
        owner = vaults.vault(proposal.vault_name).owner(institution)
        sessions = session_factory(make_engine(settings().database_url))
        chain_name = f"{EVM_CHAIN_PREFIX}{approval.safe_tx.chain_id}"
        if emergency is not None:
            if any(inst == institution for inst, _sig in proposal.signatures):
                raise _CliError(
                    f"{institution} has already signed SafeTx {proposal.safe_tx.hash_hex}."
                )
            with sessions() as session:  # the record's table is read before any share
                break_glass_signatures_for(session, chain_name, proposal.safe_tx.hash_hex)
        token = None
        if isinstance(approval.action, TokenTransfer):
            with sessions() as session:
                token = known_token(session, approval.safe_tx.chain_id, approval.action.token)
        lines = safe_lines(approval, proposal.vault_name, token)
        signers = ", ".join(inst for inst, _sig in proposal.signatures) or "nobody yet"
        lines.append(f"  signed so far by: {signers}")
        authority = signing_authority(proposal.safe_tx.hash_hex, emergency)
        lines += authority_lines(authority)
        confirm_before_shares(lines, f"Sign this as {institution}?", yes=yes)
        shares = _read_shares(shares_file or [])
        passphrase = typer.prompt("Passphrase", hide_input=True, default="", show_default=False)
        quorum = KeyQuorum(institution, shares, passphrase, owner.fingerprint)
        signed = vaults.cosign(approval, quorum, policy, authority=authority)
        if emergency is not None:
            with sessions.begin() as session:
                record_break_glass(
                    session,
                    chain=chain_name,
                    vault=approval.safe_tx.safe,
                    tx_hash=proposal.safe_tx.hash_hex,
                    institution=institution,
                    reason=emergency.reason,
                    clock=utc_now,
                )
        typer.echo(f"signed by {institution} (owner {signed.signature.owner})")
        if signed.authorization is not None:
            typer.echo(f"signatures verified by the signer: {approvers_line(signed.authorization)}")
        if signed.break_glass is not None:
            typer.echo(f"BREAK-GLASS signature recorded (reason: {signed.break_glass})")


@app.command()
def execute(
    safe_tx_hash: str = typer.Argument(..., help="The SafeTx to execute."),
    relayer: str | None = PAYER_OPTION,
) -> None:
    """Execute a SafeTx once it has the threshold of owner signatures (every owner's, if any signed under break-glass), and wait for its receipt."""
    with _errors(), bound_ids(safe_tx_hash=safe_tx_hash):
        chain = _safe_tx_chain(safe_tx_hash)
        vaults = _vaults(chain)
        safe_tx = vaults.proposal(safe_tx_hash).safe_tx
        with session_factory(make_engine(settings().database_url))() as session:
            recorded = break_glass_signatures_for(
                session, f"{EVM_CHAIN_PREFIX}{safe_tx.chain_id}", safe_tx.hash_hex
            )
        receipt = vaults.execute(
            safe_tx_hash, _gas_payer(chain, relayer), require_every_owner=bool(recorded)
        )
        typer.echo(f"executed in transaction {receipt.tx_hash} (block {receipt.block_number})")
