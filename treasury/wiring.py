"""The spend workflow and its chain spenders, wired from the database and the node settings.

The ``treasury spend`` CLI and ``treasury api serve`` both start here, so that officers sign,
broadcast and track the same transactions whichever interface they use. What is read:

* the vaults: the only Bitcoin vault in the database, or the one ``TREASURY_BTC_VAULT`` names;
  the only Safe, or the one ``TREASURY_SAFE_VAULT`` names;
* the nodes: ``custody.nodes`` (``TREASURY_BITCOIN_RPC_URL``, ``TREASURY_RESERVE_RPC_URL``, else
  the running ``treasury devnet up``);
* the Safe's gas payer: ``TREASURY_ETH_RELAYER`` (an address the node signs for), else the node's
  first account (a devnet's funded development account);
* Bitcoin fees: ``TREASURY_BTC_FEE_RATE_SAT_VB`` (default 2) and ``TREASURY_BTC_MAX_FEE_SATS``
  (default 50000); confirmations: ``TREASURY_CONFIRMATIONS_BTC`` / ``_ETH`` (default 1).

An asset whose vault or node is missing simply has no spender: proposing and approving still
work, and preparing, signing or broadcasting it raises ``NotConfiguredError`` saying what to set.
Spends book into the reconciler's own accounts (``treasury.reconcile.accounts``), so a spend
credits the holdings that deposits debit, and the reconciler finds the books matching the chain.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from eth_utils.address import is_address, to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from custody import nodes
from custody.bitcoin.approval import DEFAULT_MAX_FEE_RATE_SAT_VB, DEFAULT_MAX_FEE_SATS
from custody.ceremony import Transcript, list_transcripts
from custody.clock import Clock, utc_now
from custody.ethereum import EthChain, SafeVaults, SigningPolicy
from custody.ethereum.records import SafeVaultRow
from custody.ethereum.rpc import EvmRPC
from custody.exceptions import CustodyError
from custody.records import VaultRecord
from treasury.officers import institution_by_code, list_institutions
from treasury.proposals import (
    DEFAULT_CONFIRMATIONS_REQUIRED,
    ChainSpender,
    LedgerSpendHook,
    ProposalView,
    SpendAccounts,
    Workflow,
)
from treasury.reconcile import ReconcileGate, btc_scope, eth_scope
from treasury.reconcile.accounts import approved_outflows_account, fees_account, holdings_account
from treasury.spenders import BitcoinSpender, SafeSpender
from treasury.workflow_exceptions import NotConfiguredError

BTC = "BTC"
ETH = "ETH"
SPENDABLE_ASSETS = (BTC, ETH)
"""Assets the CLI and API can move: bitcoin from a vault, ether from a Safe."""

BTC_VAULT_ENV = "TREASURY_BTC_VAULT"
SAFE_VAULT_ENV = "TREASURY_SAFE_VAULT"
ETH_RELAYER_ENV = "TREASURY_ETH_RELAYER"
BTC_FEE_RATE_ENV = "TREASURY_BTC_FEE_RATE_SAT_VB"
BTC_MAX_FEE_ENV = "TREASURY_BTC_MAX_FEE_SATS"
CONFIRMATIONS_ENV = {BTC: "TREASURY_CONFIRMATIONS_BTC", ETH: "TREASURY_CONFIRMATIONS_ETH"}

DEFAULT_BTC_FEE_RATE_SAT_VB = Decimal(2)
DEFAULT_BTC_MAX_FEE_SATS = 50_000
"""What one spend may pay in fees unless ``TREASURY_BTC_MAX_FEE_SATS`` says otherwise."""


# --- Settings -----------------------------------------------------------------------------------


def btc_fee_rate_sat_vb() -> Decimal:
    """The fee rate Bitcoin spends are built at, within custody's signer cap."""
    raw = os.environ.get(BTC_FEE_RATE_ENV, "").strip()
    if not raw:
        return DEFAULT_BTC_FEE_RATE_SAT_VB
    try:
        rate = Decimal(raw)
    except InvalidOperation:
        rate = Decimal("NaN")
    if not rate.is_finite() or not 0 < rate <= DEFAULT_MAX_FEE_RATE_SAT_VB:
        raise NotConfiguredError(
            f"{BTC_FEE_RATE_ENV} must be a number of sat/vB above 0 and at most "
            f"{DEFAULT_MAX_FEE_RATE_SAT_VB}, not {raw!r}."
        )
    return rate


def btc_max_fee_sats() -> int:
    """The most one Bitcoin spend may pay in fees, within custody's signer cap."""
    raw = os.environ.get(BTC_MAX_FEE_ENV, "").strip()
    if not raw:
        return DEFAULT_BTC_MAX_FEE_SATS
    if not raw.isdigit() or not 0 < int(raw) <= DEFAULT_MAX_FEE_SATS:
        raise NotConfiguredError(
            f"{BTC_MAX_FEE_ENV} must be a whole number of satoshis from 1 to "
            f"{DEFAULT_MAX_FEE_SATS}, not {raw!r}."
        )
    return int(raw)


def confirmations_required() -> dict[str, int]:
    """Blocks after which a broadcast spend of each asset counts as confirmed."""
    required: dict[str, int] = {}
    for asset, env in CONFIRMATIONS_ENV.items():
        raw = os.environ.get(env, "").strip()
        if raw and (not raw.isdigit() or int(raw) < 1):
            raise NotConfiguredError(
                f"{env} must be a whole number of blocks of at least 1, not {raw!r}."
            )
        required[asset] = int(raw) if raw else DEFAULT_CONFIRMATIONS_REQUIRED
    return required


def eth_relayer(chain: EthChain) -> str:
    """The account that pays the Safe's gas: ``TREASURY_ETH_RELAYER``, else the node's first."""
    raw = os.environ.get(ETH_RELAYER_ENV, "").strip()
    if raw:
        if not is_address(raw):
            raise NotConfiguredError(f"{ETH_RELAYER_ENV} must be an Ethereum address, not {raw!r}.")
        return str(to_checksum_address(raw))
    accounts = chain.accounts()
    if not accounts:
        raise NotConfiguredError(
            f"The node at {chain.rpc.url} signs for no account to pay the Safe's gas; set "
            f"{ETH_RELAYER_ENV} to an address it signs for."
        )
    return accounts[0]


# --- Vaults -------------------------------------------------------------------------------------


def _pick(kind: str, env: str, names: Sequence[str], create_hint: str) -> str:
    """The vault spends come from: the one ``env`` names, else the only one there is."""
    chosen = os.environ.get(env, "").strip()
    known = ", ".join(repr(n) for n in names) or "none"
    if chosen:
        if chosen not in names:
            raise NotConfiguredError(
                f"{env} names the {kind} {chosen!r}, but no {kind} of that name is in the "
                f"database (known: {known})."
            )
        return chosen
    if not names:
        raise NotConfiguredError(f"No {kind} is in the database yet; {create_hint}.")
    if len(names) > 1:
        raise NotConfiguredError(
            f"{len(names)} {kind}s are in the database ({known}); set {env} to the one spends "
            "are paid from."
        )
    return names[0]


def btc_vault_name(session: Session) -> str:
    """The Bitcoin vault spends are paid from (``TREASURY_BTC_VAULT`` or the only one)."""
    names = session.scalars(select(VaultRecord.name).order_by(VaultRecord.name)).all()
    return _pick(
        "Bitcoin vault", BTC_VAULT_ENV, names, "create one with `treasury btc vault create`"
    )


@dataclass(frozen=True)
class SafeRef:
    """A Safe vault as the wiring needs it: its name and the chain it lives on."""

    name: str
    chain_id: int


def safe_vault(session: Session) -> SafeRef:
    """The Safe spends are paid from (``TREASURY_SAFE_VAULT`` or the only one)."""
    rows = session.execute(
        select(SafeVaultRow.name, SafeVaultRow.chain_id).order_by(SafeVaultRow.name)
    ).all()
    name = _pick(
        "Safe vault",
        SAFE_VAULT_ENV,
        [row.name for row in rows],
        "create one with `treasury safe create`",
    )
    return SafeRef(name, next(row.chain_id for row in rows if row.name == name))


def _no_spender(asset: str) -> NotConfiguredError:
    return NotConfiguredError(
        f"No chain spender exists for {asset}; the CLI and API spend "
        f"{' and '.join(SPENDABLE_ASSETS)} only."
    )


def vault_of(session: Session, asset: str) -> str:
    """The name of the vault that pays spends of ``asset``."""
    if asset == BTC:
        return btc_vault_name(session)
    if asset == ETH:
        return safe_vault(session).name
    raise _no_spender(asset)


def spend_accounts(session: Session) -> dict[str, SpendAccounts]:
    """Ledger accounts per spendable asset whose vault is known (the reconciler's own codes)."""
    accounts: dict[str, SpendAccounts] = {}
    scopes: dict[str, str] = {}
    # An asset whose vault is not chosen gets no accounts; its spender says what to configure.
    with contextlib.suppress(NotConfiguredError):
        scopes[BTC] = btc_scope(btc_vault_name(session))
    with contextlib.suppress(NotConfiguredError):
        safe = safe_vault(session)
        scopes[ETH] = eth_scope(safe.chain_id, safe.name)
    for asset, scope in scopes.items():
        accounts[asset] = SpendAccounts(
            holdings=holdings_account(scope, asset),
            payments=approved_outflows_account(asset),
            fees=fees_account(asset),
        )
    return accounts


# --- Institutions -------------------------------------------------------------------------------


def custody_institutions(session: Session) -> dict[str, str]:
    """Workflow institution code -> ceremony name, for every institution with a ceremony.

    ``treasury officers add-institution CODE NAME`` must use the name the ceremony recorded.
    """
    ceremonies = {t.institution for t in list_transcripts(session)}
    return {i.code: i.name for i in list_institutions(session) if i.name in ceremonies}


def institution_transcript(session: Session, code: str) -> Transcript:
    """The ceremony transcript of the workflow institution ``code`` (matched by name)."""
    institution = institution_by_code(session, code)
    found = next((t for t in list_transcripts(session) if t.institution == institution.name), None)
    if found is None:
        raise NotConfiguredError(
            f"Institution {code} is registered as {institution.name!r}, but no key ceremony is "
            "recorded under that name; the name given to `treasury officers add-institution` "
            "must equal the ceremony's institution name (see `treasury ceremony show`)."
        )
    return found


# --- Spenders -----------------------------------------------------------------------------------


def _bitcoin_spender(sessions: sessionmaker[Session]) -> BitcoinSpender:
    with sessions() as session:
        vault = btc_vault_name(session)
        institutions = custody_institutions(session)
    try:
        rpc = nodes.bitcoin_rpc()
    except CustodyError as exc:
        raise NotConfiguredError(f"Spends of {BTC} need bitcoind. {exc}") from None
    return BitcoinSpender(
        sessions,
        rpc,
        vault,
        institutions,
        fee_rate_sat_vb=btc_fee_rate_sat_vb(),
        max_fee_sats=btc_max_fee_sats(),
    )


def _safe_spender(sessions: sessionmaker[Session]) -> SafeSpender:
    with sessions() as session:
        safe = safe_vault(session)
        institutions = custody_institutions(session)
    try:
        chain = EthChain(EvmRPC(nodes.reserve_rpc_url()))
        if chain.chain_id != safe.chain_id:
            raise NotConfiguredError(
                f"The Safe vault {safe.name!r} is on chain {safe.chain_id}, but the node at "
                f"{chain.rpc.url} is chain {chain.chain_id}; point {nodes.RESERVE_RPC_URL_ENV} "
                "at the Safe's chain."
            )
        relayer = eth_relayer(chain)
    except CustodyError as exc:
        raise NotConfiguredError(f"Spends of {ETH} need the reserve's EVM node. {exc}") from None
    return SafeSpender(
        SafeVaults(chain, sessions),
        safe.name,
        institutions,
        relayer=relayer,
        policy=SigningPolicy(),
    )


def spender_for(sessions: sessionmaker[Session], asset: str) -> ChainSpender:
    """The chain spender of ``asset``; ``NotConfiguredError`` says what to set when there is none."""
    if asset == BTC:
        return _bitcoin_spender(sessions)
    if asset == ETH:
        return _safe_spender(sessions)
    raise _no_spender(asset)


def spender_for_proposal(sessions: sessionmaker[Session], view: ProposalView) -> ChainSpender:
    """The spender of a prepared proposal, refusing one whose vault is no longer the configured one.

    Signing or broadcasting through another vault's spender would book the spend against the
    wrong holdings account.
    """
    spender = spender_for(sessions, view.asset)
    prepared_from = None if view.tx_summary is None else view.tx_summary.get("vault")
    if prepared_from is not None:
        with sessions() as session:
            configured = vault_of(session, view.asset)
        if prepared_from != configured:
            env = BTC_VAULT_ENV if view.asset == BTC else SAFE_VAULT_ENV
            raise NotConfiguredError(
                f"Proposal {view.id}'s transaction spends from vault {prepared_from!r}, but the "
                f"configured {view.asset} vault is {configured!r}; set {env}={prepared_from}."
            )
    return spender


@dataclass(frozen=True)
class SpenderSetup:
    """The spenders that could be built, and for each other asset what to configure."""

    spenders: Mapping[str, ChainSpender]
    problems: Mapping[str, str] = field(default_factory=dict)


def spender_setup(sessions: sessionmaker[Session]) -> SpenderSetup:
    """Try every spendable asset; a missing vault or node leaves that asset out, with the reason."""
    spenders: dict[str, ChainSpender] = {}
    problems: dict[str, str] = {}
    for asset in SPENDABLE_ASSETS:
        try:
            spenders[asset] = spender_for(sessions, asset)
        except NotConfiguredError as exc:
            problems[asset] = str(exc)
    return SpenderSetup(spenders, problems)


def configured_spenders(sessions: sessionmaker[Session]) -> dict[str, ChainSpender]:
    """Asset -> chain spender for every asset whose vault and node are configured."""
    return dict(spender_setup(sessions).spenders)


def configured_workflow(sessions: sessionmaker[Session], *, clock: Clock = utc_now) -> Workflow:
    """The workflow booking into the reconciler's accounts, gated by its reconciliation results."""
    with sessions() as session:
        accounts = spend_accounts(session)
    return Workflow(
        sessions,
        LedgerSpendHook(accounts, clock=clock),
        clock=clock,
        reconciliation=ReconcileGate(),
        confirmations_required=confirmations_required(),
    )


__all__ = [
    "BTC_FEE_RATE_ENV",
    "BTC_MAX_FEE_ENV",
    "BTC_VAULT_ENV",
    "CONFIRMATIONS_ENV",
    "ETH_RELAYER_ENV",
    "SAFE_VAULT_ENV",
    "SPENDABLE_ASSETS",
    "SafeRef",
    "SpenderSetup",
    "btc_fee_rate_sat_vb",
    "btc_max_fee_sats",
    "btc_vault_name",
    "configured_spenders",
    "configured_workflow",
    "confirmations_required",
    "custody_institutions",
    "eth_relayer",
    "institution_transcript",
    "safe_vault",
    "spend_accounts",
    "spender_for",
    "spender_for_proposal",
    "spender_setup",
    "vault_of",
]
