"""How an attestation run waits for its anchor (bitcoind itself comes from ``treasury.settings``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from custody.nodes import BitcoinEndpoint
from reporting.bundle import AnchorError

CONFIRMATION_TIMEOUT_S = 3600.0
"""How long to wait for the OP_RETURN anchor to be mined when not mining it ourselves."""
CONFIRMATION_POLL_S = 5.0


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
