"""What the site publishes, read from its two sources: attestation bundle files and the treasury DB.

This is the only module of the site that touches the treasury's database, and it only reads. The
verifier (``reporting.verify``) stays free of it: the publisher calls the verifier on each bundle
exactly as an auditor would, and publishes the verdict beside the bundle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from reporting.bundle import Bundle, BundleFormatError
from reporting.site.errors import SourceError
from reporting.verify import CheckStatus, Nodes, Report, verify_bundle
from treasury import ledger
from treasury.ledger import AccountType
from treasury.officers import InstitutionRow
from treasury.policy import LegalBasisRow
from treasury.proposals import ApprovalRow, PreparedTxRow, ProposalState, SpendProposalRow

EXECUTED_STATES = (ProposalState.BROADCAST, ProposalState.CONFIRMED)
"""Spends that left the vault: sent to the network (awaiting confirmations) or confirmed."""

FUND_ACCOUNT_TYPES = (AccountType.LIABILITY, AccountType.EQUITY)
"""Ledger accounts that hold the reserve's allocations: funds and budget lines it owes, and its
unallocated equity. Vault, payment and fee accounts are movements, not allocations."""

DEFAULT_DECIMALS = {"BTC": 8, "ETH": 18}
"""Base units per whole unit of assets every reserve knows, when the ledger does not say."""


@dataclass(frozen=True)
class PublishedBundle:
    """One attestation as published: its exact bytes, parsed body, and the verifier's report."""

    file_name: str
    raw: bytes
    bundle: Bundle
    report: Report

    @property
    def skipped(self) -> int:
        """Checks the verifier could not make (no node was given for them)."""
        return sum(check.status is CheckStatus.SKIPPED for check in self.report.checks)


@dataclass(frozen=True)
class ExecutedSpend:
    """A spend that left the vault, with the decree it relied on and who approved it."""

    proposal_id: int
    state: ProposalState
    asset: str
    amount: int
    destination: str
    purpose: str
    legal_basis: str
    legal_basis_title: str
    approving_institutions: tuple[str, ...]
    """Names of the institutions whose standing approval of the executed transaction counted."""
    txid: str
    executed_at: datetime | None


@dataclass(frozen=True)
class FundAllocation:
    """One fund account's balance in base units, as the state ledger holds it."""

    account: str
    name: str
    kind: AccountType
    asset: str
    posted: int
    pending: int
    available: int


@dataclass(frozen=True)
class TreasuryRecords:
    """What the site shows from the treasury database."""

    spends: tuple[ExecutedSpend, ...] = ()
    funds: tuple[FundAllocation, ...] = ()
    decimals: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_DECIMALS))


def bundle_file_name(sequence: int) -> str:
    """The published file name of attestation ``sequence`` (sorts in chain order)."""
    return f"attestation-{sequence:06d}.json"


def load_bundles(folder: Path, *, nodes: Nodes | None = None) -> tuple[PublishedBundle, ...]:
    """Read every ``*.json`` bundle in ``folder``, in chain order, each checked by the verifier.

    Each bundle is verified as an auditor would, against its predecessor and the ``nodes`` given
    (checks needing a missing node are reported as skipped, and the site says so).
    """
    if not folder.is_dir():
        raise SourceError(f"The attestation folder {folder} does not exist or is not a folder.")
    parsed: dict[int, tuple[bytes, Bundle]] = {}
    for path in sorted(folder.glob("*.json")):
        raw = path.read_bytes()
        try:
            bundle = Bundle.from_bytes(raw, strict=False)
            sequence = bundle.sequence
        except BundleFormatError as error:
            raise SourceError(f"The attestation file {path} is not a bundle: {error}") from None
        if sequence in parsed:
            raise SourceError(
                f"The attestation file {path} repeats sequence {sequence}; keep one file per attestation."
            )
        parsed[sequence] = (raw, bundle)
    if not parsed:
        raise SourceError(f"The attestation folder {folder} holds no bundle (*.json) to publish.")
    published = []
    for sequence in sorted(parsed):
        raw, bundle = parsed[sequence]
        before = parsed.get(sequence - 1)
        report = verify_bundle(
            raw, nodes=nodes or Nodes(), previous=None if before is None else before[1]
        )
        published.append(PublishedBundle(bundle_file_name(sequence), raw, bundle, report))
    return tuple(published)


def _spends(session: Session) -> list[ExecutedSpend]:
    rows = session.scalars(
        select(SpendProposalRow)
        .where(SpendProposalRow.state.in_([state.value for state in EXECUTED_STATES]))
        .order_by(SpendProposalRow.id)
    )
    spends = []
    for row in rows:
        executed = session.scalar(
            select(PreparedTxRow.tx_hash).where(
                PreparedTxRow.proposal_id == row.id, PreparedTxRow.superseded_at.is_(None)
            )
        )
        institutions = session.scalars(
            select(InstitutionRow.name)
            .join(ApprovalRow, ApprovalRow.institution_id == InstitutionRow.id)
            .where(
                ApprovalRow.proposal_id == row.id,
                ApprovalRow.voided_at.is_(None),
                ApprovalRow.tx_hash == executed,
            )
            .order_by(InstitutionRow.name)
        ).all()
        basis = session.get(LegalBasisRow, row.legal_basis_id)
        spends.append(
            ExecutedSpend(
                proposal_id=row.id,
                state=ProposalState(row.state),
                asset=row.asset,
                amount=row.amount,
                destination=row.destination,
                purpose=row.purpose,
                legal_basis="" if basis is None else basis.reference,
                legal_basis_title="" if basis is None else basis.title,
                approving_institutions=tuple(dict.fromkeys(institutions)),
                txid=row.txid or "",
                executed_at=row.confirmed_at or row.broadcast_at,
            )
        )
    return spends


def _funds(session: Session) -> list[FundAllocation]:
    accounts = {
        record.code: record
        for record in ledger.list_accounts(session)
        if record.type in FUND_ACCOUNT_TYPES
    }
    return (
        [
            FundAllocation(
                account=balance.account,
                name=accounts[balance.account].name,
                kind=accounts[balance.account].type,
                asset=balance.asset,
                posted=balance.posted,
                pending=balance.pending,
                available=balance.available,
            )
            for balance in ledger.balances(session, sorted(accounts))
        ]
        if accounts
        else []
    )


def _decimals(session: Session) -> dict[str, int]:
    decimals = dict(DEFAULT_DECIMALS)
    for asset in session.scalars(select(ledger.Asset)):
        decimals[asset.code] = asset.decimals
    return decimals


def load_treasury(sessions: sessionmaker[Session]) -> TreasuryRecords:
    """Read executed spends, fund allocations and asset scales from a migrated treasury DB."""
    try:
        with sessions() as session:
            return TreasuryRecords(
                spends=tuple(_spends(session)),
                funds=tuple(_funds(session)),
                decimals=_decimals(session),
            )
    except SQLAlchemyError as error:
        raise SourceError(
            "The treasury database cannot be read; run `treasury db upgrade` on it first "
            f"({type(error).__name__})."
        ) from None


def assets_of(bundles: Sequence[PublishedBundle]) -> tuple[str, ...]:
    """Every asset any published attestation reconciles, in byte order."""
    found = {asset for item in bundles for asset in item.bundle.body["reconciliation"]}
    return tuple(sorted(found, key=str.encode))
