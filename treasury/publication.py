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
      "assets":       [{"code": "BTC", "decimals": 8}],
      "institutions": [{"code": "CB", "name": "Central Bank"}],
      "legal_bases":  [{"reference": "DECREE-2026-17", "title": "Reserve rebalancing decree"}],
      "funds":  [{"account": "equity:btc", "name": "...", "kind": "equity", "asset": "BTC",
                  "posted": "4975000000", "pending": "0", "available": "4975000000"}],
      "spends": [{"proposal_id": 1, "state": "confirmed", "asset": "BTC", "amount": "25000000",
                  "destination": "bcrt1q...", "purpose": "...", "legal_basis": "DECREE-2026-17",
                  "approved_by": ["CB", "PARL"], "txid": "ab12...",
                  "executed_at": "2026-11-27T10:00:00+00:00"}]
    }

Amounts are decimal strings of integer base units, never JSON numbers; JSON integers are only
counts (ids, decimals); times are ISO 8601 with their UTC offset, or null. ``funds`` are the
liability and equity accounts by code; ``spends`` the broadcast and confirmed proposals by id,
``approved_by`` the codes of the institutions whose standing approval names the executed
transaction, in the order they approved; ``legal_bases`` the decrees those spends cite. A change a reader could misread takes
a new ``format``.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from reporting.site import EXPORT_FORMAT
from treasury import ledger
from treasury.exceptions import TreasuryError
from treasury.ledger import AccountType
from treasury.officers import list_institutions
from treasury.policy import legal_basis_by_reference
from treasury.proposals import ProposalState, ProposalView, SpendProposalRow
from treasury.proposals.views import proposal_view

EXPORT_FILE_NAME = "export.json"
"""The export's file name where a folder holds it (``treasury publish`` uses a temporary one)."""

PUBLIC_FILE_MODE = 0o644
"""The export is public: readable by anyone, like the site published from it."""

EXECUTED_STATES = (ProposalState.BROADCAST, ProposalState.CONFIRMED)
"""Spends that left the vault: sent to the network (awaiting confirmations) or confirmed."""

FUND_ACCOUNT_TYPES = (AccountType.LIABILITY, AccountType.EQUITY)
"""Ledger accounts that hold the reserve's allocations: funds and budget lines it owes, and its
unallocated equity. Vault, payment and fee accounts are movements, not allocations."""


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


def _spends(session: Session) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The executed spends, and the titles of the legal bases they cite by reference."""
    rows = session.scalars(
        select(SpendProposalRow)
        .where(SpendProposalRow.state.in_([state.value for state in EXECUTED_STATES]))
        .order_by(SpendProposalRow.id)
    ).all()
    spends, titles = [], {}
    for row in rows:
        view = proposal_view(session, row)
        if view.legal_basis and view.legal_basis not in titles:
            titles[view.legal_basis] = legal_basis_by_reference(session, view.legal_basis)[1].title
        spends.append(
            {
                "proposal_id": view.id,
                "state": view.state.value,
                "asset": view.asset,
                "amount": str(view.amount),
                "destination": view.destination,
                "purpose": view.purpose,
                "legal_basis": view.legal_basis,
                "approved_by": _approved_by(view),
                "txid": view.txid,
                "executed_at": _moment(row.confirmed_at or row.broadcast_at),
            }
        )
    return spends, titles


def _funds(session: Session) -> list[dict[str, Any]]:
    accounts = {
        record.code: record
        for record in ledger.list_accounts(session)
        if record.type in FUND_ACCOUNT_TYPES
    }
    if not accounts:
        return []
    return [
        {
            "account": balance.account,
            "name": accounts[balance.account].name,
            "kind": accounts[balance.account].type.value,
            "asset": balance.asset,
            "posted": str(balance.posted),
            "pending": str(balance.pending),
            "available": str(balance.available),
        }
        for balance in ledger.balances(session, sorted(accounts))
    ]


def build_export(session: Session, *, exported_at: datetime) -> dict[str, Any]:
    """The export document of the books as ``session`` reads them (see the module docstring)."""
    spends, titles = _spends(session)
    assets = session.scalars(select(ledger.Asset).order_by(ledger.Asset.code))
    return {
        "format": EXPORT_FORMAT,
        "exported_at": exported_at.isoformat(),
        "assets": [{"code": asset.code, "decimals": asset.decimals} for asset in assets],
        "institutions": [
            {"code": institution.code, "name": institution.name}
            for institution in list_institutions(session)
        ],
        "legal_bases": [
            {"reference": reference, "title": titles[reference]} for reference in sorted(titles)
        ],
        "funds": _funds(session),
        "spends": spends,
    }


def write_export(sessions: sessionmaker[Session], path: Path, *, exported_at: datetime) -> Path:
    """Write the export of a migrated treasury database to ``path`` (replaced whole) and return it.

    The file appears complete or not at all: it is written beside ``path`` and renamed onto it.
    """
    try:
        with sessions() as session:
            document = build_export(session, exported_at=exported_at)
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
