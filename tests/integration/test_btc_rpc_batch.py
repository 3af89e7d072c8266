"""JSON-RPC batches against a real regtest bitcoind: one HTTP request, each call's own answer."""

from __future__ import annotations

from decimal import Decimal

import pytest

from custody.bitcoin import observe
from custody.bitcoin.rpc import BATCH_MAX_CALLS, BitcoinRPC, RPCCall, btc_to_sats
from custody.devnet import BitcoinNode
from custody.exceptions import BitcoinRPCError

pytestmark = pytest.mark.integration


def test_a_batch_answers_each_call_in_order_as_single_calls_would(
    bitcoin_node: BitcoinNode,
) -> None:
    """Block hashes read in one batch equal those read one call at a time, in the calls' order."""
    tip = observe.tip_height(bitcoin_node.rpc)
    heights = [tip, 0, tip // 2, 1]
    replies = bitcoin_node.rpc.batch([RPCCall("getblockhash", (h,)) for h in heights])
    assert [r.value() for r in replies] == [
        bitcoin_node.rpc.call("getblockhash", h) for h in heights
    ]


def test_a_failed_call_is_its_own_reply_and_the_others_still_answer(
    bitcoin_node: BitcoinNode,
) -> None:
    """An unknown transaction gets bitcoind's not-found error; the calls around it their results."""
    miner = bitcoin_node.rpc.wallet("miner")
    txid = miner.call("sendtoaddress", miner.call("getnewaddress", "", "bech32"), Decimal("0.001"))
    replies = miner.batch(
        [
            RPCCall("gettransaction", (txid, True)),
            RPCCall("gettransaction", ("00" * 32, True)),
            RPCCall("getwalletinfo"),
        ]
    )
    assert replies[0].value()["txid"] == txid
    assert replies[1].error is not None
    assert replies[1].error.code == observe.RPC_NOT_FOUND_CODE
    with pytest.raises(BitcoinRPCError, match="gettransaction"):
        replies[1].value()
    assert replies[2].value()["walletname"] == "miner"


def test_amounts_in_a_batch_are_exact_decimals(bitcoin_node: BitcoinNode) -> None:
    """Amounts in batch replies parse as Decimal, so satoshis convert exactly."""
    miner = bitcoin_node.rpc.wallet("miner")
    txid = miner.call(
        "sendtoaddress", miner.call("getnewaddress", "", "bech32"), Decimal("0.00012345")
    )
    (reply,) = miner.batch([RPCCall("gettransaction", (txid, True))])
    details = reply.value()["details"]
    assert {btc_to_sats(d["amount"]) for d in details} == {-12_345, 12_345}


def test_a_batch_longer_than_one_request_keeps_every_reply(bitcoin_node: BitcoinNode) -> None:
    """More calls than one HTTP request carries are split and answered in order, none lost."""
    count = BATCH_MAX_CALLS + 7
    replies = bitcoin_node.rpc.batch([RPCCall("getblockhash", (n % 50,)) for n in range(count)])
    assert len(replies) == count
    assert replies[BATCH_MAX_CALLS + 1].value() == bitcoin_node.rpc.call("getblockhash", 1)


def test_an_empty_batch_sends_nothing() -> None:
    """No calls, no request: even a client of an unreachable node answers an empty batch."""
    rpc = BitcoinRPC("http://127.0.0.1:9", "user", "password")
    assert rpc.batch([]) == ()


def test_an_unreachable_node_fails_the_whole_batch_as_unanswered() -> None:
    """A node that cannot be reached raises for the batch, with no code (not a node's answer)."""
    rpc = BitcoinRPC("http://127.0.0.1:9", "user", "password")
    with pytest.raises(BitcoinRPCError, match="unreachable") as caught:
        rpc.batch([RPCCall("getblockcount")])
    assert not observe.node_answered(caught.value)


def test_wrong_credentials_fail_the_batch_with_the_http_status(bitcoin_node: BitcoinNode) -> None:
    """bitcoind's 401 page for a bad password is an HTTP error for the batch, not a reply."""
    rpc = BitcoinRPC(bitcoin_node.rpc_url, bitcoin_node.rpc_user, "wrong")
    with pytest.raises(BitcoinRPCError) as caught:
        rpc.batch([RPCCall("getblockcount")])
    assert caught.value.code == 401
    assert not observe.node_answered(caught.value)
