"""The canonical asset list: which codes a liability tree carries, in which order.

A root commits to its asset list, so producer, attestation and verifier must agree on one
spelling and one order (SPEC-merkle.md, *Roots*); this module is that single check.
"""

from __future__ import annotations

from collections.abc import Iterable

from reporting.exceptions import AssetListError

MAX_ASSET_CODE_BYTES = 64
"""Longest asset code accepted, in ASCII bytes."""

MAX_ASSETS = 255
"""Most assets one liability tree may carry (the count is encoded on one byte)."""


def canonical_assets(assets: Iterable[str]) -> tuple[str, ...]:
    """Check an asset list is canonical: printable ASCII codes in strictly ascending order."""
    codes = tuple(assets)
    if len(codes) > MAX_ASSETS:
        raise AssetListError(f"The asset list has {len(codes)} codes; at most {MAX_ASSETS} fit.")
    for code in codes:
        if not isinstance(code, str) or not code:
            raise AssetListError(f"The asset code {code!r} is not a non-empty string.")
        raw = code.encode("utf-8")
        if len(raw) > MAX_ASSET_CODE_BYTES or not all(0x21 <= b <= 0x7E for b in raw):
            raise AssetListError(
                f"The asset code {code!r} must be 1 to {MAX_ASSET_CODE_BYTES} printable ASCII characters without spaces."
            )
    if list(codes) != sorted(set(codes), key=lambda code: code.encode()):
        raise AssetListError(
            f"The asset list {list(codes)} must be in ascending byte order without repeats; "
            f"list it as {sorted(set(codes), key=lambda code: code.encode())}."
        )
    return codes
