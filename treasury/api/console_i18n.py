"""The console's words and numbers in Kyrgyz, Russian and English, with the site's catalogues.

Contract for every console template (console-core and console-views share it; see also
``console_pages``):

- ``t(key, **params)``: the message ``key`` of the page's language. The catalogue is the site's
  (``reporting/site/locales/<lang>.json``) merged with every
  ``treasury/api/console_locales/<part>.<lang>.json``; every language must have the same keys and
  no key may be defined in two files, or the console refuses to start (``load_console_catalogues``).
- ``lang``: ``ky``, ``ru`` or ``en``, chosen by ``?lang=`` (remembered in the ``console_lang``
  cookie), else the browser's Accept-Language, else English (``choose_language``).
- ``units``: amounts of an asset in coin units and base units, written the language's way
  (``Units``), with decimals and symbols from the asset registry (``AssetUnits``).

The same ``Catalogue`` class as the site does the lookups, so a term (an asset, "coverage") reads
the same on the parliament site and in the officers' console.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from reporting.site.i18n import LANGUAGES, LOCALES_DIR, Catalogue, load_catalogue
from treasury.ledger.models import Asset
from treasury.reconcile.records import TrackedTokenRow
from treasury.workflow_exceptions import NotConfiguredError

CONSOLE_LOCALES_DIR = Path(__file__).resolve().parent / "console_locales"
"""The console's own catalogues: ``<part>.<lang>.json`` (``console``, ``views``, ...)."""
DEFAULT_LANGUAGE = "en"
"""The language of a browser that names none of ours."""
LANGUAGE_COOKIE = "console_lang"
"""Remembers the language an officer picked with ``?lang=``."""
ERC20_PREFIX = "ERC20:"
"""How the ledger names a token asset: ``ERC20:<contract address>``."""
NATIVE_UNITS = {"BTC": (8, "sat"), "ETH": (18, "wei")}
"""Decimals and base unit of the chains' coins when the ledger has not registered them yet."""


class ConsoleCatalogueError(NotConfiguredError):
    """A console catalogue is missing, malformed, duplicates a key or lacks one another has."""


def _part(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConsoleCatalogueError(
            f"The catalogue {path} cannot be read: {error.strerror}."
        ) from None
    except json.JSONDecodeError as error:
        raise ConsoleCatalogueError(f"The catalogue {path} is not JSON: {error}.") from None
    if not isinstance(data, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in data.items()
    ):
        raise ConsoleCatalogueError(f"The catalogue {path} must be one JSON object of strings.")
    return data


def load_console_catalogues(
    site_dir: Path = LOCALES_DIR, console_dir: Path = CONSOLE_LOCALES_DIR
) -> dict[str, Catalogue]:
    """Each language's site catalogue merged with every console part of that language.

    Refused: a key defined twice (in the site and a part, or in two parts), and languages whose
    keys differ, so no console page can fall back to another language or miss a word.
    """
    merged: dict[str, dict[str, str]] = {}
    for code in LANGUAGES:
        messages = dict(load_catalogue(code, site_dir).messages)
        origin = dict.fromkeys(messages, f"the site's {code}.json")
        for path in sorted(console_dir.glob(f"*.{code}.json")):
            for key, text in _part(path).items():
                if key in messages:
                    raise ConsoleCatalogueError(
                        f"The message {key!r} is defined both in {origin[key]} and in {path.name}."
                    )
                messages[key], origin[key] = text, path.name
        merged[code] = messages
    reference = set(merged[DEFAULT_LANGUAGE])
    for code, messages in merged.items():
        missing = sorted(reference - set(messages))
        extra = sorted(set(messages) - reference)
        if missing or extra:
            raise ConsoleCatalogueError(
                f"The console's {code} messages differ from the English ones: "
                f"missing {missing}, extra {extra}."
            )
    return {code: Catalogue(code, messages) for code, messages in merged.items()}


def choose_language(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The page's language: ``?lang=``, else the remembered choice, else the browser's first
    language we publish (by its q-weight), else English."""
    for asked in (query, cookie):
        if asked in LANGUAGES:
            return str(asked)
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        name, _, params = item.strip().partition(";")
        code = name.strip().lower().split("-")[0]
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if code in LANGUAGES and weight > 0:
            weighted.append((-weight, position, code))
    return min(weighted)[2] if weighted else DEFAULT_LANGUAGE


@dataclass(frozen=True)
class AssetUnit:
    """How one asset is written: its symbol, decimals and base unit's name."""

    symbol: str
    decimals: int | None
    """``None``: unknown, so amounts are shown in base units only."""
    base_name: str


def asset_units(session: Session) -> dict[str, AssetUnit]:
    """Every asset the ledger registers, with a token's symbol from the reconciler's tracked
    tokens (the contract's own ``symbol()``); the chains' coins even before registration."""
    units = {
        code: AssetUnit(code, decimals, name) for code, (decimals, name) in NATIVE_UNITS.items()
    }
    tables = inspect(session.connection())
    symbols: dict[str, str] = {}
    if tables.has_table(TrackedTokenRow.__tablename__):
        for token in session.scalars(select(TrackedTokenRow)):
            symbols[token.address.lower()] = token.symbol
    if tables.has_table(Asset.__tablename__):
        for row in session.scalars(select(Asset)):
            symbol = row.code
            if row.code.startswith(ERC20_PREFIX):
                symbol = symbols.get(row.code[len(ERC20_PREFIX) :].lower(), row.code)
            units[row.code] = AssetUnit(symbol, row.decimals, row.unit_name)
    return units


@dataclass(frozen=True)
class Units:
    """Amounts written in one language with the asset registry: what templates call ``units``."""

    catalogue: Catalogue
    registry: Mapping[str, AssetUnit]

    def _unit(self, asset: str) -> AssetUnit:
        return self.registry.get(asset, AssetUnit(asset, None, "base units"))

    def symbol(self, asset: str) -> str:
        """``BTC``, a token's symbol (``KGST``), or the code itself when it is unknown."""
        return self._unit(asset).symbol

    def known(self, asset: str) -> bool:
        """Whether the asset's decimals are known (else amounts are in base units only)."""
        return self._unit(asset).decimals is not None

    def coin(self, asset: str, base_units: int) -> str:
        """``0,4 BTC``: coin units, every significant decimal, the language's marks."""
        unit = self._unit(asset)
        if unit.decimals is None:
            return self.base(asset, base_units)
        return f"{self.catalogue.amount(base_units, unit.decimals)}\u00a0{unit.symbol}"

    def base(self, asset: str, base_units: int) -> str:
        """``40 000 000 sat``: the exact base units with their unit's name."""
        unit = self._unit(asset)
        name = unit.base_name if unit.decimals is not None else f"{unit.base_name} {unit.symbol}"
        return f"{self.catalogue.integer(base_units)}\u00a0{name}"

    def integer(self, value: int) -> str:
        """An integer with the language's grouping."""
        return self.catalogue.integer(value)
