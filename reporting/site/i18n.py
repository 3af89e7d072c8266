"""Message catalogues: one JSON file per language, every page's words looked up by key.

Templates hold no prose: they ask ``t("key")``. A key missing from a catalogue stops the publish
(no page silently falls back to another language), and every catalogue must have the same keys.
Numbers are formatted here too: grouping and decimal marks differ between the languages.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from reporting.site.errors import CatalogueError

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
"""Where the catalogues live: ``<code>.json``, a flat object of message key to text."""

LANGUAGES = ("ky", "ru", "en")
"""Published languages, in the order the switcher lists them (the state language first)."""


PLURAL_FORMS = ("one", "few", "many", "other")
"""The suffixes of a counted message (``history.days.one`` …); every catalogue has all four."""


def plural_form(code: str, count: int) -> str:
    """The CLDR plural category of a whole ``count`` in language ``code``."""
    n = abs(count)
    if code == "ru":
        if n % 10 == 1 and n % 100 != 11:
            return "one"
        if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            return "few"
        return "many"
    if code == "en":
        return "one" if n == 1 else "other"
    return "other"


@dataclass(frozen=True)
class Catalogue:
    """One language's messages, and its way of writing numbers."""

    code: str
    messages: dict[str, str]

    def text(self, key: str, **params: Any) -> str:
        """The message ``key``, with ``{name}`` fields filled from ``params``."""
        return self._template(key, params).format(**params)

    def fields(self, key: str) -> set[str]:
        """The ``{name}`` fields message ``key`` takes."""
        return {
            name for _, name, _, _ in string.Formatter().parse(self._template(key, None)) if name
        }

    def markup(self, key: str, **params: Any) -> Markup:
        """The message ``key`` as HTML: its own text escaped, each field escaped unless it is
        already ``Markup`` (a name in ``<code>``, a marked untranslated string)."""
        return escape(self._template(key, params)).format(**params)

    def _template(self, key: str, params: Mapping[str, Any] | None) -> str:
        """The message ``key``, refused if ``params`` (unless None) are not exactly its fields."""
        try:
            template = self.messages[key]
        except KeyError:
            raise CatalogueError(
                f"The {self.code} catalogue has no message {key!r}; add it to every catalogue."
            ) from None
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        if params is not None and fields != set(params):
            raise CatalogueError(
                f"The {self.code} message {key!r} takes the fields {sorted(fields)}, not {sorted(params)}."
            )
        return template

    def has(self, key: str) -> bool:
        """Whether the catalogue names ``key`` (for data keyed by code: a chain, an institution)."""
        return key in self.messages

    def plural(self, key: str, count: int, **params: Any) -> str:
        """The message ``key.<form>`` for ``count`` by this language's plural rule, with
        ``{count}`` filled in (Russian has three forms after a number, English two, Kyrgyz one)."""
        return self.text(
            f"{key}.{plural_form(self.code, count)}", count=self.integer(count), **params
        )

    def integer(self, value: int) -> str:
        """An integer with this language's thousands separator."""
        digits = f"{abs(value):,}".replace(",", self.text("number.group"))
        return f"-{digits}" if value < 0 else digits

    def amount(self, base_units: int, decimals: int | None) -> str:
        """Base units as whole units with every significant decimal kept (never rounded)."""
        if decimals is None:
            return self.integer(base_units)
        whole, fraction = divmod(abs(base_units), 10**decimals)
        text = self.integer(whole)
        digits = str(fraction).rjust(decimals, "0").rstrip("0") if decimals else ""
        if digits:
            text += self.text("number.decimal") + digits
        return f"-{text}" if base_units < 0 else text

    def percent(self, value: Decimal) -> str:
        """A percentage with two decimals, as the attestation states it."""
        return f"{value:.2f}".replace(".", self.text("number.decimal")) + "\u00a0%"


def load_catalogue(code: str, folder: Path = LOCALES_DIR) -> Catalogue:
    """Read the catalogue of language ``code``; refuse anything but a flat object of strings."""
    path = folder / f"{code}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CatalogueError(f"The catalogue {path} cannot be read: {error.strerror}.") from None
    except json.JSONDecodeError as error:
        raise CatalogueError(f"The catalogue {path} is not JSON: {error}.") from None
    if not isinstance(data, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in data.items()
    ):
        raise CatalogueError(f"The catalogue {path} must be one JSON object of string messages.")
    return Catalogue(code, data)


def load_catalogues(folder: Path = LOCALES_DIR) -> dict[str, Catalogue]:
    """Every published language's catalogue, refusing catalogues whose keys differ."""
    catalogues = {code: load_catalogue(code, folder) for code in LANGUAGES}
    reference = set(catalogues["en"].messages)
    for code, catalogue in catalogues.items():
        missing = sorted(reference - set(catalogue.messages))
        extra = sorted(set(catalogue.messages) - reference)
        if missing or extra:
            raise CatalogueError(
                f"The {code} catalogue differs from the English one: missing {missing}, extra {extra}."
            )
    return catalogues
