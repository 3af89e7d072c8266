"""The attestation registry on the services chain, and the Bitcoin OP_RETURN anchor, on live nodes.

The registry's ``announce`` too: only the publisher may call it, once per digest, and it orders a
statement among the attestations without touching their numbering."""

from __future__ import annotations

import hashlib

import pytest
from eth_account import Account
from eth_typing import HexStr
from web3 import Web3

from custody.devnet import BitcoinNode, EvmNode
from reporting.anchor import (
    BitcoinWalletRPC,
    anchor_script,
    announce_digest,
    broadcast_bitcoin_anchor,
    deploy_registry,
    locate_bitcoin_anchor,
    publish_digest,
    registry_contract,
    set_publisher,
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
    with pytest.raises(AnchorError, match="only the publisher"):
        set_publisher(w3, registry, OUTSIDER, OUTSIDER.address)
    set_publisher(w3, registry, PUBLISHER, SAFE_LATER.address)
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


def test_announcement_records_the_next_attestation_and_logs_it(w3: Web3, registry: str) -> None:
    """An announcement records the sequence of the next attestation (1 before any, then count+1)
    and logs Announced(digest, before_sequence, publisher); the publication chain is untouched."""
    contract = registry_contract(w3, registry)
    first = announce_digest(w3, registry, PUBLISHER, _digest("rotation"))
    assert first.before_sequence == 1
    publish_digest(w3, registry, PUBLISHER, _digest("attestation 1"))
    second = announce_digest(w3, registry, PUBLISHER, _digest("vaults"))
    assert second.before_sequence == 2
    assert contract.functions.announced_before(_digest("rotation")).call() == 1
    assert contract.functions.announced_before(_digest("vaults")).call() == 2
    assert contract.functions.announced_before(_digest("never")).call() == 0
    assert contract.functions.count().call() == 1
    assert bytes(contract.functions.latest().call()) == _digest("attestation 1")
    receipt = w3.eth.get_transaction_receipt(HexStr(second.tx_hash))
    (event,) = contract.events.Announced().process_receipt(receipt)
    assert bytes(event["args"]["digest"]) == _digest("vaults")
    assert event["args"]["publisher"] == PUBLISHER.address
    assert event["logIndex"] == second.log_index
    assert publish_digest(w3, registry, PUBLISHER, _digest("attestation 2")).sequence == 2


def test_only_the_publisher_may_announce(w3: Web3, registry: str) -> None:
    """An outsider's announcement is refused and records nothing."""
    with pytest.raises(AnchorError, match="only the publisher may announce"):
        announce_digest(w3, registry, OUTSIDER, _digest("forged rotation"))
    contract = registry_contract(w3, registry)
    assert contract.functions.announced_before(_digest("forged rotation")).call() == 0


def test_a_statement_is_announced_once_and_never_zero(w3: Web3, registry: str) -> None:
    """Re-announcing a digest (to move it after a later attestation) and the zero digest are refused."""
    announce_digest(w3, registry, PUBLISHER, _digest("once"))
    publish_digest(w3, registry, PUBLISHER, _digest("attestation 1"))
    with pytest.raises(AnchorError, match="already announced"):
        announce_digest(w3, registry, PUBLISHER, _digest("once"))
    assert registry_contract(w3, registry).functions.announced_before(_digest("once")).call() == 1
    with pytest.raises(AnchorError, match="digest is zero"):
        announce_digest(w3, registry, PUBLISHER, bytes(32))


def test_after_a_hand_over_only_the_new_publisher_announces(w3: Web3, registry: str) -> None:
    """``set_publisher`` moves announcing with publishing: the old key can no longer announce."""
    set_publisher(w3, registry, PUBLISHER, SAFE_LATER.address)
    with pytest.raises(AnchorError, match="only the publisher may announce"):
        announce_digest(w3, registry, PUBLISHER, _digest("old key"))
    assert announce_digest(w3, registry, SAFE_LATER, _digest("new key")).before_sequence == 1
