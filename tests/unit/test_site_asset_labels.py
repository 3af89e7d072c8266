"""The parliament site names a token by the symbol its signed asset registry gives, not by its
long code, unless the symbol could be mistaken for another asset."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from reporting.site.publish import registry_symbols, short_asset

TOKEN = "ERC20:0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9"
OTHER = "ERC20:0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _published(assets: dict[str, dict[str, Any]]) -> Any:
    """A published attestation whose body carries ``assets`` (nothing else is read)."""
    return SimpleNamespace(bundle=SimpleNamespace(body={"assets": assets}))


def test_a_token_code_is_shown_as_its_registry_symbol() -> None:
    registry = {
        "BTC": {"symbol": "BTC"},
        "ETH": {"symbol": "ETH"},
        TOKEN: {"symbol": "KGST"},
    }
    assert registry_symbols([_published(registry)]) == {TOKEN: "KGST"}


def test_ambiguous_or_colliding_symbols_keep_the_code() -> None:
    """Two tokens both calling themselves USDT, or a token calling itself ETH, keep their codes."""
    twins = {TOKEN: {"symbol": "USDT"}, OTHER: {"symbol": "USDT"}}
    assert registry_symbols([_published(twins)]) == {}
    impostor = {"ETH": {"symbol": "ETH"}, TOKEN: {"symbol": "ETH"}}
    assert registry_symbols([_published(impostor)]) == {}
    assert short_asset(TOKEN) == "ERC20:0x\u2026F6C9"


def test_the_newest_attestation_names_the_symbols() -> None:
    older = _published({TOKEN: {"symbol": "OLD"}})
    newer = _published({TOKEN: {"symbol": "KGST"}})
    assert registry_symbols([older, newer]) == {TOKEN: "KGST"}
    assert registry_symbols([]) == {}
