"""Safe v1.4.1 deployment, the Safe tables' migration, and the `treasury safe` commands."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from eth_utils.address import to_checksum_address
from sqlalchemy import MetaData, inspect
from typer.testing import CliRunner

from custody.devnet import EvmNode, NodeBinaries
from custody.ethereum import EthChain, deploy_safe_contracts, find_deployment, require_deployment
from custody.ethereum.deploy import (
    SAFE_CONTRACTS,
    SINGLETON_FACTORY_RUNTIME_CODE,
    _artifact,
)
from custody.ethereum.records import SAFE_TABLES
from custody.exceptions import SafeDeploymentError
from custody.keys import cosigner_keys
from custody.schema import CustodyBase
from custody.secret import SecretBytes
from custody.shamir import ShareScheme, split_seed
from treasury import migrate
from treasury.cli import app
from treasury.db import make_engine

ARACHNID_DEPLOYER = "0x4e59b44847b379578588920cA78FbF26c0B4956C"
"""anvil pre-installs the deterministic deployment proxy here; the Safe factory runs the same code."""


@pytest.fixture
def fresh_chain(binaries: NodeBinaries) -> Iterator[EthChain]:
    """A private anvil, so deployment starts from an empty chain (about 0.1 s)."""
    with EvmNode(binaries.anvil) as node:
        yield EthChain(node.rpc)


def test_deploy_places_audited_code_at_canonical_addresses_once(fresh_chain: EthChain) -> None:
    """The first deploy creates the three contracts at their canonical addresses; the second none."""
    payer = fresh_chain.accounts()[0]
    with pytest.raises(SafeDeploymentError, match="treasury safe deploy"):
        require_deployment(fresh_chain)
    first = deploy_safe_contracts(fresh_chain, payer)
    assert first.deployed == tuple(c.name for c in SAFE_CONTRACTS)
    for contract in SAFE_CONTRACTS:
        assert fresh_chain.code(contract.canonical_address) == _artifact(contract)[1]
    second = deploy_safe_contracts(fresh_chain, payer)
    assert second.deployed == ()
    assert second.deployment == first.deployment == find_deployment(fresh_chain)


def test_singleton_factory_code_is_the_deterministic_deployment_proxy(
    fresh_chain: EthChain,
) -> None:
    """The factory code we place is byte-identical to anvil's deterministic deployment proxy."""
    assert fresh_chain.code(ARACHNID_DEPLOYER) == SINGLETON_FACTORY_RUNTIME_CODE


def test_foreign_code_at_a_canonical_address_is_refused(fresh_chain: EthChain) -> None:
    """If other code sits where the fallback handler belongs, deployment and lookup refuse it."""
    handler = SAFE_CONTRACTS[-1].canonical_address
    fresh_chain.set_code(handler, bytes.fromhex("6000600055"))
    with pytest.raises(SafeDeploymentError, match=handler):
        deploy_safe_contracts(fresh_chain, fresh_chain.accounts()[0])
    with pytest.raises(SafeDeploymentError, match="not the audited"):
        find_deployment(fresh_chain)


def test_migration_creates_exactly_the_safe_tables(db_url: str) -> None:
    """Revision 0003 adds the four Safe tables exactly as the models declare them."""
    migrate.upgrade(db_url, "0002")
    engine = make_engine(db_url)
    try:
        before = set(inspect(engine).get_table_names())
        migrate.upgrade(db_url, "0003")
        tables = set(inspect(engine).get_table_names()) - before
        assert tables == set(SAFE_TABLES)
        ours = MetaData(naming_convention=CustodyBase.metadata.naming_convention)
        for name in SAFE_TABLES:
            CustodyBase.metadata.tables[name].to_metadata(ours)
        with engine.connect() as connection:
            only_safe = {
                "compare_type": True,
                "include_name": lambda name, kind, _parent: kind != "table" or name in SAFE_TABLES,
            }
            context = MigrationContext.configure(connection, opts=only_safe)
            assert compare_metadata(context, ours) == []
    finally:
        engine.dispose()


BREAK_GLASS = ("--break-glass", "--reason", "CLI drill: a Safe with no proposal behind it")
"""No proposal covers a custody-level transfer, so each owner signs it as an audited emergency."""


def test_cli_runs_a_transfer_end_to_end(
    evm_node: EvmNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_seed: int
) -> None:
    """`treasury safe` deploys, creates a 2-of-2 vault, shows the action and hash, signs, executes."""
    db_url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    migrate.upgrade(db_url)
    monkeypatch.setenv("TREASURY_DATABASE_URL", db_url)
    monkeypatch.setenv("TREASURY_RESERVE_RPC_URL", evm_node.rpc_url)
    rng = random.Random(f"{test_seed} cli")  # noqa: S311 (reproducible test data)
    runner = CliRunner()
    owners, share_files = [], {}
    for name in ("Central Bank", "Audit Office"):
        seed = rng.randbytes(32)
        keys = cosigner_keys(SecretBytes(seed))
        owners += ["--owner", f"{name}={keys.fingerprint}:{keys.eth_address}"]
        shares = split_seed(SecretBytes(seed), ShareScheme(2, 3), "pw", random_bytes=rng.randbytes)
        share_files[name] = []
        for i, share in enumerate(shares[:2]):
            path = tmp_path / f"{name}-{i}.txt"
            path.write_text(share.reveal())
            share_files[name] += ["--shares-file", str(path)]

    assert runner.invoke(app, ["safe", "deploy"]).exit_code == 0
    created = runner.invoke(app, ["safe", "create", "cli-vault", "--threshold", "2", *owners])
    assert created.exit_code == 0, created.output
    address = created.output.split("Safe ")[1].split()[0]
    chain = EthChain(evm_node.rpc)
    chain.transact(chain.accounts()[0], address, b"", value=10**18, action="fund the vault")
    recipient = to_checksum_address("0x" + "c1" * 20)
    before = chain.balance(recipient)
    proposed = runner.invoke(
        app, ["safe", "transfer", "cli-vault", "--to", recipient, "--amount", "250000000000000000"]
    )
    assert proposed.exit_code == 0, proposed.output
    safe_tx_hash = proposed.output.split("SafeTx ")[1].split()[0]

    refused = runner.invoke(
        app,
        ["safe", "sign", safe_tx_hash, *BREAK_GLASS, "--institution", "Central Bank",
         *share_files["Central Bank"]],
        input="n\n",
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "error: Not signed" in refused.output
    for name in ("Central Bank", "Audit Office"):
        signed = runner.invoke(
            app,
            ["safe", "sign", safe_tx_hash, *BREAK_GLASS, "--institution", name, *share_files[name]],
            input="y\npw\n",
        )
        assert signed.exit_code == 0, signed.output
        assert f"action: send 0.25 ETH (250000000000000000 wei) to {recipient}" in signed.output
        assert f"SafeTx hash: {safe_tx_hash}" in signed.output
    executed = runner.invoke(app, ["safe", "execute", safe_tx_hash])
    assert executed.exit_code == 0, executed.output
    assert chain.balance(recipient) == before + 250000000000000000
    shown = runner.invoke(app, ["safe", "show", "cli-vault"])
    assert "executed" in shown.output
    assert "nonce 1 (matches chain)" in shown.output
    replay = runner.invoke(app, ["safe", "execute", safe_tx_hash])
    assert replay.exit_code == 1
    assert replay.output.startswith("error: SafeTx")
    assert "Traceback" not in replay.output
