"""Text that every database stores as given: no control characters, no lone surrogates.

PostgreSQL refuses a NUL in text outright (a 500 and a lost refusal, once), other C0 controls and
DEL corrupt logs and screens, and a lone surrogate has no UTF-8 encoding at all. The API's
schemas, the console's forms and the workflow itself (for the CLI and direct callers) all refuse
such text with the same check, naming the code points found.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["LINE_BREAKS", "unstorable_characters", "unstorable_message"]

LINE_BREAKS = frozenset("\t\n\r")
"""The only control characters allowed, and only in multi-line text (a purpose, a reason)."""


def unstorable_characters(text: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """The code points (``U+0000``) in ``text`` that stored text must not hold, first 5 kept.

    C0 controls and DEL (PostgreSQL refuses NUL outright; the others corrupt logs and screens)
    except ``allowed``, and lone surrogates (no UTF-8 encoding, so no database can store them).
    """
    found: list[str] = []
    for char in text:
        point = ord(char)
        if char in allowed:
            continue
        if point < 0x20 or point == 0x7F or 0xD800 <= point <= 0xDFFF:
            label = f"U+{point:04X}"
            if label not in found:
                found.append(label)
            if len(found) == 5:
                break
    return found


def unstorable_message(found: Sequence[str]) -> str:
    """The sentence ending that names what was found (after "<field> must be ...")."""
    return "text without control characters or lone surrogates (found " + ", ".join(found) + ")"
