"""The spend workflow and its chain spenders, wired from the database and the settings.

The ``treasury spend`` CLI and ``treasury api serve`` both start here, so that officers sign,
broadcast and track the same transactions whichever interface they use. The edge reads the
``Settings`` (``treasury.settings``) once and passes them in; what they decide here:

* the vaults: the only Bitcoin vault spends may be paid from (retired vaults, and the new vault of
  a rotation still sweeping, are not: ``treasury.proposals.rotations.spending_vaults``), or the
  one ``TREASURY_BTC_VAULT`` names;
  per EVM reserve chain, the Safe that pays its native coin and tokens: on the first chain the
  only Safe, or the one ``TREASURY_SAFE_VAULT`` names; on each further chain
  (``TREASURY_EVM_CHAINS``) the only Safe on that chain, or the one ``TREASURY_SAFE_VAULT`` names
  when it is on that chain;
* the nodes: ``TREASURY_BITCOIN_RPC_URL``, and the node of the Safe's own chain among the
  configured EVM chains (``TREASURY_RESERVE_RPC_URL``, ``TREASURY_EVM_CHAINS``; ``treasury.chains``),
  else the running ``treasury devnet up``;
* the Safe's gas payer: ``TREASURY_ETH_RELAYER`` (an address the node signs for), else the node's
  own account as custody picks it (``custody.ethereum.relayer``; a devnet's funded account);
* Bitcoin fees: ``TREASURY_BTC_FEE_RATE_SAT_VB`` (default 2) and ``TREASURY_BTC_MAX_FEE_SATS``
  (default 50000); confirmations: ``TREASURY_CONFIRMATIONS_BTC`` / ``_ETH`` (default 1).

Chains are configuration: every configured EVM chain's native coin (``ETH`` on the first, the
code ``TREASURY_EVM_<NAME>_NATIVE_ASSET`` gives a further one, e.g. ``BNB``) is spent from that
chain's Safe, through that chain's node, and booked into that Safe's holdings
(``eth_scope(chain id, Safe)``). Nothing here branches on which chain or coin it is.

Tokens: an ERC-20 the reconciler tracks on a Safe's chain (``treasury.reconcile.track_token``)
is spent from that Safe under its ledger code ``ERC20:<EIP-55 contract>`` (``token_registry``);
``resolve_asset`` also accepts the token's registered symbol (``KGST``). The Safe's signer is
given its chain's id and native coin code, and the tracked tokens that have code on the chain as
its registry (``SigningPolicy``): it refuses a SafeTx of another chain, and names the native coin
as the statements do, so the policy's limits of that coin apply. The registry only narrows what
may be signed, since a token transfer is still signed only when a quorum of the officers'
statements names its contract, recipient and amount.

An asset whose vault or node is missing simply has no spender: proposing and approving still
work, and preparing, signing or broadcasting it raises ``NotConfiguredError`` saying what to set.
Spends book into the reconciler's own accounts (``treasury.reconcile.accounts``), so a spend
credits the holdings that deposits debit, and the reconciler finds the books matching the chain;
a rotation's sweep to its new vault is booked as an internal transfer between two vaults'
holdings (``treasury.rotation.internal_holdings``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eth_utils.address import is_address, to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from custody.ceremony import Transcript, list_transcripts
from custody.clock import Clock, utc_now
from custody.ethereum import EthChain, SafeVaults, SigningPolicy
from custody.ethereum.announcements import ServicesChainWindow
from custody.ethereum.records import SafeVaultRow
from custody.ethereum.rpc import EvmRPC
from custody.ethereum.signer import ERC20_ASSET_PREFIX
from custody.exceptions import CustodyError
from treasury.chains import DEFAULT_NATIVE_ASSET, EvmChainSettings, chain_for
from treasury.fee_bumps import BumpSpender
from treasury.officers import institution_by_code, list_institutions
from treasury.policy import ReconciliationFacts
from treasury.proposals import (
    ChainSpender,
    FeeBumpRow,
    LedgerSpendHook,
    ProposalView,
    SpendAccounts,
    Workflow,
)
from treasury.proposals.rotations import spending_vaults
from treasury.reconcile import ReconcileGate, btc_scope, eth_scope
from treasury.reconcile.accounts import approved_outflows_account, fees_account, holdings_account
from treasury.reconcile.records import TrackedTokenRow
from treasury.relayers import relayer_for
from treasury.rotation import internal_holdings
from treasury.settings import (
    BTC_VAULT_ENV,
    SAFE_VAULT_ENV,
    NodeNotConfiguredError,
    Settings,
    evm_chain_env,
)
from treasury.spenders import BitcoinSpender, SafeSpender
from treasury.workflow_exceptions import NotConfiguredError

BTC = "BTC"
ETH = DEFAULT_NATIVE_ASSET
SPENDABLE_ASSETS = (BTC, ETH)
"""The native assets the CLI and API can move with no further chain configured: bitcoin from a
vault, ether from a Safe. Every further EVM chain's native coin and the tokens tracked on each
Safe's chain are spendable too (``spendable_assets``)."""


# --- Gas payer ----------------------------------------------------------------------------------


def eth_relayer(chain: EthChain, settings: Settings, chain_id: int | None = None) -> str:
    """The account that pays the gas of a Safe on chain ``chain_id`` (``None``: the first chain),
    whose node is ``chain``: that chain's relayer (``TREASURY_ETH_RELAYER`` for the first,
    ``TREASURY_EVM_<NAME>_RELAYER`` for a further one), else the node's own first account."""
    return relayer_for(chain, settings.reserve_chains(), chain_id)


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
    """The Bitcoin vault spends are paid from (``TREASURY_BTC_VAULT`` or the only spending one)."""
    names = spending_vaults(session)
    return _pick(
        "Bitcoin vault",
        BTC_VAULT_ENV,
        settings.spends.btc_vault,
        names,
        "create one with `treasury btc vault create`",
    )


@dataclass(frozen=True)
class SafeRef:
    """A Safe vault as the wiring needs it: its name, the chain it lives on and that chain's
    native coin (the asset code its ether-like transfers are booked and stated in)."""

    name: str
    chain_id: int
    native_asset: str = DEFAULT_NATIVE_ASSET


def _safe_rows(session: Session) -> list[tuple[str, int]]:
    rows = session.execute(
        select(SafeVaultRow.name, SafeVaultRow.chain_id).order_by(SafeVaultRow.name)
    ).all()
    return [(row.name, row.chain_id) for row in rows]


def safe_vault(session: Session, settings: Settings) -> SafeRef:
    """The Safe of the first EVM chain that pays ether and its tokens (``TREASURY_SAFE_VAULT`` or
    the only one); the Safes of the further chains (``TREASURY_EVM_CHAINS``) hold their own
    chain's coins and are never chosen to pay ether (``chain_safe`` picks theirs)."""
    further = {chain.chain_id for chain in settings.evm_chains}
    rows = [(name, chain_id) for name, chain_id in _safe_rows(session) if chain_id not in further]
    name = _pick(
        "Safe vault",
        SAFE_VAULT_ENV,
        settings.spends.safe_vault,
        [row[0] for row in rows],
        "create one with `treasury safe create`",
    )
    first = settings.reserve_chain().native_asset
    return SafeRef(name, next(chain_id for n, chain_id in rows if n == name), first)


def chain_safe(session: Session, settings: Settings, chain: EvmChainSettings) -> SafeRef:
    """The Safe that pays ``chain``'s native coin and tokens: ``safe_vault`` on the first chain;
    on a further chain the Safe its ``TREASURY_EVM_<NAME>_SAFE_VAULT`` names, else the one
    ``TREASURY_SAFE_VAULT`` names if it is on that chain, else the only Safe there is on it."""
    if chain.chain_id is None or chain.chain_id not in {c.chain_id for c in settings.evm_chains}:
        return safe_vault(session, settings)
    names = [name for name, chain_id in _safe_rows(session) if chain_id == chain.chain_id]
    if chain.safe_vault is not None and chain.safe_vault not in names:
        raise NotConfiguredError(
            f"{evm_chain_env(chain.name, 'SAFE_VAULT')} names the Safe vault "
            f"{chain.safe_vault!r}, but no Safe of that name is on the EVM chain {chain.name!r} "
            f"(chain {chain.chain_id}; its Safes: {', '.join(repr(n) for n in names) or 'none'})."
        )
    chosen = chain.safe_vault or settings.spends.safe_vault
    if chosen in names:
        return SafeRef(chosen, chain.chain_id, chain.native_asset)
    if not names:
        raise NotConfiguredError(
            f"No Safe vault on the EVM chain {chain.name!r} (chain {chain.chain_id}) is in the "
            f"database yet, so its {chain.native_asset} cannot be spent; create one with "
            "`treasury safe create` against that chain's node."
        )
    if len(names) > 1:
        raise NotConfiguredError(
            f"{len(names)} Safe vaults are on the EVM chain {chain.name!r} (chain "
            f"{chain.chain_id}: {', '.join(repr(n) for n in names)}); set "
            f"{evm_chain_env(chain.name, 'SAFE_VAULT')} to the one that pays {chain.native_asset}."
        )
    return SafeRef(names[0], chain.chain_id, chain.native_asset)


def native_chains(settings: Settings) -> dict[str, EvmChainSettings]:
    """Native coin code -> its EVM reserve chain, the first chain first (``ETH``, ``BNB``)."""
    return {chain.native_asset: chain for chain in settings.reserve_chains()}


def chain_safes(session: Session, settings: Settings) -> dict[str, SafeRef]:
    """Native coin code -> the Safe that pays it, for every chain whose Safe can be chosen (a
    chain without one is left out: its spender then says what to configure)."""
    safes: dict[str, SafeRef] = {}
    for native, chain in native_chains(settings).items():
        with contextlib.suppress(NotConfiguredError):
            safes[native] = chain_safe(session, settings, chain)
    return safes


# --- Tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredToken:
    """An ERC-20 the treasury holds in its Safe: ledger code, contract, symbol and decimals."""

    code: str
    """``ERC20:<EIP-55 contract>``: the asset code of proposals, ledger and statements."""
    address: str
    symbol: str
    decimals: int


def token_code(address: str) -> str:
    """The asset code of the token at ``address`` (checksummed, as ledger and statements name it)."""
    return ERC20_ASSET_PREFIX + to_checksum_address(address)


def token_registry(session: Session, chain_id: int) -> dict[str, RegisteredToken]:
    """Asset code -> token, for every token the reconciler tracks on chain ``chain_id``."""
    rows = session.scalars(
        select(TrackedTokenRow)
        .where(TrackedTokenRow.chain_id == chain_id)
        .order_by(TrackedTokenRow.id)
    ).all()
    tokens = (
        RegisteredToken(
            token_code(row.address), to_checksum_address(row.address), row.symbol, row.decimals
        )
        for row in rows
    )
    return {token.code: token for token in tokens}


def _safe_tokens(
    session: Session, settings: Settings
) -> dict[str, tuple[RegisteredToken, SafeRef]]:
    """Asset code -> token and the Safe that pays it, for the tokens tracked on each chain whose
    Safe is chosen (none of a chain while its Safe is not)."""
    found: dict[str, tuple[RegisteredToken, SafeRef]] = {}
    for safe in chain_safes(session, settings).values():
        for code, token in token_registry(session, safe.chain_id).items():
            if code in found:  # a row written past ``track_token``, which refuses this
                raise NotConfiguredError(
                    f"The token code {code} is tracked on chains {found[code][1].chain_id} and "
                    f"{safe.chain_id}; one code must name one token, so neither is spent until "
                    "one of the two is no longer tracked."
                )
            found[code] = (token, safe)
    return found


def _natives(settings: Settings) -> tuple[str, ...]:
    """The native coin codes of the configured EVM chains (``ETH`` alone without further ones)."""
    try:
        return tuple(native_chains(settings))
    except NotConfiguredError:  # an inconsistent chain list: only the first chain's coin
        return (ETH,)


def spendable_assets(session: Session, settings: Settings) -> tuple[str, ...]:
    """BTC, every EVM chain's native coin, and the asset code of every token tracked on a Safe's
    chain."""
    return (BTC, *_natives(settings), *_safe_tokens(session, settings))


def resolve_asset(session: Session, text: str, settings: Settings) -> str:
    """The asset code an officer means: ``BTC``, a configured chain's native coin (``ETH``,
    ``BNB``), ``ERC20:<contract>`` in any letter case (checksummed here), or a tracked token's
    symbol (``KGST``). Anything else is returned as given, for the policy to refuse with its
    reason."""
    if text == BTC or text in _natives(settings):
        return text
    if text.upper().startswith(ERC20_ASSET_PREFIX):
        address = text[len(ERC20_ASSET_PREFIX) :]
        if is_address(address):
            return token_code(address)
        return text
    found = [t.code for t, _ in _safe_tokens(session, settings).values() if t.symbol == text]
    if len(found) > 1:
        raise NotConfiguredError(
            f"The symbol {text!r} names {len(found)} tracked tokens ({', '.join(found)}); "
            "name the token by its code ERC20:<contract>."
        )
    return found[0] if found else text


def _no_spender(asset: str, settings: Settings) -> NotConfiguredError:
    return NotConfiguredError(
        f"No chain spender exists for {asset}; the CLI and API spend "
        f"{', '.join((BTC, *_natives(settings)))}, and the tokens tracked on a Safe's chain as "
        f"{ERC20_ASSET_PREFIX}<contract> (tokens the reconciler tracks; an untracked contract "
        "cannot be spent)."
    )


def paying_safe(session: Session, asset: str, settings: Settings) -> SafeRef:
    """The Safe that pays ``asset``: its chain's Safe for a native coin, the Safe of the chain
    the token is tracked on for a token; what to configure when there is none."""
    chains = native_chains(settings)
    if asset in chains:
        return chain_safe(session, settings, chains[asset])
    found = _safe_tokens(session, settings).get(asset)
    if found is None:
        raise _no_spender(asset, settings)
    return found[1]


def vault_of(session: Session, asset: str, settings: Settings) -> str:
    """The name of the vault that pays spends of ``asset``."""
    if asset == BTC:
        return btc_vault_name(session, settings)
    return paying_safe(session, asset, settings).name


def spend_accounts(session: Session, settings: Settings) -> dict[str, SpendAccounts]:
    """Ledger accounts per spendable asset whose vault is known (the reconciler's own codes).

    A native coin's spends move the holdings of its chain's Safe (``eth_scope(chain id, Safe)``);
    a token's move its own asset's accounts in the Safe of the chain it is tracked on (holdings
    in ``ERC20:<contract>``); the Safe's gas is paid by the chain's relayer and booked by the reconciler as a fee in the
    chain's native coin (``treasury.reconcile.relayers``), never in the token.
    """
    accounts: dict[str, SpendAccounts] = {}
    scopes: dict[str, str] = {}
    # An asset whose vault is not chosen gets no accounts; its spender says what to configure.
    with contextlib.suppress(NotConfiguredError):
        scopes[BTC] = btc_scope(btc_vault_name(session, settings))
    with contextlib.suppress(NotConfiguredError):
        for native, safe in chain_safes(session, settings).items():
            scopes[native] = eth_scope(safe.chain_id, safe.name)
            for code in token_registry(session, safe.chain_id):
                scopes[code] = scopes[native]
    for asset, scope in scopes.items():
        accounts[asset] = SpendAccounts(
            holdings=holdings_account(scope, asset),
            payments=approved_outflows_account(asset),
            fees=fees_account(asset),
        )
    return accounts


class TokenReconcileGate:
    """The reconciler's gate, asked under the asset code a proposal names.

    The reconciler records each token's results under its asset code ``ERC20:<contract>``
    (``ResultRow.gate_asset``), the name proposals, the policy and statements use; never under
    its symbol, which two tokens (the same stablecoin on two chains) may share.
    """

    def __init__(self, gate: ReconcileGate | None = None) -> None:
        self._gate = gate or ReconcileGate()

    def latest(self, session: Session, asset: str) -> ReconciliationFacts | None:
        return self._gate.latest(session, asset)


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
        services=window_reader(settings),
    )


def window_reader(settings: Settings) -> ServicesChainWindow | None:
    """The signers' own view of the spend window registry on the services chain, from the
    settings (``TREASURY_WINDOW_REGISTRY`` and the services node), or ``None`` when no registry
    is configured: the signers then refuse every spend the signed policy delays."""
    registry = settings.spends.window_registry
    if registry is None or settings.nodes.services_rpc_url is None:
        return None
    return ServicesChainWindow(
        EthChain(EvmRPC(settings.nodes.services_rpc_url)),
        registry,
        from_block=settings.spends.window_from_block,
    )


def _registry_on_chain(
    chain: EthChain, safe: SafeRef, tokens: Mapping[str, RegisteredToken]
) -> SigningPolicy:
    """The signer's policy on ``safe``'s chain: that chain's id and native coin code, and as its
    token registry the tracked tokens that are contracts on ``chain``.

    A tracked address without code (a typo, another chain's token) could only ever be a
    transfer into the void, so it is left out and the signer refuses calls to it.
    """
    live = [
        t.address
        for t in tokens.values()
        if chain.rpc.call("eth_getCode", t.address, "latest") not in (None, "0x")
    ]
    return SigningPolicy(frozenset(live), chain_id=safe.chain_id, native_asset=safe.native_asset)


def _safe_spender(
    sessions: sessionmaker[Session], settings: Settings, asset: str = ETH
) -> SafeSpender:
    """The spender of a chain's native coin, or of the tracked token whose code is ``asset``,
    from the Safe that pays it (``paying_safe``) through that chain's node."""
    with sessions() as session:
        safe = paying_safe(session, asset, settings)
        institutions = custody_institutions(session)
        tokens = token_registry(session, safe.chain_id)
    token = tokens.get(asset)
    if asset != safe.native_asset and token is None:
        raise _no_spender(asset, settings)
    try:
        chain = chain_for(settings.reserve_chains(), safe.chain_id)
        relayer = eth_relayer(chain, settings, safe.chain_id)
        policy = _registry_on_chain(chain, safe, tokens)
    except (CustodyError, NotConfiguredError) as exc:  # no node of the Safe's chain, or no payer
        raise NotConfiguredError(
            f"Spends of {asset} need the reserve's EVM node of the Safe's chain {safe.chain_id}. {exc}"
        ) from None
    if token is not None and token.address not in policy.allowed_tokens:
        raise NotConfiguredError(
            f"The tracked token {token.symbol} ({token.code}) has no contract code on chain "
            f"{chain.chain_id}; it cannot be spent from the Safe."
        )
    return SafeSpender(
        SafeVaults(chain, sessions),
        safe.name,
        institutions,
        sessions=sessions,
        relayer=relayer,
        token=None if token is None else token.address,
        policy=policy,
        services=window_reader(settings),
        native_asset=safe.native_asset,
    )


def spender_for(sessions: sessionmaker[Session], asset: str, settings: Settings) -> ChainSpender:
    """The chain spender of ``asset``; ``NotConfiguredError`` says what to set when there is none."""
    if asset == BTC:
        return _bitcoin_spender(sessions, settings)
    if asset in _natives(settings) or asset.startswith(ERC20_ASSET_PREFIX):
        return _safe_spender(sessions, settings, asset)
    raise _no_spender(asset, settings)


def spender_for_proposal(
    sessions: sessionmaker[Session], view: ProposalView, settings: Settings
) -> ChainSpender:
    """The spender of a proposal, refusing one whose vault is no longer the configured one.

    Signing or broadcasting through another vault's spender would book the spend against the
    wrong holdings account. A fee bump's spender builds the replacement of the transaction it
    bumps (``treasury.fee_bumps.BumpSpender``).
    """
    spender: ChainSpender = spender_for(sessions, view.asset, settings)
    with sessions() as session:
        is_bump = session.get(FeeBumpRow, view.id) is not None
    if is_bump:  # a fee bump's transaction is the replacement of another proposal's
        spender = BumpSpender(sessions, settings.bitcoin_endpoint().rpc(), spender)
    prepared_from = None if view.tx_summary is None else view.tx_summary.get("vault")
    if prepared_from is not None:
        with sessions() as session:
            configured = vault_of(session, view.asset, settings)
        if prepared_from != configured:
            env = BTC_VAULT_ENV if view.asset == BTC else SAFE_VAULT_ENV  # coins, tokens: Safes
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
    with sessions() as session:
        assets = spendable_assets(session, settings)
    for asset in assets:
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
        LedgerSpendHook(accounts, clock=clock, internal=internal_holdings),
        clock=clock,
        reconciliation=TokenReconcileGate(),
        confirmations_required=settings.spends.confirmations_required(),
    )


__all__ = [
    "SPENDABLE_ASSETS",
    "RegisteredToken",
    "SafeRef",
    "SpenderSetup",
    "TokenReconcileGate",
    "btc_vault_name",
    "chain_safe",
    "chain_safes",
    "configured_spenders",
    "configured_workflow",
    "custody_institutions",
    "eth_relayer",
    "institution_transcript",
    "native_chains",
    "paying_safe",
    "resolve_asset",
    "safe_vault",
    "spend_accounts",
    "spendable_assets",
    "spender_for",
    "spender_for_proposal",
    "spender_setup",
    "token_code",
    "token_registry",
    "vault_of",
]
