"""Amounts and durations as the demo prints them for people: coin units first, base units after.

``2 days, 1:00:00`` (a ``timedelta``'s own text) and ``15000000000000000000 base units`` were
what a newcomer read before; these say ``2 days 1 hour`` and ``250000 KGST (250000 x 10^18
base units)``. Display only: every amount the story computes with stays an integer.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from treasury.story.cast import TOKEN_DECIMALS, TOKEN_SYMBOL

__all__ = ["human_duration", "token_units"]

_PARTS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def human_duration(delta: timedelta) -> str:
    """``2 days 1 hour``: whole units, largest first, zero parts left out."""
    remaining = int(delta.total_seconds())
    if remaining <= 0:
        return "no time"
    words = []
    for name, seconds in _PARTS:
        count, remaining = divmod(remaining, seconds)
        if count:
            words.append(f"{count} {name}{'' if count == 1 else 's'}")
    return " ".join(words)


def token_units(amount: int) -> str:
    """The story token in whole tokens, with its exact base units: ``250000 KGST (...)``."""
    text = format(Decimal(amount).scaleb(-TOKEN_DECIMALS), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {TOKEN_SYMBOL} ({amount} base units)"
