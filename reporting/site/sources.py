"""What the site publishes, read from its two sources: attestation bundle files and the treasury's export.

The site reads files only. The treasury writes what the site shows of its books (executed spends
with their decrees and approving institutions, fund balances, asset scales) as one JSON document,
the export (``treasury.publication`` writes it; ``reporting/SPEC-export.md`` specifies it), so the
site stays below the treasury in the layers and can be rebuilt by anyone from the files alone.
Each bundle is checked by the verifier exactly as an auditor would check it, and the verdict is
published beside the bundle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from reserve_verifier import CheckStatus, Nodes, Report, verify_bundle

from reporting.bundle import Bundle, BundleFormatError
from reporting.site.errors import SourceError

EXPORT_FORMAT = "national-reserve-export/1"
"""The ``format`` of the treasury's export this site reads; another value is refused whole."""

DEFAULT_DECIMALS = {"BTC": 8, "ETH": 18}
"""Base units per whole unit of assets every reserve knows, when the export does not say."""

E = TypeVar("E", bound=StrEnum)


class SpendState(StrEnum):
    """How far an executed spend has gone: the only proposal states the export lists."""

    BROADCAST = "broadcast"
    """Sent to the network, awaiting confirmations."""
    CONFIRMED = "confirmed"
    """Confirmed on chain."""


class FundKind(StrEnum):
    """The ledger account types the export lists as funds (its allocations, not its movements)."""

    LIABILITY = "liability"
    """A fund or budget line the reserve owes."""
    EQUITY = "equity"
    """The reserve's unallocated equity."""


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
    state: SpendState
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
    kind: FundKind
    asset: str
    posted: int
    pending: int
    available: int


@dataclass(frozen=True)
class TreasuryRecords:
    """What the site shows from the treasury's export."""

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


def _field(where: str, key: str) -> str:
    """The path of field ``key`` of the object at ``where`` (``spends[0].amount``)."""
    return f"{where}.{key}" if where else key


class _Export:
    """Reads the fields of one export document, refusing each malformed one by its path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, where: str, problem: str) -> SourceError:
        return SourceError(f"The treasury export {self.path} is malformed: {where} {problem}.")

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.error(where, "must be a JSON object")
        return value

    def array(self, document: Mapping[str, Any], key: str) -> list[tuple[str, Mapping[str, Any]]]:
        """The objects of the array ``key``, each with its path (``spends[0]``)."""
        items = document.get(key)
        if not isinstance(items, list):
            raise self.error(key, "must be a JSON array")
        return [(f"{key}[{i}]", self.mapping(item, f"{key}[{i}]")) for i, item in enumerate(items)]

    def text(self, item: Mapping[str, Any], key: str, where: str) -> str:
        value = item.get(key)
        if not isinstance(value, str):
            raise self.error(_field(where, key), "must be a string")
        return value

    def optional_text(self, item: Mapping[str, Any], key: str, where: str) -> str | None:
        return None if item.get(key) is None else self.text(item, key, where)

    def texts(self, item: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = item.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(_field(where, key), "must be an array of strings")
        return tuple(value)

    def count(self, item: Mapping[str, Any], key: str, where: str) -> int:
        """A JSON integer from zero up (ids, decimals): never an amount."""
        value = item.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(_field(where, key), f"must be a JSON integer from 0 up, not {value!r}")
        return value

    def amount(self, item: Mapping[str, Any], key: str, where: str) -> int:
        """An amount in base units, written as a decimal string (``"-12"``, ``"0"``)."""
        value = item.get(key)
        text = value if isinstance(value, str) else ""
        digits = text.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()) or (len(digits) > 1 and digits[0] == "0"):
            raise self.error(
                _field(where, key), f"must be a decimal string of base units, not {value!r}"
            )
        return int(text)

    def moment(self, item: Mapping[str, Any], key: str, where: str) -> datetime | None:
        """A time with its UTC offset (ISO 8601), or null."""
        value = self.optional_text(item, key, where)
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise self.error(
                _field(where, key), f"must be an ISO 8601 time with offset, not {value!r}"
            )
        return moment.astimezone(UTC)

    def choice(self, kind: type[E], item: Mapping[str, Any], key: str, where: str) -> E:
        value = self.text(item, key, where)
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise self.error(_field(where, key), f"is {value!r}, not one of {allowed}") from None

    def records(self, document: Any) -> TreasuryRecords:
        root = self.mapping(document, "the document")
        if root.get("format") != EXPORT_FORMAT:
            raise SourceError(
                f"The treasury export {self.path} has the format {root.get('format')!r}; "
                f"this site reads {EXPORT_FORMAT!r}."
            )
        if self.moment(root, "exported_at", "") is None:
            raise self.error("exported_at", "is missing")
        decimals = dict(DEFAULT_DECIMALS)
        for where, item in self.array(root, "assets"):
            decimals[self.text(item, "code", where)] = self.count(item, "decimals", where)
        names = {
            self.text(item, "code", where): self.text(item, "name", where)
            for where, item in self.array(root, "institutions")
        }
        titles = {
            self.text(item, "reference", where): self.text(item, "title", where)
            for where, item in self.array(root, "legal_bases")
        }
        funds = tuple(
            FundAllocation(
                account=self.text(item, "account", where),
                name=self.text(item, "name", where),
                kind=self.choice(FundKind, item, "kind", where),
                asset=self.text(item, "asset", where),
                posted=self.amount(item, "posted", where),
                pending=self.amount(item, "pending", where),
                available=self.amount(item, "available", where),
            )
            for where, item in self.array(root, "funds")
        )
        spends = tuple(
            self.spend(item, where, names, titles) for where, item in self.array(root, "spends")
        )
        return TreasuryRecords(spends=spends, funds=funds, decimals=decimals)

    def spend(
        self,
        item: Mapping[str, Any],
        where: str,
        names: Mapping[str, str],
        titles: Mapping[str, str],
    ) -> ExecutedSpend:
        approvers = []
        for code in self.texts(item, "approved_by", where):
            if code not in names:
                raise self.error(
                    f"{where}.approved_by",
                    f"names the institution {code!r}, which institutions does not list",
                )
            approvers.append(names[code])
        reference = self.text(item, "legal_basis", where)
        if reference and reference not in titles:
            raise self.error(
                f"{where}.legal_basis",
                f"names the legal basis {reference!r}, which legal_bases does not list",
            )
        return ExecutedSpend(
            proposal_id=self.count(item, "proposal_id", where),
            state=self.choice(SpendState, item, "state", where),
            asset=self.text(item, "asset", where),
            amount=self.amount(item, "amount", where),
            destination=self.text(item, "destination", where),
            purpose=self.text(item, "purpose", where),
            legal_basis=reference,
            legal_basis_title=titles.get(reference, ""),
            approving_institutions=tuple(dict.fromkeys(sorted(approvers))),
            txid=self.optional_text(item, "txid", where) or "",
            executed_at=self.moment(item, "executed_at", where),
        )


def load_export(path: Path) -> TreasuryRecords:
    """Read the treasury's export file: executed spends, fund allocations and asset scales.

    The file must be ``EXPORT_FORMAT`` (``reporting/SPEC-export.md``); anything else, or any
    malformed field, is a ``SourceError`` that names the file and the field.
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SourceError(
            f"The treasury export {path} cannot be read ({error.strerror})."
        ) from None
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise SourceError(f"The treasury export {path} is not JSON: {error}.") from None
    return _Export(path).records(document)


def assets_of(bundles: Sequence[PublishedBundle]) -> tuple[str, ...]:
    """Every asset any published attestation reconciles, in byte order."""
    found = {asset for item in bundles for asset in item.bundle.body["reconciliation"]}
    return tuple(sorted(found, key=str.encode))
