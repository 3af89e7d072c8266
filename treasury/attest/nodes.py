"""Where an attestation run finds bitcoind (with credentials) and how it waits for its anchor."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from custody.devnet.stack import read_state
from custody.exceptions import DevnetError
from custody.nodes import BITCOIN_RPC_URL_ENV
from reporting.bundle import AnchorError
from treasury.attest.service import BitcoinEndpoint

CONFIRMATION_TIMEOUT_S = 3600.0
"""How long to wait for the OP_RETURN anchor to be mined when not mining it ourselves."""
CONFIRMATION_POLL_S = 5.0


def bitcoin_endpoint() -> BitcoinEndpoint:
    """The configured bitcoind with its credentials (env URL first, else the devnet state)."""
    configured = os.environ.get(BITCOIN_RPC_URL_ENV)
    if configured:
        return BitcoinEndpoint.from_url(configured)
    state = read_state()
    if state is None:
        raise DevnetError(
            f"No node configured: set {BITCOIN_RPC_URL_ENV}, or start the local devnets with "
            "`treasury devnet up` in another shell."
        )
    return BitcoinEndpoint(
        state.bitcoin_rpc_url, state.bitcoin_rpc_user, state.bitcoin_rpc_password
    )


def confirmation_waiter(
    endpoint: BitcoinEndpoint, wallet: str, *, mine: bool
) -> Callable[[str], None]:
    """Mine one block to ``wallet`` (devnets), or poll until the anchor transaction confirms."""
    rpc = endpoint.rpc()

    def wait(txid: str) -> None:
        if mine:
            address = rpc.wallet(wallet).call("getnewaddress")
            rpc.call("generatetoaddress", 1, address)
            return
        deadline = time.monotonic() + CONFIRMATION_TIMEOUT_S
        while int(rpc.wallet(wallet).call("gettransaction", txid).get("confirmations", 0)) < 1:
            if time.monotonic() > deadline:
                raise AnchorError(f"The anchor transaction {txid} was not mined within an hour.")
            time.sleep(CONFIRMATION_POLL_S)

    return wait
