"""The attestation registry on the services chain, and the Bitcoin OP_RETURN anchor, on live nodes."""

from __future__ import annotations

import hashlib

import pytest
from eth_account import Account
from web3 import Web3

from custody.devnet import BitcoinNode, EvmNode
from reporting.anchor import (
    BitcoinWalletRPC,
    anchor_script,
    broadcast_bitcoin_anchor,
    deploy_registry,
    locate_bitcoin_anchor,
    publish_digest,
    registry_contract,
)
from reporting.bundle import AnchorError

PUBLISHER = Account.from_key(hashlib.sha256(b"registry test publisher").digest())
OUTSIDER = Account.from_key(hashlib.sha256(b"registry test outsider").digest())
SAFE_LATER = Account.from_key(hashlib.sha256(b"registry test next publisher").digest())


@pytest.fixture(scope="module")
def w3(services_node: EvmNode) -> Web3:
    w3 = Web3(Web3.HTTPProvider(services_node.rpc_url))
    for account in (PUBLISHER, OUTSIDER, SAFE_LATER):
        w3.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])  # type: ignore[arg-type]
    return w3


@pytest.fixture
def registry(w3: Web3) -> str:
    return deploy_registry(w3, OUTSIDER, PUBLISHER.address)


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def test_publisher_publishes_a_numbered_chained_sequence(w3: Web3, registry: str) -> None:
    """Each publication gets the next number, names the previous digest, and records the publisher."""
    first = publish_digest(w3, registry, PUBLISHER, _digest("one"))
    second = publish_digest(w3, registry, PUBLISHER, _digest("two"))
    assert (first.sequence, second.sequence) == (1, 2)
    contract = registry_contract(w3, registry)
    receipt = w3.eth.get_transaction_receipt(second.tx_hash)
    (event,) = contract.events.Published().process_receipt(receipt)
    assert bytes(event["args"]["previous"]) == _digest("one")
    assert event["args"]["publisher"] == PUBLISHER.address
    assert event["logIndex"] == second.log_index
    assert event["blockNumber"] == second.block_number
    assert bytes(contract.functions.digest_at(2).call()) == _digest("two")
    assert contract.functions.sequence_of(_digest("one")).call() == 1


def test_non_publisher_and_duplicate_are_refused(w3: Web3, registry: str) -> None:
    """An outsider cannot publish, and a digest cannot be published twice; nothing is recorded."""
    with pytest.raises(AnchorError, match="only the publisher may publish"):
        publish_digest(w3, registry, OUTSIDER, _digest("x"))
    publish_digest(w3, registry, PUBLISHER, _digest("x"))
    with pytest.raises(AnchorError, match="already published"):
        publish_digest(w3, registry, PUBLISHER, _digest("x"))
    assert registry_contract(w3, registry).functions.count().call() == 1


def test_publisher_can_hand_over_to_a_safe(w3: Web3, registry: str) -> None:
    """The publisher may name a successor (e.g. the Safe); the old key then can no longer publish."""
    contract = registry_contract(w3, registry)
    call = contract.functions.set_publisher(SAFE_LATER.address).build_transaction(
        {"from": PUBLISHER.address, "nonce": w3.eth.get_transaction_count(PUBLISHER.address),
         "gasPrice": w3.eth.gas_price}
    )  # fmt: skip
    signed = PUBLISHER.sign_transaction(call)
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    with pytest.raises(AnchorError, match="only the publisher"):
        publish_digest(w3, registry, PUBLISHER, _digest("old key"))
    assert publish_digest(w3, registry, SAFE_LATER, _digest("new key")).sequence == 1


def test_op_return_anchor_relays_and_is_located(bitcoin_node: BitcoinNode) -> None:
    """The 37-byte OP_RETURN payload relays under the node's default policy and is found once mined."""
    wallet = BitcoinWalletRPC(
        bitcoin_node.rpc_url, bitcoin_node.rpc_user, bitcoin_node.rpc_password, "miner"
    )
    bitcoin_node.miner_address()
    digest = _digest("anchor me")
    txid = broadcast_bitcoin_anchor(wallet, digest)
    with pytest.raises(AnchorError, match="not confirmed"):
        locate_bitcoin_anchor(wallet, txid, digest)
    (block,) = bitcoin_node.mine(1)
    found = locate_bitcoin_anchor(wallet, txid, digest)
    assert found.block_hash == block
    raw = bitcoin_node.rpc.call("getrawtransaction", txid, True, block)
    assert raw["vout"][found.vout]["scriptPubKey"]["hex"] == anchor_script(digest).hex()
    with pytest.raises(AnchorError, match="no OP_RETURN output carrying this digest"):
        locate_bitcoin_anchor(wallet, txid, _digest("another"))
