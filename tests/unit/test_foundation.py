"""Pure pieces of the foundation: exact amounts, database settings, provisioning messages."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.bitcoin.rpc import btc_to_sats, sats_to_btc
from custody.devnet import binaries
from custody.exceptions import ProvisioningError
from treasury.db import DATABASE_URL_ENV, make_engine
from treasury.exceptions import DatabaseConfigError
from treasury.settings import database_url

MAX_SATS = 21_000_000 * 100_000_000


def test_btc_amounts_convert_exactly() -> None:
    """Satoshi conversion is exact and refuses sub-satoshi amounts instead of rounding."""
    assert btc_to_sats(Decimal("20999999.97690000")) == 2_099_999_997_690_000
    assert sats_to_btc(1) == Decimal("0.00000001")
    with pytest.raises(ValueError, match="whole number of satoshis"):
        btc_to_sats(Decimal("0.000000001"))


@given(st.integers(min_value=0, max_value=MAX_SATS))
def test_sats_round_trip_through_btc(sats: int) -> None:
    """Every satoshi amount survives the trip to a BTC Decimal and back."""
    assert btc_to_sats(sats_to_btc(sats)) == sats


def test_default_database_is_sqlite_under_the_working_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without a setting, the ledger lives in an embedded SQLite file under the working folder."""
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert database_url() == f"sqlite:///{tmp_path / 'var' / 'treasury.sqlite3'}"


@pytest.mark.parametrize(
    ("url", "message"),
    [("not a url", "is not a database URL"), ("mysql://u@h/db", "unsupported backend 'mysql'")],
)
def test_bad_database_urls_are_refused_clearly(url: str, message: str) -> None:
    """A malformed or unsupported database URL names the setting and what to use instead."""
    with pytest.raises(DatabaseConfigError, match=message):
        make_engine(url)


def test_debian_archive_is_read_from_the_machines_own_sources(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The sid fetch reuses the archive URI of this machine's apt sources (deb822 or one-line)."""
    (tmp_path / "other.sources").write_text("Types: deb\nURIs: https://example.invalid/node\n")
    (tmp_path / "debian.list").write_text(
        "deb [arch=amd64] http://mirror.invalid/debian bookworm main\n"
    )
    monkeypatch.setattr(binaries, "APT_SOURCES_DIR", tmp_path)
    monkeypatch.setattr(binaries, "APT_SOURCES_LIST", tmp_path / "missing")
    assert binaries.debian_archive_uri() == "http://mirror.invalid/debian"


def test_no_debian_archive_gives_an_actionable_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On a machine without Debian sources the error says to bring one's own Bitcoin Core."""
    monkeypatch.setattr(binaries, "APT_SOURCES_DIR", tmp_path)
    monkeypatch.setattr(binaries, "APT_SOURCES_LIST", tmp_path / "missing")
    with pytest.raises(ProvisioningError, match="set BITCOIND and BITCOIN_CLI"):
        binaries.debian_archive_uri()


def test_a_users_own_binaries_take_precedence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """BITCOIND/BITCOIN_CLI/ANVIL win over PATH and the fetched cache."""
    for name in ("bitcoind", "bitcoin-cli", "anvil"):
        tool = tmp_path / name
        tool.write_text("#!/bin/sh\necho fake\n")
        tool.chmod(0o755)
    monkeypatch.setenv("BITCOIND", str(tmp_path / "bitcoind"))
    monkeypatch.setenv("BITCOIN_CLI", str(tmp_path / "bitcoin-cli"))
    monkeypatch.setenv("ANVIL", str(tmp_path / "anvil"))
    found = binaries.find_binaries(install=False)
    assert found.bitcoind.argv == (str(tmp_path / "bitcoind"),)
    assert found.anvil.source == "$ANVIL"


def test_half_a_bitcoin_installation_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """bitcoind without bitcoin-cli (or the reverse) is a configuration error, not a silent mix."""
    tool = tmp_path / "bitcoind"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("BITCOIND", str(tool))
    monkeypatch.delenv("BITCOIN_CLI", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ProvisioningError, match="Found bitcoind but not bitcoin-cli"):
        binaries.find_bitcoin(install=False)


def test_a_missing_binary_says_what_was_tried_and_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """BITCOIND pointing nowhere gives one paragraph naming the variable, without hanging."""
    monkeypatch.setenv("BITCOIND", str(tmp_path / "no-such-bitcoind"))
    with pytest.raises(ProvisioningError, match=r"BITCOIND is set to .* not an executable file"):
        binaries.find_binaries(install=False)


def test_a_broken_binary_is_reported_with_what_to_set(tmp_path: Path) -> None:
    """A binary that fails --version is cut off by a bounded wait and named in the error."""
    broken = tmp_path / "bitcoind"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(ProvisioningError, match=r"check bitcoind.*exited with 3.*Set BITCOIND"):
        binaries.Binary("bitcoind", (str(broken),), "test").version()
