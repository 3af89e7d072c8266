"""The fault-injection matrix: a spend on each chain (Bitcoin regtest, a Safe on anvil) and each
database (SQLite, PostgreSQL) whose process dies at every persisted step, followed by each
recovery order, ends in exactly one chain transaction paying the destination, exactly one posting
of the proposal's amount, a balanced trial balance, an intact ``treasury audit verify`` and no
open alarm.

Each cell is one test id ``chain-db-crashpoint-order``. The process dies right after the commit
of the step (or inside it, for ``before_confirmation``; between the node's acceptance and the
record, for ``after_send``; between custody's signature and the workflow's record, for
``signer_signed_unrecorded``), is thrown away, and a fresh process recovers: ``retry_first`` runs
the interrupted command again, finishes the spend and refreshes, then reconciles;
``reconcile_first`` reconciles first (the scheduler's job: ``treasury.scheduler.reconcile_job``
runs the reconciler through ``reconcile_with_retries``, so "scheduler first" is this same cell),
then retries and finishes. A later restart reconciles and refreshes once more and must change
nothing. ``after_send_db_cut`` cuts the database connections (pool disposed, server connections
terminated, new ones refused) between the send and its record instead of killing the process.

The cells share one reserve per database (``fault_matrix_support`` says why) and each measures
what its own proposal did from a baseline taken when it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fault_matrix_support import (
    AMOUNTS,
    CrashPoint,
    MatrixReserves,
    Recovery,
    audit_verify_cli,
    baseline,
    holdings_posted,
    new_payee_transactions,
    payee_received,
    recover,
    reserve_is_sound,
    run_until_crash,
    spend_entry_keys,
    vault_balance,
    vault_entry_keys,
)

from custody.devnet import BitcoinNode, EvmNode
from treasury.proposals import ProposalState

log = logging.getLogger("tests.fault_matrix")

DATABASES = ("sqlite", "postgresql")
CHAINS = ("BTC", "ETH")

CELLS = [
    pytest.param(db, chain, point, order, id=f"{chain}-{db}-{point.value}-{order.value}")
    for db in DATABASES
    for chain in CHAINS
    for point in CrashPoint
    for order in Recovery
]


@pytest.fixture(scope="module")
def reserves(
    bitcoin_node: BitcoinNode, evm_node: EvmNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MatrixReserves]:
    """One governed, funded reserve per database kind for the whole module (built on first use)."""
    built = MatrixReserves(bitcoin_node, evm_node, tmp_path_factory.mktemp("faults"))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def server_url(db: str, request: pytest.FixtureRequest) -> str | None:
    """The PostgreSQL server of a ``postgresql`` cell (``None`` for SQLite)."""
    return str(request.getfixturevalue("postgres_server_url")) if db == "postgresql" else None


@pytest.mark.parametrize(("db", "chain", "point", "order"), CELLS)
def test_a_crash_at_any_persisted_step_pays_once_and_posts_once(
    reserves: MatrixReserves,
    server_url: str | None,
    db: str,
    chain: str,
    point: CrashPoint,
    order: Recovery,
) -> None:
    """Killed at ``point`` and recovered in ``order``, the spend ends confirmed with one chain
    transaction paying the destination, one hold posted once, the vault's books equal to the
    chain, every asset balanced, the audit log intact and no alarm open."""
    matrix_reserve = reserves.get(db, server_url)
    reserve = matrix_reserve.reserve
    assert reserve_is_sound(reserve, chain) == [], "the reserve was unsound before this cell"
    before = baseline(reserve, chain)

    crashed = run_until_crash(matrix_reserve, chain, point)
    view = recover(matrix_reserve, chain, point, order, crashed.proposal_id)

    assert view.state is ProposalState.CONFIRMED, view.closed_reason
    assert view.txid is not None
    if crashed.sent:
        assert [t.lower() for t in crashed.sent] == [view.txid.lower()]
    paid = new_payee_transactions(reserve, chain, before)
    assert [t.lower() for t in paid] == [view.txid.lower()], "exactly one transaction pays"
    amount = AMOUNTS[chain]
    assert payee_received(reserve, chain) - before.received == amount
    outflow = amount + (view.fee or 0)
    assert before.vault - vault_balance(reserve, chain) == outflow
    assert vault_entry_keys(reserve, chain, before) == spend_entry_keys(view.id)
    assert before.holdings_posted - holdings_posted(reserve, chain) == outflow
    assert reserve_is_sound(reserve, chain) == []
    exit_code, output = audit_verify_cli(matrix_reserve.url)
    assert exit_code == 0, output
    assert "intact" in output
