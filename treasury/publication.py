"""The public export of the treasury's books for the parliament site.

The site (``reporting.site``) sits below the treasury in the layers and never reads its database:
it reads this export, a file anyone can keep, diff and publish beside the site. The treasury
writes it from its own read paths: the ledger's fund balances and asset scales, the
institutions, and each executed spend as the proposal view shows it to the CLI and the API
(``treasury.proposals.views``), so "who approved the executed transaction" is answered by the
treasury's own query, not a copy of it.

The document (UTF-8 JSON, keys sorted; specified in ``reporting/SPEC-export.md``)::

    {
      "format": "national-reserve-export/1",
      "exported_at": "2026-05-01T12:00:00+00:00",
      "original_language": "en",
      "chains": [{"id": "bitcoin:regtest", "name": "Bitcoin regtest (a local test network)"}],
      "assets":       [{"code": "BTC", "decimals": 8, "chain": "bitcoin:regtest"}],
      "institutions": [{"code": "CB", "name": "Central Bank", "translations": {"ru": "..."}}],
      "legal_bases":  [{"reference": "DECREE-2026-17", "title": "Reserve rebalancing decree",
                        "translations": {"ky": "...", "ru": "..."}, "text_urls": {"ru": "https://..."}}],
      "funds":  [{"account": "equity:btc", "name": "...", "kind": "equity", "asset": "BTC",
                  "posted": "4975000000", "pending": "0", "available": "4975000000",
                  "translations": {}}],
      "spends": [{"proposal_id": 1, "state": "confirmed", "asset": "BTC", "amount": "25000000",
                  "destination": "bcrt1q...", "purpose": "...", "translations": {"ky": "..."},
                  "legal_basis": "DECREE-2026-17", "approved_by": ["CB", "PARL"], "txid": "ab12...",
                  "executed_at": "2026-11-27T10:00:00+00:00", "fee": "1000",
                  "paid_from": {"account": "vault:btc", "name": "...", "translations": {}},
                  "booked_to": {"account": "payments:btc", "name": "...", "translations": {}},
                  "payee": {"label": "Payee", "translations": {}}}],
      "movements": {"BTC": {"allocated": "5000000000", "spent": "25000000", "fees": "1000",
                            "unexplained": "0", "held": "4974999000",
                            "pending": {"allocated": "0", "spent": "0", "fees": "0",
                                        "unexplained": "0", "held": "0"}}},
      "pending_spends": [{"proposal_id": 4, "chain": "eip155:31337", "asset": "ETH",
                          "amount": "5000000000000000000", "destination": "0x...",
                          "tx_hash": "0x...", "announced_at": "...", "opens_at": "...",
                          "status": "waiting", "vetoed_by": null,
                          "services": {"chain_id": 1337, "registry": "0x...",
                                       "announcement_tx": "0x...", "veto_tx": null}}]
    }

Amounts are decimal strings of integer base units, never JSON numbers; JSON integers are only
counts (ids, decimals); times are ISO 8601 with their UTC offset, or null. ``funds`` are the
liability and equity accounts by code; ``spends`` the broadcast and confirmed proposals by id,
``approved_by`` the codes of the institutions whose standing approval names the executed
transaction, in the order they approved; ``legal_bases`` the decrees those spends cite. A change a reader could misread takes
a new ``format``.

Officer-entered text (names, titles, purposes, labels) is the original, in ``original_language``;
each object carrying such text has ``translations``, the wordings entered in
``treasury.translations`` (only the languages entered).

``movements`` reconciles the funds with the vaults. A spend does not debit a fund: the ledger
credits the vault's holdings with amount plus fee and debits an outflow account with the amount
and the fee account with the fee (``treasury.proposals.ledger_hook``; the reconciler books a spend
nobody proposed to approved outflows or to suspense). Since every entry balances per asset,
``allocated - spent - unexplained - fees = held`` holds for each asset, for the posted balances
and for the pending ones separately.

``pending_spends`` are the large spends announced on the services chain before signing
(``treasury.announcements``): each with its public window and whether an institution vetoed it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from reporting.attestation import bitcoin_chain, evm_chain
from reporting.site import EXPORT_FORMAT
from treasury import ledger
from treasury.announcements import pending_spends_export
from treasury.custody_health import key_health_export
from treasury.exceptions import TreasuryError
from treasury.ledger import AccountRecord, AccountType, Side
from treasury.officers import list_institutions
from treasury.policy import legal_basis_by_reference
from treasury.policy.tables import AllowlistActivationRow, AllowlistEntryRow
from treasury.proposals import ProposalState, ProposalView, SpendPosting, SpendProposalRow
from treasury.proposals.views import proposal_view
from treasury.reconcile.accounts import suspense_account
from treasury.translations import ORIGINAL_LANGUAGE, TranslationKind, translations_by_key

EXPORT_FILE_NAME = "export.json"
"""The export's file name where a folder holds it (``treasury publish`` uses a temporary one)."""

PUBLIC_FILE_MODE = 0o644
"""The export is public: readable by anyone, like the site published from it."""

EXECUTED_STATES = (ProposalState.BROADCAST, ProposalState.CONFIRMED)
"""Spends that left the vault: sent to the network (awaiting confirmations) or confirmed."""

FUND_ACCOUNT_TYPES = (AccountType.LIABILITY, AccountType.EQUITY)
"""Ledger accounts that hold the reserve's allocations: funds and budget lines it owes, and its
unallocated equity. Vault, payment and fee accounts are movements, not allocations."""

ALLOCATION_ACCOUNT_TYPES = (AccountType.LIABILITY, AccountType.EQUITY, AccountType.INCOME)
"""Accounts summed into ``movements.allocated``: the funds, plus any income not yet allocated."""

FEE_ACCOUNT_PREFIX = "fees:"
"""Expense accounts of network fees start with this (``treasury.reconcile.accounts.fees_account``)."""

MOVEMENT_FIGURES = ("allocated", "spent", "unexplained", "fees", "held")
"""The figures of one asset's ``movements``, in the order of the identity."""

BITCOIN_NETWORK_NAMES = {
    "main": "Bitcoin",
    "test": "Bitcoin testnet (a test network)",
    "signet": "Bitcoin signet (a test network)",
    "regtest": "Bitcoin regtest (a local test network)",
}
"""English names of the Bitcoin networks, by the name a bundle's registry gives them."""

EVM_CHAIN_NAMES = {
    1: "Ethereum",
    11155111: "Ethereum Sepolia (a test network)",
    17000: "Ethereum Holesky (a test network)",
    31337: "Local EVM test chain 31337",
}
"""English names of well-known EVM chains, by chain id; others are "EVM chain <id>"."""

LEDGER_CHAIN_NAMES = {"bitcoin": "Bitcoin", "ethereum": "Ethereum-compatible chain"}
"""Names of the ledger's chain families, used when the network or chain id is not known."""


class ExportError(TreasuryError):
    """The treasury's books cannot be read for the export, or the export file cannot be written."""


def _moment(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _approved_by(view: ProposalView) -> list[str]:
    """Institutions whose standing (not voided) approval names the executed transaction."""
    return [
        approval.institution
        for approval in view.approvals
        if approval.voided_at is None and approval.tx_hash == view.tx_hash
    ]


class _Books:
    """What several parts of the export look up: accounts by code and the translations in force."""

    def __init__(self, session: Session) -> None:
        self.accounts = {record.code: record for record in ledger.list_accounts(session)}
        self.translations = {kind: translations_by_key(session, kind) for kind in TranslationKind}

    def translated(self, kind: TranslationKind, key: str | int) -> dict[str, str]:
        return dict(self.translations[kind].get(str(key), {}))

    def account(self, code: str) -> dict[str, Any]:
        record = self.accounts[code]
        return {
            "account": code,
            "name": record.name,
            "translations": self.translated(TranslationKind.ACCOUNT, code),
        }


def _payee(session: Session, books: _Books, asset: str, address: str) -> dict[str, Any] | None:
    """The allowlist's label for ``address``: its newest activated entry, else its newest entry."""
    label = session.scalar(
        select(AllowlistEntryRow.label)
        .outerjoin(AllowlistActivationRow, AllowlistActivationRow.entry_id == AllowlistEntryRow.id)
        .where(AllowlistEntryRow.asset == asset, AllowlistEntryRow.address == address)
        .order_by(AllowlistActivationRow.entry_id.is_(None), AllowlistEntryRow.id.desc())
        .limit(1)
    )
    if label is None:
        return None
    return {"label": label, "translations": books.translated(TranslationKind.PAYEE, address)}


def _booking(session: Session, books: _Books, proposal_id: int) -> dict[str, Any]:
    """Which accounts the spend's ledger entry moved: the vault it credited, the outflow account
    it debited with the amount (its first debit leg) and the fee (its other debit legs)."""
    entry = ledger.find_entry(session, SpendPosting.key_for(proposal_id))
    if entry is None:
        return {"fee": None, "paid_from": None, "booked_to": None}
    credits = [leg for leg in entry.legs if leg.side is Side.CREDIT]
    debits = [leg for leg in entry.legs if leg.side is Side.DEBIT]
    return {
        "fee": str(sum(leg.amount for leg in debits[1:])),
        "paid_from": books.account(credits[0].account) if credits else None,
        "booked_to": books.account(debits[0].account) if debits else None,
    }


def _spends(session: Session, books: _Books) -> tuple[list[dict[str, Any]], list[str]]:
    """The executed spends, and the references of the legal bases they cite."""
    rows = session.scalars(
        select(SpendProposalRow)
        .where(SpendProposalRow.state.in_([state.value for state in EXECUTED_STATES]))
        .order_by(SpendProposalRow.id)
    ).all()
    spends, references = [], set()
    for row in rows:
        view = proposal_view(session, row)
        if view.legal_basis:
            references.add(view.legal_basis)
        spends.append(
            {
                "proposal_id": view.id,
                "state": view.state.value,
                "asset": view.asset,
                "amount": str(view.amount),
                "destination": view.destination,
                "purpose": view.purpose,
                "translations": books.translated(TranslationKind.PURPOSE, view.id),
                "legal_basis": view.legal_basis,
                "approved_by": _approved_by(view),
                "txid": view.txid,
                "executed_at": _moment(row.confirmed_at or row.broadcast_at),
                "payee": _payee(session, books, view.asset, view.destination),
                **_booking(session, books, view.id),
            }
        )
    return spends, sorted(references)


def _legal_bases(
    session: Session, books: _Books, references: Iterable[str]
) -> list[dict[str, Any]]:
    return [
        {
            "reference": reference,
            "title": legal_basis_by_reference(session, reference)[1].title,
            "translations": books.translated(TranslationKind.LEGAL_BASIS, reference),
            "text_urls": books.translated(TranslationKind.LEGAL_BASIS_URL, reference),
        }
        for reference in references
    ]


def _funds(session: Session, books: _Books) -> list[dict[str, Any]]:
    codes = sorted(
        code for code, record in books.accounts.items() if record.type in FUND_ACCOUNT_TYPES
    )
    if not codes:
        return []
    return [
        {
            **books.account(balance.account),
            "kind": books.accounts[balance.account].type.value,
            "asset": balance.asset,
            "posted": str(balance.posted),
            "pending": str(balance.pending),
            "available": str(balance.available),
        }
        for balance in ledger.balances(session, codes)
    ]


def _figure(record: AccountRecord) -> str:
    """Which ``movements`` figure an account's balance adds to."""
    if record.type in ALLOCATION_ACCOUNT_TYPES:
        return "allocated"
    if record.type is AccountType.ASSET:
        return "held"
    if record.code.startswith(FEE_ACCOUNT_PREFIX):
        return "fees"
    if record.code == suspense_account(record.asset_code):
        return "unexplained"
    return "spent"


def _movements(session: Session, books: _Books) -> dict[str, dict[str, Any]]:
    """Per asset, the balances of every account summed into the five figures of the identity."""
    posted: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MOVEMENT_FIGURES, 0))
    pending: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MOVEMENT_FIGURES, 0))
    for balance in ledger.balances(session):
        figure = _figure(books.accounts[balance.account])
        posted[balance.asset][figure] += balance.posted
        pending[balance.asset][figure] += balance.pending
    return {
        asset: {
            **_strings(posted[asset]),
            "pending": _strings(pending[asset]),
        }
        for asset in sorted(posted)
    }


def _strings(figures: Mapping[str, int]) -> dict[str, str]:
    return {name: str(value) for name, value in figures.items()}


def _chain_id(books: _Books, asset: ledger.Asset, bitcoin_network: str | None) -> str:
    """The chain of ``asset`` as a bundle's registry names it, as far as the books know it.

    The ledger records the family (``bitcoin``, ``ethereum``); the Bitcoin network is given by
    the caller (the settings know it), an EVM chain id is read from the scope of the asset's vault
    holdings (``eth:<chain id>:<vault>``, ``treasury.reconcile.ethereum.eth_scope``).
    """
    if asset.chain == "bitcoin":
        return asset.chain if bitcoin_network is None else bitcoin_chain(bitcoin_network)
    if asset.chain == "ethereum":
        chain_ids = sorted(
            int(parts[1])
            for record in books.accounts.values()
            if record.asset_code == asset.code
            and record.type is AccountType.ASSET
            and record.external_ref
            and len(parts := record.external_ref.split(":")) >= 3
            and parts[0] == "eth"
            and parts[1].isdigit()
        )
        return evm_chain(chain_ids[0]) if chain_ids else asset.chain
    return asset.chain


def chain_name(chain: str) -> str:
    """An English name of ``chain`` that needs no catalogue (the site translates by the id)."""
    family, _, rest = chain.partition(":")
    if family == "bitcoin" and rest:
        return BITCOIN_NETWORK_NAMES.get(rest, f"Bitcoin {rest}")
    if family == "evm" and rest.isdigit():
        return EVM_CHAIN_NAMES.get(int(rest), f"EVM chain {rest}")
    return LEDGER_CHAIN_NAMES.get(chain, chain)


def build_export(
    session: Session, *, exported_at: datetime, bitcoin_network: str | None = None
) -> dict[str, Any]:
    """The export document of the books as ``session`` reads them (see the module docstring).

    ``bitcoin_network`` (``regtest``, ``main``, ...) names Bitcoin's chain as the bundles do;
    without it the chain is ``bitcoin``.
    """
    books = _Books(session)
    spends, references = _spends(session, books)
    assets = list(session.scalars(select(ledger.Asset).order_by(ledger.Asset.code)))
    chains = {asset.code: _chain_id(books, asset, bitcoin_network) for asset in assets}
    return {
        "format": EXPORT_FORMAT,
        "exported_at": exported_at.isoformat(),
        "original_language": ORIGINAL_LANGUAGE,
        "chains": [
            {"id": chain, "name": chain_name(chain)} for chain in sorted(set(chains.values()))
        ],
        "assets": [
            {"code": asset.code, "decimals": asset.decimals, "chain": chains[asset.code]}
            for asset in assets
        ],
        "institutions": [
            {
                "code": institution.code,
                "name": institution.name,
                "translations": books.translated(TranslationKind.INSTITUTION, institution.code),
            }
            for institution in list_institutions(session)
        ],
        "legal_bases": _legal_bases(session, books, references),
        "funds": _funds(session, books),
        "spends": spends,
        "movements": _movements(session, books),
        "key_health": key_health_export(session, exported_at),
        "pending_spends": pending_spends_export(session, exported_at),
    }


def write_export(
    sessions: sessionmaker[Session],
    path: Path,
    *,
    exported_at: datetime,
    bitcoin_network: str | None = None,
) -> Path:
    """Write the export of a migrated treasury database to ``path`` (replaced whole) and return it.

    The file appears complete or not at all: it is written beside ``path`` and renamed onto it.
    """
    try:
        with sessions() as session:
            document = build_export(
                session, exported_at=exported_at, bitcoin_network=bitcoin_network
            )
    except SQLAlchemyError as error:
        raise ExportError(
            "The treasury database cannot be read; run `treasury db upgrade` on it first "
            f"({type(error).__name__})."
        ) from None
    text = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
            os.chmod(staging, PUBLIC_FILE_MODE)
            os.replace(staging, path)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise ExportError(
            f"The treasury export {path} cannot be written ({error.strerror})."
        ) from None
    return path
