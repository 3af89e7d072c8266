"""Render the parliament site: every page in every language, the charts, the open data files.

The output is a plain folder of files with relative links only, so it reads the same opened from
the file system, from ``treasury serve`` or from any static web server, and needs no network:
no remote font, script or style. Pages read without JavaScript except the inclusion verifier.
A publish builds the whole site in a fresh folder beside ``out`` and swaps it in at the end, so
a failure leaves the previous site as it was.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import reserve_verifier
from embit.networks import NETWORKS
from embit.script import Script
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from reserve_verifier import CheckStatus

from reporting.site import charts
from reporting.site.errors import SiteError
from reporting.site.i18n import LANGUAGES, Catalogue, load_catalogues
from reporting.site.localise import Localiser
from reporting.site.sources import (
    MOVEMENT_FIELDS,
    ExecutedSpend,
    PublishedBundle,
    SpendState,
    TreasuryRecords,
    assets_of,
)

SITE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = SITE_DIR / "templates"
STATIC_DIR = SITE_DIR / "static"

PAGES = ("index", "history", "spends", "verify", "data", "howto")
"""The pages published in each language, in navigation order."""

MARKER_FILE = ".national-reserve-site"
"""Left in every published folder; ``publish`` only ever replaces a folder that carries it."""

VERIFIER_SOURCE_DIR = Path(reserve_verifier.__file__).resolve().parents[1]
"""The verifier's source folder (``verifier/``: its ``pyproject.toml`` beside the package), when
the site is published from a source tree; its files are published as a small archive."""
VERIFIER_ARCHIVE = "reserve-verifier-source.tar.gz"
"""The archive's name in ``data/``: unpacks to ``verifier/``, installed with ``pip install ./verifier``."""
VERIFIER_ARCHIVE_FILES = ("pyproject.toml", "README.md")
"""Top-level files of ``verifier/`` the archive carries, besides the package's own files."""


@dataclass(frozen=True)
class SourceArchive:
    """The verifier's source as published: the archive's bytes and their SHA-256."""

    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size_kib(self) -> int:
        return -(-len(self.data) // 1024)


def verifier_archive(source: Path = VERIFIER_SOURCE_DIR) -> SourceArchive | None:
    """The verifier's source files as a reproducible ``.tar.gz`` (same files, same bytes), or
    None if the verifier is installed without its source folder beside it."""
    package = source / "reserve_verifier"
    if not (source / "pyproject.toml").is_file() or not package.is_dir():
        return None
    files = [source / name for name in VERIFIER_ARCHIVE_FILES if (source / name).is_file()]
    files += sorted(
        path
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for path in files:
            info = tarfile.TarInfo("verifier/" + path.relative_to(source).as_posix())
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return SourceArchive(buffer.getvalue())


BITCOIN_NETWORKS = {"main": "main", "mainnet": "main", "bitcoin": "main", "test": "test",
                    "testnet": "test", "regtest": "regtest", "signet": "signet"}  # fmt: skip
"""Bundle network names to address encodings (bech32 prefixes)."""


ASSET_LABEL_MAX_CHARS = 16
"""Longer asset codes (``ERC20:0x...``) are shortened beside amounts; row headers keep them whole."""


def short_asset(asset: str) -> str:
    """``ERC20:0x…F6C9`` for a token code, so amount columns stay readable."""
    if len(asset) <= ASSET_LABEL_MAX_CHARS:
        return asset
    return f"{asset[:8]}\u2026{asset[-4:]}"


def registry_symbols(bundles: Sequence[PublishedBundle]) -> dict[str, str]:
    """Each long asset code's symbol from the newest attestation's signed asset registry, where
    that symbol names one asset only (a reader sees ``KGST``, not ``ERC20:0x…F6C9``; two tokens
    both calling themselves ``USDT`` keep their codes)."""
    registry = bundles[-1].bundle.body.get("assets", {}) if bundles else {}
    symbols = {code: str(entry.get("symbol", "")) for code, entry in registry.items()}
    counts = Counter(symbols.values())
    return {
        code: symbol
        for code, symbol in symbols.items()
        if len(code) > ASSET_LABEL_MAX_CHARS
        and symbol
        and counts[symbol] == 1
        and symbol not in registry
    }


@dataclass(frozen=True)
class PublishedSite:
    """Where the site landed and what it holds."""

    folder: Path
    attestations: int
    spends: int
    pages: tuple[Path, ...]

    @property
    def entry(self) -> Path:
        """The page to open first (the language chooser)."""
        return self.folder / "index.html"


def _status(item: PublishedBundle) -> str:
    """``verified``, ``verified-offline`` (node checks skipped) or ``failed``."""
    if item.report.passed():
        return "verified"
    if item.report.passed(allow_skipped=True):
        return "verified-offline"
    return "failed"


def _address(script_hex: str, network: str) -> str:
    """The address of a scriptPubKey, or the script itself if it has no address form."""
    params = NETWORKS.get(BITCOIN_NETWORKS.get(network, ""))
    if params is None:
        return script_hex
    try:
        return str(Script(bytes.fromhex(script_hex)).address(params))
    except (ValueError, KeyError, IndexError):
        return script_hex


def _reserve_addresses(
    body: Mapping[str, Any], chain_name: Callable[[str], str]
) -> list[dict[str, Any]]:
    """Every address holding reserves at the snapshot, with its amount per asset."""
    bitcoin = body["snapshot"]["bitcoin"]
    totals: dict[str, int] = {}
    for utxo in bitcoin["utxos"]:
        address = _address(utxo["script_pubkey"], bitcoin["network"])
        totals[address] = totals.get(address, 0) + int(utxo["amount"])
    rows: list[dict[str, Any]] = [
        {"chain": chain_name(f"bitcoin:{bitcoin['network']}"), "address": address,
         "asset": "BTC", "amount": amount}
        for address, amount in sorted(totals.items())
    ]  # fmt: skip
    for snapshot in body["snapshot"]["evm"]:
        for balance in snapshot["balances"]:
            rows.append(
                {
                    "chain": chain_name(f"evm:{snapshot['chain_id']}"),
                    "address": balance["safe_address"],
                    "asset": balance["asset"],
                    "amount": int(balance["amount"]),
                }
            )
    return rows


def _ratio(coverage: Mapping[str, Any]) -> Fraction | None:
    """Coverage as an exact percentage, or None when nothing is owed."""
    denominator = int(coverage["denominator"])
    if denominator == 0:
        return None
    return Fraction(100 * int(coverage["numerator"]), denominator)


def _percent_text(value: Fraction, catalogue: Catalogue) -> str:
    """Truncated to two decimals, as the attestation's own ``ratio`` field."""
    hundredths = value.numerator * 100 // value.denominator
    return catalogue.percent(Decimal(hundredths) / 100)


class _Pages:
    """Renders one language's pages from the shared data."""

    def __init__(
        self,
        env: Environment,
        catalogue: Catalogue,
        bundles: Sequence[PublishedBundle],
        records: TreasuryRecords,
        published_at: datetime,
        proofs_api_url: str | None = None,
        archive: SourceArchive | None = None,
    ) -> None:
        self.env = env
        self.proofs_api_url = proofs_api_url
        self.t = catalogue
        self.bundles = bundles
        self.records = records
        self.published_at = published_at
        self.archive = archive
        self.assets = assets_of(bundles)
        self.symbols = registry_symbols(bundles)
        self.local = Localiser(catalogue, records)

    def amount(self, asset: str, value: int | str) -> str:
        """An amount in whole units with its asset code (base units if the scale is unknown)."""
        decimals = self.decimals(asset)
        text = self.t.amount(int(value), decimals)
        if decimals is None:
            return f"{text} {self.t.text('unit.base_units', asset=asset)}"
        return f"{text}\u00a0{self.asset_label(asset)}"

    def decimals(self, asset: str) -> int | None:
        """Base units per whole unit: the export's, else the signed registry's."""
        if asset in self.records.decimals:
            return self.records.decimals[asset]
        entry = self.bundles[-1].bundle.body.get("assets", {}).get(asset)
        return None if entry is None else int(entry["decimals"])

    def asset_label(self, asset: str) -> str:
        """The registry's symbol of a long token code, else the code (shortened if long)."""
        return self.symbols.get(asset) or short_asset(asset)

    def asset_chain(self, asset: str) -> str:
        """The name of the chain ``asset`` is on (from the signed registry, else the export)."""
        entry = self.bundles[-1].bundle.body.get("assets", {}).get(asset)
        chain = entry.get("chain") if entry else self.records.asset_chains.get(asset)
        return self.local.chain(chain) if chain else ""

    def when(self, moment: str | datetime | None) -> str:
        """A UTC time as ``YYYY-MM-DD HH:MM UTC``."""
        if moment is None:
            return "—"
        return _moment(moment).strftime("%Y-%m-%d %H:%M UTC")

    def moment(self, moment: str | datetime | None) -> Markup:
        """:meth:`when` kept on one line inside a sentence: a narrow phone otherwise breaks a
        date at its hyphens ("2026-11-" / "26")."""
        return Markup('<span class="nowrap">{}</span>').format(self.when(moment))

    def context(self, page: str) -> dict[str, Any]:
        latest = self.bundles[-1]
        return {
            "lang": self.t.code,
            "page": page,
            "pages": PAGES,
            "languages": LANGUAGES,
            "t": self.t.text,
            "tm": self.t.markup,
            "plural": self.t.plural,
            "num": self.t.integer,
            "amount": self.amount,
            "asset_label": self.asset_label,
            "asset_chain": self.asset_chain,
            "local": self.local,
            "when": self.when,
            "moment": self.moment,
            "status_of": _status,
            "published_at": self.when(self.published_at),
            "latest": latest,
            "bundles": self.bundles,
            "assets": self.assets,
            "records": self.records,
            "archive": self.archive,
            "archive_name": VERIFIER_ARCHIVE,
        }

    def index(self) -> dict[str, Any]:
        latest = self.bundles[-1]
        body = latest.bundle.body
        rows = []
        for asset in sorted(body["reconciliation"], key=str.encode):
            line, cover = body["reconciliation"][asset], body["coverage"][asset]
            ratio = _ratio(cover)
            rows.append(
                {
                    "asset": asset,
                    "line": line,
                    "coverage": cover,
                    "exact": ratio,
                    "ratio": None if ratio is None else _percent_text(ratio, self.t),
                }
            )
        owed = [row for row in rows if row["exact"] is not None]
        lowest = min(owed, key=lambda row: row["exact"]) if owed else None
        checks = latest.report.checks
        auditor = next((c for c in checks if c.name == "signature auditor"), None)
        as_of = _moment(body["as_of"])
        return {
            "rows": rows,
            "lowest": lowest,
            "all_covered": all(row["coverage"]["covered"] for row in rows),
            "as_of_date": as_of.strftime("%Y-%m-%d"),
            "age_days": (self.published_at.date() - as_of.date()).days,
            "auditor_check": auditor,
            "body": body,
            "addresses": _reserve_addresses(body, self.local.chain),
            "checks": [(check, self.local.check(check.name)) for check in checks],
            "counts": {s: sum(c.status is s for c in checks) for s in CheckStatus},
            "CheckStatus": CheckStatus,
        }

    def history(self) -> dict[str, Any]:
        x_labels = tuple(
            self.t.text("history.x_label", sequence=str(item.bundle.sequence))
            + "\n"
            + item.bundle.body["as_of"][:10]
            for item in self.bundles
        )
        reserve_charts = []
        for asset in self.assets:
            decimals = self.decimals(asset)
            scale = 10**decimals if decimals is not None else 1
            columns: dict[str, list[Fraction | None]] = {}
            for key in ("chain_holdings", "available", "liability_root_total"):
                values: list[Fraction | None] = []
                for item in self.bundles:
                    line = item.bundle.body["reconciliation"].get(asset)
                    values.append(None if line is None else Fraction(int(line[key]), scale))
                columns[key] = values

            def whole(value: Fraction, asset: str = asset, scale: int = scale) -> str:
                return self.amount(asset, int(value * scale))

            labels = {
                "chain_holdings": self.t.text("figure.chain_holdings"),
                "available": self.t.text("figure.available"),
                "liability_root_total": self.t.text("figure.liabilities"),
            }
            series = []
            seen: list[str] = []
            for key, values in columns.items():
                same = next((k for k in seen if columns[k] == values), None)
                note = "" if same is None else self.t.text("history.same_as", other=labels[same])
                series.append(charts.Series(labels[key], tuple(values), note))
                seen.append(key)
            label = self.asset_label(asset)
            latest_held = columns["chain_holdings"][-1] or Fraction(0)
            chart = charts.Chart(
                chart_id=f"chart-reserves-{_html_id(asset)}",
                title=self.t.text("history.reserves_chart_title", asset=label),
                description=self.t.text(
                    "history.reserves_chart_desc",
                    asset=label,
                    count=str(len(self.bundles)),
                    latest=self.amount(asset, int(latest_held * scale)),
                ),
                x_labels=x_labels,
                series=tuple(series),
                y_format=whole,
            )
            reserve_charts.append({"asset": asset, "svg": charts.render(chart)})
        coverage_series = []
        for asset in self.assets:
            ratios = []
            for item in self.bundles:
                cover = item.bundle.body["coverage"].get(asset)
                ratios.append(None if cover is None else _ratio(cover))
            coverage_series.append(charts.Series(self.asset_label(asset), tuple(ratios)))
        coverage = charts.Chart(
            chart_id="chart-coverage",
            title=self.t.text("history.coverage_chart_title"),
            description=self.t.text("history.coverage_chart_desc", count=str(len(self.bundles))),
            x_labels=x_labels,
            series=tuple(coverage_series),
            y_format=lambda value: _percent_text(value, self.t),
            reference=Fraction(100),
            reference_label=self.t.text("history.full_coverage"),
            tick_format=lambda value: (
                self.t.percent(Decimal(value.numerator) / value.denominator)
                if value.denominator != 1
                else f"{self.t.integer(int(value))}\u00a0%"
            ),
        )
        table = []
        for item in self.bundles:
            body = item.bundle.body
            table.append(
                {
                    "item": item,
                    "cells": [
                        (
                            asset,
                            body["reconciliation"].get(asset),
                            None
                            if asset not in body["coverage"]
                            else _ratio(body["coverage"][asset]),
                        )
                        for asset in self.assets
                    ],
                }
            )
        return {
            "reserve_charts": reserve_charts,
            "coverage_svg": charts.render(coverage),
            "table": table,
            "percent": lambda value: _percent_text(value, self.t),
        }

    def spends(self) -> dict[str, Any]:
        """Each asset's ledger sums beside the latest attestation's holdings, and what left."""
        latest = self.bundles[-1].bundle.body["reconciliation"]
        outflows: dict[str, dict[str, int]] = {}
        for spend in self.records.spends:
            sums = outflows.setdefault(spend.asset, {"confirmed": 0, "broadcast": 0, "fees": 0})
            sums[spend.state.value] += spend.amount
            sums["fees"] += spend.fee or 0
        movements = [
            {
                "asset": asset,
                "m": self.records.movements[asset],
                "chain_holdings": None
                if asset not in latest
                else int(latest[asset]["chain_holdings"]),
            }
            for asset in sorted(self.records.movements, key=str.encode)
        ]
        return {
            "decree_link": self.decree_link,
            "movements": movements,
            "movement_fields": MOVEMENT_FIELDS,
            "outflows": sorted(outflows.items(), key=lambda item: item[0].encode()),
            "SpendState": SpendState,
        }

    def decree_link(self, spend: ExecutedSpend) -> tuple[str, str] | None:
        """(language, URL) of the decree's official text: in the page's language if the treasury
        entered one, else in another language the site publishes (the state language first)."""
        for code in (self.t.code, *LANGUAGES):
            if code in spend.legal_basis_urls:
                return code, spend.legal_basis_urls[code]
        return None

    def verify(self) -> dict[str, Any]:
        data = [
            {
                "sequence": item.bundle.sequence,
                "as_of": item.bundle.body["as_of"],
                "digest": item.bundle.digest.hex(),
                "file": item.file_name,
                "root": item.bundle.body["liabilities"]["root"],
                "listing": item.bundle.body["liabilities"]["public_listing"],
            }
            for item in reversed(self.bundles)
        ]
        units = {
            asset: {
                "decimals": self.decimals(asset),
                "label": self.asset_label(asset),
                "group": self.t.text("number.group"),
                "point": self.t.text("number.decimal"),
            }
            for asset in self.assets
        }
        messages = {
            key.removeprefix("js."): text
            for key, text in self.t.messages.items()
            if key.startswith("js.")
        }
        return {
            "verifier_data": data,
            "verifier_units": units,
            "verifier_messages": messages,
            "proofs_api": self.proofs_api_url,
            "proofs_api_host": urlsplit(self.proofs_api_url).netloc if self.proofs_api_url else "",
        }

    def render(self, page: str) -> str:
        """The HTML of ``page`` in this language."""
        extras: Mapping[str, Callable[[], dict[str, Any]]] = {
            "index": self.index,
            "history": self.history,
            "spends": self.spends,
            "verify": self.verify,
        }
        context = self.context(page)
        if page in extras:
            context.update(extras[page]())
        return self.env.get_template(f"{page}.html").render(context)


def _html_id(asset: str) -> str:
    """An asset code as the tail of an element id a CSS selector takes unescaped
    (``ERC20:0xDc64…`` becomes ``erc20-0xdc64…``)."""
    return re.sub(r"[^a-z0-9]+", "-", asset.lower()).strip("-")


def _moment(moment: str | datetime) -> datetime:
    """A bundle's ``YYYY-MM-DDTHH:MM:SSZ`` or a datetime, in UTC."""
    if isinstance(moment, str):
        moment = datetime.strptime(moment, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def check_proofs_api_url(url: str | None) -> None:
    """Refuse a proofs address a browser should not send a holder's code to."""
    if url is None:
        return
    parts = urlsplit(url)
    local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if (
        parts.scheme not in {"https", "http"}
        or (parts.scheme == "http" and not local)
        or not parts.netloc
        or parts.username
        or parts.password
        or parts.query
        or parts.fragment
        or any(c in url for c in '"<> \n')
    ):
        raise SiteError(
            f"The proofs address {url!r} must be an https:// URL without credentials, query or "
            "fragment (http:// only on this machine), e.g. https://treasury.example/holders/proof."
        )


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def _open_data(folder: Path, bundles: Sequence[PublishedBundle], records: TreasuryRecords) -> None:
    """Raw bundles, verifier reports, and the summaries as JSON and CSV (amounts in base units)."""
    data = folder / "data"
    (data / "attestations").mkdir(parents=True)
    (data / "verification").mkdir()
    summary_rows = []
    for item in bundles:
        (data / "attestations" / item.file_name).write_bytes(item.raw)
        report_name = item.file_name.removesuffix(".json") + ".txt"
        (data / "verification" / report_name).write_text(item.report.render() + "\n", "utf-8")
        body = item.bundle.body
        for asset in sorted(body["reconciliation"], key=str.encode):
            line, cover = body["reconciliation"][asset], body["coverage"][asset]
            summary_rows.append(
                {
                    "sequence": item.bundle.sequence,
                    "as_of": body["as_of"],
                    "digest": item.bundle.digest.hex(),
                    "asset": asset,
                    "chain_holdings": line["chain_holdings"],
                    "encumbered": line["encumbered"],
                    "available": line["available"],
                    "liabilities": line["liability_root_total"],
                    "ledger_total": line["ledger_total"],
                    "coverage_ratio": cover["ratio"],
                    "covered": cover["covered"],
                    "verification": _status(item),
                }
            )
    (data / "attestations.json").write_text(_json(summary_rows), "utf-8")
    header = list(summary_rows[0]) if summary_rows else ["sequence"]
    (data / "attestations.csv").write_text(
        _csv(header, [[row[key] for key in header] for row in summary_rows]), "utf-8"
    )
    spends: list[dict[str, Any]] = [
        {
            "proposal_id": s.proposal_id,
            "state": s.state.value,
            "executed_at": None if s.executed_at is None else s.executed_at.isoformat(),
            "asset": s.asset,
            "amount": str(s.amount),
            "destination": s.destination,
            "purpose": s.purpose,
            "legal_basis": s.legal_basis,
            "legal_basis_title": s.legal_basis_title,
            "approving_institutions": list(s.approving_institutions),
            "txid": s.txid,
        }
        for s in records.spends
    ]
    (data / "spends.json").write_text(_json(spends), "utf-8")
    spend_header = ["proposal_id", "state", "executed_at", "asset", "amount", "destination",
                    "purpose", "legal_basis", "legal_basis_title", "approving_institutions", "txid"]  # fmt: skip
    (data / "spends.csv").write_text(
        _csv(
            spend_header,
            [
                [
                    "; ".join(row[key]) if key == "approving_institutions" else row[key]
                    for key in spend_header
                ]
                for row in spends
            ],
        ),
        "utf-8",
    )
    funds = [
        {"account": f.account, "name": f.name, "kind": f.kind.value, "asset": f.asset,
         "posted": str(f.posted), "pending": str(f.pending), "available": str(f.available)}
        for f in records.funds
    ]  # fmt: skip
    (data / "funds.json").write_text(_json(funds), "utf-8")
    fund_header = ["account", "name", "kind", "asset", "posted", "pending", "available"]
    (data / "funds.csv").write_text(
        _csv(fund_header, [[row[key] for key in fund_header] for row in funds]), "utf-8"
    )


def publish_site(
    bundles: Sequence[PublishedBundle],
    records: TreasuryRecords,
    out: Path,
    *,
    published_at: datetime,
    proofs_api_url: str | None = None,
) -> PublishedSite:
    """Write the site for ``bundles`` (in chain order) and ``records`` to the folder ``out``.

    ``out`` must be absent, empty, or a folder an earlier publish wrote (it carries
    ``MARKER_FILE``); it is replaced whole only once the new site is complete.
    ``proofs_api_url`` is the treasury's ``POST /holders/proof`` address (``https://…``): with
    it, the check page lets a holder fetch their proof with account id and code (the answer is
    verified in the browser like a file); without it, that form is shown disabled.
    """
    if not bundles:
        raise SiteError("There is no attestation to publish; the site needs at least one.")
    check_proofs_api_url(proofs_api_url)
    out = out.resolve()
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / MARKER_FILE).is_file())
    ):
        raise SiteError(
            f"The output folder {out} exists and was not written by `treasury publish`; "
            "choose an empty or new folder."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    catalogues = load_catalogues()
    env = _environment()
    archive = verifier_archive()
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        pages = []
        for code in LANGUAGES:
            renderer = _Pages(
                env, catalogues[code], bundles, records, published_at, proofs_api_url, archive
            )
            (staging / code).mkdir()
            for page in PAGES:
                path = staging / code / f"{page}.html"
                path.write_text(renderer.render(page), "utf-8")
                pages.append(out / code / f"{page}.html")
        chooser = env.get_template("choose.html").render(
            catalogues=[catalogues[code] for code in LANGUAGES], latest=bundles[-1]
        )
        (staging / "index.html").write_text(chooser, "utf-8")
        pages.append(out / "index.html")
        shutil.copytree(STATIC_DIR, staging / "static")
        _open_data(staging, bundles, records)
        if archive is not None:
            (staging / "data" / VERIFIER_ARCHIVE).write_bytes(archive.data)
        (staging / MARKER_FILE).write_text(
            f"published {published_at.isoformat()} by treasury publish\n", "utf-8"
        )
        staging.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return PublishedSite(out, len(bundles), len(records.spends), tuple(pages))
