"""The spend workflow and its chain spenders, wired from the database and the settings.

The ``treasury spend`` CLI and ``treasury api serve`` both start here, so that officers sign,
broadcast and track the same transactions whichever interface they use. The edge reads the
``Settings`` (``treasury.settings``) once and passes them in; what they decide here:

* the vaults: the only Bitcoin vault in the database, or the one ``TREASURY_BTC_VAULT`` names;
  the only Safe, or the one ``TREASURY_SAFE_VAULT`` names;
* the nodes: ``TREASURY_BITCOIN_RPC_URL``, ``TREASURY_RESERVE_RPC_URL``, else the running
  ``treasury devnet up``;
* the Safe's gas payer: ``TREASURY_ETH_RELAYER`` (an address the node signs for), else the node's
  own account as custody picks it (``custody.ethereum.relayer``; a devnet's funded account);
* Bitcoin fees: ``TREASURY_BTC_FEE_RATE_SAT_VB`` (default 2) and ``TREASURY_BTC_MAX_FEE_SATS``
  (default 50000); confirmations: ``TREASURY_CONFIRMATIONS_BTC`` / ``_ETH`` (default 1).

An asset whose vault or node is missing simply has no spender: proposing and approving still
work, and preparing, signing or broadcasting it raises ``NotConfiguredError`` saying what to set.
Spends book into the reconciler's own accounts (``treasury.reconcile.accounts``), so a spend
credits the holdings that deposits debit, and the reconciler finds the books matching the chain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from custody.ceremony import Transcript, list_transcripts
from custody.clock import Clock, utc_now
from custody.ethereum import EthChain, SafeVaults, SigningPolicy
from custody.ethereum.records import SafeVaultRow
from custody.ethereum.relayer import node_gas_payer
from custody.ethereum.rpc import EvmRPC
from custody.exceptions import CustodyError
from custody.records import VaultRecord
from treasury.officers import institution_by_code, list_institutions
from treasury.proposals import (
    ChainSpender,
    LedgerSpendHook,
    ProposalView,
    SpendAccounts,
    Workflow,
)
from treasury.reconcile import ReconcileGate, btc_scope, eth_scope
from treasury.reconcile.accounts import approved_outflows_account, fees_account, holdings_account
from treasury.settings import (
    BTC_VAULT_ENV,
    ETH_RELAYER_ENV,
    RESERVE_RPC_URL_ENV,
    SAFE_VAULT_ENV,
    NodeNotConfiguredError,
    Settings,
)
from treasury.spenders import BitcoinSpender, SafeSpender
from treasury.workflow_exceptions import NotConfiguredError

BTC = "BTC"
ETH = "ETH"
SPENDABLE_ASSETS = (BTC, ETH)
"""Assets the CLI and API can move: bitcoin from a vault, ether from a Safe."""


# --- Gas payer ----------------------------------------------------------------------------------


def eth_relayer(chain: EthChain, settings: Settings) -> str:
    """The account that pays the Safe's gas: ``TREASURY_ETH_RELAYER``, else the node's own."""
    if settings.spends.eth_relayer is not None:
        return settings.spends.eth_relayer
    payer = node_gas_payer(chain)
    if payer is None:
        raise NotConfiguredError(
            f"The node at {chain.rpc.url} signs for no account to pay the Safe's gas; set "
            f"{ETH_RELAYER_ENV} to an address it signs for."
        )
    return payer


# --- Vaults -------------------------------------------------------------------------------------


def _pick(kind: str, env: str, chosen: str | None, names: Sequence[str], create_hint: str) -> str:
    """The vault spends come from: ``chosen`` (the setting ``env``), else the only one there is."""
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


def btc_vault_name(session: Session, settings: Settings) -> str:
    """The Bitcoin vault spends are paid from (``TREASURY_BTC_VAULT`` or the only one)."""
    names = session.scalars(select(VaultRecord.name).order_by(VaultRecord.name)).all()
    return _pick(
        "Bitcoin vault",
        BTC_VAULT_ENV,
        settings.spends.btc_vault,
        names,
        "create one with `treasury btc vault create`",
    )


@dataclass(frozen=True)
class SafeRef:
    """A Safe vault as the wiring needs it: its name and the chain it lives on."""

    name: str
    chain_id: int


def safe_vault(session: Session, settings: Settings) -> SafeRef:
    """The Safe spends are paid from (``TREASURY_SAFE_VAULT`` or the only one)."""
    rows = session.execute(
        select(SafeVaultRow.name, SafeVaultRow.chain_id).order_by(SafeVaultRow.name)
    ).all()
    name = _pick(
        "Safe vault",
        SAFE_VAULT_ENV,
        settings.spends.safe_vault,
        [row.name for row in rows],
        "create one with `treasury safe create`",
    )
    return SafeRef(name, next(row.chain_id for row in rows if row.name == name))


def _no_spender(asset: str) -> NotConfiguredError:
    return NotConfiguredError(
        f"No chain spender exists for {asset}; the CLI and API spend "
        f"{' and '.join(SPENDABLE_ASSETS)} only."
    )


def vault_of(session: Session, asset: str, settings: Settings) -> str:
    """The name of the vault that pays spends of ``asset``."""
    if asset == BTC:
        return btc_vault_name(session, settings)
    if asset == ETH:
        return safe_vault(session, settings).name
    raise _no_spender(asset)


def spend_accounts(session: Session, settings: Settings) -> dict[str, SpendAccounts]:
    """Ledger accounts per spendable asset whose vault is known (the reconciler's own codes)."""
    accounts: dict[str, SpendAccounts] = {}
    scopes: dict[str, str] = {}
    # An asset whose vault is not chosen gets no accounts; its spender says what to configure.
    with contextlib.suppress(NotConfiguredError):
        scopes[BTC] = btc_scope(btc_vault_name(session, settings))
    with contextlib.suppress(NotConfiguredError):
        safe = safe_vault(session, settings)
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


def _bitcoin_spender(sessions: sessionmaker[Session], settings: Settings) -> BitcoinSpender:
    with sessions() as session:
        vault = btc_vault_name(session, settings)
        institutions = custody_institutions(session)
    try:
        rpc = settings.bitcoin_endpoint().rpc()
    except NodeNotConfiguredError as exc:
        raise NotConfiguredError(f"Spends of {BTC} need bitcoind. {exc}") from None
    return BitcoinSpender(
        sessions,
        rpc,
        vault,
        institutions,
        fee_rate_sat_vb=settings.spends.btc_fee_rate_sat_vb,
        max_fee_sats=settings.spends.btc_max_fee_sats,
    )


def _safe_spender(sessions: sessionmaker[Session], settings: Settings) -> SafeSpender:
    with sessions() as session:
        safe = safe_vault(session, settings)
        institutions = custody_institutions(session)
    try:
        chain = EthChain(EvmRPC(settings.reserve_rpc_url()))
        if chain.chain_id != safe.chain_id:
            raise NotConfiguredError(
                f"The Safe vault {safe.name!r} is on chain {safe.chain_id}, but the node at "
                f"{chain.rpc.url} is chain {chain.chain_id}; point {RESERVE_RPC_URL_ENV} "
                "at the Safe's chain."
            )
        relayer = eth_relayer(chain, settings)
    except (CustodyError, NodeNotConfiguredError) as exc:
        raise NotConfiguredError(f"Spends of {ETH} need the reserve's EVM node. {exc}") from None
    return SafeSpender(
        SafeVaults(chain, sessions),
        safe.name,
        institutions,
        sessions=sessions,
        relayer=relayer,
        policy=SigningPolicy(),
    )


def spender_for(sessions: sessionmaker[Session], asset: str, settings: Settings) -> ChainSpender:
    """The chain spender of ``asset``; ``NotConfiguredError`` says what to set when there is none."""
    if asset == BTC:
        return _bitcoin_spender(sessions, settings)
    if asset == ETH:
        return _safe_spender(sessions, settings)
    raise _no_spender(asset)


def spender_for_proposal(
    sessions: sessionmaker[Session], view: ProposalView, settings: Settings
) -> ChainSpender:
    """The spender of a prepared proposal, refusing one whose vault is no longer the configured one.

    Signing or broadcasting through another vault's spender would book the spend against the
    wrong holdings account.
    """
    spender = spender_for(sessions, view.asset, settings)
    prepared_from = None if view.tx_summary is None else view.tx_summary.get("vault")
    if prepared_from is not None:
        with sessions() as session:
            configured = vault_of(session, view.asset, settings)
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


def spender_setup(sessions: sessionmaker[Session], settings: Settings) -> SpenderSetup:
    """Try every spendable asset; a missing vault or node leaves that asset out, with the reason."""
    spenders: dict[str, ChainSpender] = {}
    problems: dict[str, str] = {}
    for asset in SPENDABLE_ASSETS:
        try:
            spenders[asset] = spender_for(sessions, asset, settings)
        except NotConfiguredError as exc:
            problems[asset] = str(exc)
    return SpenderSetup(spenders, problems)


def configured_spenders(
    sessions: sessionmaker[Session], settings: Settings
) -> dict[str, ChainSpender]:
    """Asset -> chain spender for every asset whose vault and node are configured."""
    return dict(spender_setup(sessions, settings).spenders)


def configured_workflow(
    sessions: sessionmaker[Session], settings: Settings | None = None, *, clock: Clock = utc_now
) -> Workflow:
    """The workflow booking into the reconciler's accounts, gated by its reconciliation results.

    Without ``settings`` (a story on fresh devnets), every setting has its default.
    """
    settings = settings or Settings()
    with sessions() as session:
        accounts = spend_accounts(session, settings)
    return Workflow(
        sessions,
        LedgerSpendHook(accounts, clock=clock),
        clock=clock,
        reconciliation=ReconcileGate(),
        confirmations_required=settings.spends.confirmations_required(),
    )


__all__ = [
    "SPENDABLE_ASSETS",
    "SafeRef",
    "SpenderSetup",
    "btc_vault_name",
    "configured_spenders",
    "configured_workflow",
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
