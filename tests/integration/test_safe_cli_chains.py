"""`treasury safe` on a further EVM chain: `--chain bnb` deploys Safe v1.4.1 and creates a vault on
the BNB devnet; commands on that vault find its chain's node by the vault's recorded chain id, and
refuse a node configured for it that serves another chain."""

from __future__ import annotations

import logging
from pathlib import Path

from eth_utils.address import to_checksum_address
from typer.testing import CliRunner

from custody.devnet import BNB_DEVNET_CHAIN_ID, EvmNode
from custody.devnet.binaries import NODES_DIR_ENV
from treasury import migrate
from treasury.cli import app
from treasury.db import DATABASE_URL_ENV
from treasury.settings import EVM_CHAINS_ENV, RESERVE_RPC_URL_ENV, evm_chain_env

log = logging.getLogger("tests.safe_cli_chains")

OWNERS = [
    f"{name}={index:08x}:{to_checksum_address(f'0x{index + 0xA000:040x}')}"
    for index, name in enumerate(("Ministry", "Bank", "Chamber"), start=1)
]


def _treasury(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    log.info("$ treasury %s\n%s", " ".join(args), result.output)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def test_a_vault_on_the_bnb_chain_is_created_and_read_there(
    db_url: str, evm_node: EvmNode, bnb_node: EvmNode, tmp_path: Path
) -> None:
    """Deploy and create act on `--chain bnb`; `show` reads the vault on chain 31339 through the
    BNB node; an unknown chain name is refused by name."""
    migrate.upgrade(db_url)
    env = {
        DATABASE_URL_ENV: db_url,
        NODES_DIR_ENV: str(tmp_path),  # no running devnet: only what is set here
        RESERVE_RPC_URL_ENV: evm_node.rpc_url,
        EVM_CHAINS_ENV: "bnb",
        evm_chain_env("bnb", "CHAIN_ID"): str(BNB_DEVNET_CHAIN_ID),
        evm_chain_env("bnb", "RPC_URL"): bnb_node.rpc_url,
    }
    deployed = _treasury(env, "safe", "deploy", "--chain", "bnb")
    assert deployed.startswith(f"chain {BNB_DEVNET_CHAIN_ID}: Safe v1.4.1 ready")
    owners = [arg for owner in OWNERS for arg in ("--owner", owner)]
    created = _treasury(
        env, "safe", "create", "bnb-vault", "--threshold", "2", *owners, "--chain", "bnb"
    )
    assert created.startswith("vault bnb-vault: Safe 0x")
    shown = _treasury(env, "safe", "show", "bnb-vault")
    assert f"on chain {BNB_DEVNET_CHAIN_ID}" in shown
    assert "2-of-3" in shown
    refused = _treasury(
        env, "safe", "create", "x", "--threshold", "2", *owners, "--chain", "nope", code=1
    )
    assert "No EVM chain is configured as 'nope' (configured: reserve, bnb)" in refused

    swapped = {**env, evm_chain_env("bnb", "RPC_URL"): evm_node.rpc_url}
    wrong = _treasury(swapped, "safe", "show", "bnb-vault", code=1)
    assert f"serves chain 31337, not the configured chain {BNB_DEVNET_CHAIN_ID}" in wrong
