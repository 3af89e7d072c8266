"""The wiring of token spends without nodes: the registry, asset names, accounts and the gate."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address
from sqlalchemy.orm import Session, sessionmaker

from custody.devnet.binaries import NODES_DIR_ENV
from custody.ethereum.records import SafeVaultRow
from treasury import migrate
from treasury.chains import EvmChainSettings
from treasury.db import make_engine, session_factory
from treasury.policy import ReconciliationOutcome
from treasury.reconcile import eth_scope, holdings_account, track_token
from treasury.reconcile.errors import ReconcileConfigError
from treasury.reconcile.records import ResultRow, RunRow, RunStatus, TrackedTokenRow
from treasury.settings import RESERVE_RPC_URL_ENV, SAFE_VAULT_ENV, Settings
from treasury.wiring import (
    TokenReconcileGate,
    resolve_asset,
    spend_accounts,
    spendable_assets,
    spender_for,
    token_registry,
    vault_of,
)
from treasury.workflow_exceptions import NotConfiguredError

CHAIN_ID = 31337
OTHER_CHAIN_ID = 97
KGST = "0x" + "ab" * 20
KGST_CODE = "ERC20:" + to_checksum_address(KGST)
FOREIGN = "0x" + "cd" * 20
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (SAFE_VAULT_ENV, RESERVE_RPC_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(NODES_DIR_ENV, str(tmp_path / "no-devnet"))


def _settings() -> Settings:
    return Settings.from_env(os.environ)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'tokens.sqlite3'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    with factory.begin() as session:
        session.add(
            SafeVaultRow(
                name="safe-reserve", chain_id=CHAIN_ID, address="0x" + "11" * 20, threshold=2,
                nonce=0,
            )
        )  # fmt: skip
        track_token(session, CHAIN_ID, KGST, "KGST", 18)
        track_token(session, OTHER_CHAIN_ID, FOREIGN, "BNBT", 18)
    yield factory
    engine.dispose()


def test_the_registry_holds_the_safes_chain_tokens_under_their_checksummed_codes(
    sessions: sessionmaker[Session],
) -> None:
    """Tracked tokens of the Safe's chain are spendable as ERC20:<EIP-55>; another chain's are not."""
    with sessions() as session:
        registry = token_registry(session, CHAIN_ID)
        assert list(registry) == [KGST_CODE]
        assert registry[KGST_CODE].symbol == "KGST"
        assert registry[KGST_CODE].decimals == 18
        assert spendable_assets(session, _settings()) == ("BTC", "ETH", KGST_CODE)
        assert vault_of(session, KGST_CODE, _settings()) == "safe-reserve"
        with pytest.raises(NotConfiguredError, match="No chain spender exists for ERC20:"):
            vault_of(session, "ERC20:" + to_checksum_address(FOREIGN), _settings())


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("KGST", KGST_CODE),
        ("ERC20:" + KGST.lower(), KGST_CODE),
        ("erc20:" + KGST.upper().replace("0X", "0x"), KGST_CODE),
        ("BTC", "BTC"),
        ("ETH", "ETH"),
        ("BNBT", "BNBT"),  # another chain's symbol is not resolved: the policy refuses it
        ("ERC20:0x12", "ERC20:0x12"),
    ],
)
def test_officers_name_a_token_by_code_or_symbol(
    sessions: sessionmaker[Session], typed: str, meant: str
) -> None:
    """A symbol or a code in any letter case resolves to the one code; anything else stays as typed."""
    with sessions() as session:
        assert resolve_asset(session, typed, _settings()) == meant


def test_a_tokens_spends_book_into_the_safes_holdings_in_that_token(
    sessions: sessionmaker[Session],
) -> None:
    """The hook moves the token's own accounts, the ones the reconciler books deposits into."""
    with sessions() as session:
        accounts = spend_accounts(session, _settings())
    scope = eth_scope(CHAIN_ID, "safe-reserve")
    assert accounts[KGST_CODE].holdings == holdings_account(scope, KGST_CODE)
    assert accounts[KGST_CODE].payments == f"reserve:approved-outflows:{KGST_CODE}"
    assert accounts[KGST_CODE].fees == f"fees:{KGST_CODE}"


def test_a_token_spender_needs_the_node_and_an_untracked_token_has_none(
    sessions: sessionmaker[Session],
) -> None:
    """Without the EVM node the error says so; an untracked token has no spender at all."""
    with pytest.raises(NotConfiguredError, match=f"Spends of {KGST_CODE} need the reserve's EVM"):
        spender_for(sessions, KGST_CODE, _settings())
    with pytest.raises(NotConfiguredError, match="No chain spender exists for ERC20:0x"):
        spender_for(sessions, "ERC20:" + to_checksum_address(FOREIGN), _settings())


def _result(session: Session, gate_asset: str, *, matched: bool) -> None:
    run = RunRow(started_at=NOW, pid=1, host="test", status=RunStatus.SUCCEEDED)
    session.add(run)
    session.flush()
    session.add(
        ResultRow(
            run_id=run.id, scope=eth_scope(CHAIN_ID, "safe-reserve"), asset=KGST_CODE,
            gate_asset=gate_asset, chain_balance=5, ledger_balance=5 if matched else 4,
            difference=0 if matched else 1, height=9, block_hash="0x" + "00" * 32,
            checked_at=NOW + timedelta(minutes=1), matched=matched,
        )
    )  # fmt: skip


def test_the_gate_answers_for_a_token_code_with_the_reconcilers_result_for_that_code(
    sessions: sessionmaker[Session],
) -> None:
    """The reconciler records the token under its code; a proposal naming the code sees it, and a
    result recorded under its symbol (another token may share it) does not count."""
    gate = TokenReconcileGate()
    with sessions.begin() as session:
        assert gate.latest(session, KGST_CODE) is None
        _result(session, "KGST", matched=True)
        assert gate.latest(session, KGST_CODE) is None
        _result(session, KGST_CODE, matched=True)
        facts = gate.latest(session, KGST_CODE)
        assert facts is not None
        assert facts.outcome is ReconciliationOutcome.MATCHED
        _result(session, KGST_CODE, matched=False)
        facts = gate.latest(session, KGST_CODE)
        assert facts is not None
        assert facts.outcome is ReconciliationOutcome.MISMATCHED
        assert gate.latest(session, "ERC20:" + to_checksum_address(FOREIGN)) is None


def test_one_token_address_is_tracked_on_one_chain_only(sessions: sessionmaker[Session]) -> None:
    """The asset code ERC20:<contract> carries no chain id, so the same contract address on a
    second chain (a deterministic deployment) is refused by ``track_token``; a row a database
    writer adds past it makes the wiring refuse to spend either token rather than merge them."""
    with (
        sessions.begin() as session,
        pytest.raises(ReconcileConfigError, match="already tracked on chain"),
    ):
        track_token(session, OTHER_CHAIN_ID, KGST.lower(), "KGST", 18)
    with sessions.begin() as session:
        session.add(
            TrackedTokenRow(chain_id=OTHER_CHAIN_ID, address=KGST, symbol="KGST", decimals=18)
        )
        session.add(
            SafeVaultRow(
                name="bnb", chain_id=OTHER_CHAIN_ID, address="0x" + "cd" * 20, threshold=2, nonce=0
            )
        )
    with sessions() as session:
        chains = (EvmChainSettings("bnb", None, OTHER_CHAIN_ID, native_asset="BNB"),)
        with pytest.raises(NotConfiguredError, match="one code must name one token"):
            spendable_assets(session, Settings(evm_chains=chains))
