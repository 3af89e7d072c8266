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
class Named:
    """A record's text as the officers entered it (``text``, in the export's original language)
    with the translations they entered, by language code; ``code`` is what the record is keyed by
    (an institution's code, a ledger account, a decree reference, an address)."""

    code: str
    text: str
    translations: Mapping[str, str] = field(default_factory=dict)

    def translated(self, language: str) -> str | None:
        """The text entered for ``language``, if any."""
        return self.translations.get(language)


MOVEMENT_FIELDS = ("allocated", "spent", "fees", "unexplained", "held")
"""The five ledger sums of one asset, in the order of the identity
``allocated - spent - unexplained - fees = held`` (SPEC-export.md)."""


@dataclass(frozen=True)
class Movements:
    """What the state ledger holds of one asset, and where the rest went, in base units:
    ``allocated - spent - unexplained - fees = held`` (posted; ``pending_*`` for spends
    broadcast but not yet confirmed)."""

    asset: str
    allocated: int
    spent: int
    fees: int
    unexplained: int
    held: int
    pending_allocated: int = 0
    pending_spent: int = 0
    pending_fees: int = 0
    pending_unexplained: int = 0
    pending_held: int = 0

    @property
    def balances(self) -> bool:
        """Whether the export's figures obey the identity (the page says so if they do not)."""
        return self.allocated - self.spent - self.unexplained - self.fees == self.held


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
    approvers: tuple[Named, ...] = ()
    """The approving institutions by code, with their names' translations (sorted by name)."""
    purpose_translations: Mapping[str, str] = field(default_factory=dict)
    legal_basis_translations: Mapping[str, str] = field(default_factory=dict)
    legal_basis_urls: Mapping[str, str] = field(default_factory=dict)
    """The decree's official text per language (https URLs), as the treasury entered them."""
    fee: int | None = None
    """The network fee booked for this spend, in base units (None: no ledger entry)."""
    paid_from: Named | None = None
    """The ledger account credited: the vault holdings the spend left."""
    booked_to: Named | None = None
    """The ledger account debited with the amount: the outflow (payments) account."""
    payee: Named | None = None
    """The allowlist's label of the destination, if the destination is allowlisted."""


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
    translations: Mapping[str, str] = field(default_factory=dict)


class KeyHealthResult(StrEnum):
    """The outcome of an institution's last key health check (SPEC-export.md ``key_health``)."""

    OK = "ok"
    MISMATCH = "mismatch"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class KeyHealth:
    """One institution's key health: whether a quorum of its share holders recently proved
    their shares still recombine to its recorded key, and when the next proof is due."""

    institution: Named
    """The institution by code (its name's translations from ``institutions``), or by the
    ceremony's name when no registered institution bears it (``code`` is then ``""``)."""
    last_check_at: datetime | None
    last_result: KeyHealthResult | None
    last_passed_at: datetime | None
    due_at: datetime
    overdue: bool
    alarm: bool


class WindowStatus(StrEnum):
    """Where an announced large spend stands in its public delay window (``pending_spends``)."""

    WAITING = "waiting"
    """The window has not passed: anyone may still veto."""
    OPEN = "open"
    """The window passed with no veto: the signers may sign."""
    VETOED = "vetoed"
    """An institution vetoed it: it can never be signed."""


@dataclass(frozen=True)
class PendingSpend:
    """A large spend announced on the services chain before signing, with its window."""

    proposal_id: int
    chain: str
    asset: str
    amount: int
    destination: str
    tx_hash: str
    announced_at: datetime
    opens_at: datetime
    status: WindowStatus
    vetoed_by: Named | None
    services_chain_id: int
    registry: str
    announcement_tx: str
    veto_tx: str | None


@dataclass(frozen=True)
class TreasuryRecords:
    """What the site shows from the treasury's export."""

    spends: tuple[ExecutedSpend, ...] = ()
    funds: tuple[FundAllocation, ...] = ()
    decimals: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_DECIMALS))
    chains: Mapping[str, str] = field(default_factory=dict)
    """Chain id (``bitcoin:regtest``, ``evm:31337``) to its English name from the export."""
    asset_chains: Mapping[str, str] = field(default_factory=dict)
    """Asset code to the id of the chain it is on."""
    movements: Mapping[str, Movements] = field(default_factory=dict)
    """Per asset: allocated, spent, fees, unexplained and held (absent in older exports)."""
    original_language: str = "en"
    """The language the officers entered names, titles and purposes in."""
    key_health: tuple[KeyHealth, ...] = ()
    """Per institution with a key ceremony, its share holders' last health check (absent in
    older exports)."""
    pending_spends: tuple[PendingSpend, ...] = ()
    """Large spends announced on the services chain, with their window and veto status (absent
    in older exports)."""


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

    def translations(self, item: Mapping[str, Any], where: str) -> dict[str, str]:
        """``translations``: language code to text; absent in exports written before it."""
        value = item.get("translations", {})
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.error(
                _field(where, "translations"), "must be an object of texts by language"
            )
        return {k: v for k, v in value.items() if v.strip()}

    def named(self, item: Any, code_key: str, text_key: str, where: str) -> Named | None:
        """An optional object naming a record (``paid_from``, ``payee``), or None."""
        if item is None:
            return None
        found = self.mapping(item, where)
        code = self.text(found, code_key, where) if code_key else ""
        return Named(code, self.text(found, text_key, where), self.translations(found, where))

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
        asset_chains = {}
        for where, item in self.array(root, "assets"):
            code = self.text(item, "code", where)
            decimals[code] = self.count(item, "decimals", where)
            chain = self.optional_text(item, "chain", where)
            if chain is not None:
                asset_chains[code] = chain
        chains = (
            {
                self.text(item, "id", where): self.text(item, "name", where)
                for where, item in self.array(root, "chains")
            }
            if "chains" in root
            else {}
        )
        names = {
            self.text(item, "code", where): Named(
                self.text(item, "code", where),
                self.text(item, "name", where),
                self.translations(item, where),
            )
            for where, item in self.array(root, "institutions")
        }
        titles = {}
        urls: dict[str, dict[str, str]] = {}
        for where, item in self.array(root, "legal_bases"):
            reference = self.text(item, "reference", where)
            titles[reference] = Named(
                reference, self.text(item, "title", where), self.translations(item, where)
            )
            links = item.get("text_urls", {})
            if not isinstance(links, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v.startswith("https://")
                for k, v in links.items()
            ):
                raise self.error(
                    _field(where, "text_urls"), "must be an object of https:// URLs by language"
                )
            urls[reference] = dict(links)
        funds = tuple(
            FundAllocation(
                account=self.text(item, "account", where),
                name=self.text(item, "name", where),
                kind=self.choice(FundKind, item, "kind", where),
                asset=self.text(item, "asset", where),
                posted=self.amount(item, "posted", where),
                pending=self.amount(item, "pending", where),
                available=self.amount(item, "available", where),
                translations=self.translations(item, where),
            )
            for where, item in self.array(root, "funds")
        )
        spends = tuple(
            self.spend(item, where, names, titles, urls)
            for where, item in self.array(root, "spends")
        )
        original = root.get("original_language", "en")
        if not isinstance(original, str):
            raise self.error("original_language", "must be a language code")
        return TreasuryRecords(
            spends=spends,
            funds=funds,
            decimals=decimals,
            chains=chains,
            asset_chains=asset_chains,
            movements=self.movements(root),
            original_language=original,
            key_health=self.key_health(root, names),
            pending_spends=self.pending_spends(root, names),
        )

    def flag(self, item: Mapping[str, Any], key: str, where: str) -> bool:
        value = item.get(key)
        if not isinstance(value, bool):
            raise self.error(_field(where, key), "must be true or false")
        return value

    def key_health(
        self, root: Mapping[str, Any], names: Mapping[str, Named]
    ) -> tuple[KeyHealth, ...]:
        """``key_health``: each institution's last share health check (optional)."""
        if "key_health" not in root:
            return ()
        found = []
        for where, item in self.array(root, "key_health"):
            code = self.optional_text(item, "institution", where)
            name = self.text(item, "name", where)
            if code is not None and code not in names:
                raise self.error(
                    _field(where, "institution"),
                    f"names the institution {code!r}, which institutions does not list",
                )
            due_at = self.moment(item, "due_at", where)
            if due_at is None:
                raise self.error(_field(where, "due_at"), "is missing")
            result = item.get("last_result")
            found.append(
                KeyHealth(
                    institution=names[code] if code is not None else Named("", name),
                    last_check_at=self.moment(item, "last_check_at", where),
                    last_result=None
                    if result is None
                    else self.choice(KeyHealthResult, item, "last_result", where),
                    last_passed_at=self.moment(item, "last_passed_at", where),
                    due_at=due_at,
                    overdue=self.flag(item, "overdue", where),
                    alarm=self.flag(item, "alarm", where),
                )
            )
        return tuple(found)

    def pending_spends(
        self, root: Mapping[str, Any], names: Mapping[str, Named]
    ) -> tuple[PendingSpend, ...]:
        """``pending_spends``: announced large spends and their windows (optional)."""
        if "pending_spends" not in root:
            return ()
        found = []
        for where, item in self.array(root, "pending_spends"):
            announced_at = self.moment(item, "announced_at", where)
            opens_at = self.moment(item, "opens_at", where)
            if announced_at is None or opens_at is None or opens_at < announced_at:
                raise self.error(
                    where, "needs announced_at and opens_at, the window opening after it"
                )
            status = self.choice(WindowStatus, item, "status", where)
            vetoed_by = self.optional_text(item, "vetoed_by", where)
            if (vetoed_by is None) == (status is WindowStatus.VETOED):
                raise self.error(
                    _field(where, "vetoed_by"), "names an institution exactly when vetoed"
                )
            if vetoed_by is not None and vetoed_by not in names:
                raise self.error(
                    _field(where, "vetoed_by"),
                    f"names the institution {vetoed_by!r}, which institutions does not list",
                )
            services = self.mapping(item.get("services"), _field(where, "services"))
            at = _field(where, "services")
            found.append(
                PendingSpend(
                    proposal_id=self.count(item, "proposal_id", where),
                    chain=self.text(item, "chain", where),
                    asset=self.text(item, "asset", where),
                    amount=self.amount(item, "amount", where),
                    destination=self.text(item, "destination", where),
                    tx_hash=self.text(item, "tx_hash", where),
                    announced_at=announced_at,
                    opens_at=opens_at,
                    status=status,
                    vetoed_by=None if vetoed_by is None else names[vetoed_by],
                    services_chain_id=self.count(services, "chain_id", at),
                    registry=self.text(services, "registry", at),
                    announcement_tx=self.text(services, "announcement_tx", at),
                    veto_tx=self.optional_text(services, "veto_tx", at),
                )
            )
        return tuple(found)

    def movements(self, root: Mapping[str, Any]) -> dict[str, Movements]:
        """``movements``: per asset, the five posted sums and the same five pending."""
        if "movements" not in root:
            return {}
        found = {}
        for asset, value in self.mapping(root["movements"], "movements").items():
            where = f"movements.{asset}"
            item = self.mapping(value, where)
            pending = self.mapping(item.get("pending"), f"{where}.pending")
            posted = {key: self.amount(item, key, where) for key in MOVEMENT_FIELDS}
            waiting = {
                f"pending_{key}": self.amount(pending, key, f"{where}.pending")
                for key in MOVEMENT_FIELDS
            }
            found[asset] = Movements(asset=asset, **posted, **waiting)
        return found

    def spend(
        self,
        item: Mapping[str, Any],
        where: str,
        names: Mapping[str, Named],
        titles: Mapping[str, Named],
        urls: Mapping[str, Mapping[str, str]],
    ) -> ExecutedSpend:
        approvers = []
        for code in self.texts(item, "approved_by", where):
            if code not in names:
                raise self.error(
                    f"{where}.approved_by",
                    f"names the institution {code!r}, which institutions does not list",
                )
            approvers.append(names[code])
        by_name = sorted({a.code: a for a in approvers}.values(), key=lambda a: a.text)
        reference = self.text(item, "legal_basis", where)
        if reference and reference not in titles:
            raise self.error(
                f"{where}.legal_basis",
                f"names the legal basis {reference!r}, which legal_bases does not list",
            )
        title = titles.get(reference)
        return ExecutedSpend(
            proposal_id=self.count(item, "proposal_id", where),
            state=self.choice(SpendState, item, "state", where),
            asset=self.text(item, "asset", where),
            amount=self.amount(item, "amount", where),
            destination=self.text(item, "destination", where),
            purpose=self.text(item, "purpose", where),
            legal_basis=reference,
            legal_basis_title="" if title is None else title.text,
            approving_institutions=tuple(a.text for a in by_name),
            txid=self.optional_text(item, "txid", where) or "",
            executed_at=self.moment(item, "executed_at", where),
            approvers=tuple(by_name),
            purpose_translations=self.translations(item, where),
            legal_basis_translations={} if title is None else title.translations,
            legal_basis_urls=urls.get(reference, {}),
            fee=None if item.get("fee") is None else self.amount(item, "fee", where),
            paid_from=self.named(item.get("paid_from"), "account", "name", f"{where}.paid_from"),
            booked_to=self.named(item.get("booked_to"), "account", "name", f"{where}.booked_to"),
            payee=self.named(item.get("payee"), "", "label", f"{where}.payee"),
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
