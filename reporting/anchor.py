"""Anchoring an attestation digest on Bitcoin (an OP_RETURN output) and on the services chain.

Bitcoin: one OP_RETURN output carrying ``magic || version || digest`` (37 bytes), funded and
signed by the anchoring wallet of a bitcoind. The payload fits the default relay policy of the
Bitcoin Knots node used here (measured: an 80-byte payload relays, 83 bytes do not), so no
``-datacarriersize`` override is needed.

Services chain: ``publish(digest)`` on the attestation registry contract
(``reporting/contracts/AttestationRegistry.vy``), sent by the treasury's publisher key. The
registry numbers publications and chains them; :func:`anchor` refuses to publish a bundle whose
sequence or previous digest does not follow the registry's latest entry, before anything is sent.
The same publisher announces statements (key rotations, vault-set changes; ``announcement.py``)
with ``announce(digest)`` (:func:`announce_digest`), which orders them among the attestations.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from reporting.bundle import DIGEST_BYTES, AnchorError, Bundle

OP_RETURN_MAGIC = b"NRAT"
"""Four bytes that mark a national-reserve attestation anchor among other OP_RETURN outputs."""

OP_RETURN_VERSION = 1
"""Version byte of the OP_RETURN payload layout."""

OP_RETURN = 0x6A
"""The script opcode that makes an output provably unspendable and carries data."""

ARTIFACT_PATH = Path(__file__).resolve().parent / "contracts" / "AttestationRegistry.json"
"""The committed compiled registry (ABI, init and runtime code): no compiler at run time."""

RPC_TIMEOUT_S = 30.0
"""Upper bound for one bitcoind RPC call made while anchoring."""

RECEIPT_TIMEOUT_S = 60.0
"""How long to wait for a services-chain transaction to be mined."""

GAS_MARGIN_PERCENT = 20
"""Head-room added to the node's gas estimate of a deploy or publish."""


def anchor_payload(digest: bytes) -> bytes:
    """Return the OP_RETURN payload: ``magic (4) || version (1) || digest (32)``."""
    if len(digest) != DIGEST_BYTES:
        raise AnchorError(f"The digest to anchor must be {DIGEST_BYTES} bytes.")
    return OP_RETURN_MAGIC + bytes((OP_RETURN_VERSION,)) + digest


def anchor_script(digest: bytes) -> bytes:
    """Return the whole output script: ``OP_RETURN || push(37) || payload``."""
    payload = anchor_payload(digest)
    return bytes((OP_RETURN, len(payload))) + payload


@dataclass(frozen=True)
class BitcoinAnchor:
    """Where the OP_RETURN anchor landed: transaction, output, block and height."""

    txid: str
    vout: int
    block_hash: str
    height: int


@dataclass(frozen=True)
class ServicesAnchor:
    """Where the registry publication landed, and the sequence the registry gave it."""

    chain_id: int
    registry: str
    tx_hash: str
    block_number: int
    block_hash: str
    log_index: int
    sequence: int


@dataclass(frozen=True)
class ServicesAnnouncement:
    """Where a statement's announcement landed, and the attestation it precedes."""

    chain_id: int
    registry: str
    tx_hash: str
    block_number: int
    log_index: int
    before_sequence: int


class BitcoinWalletRPC:
    """A minimal JSON-RPC client for one bitcoind wallet (amounts parsed as Decimal)."""

    def __init__(self, url: str, user: str, password: str, wallet: str) -> None:
        """Bind to ``wallet`` on the node at ``url``; the password is kept out of repr."""
        self.url = url
        self.wallet = wallet
        self._client = httpx.Client(auth=(user, password), timeout=RPC_TIMEOUT_S)

    def __repr__(self) -> str:
        """Name the node and wallet, never the credentials."""
        return f"BitcoinWalletRPC(url={self.url!r}, wallet={self.wallet!r})"

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` on the wallet; raise :class:`AnchorError` with bitcoind's message."""
        body = {"jsonrpc": "1.0", "id": method, "method": method, "params": list(params)}
        try:
            response = self._client.post(f"{self.url}/wallet/{self.wallet}", json=body)
            payload = json.loads(response.text, parse_float=Decimal)
        except (httpx.HTTPError, json.JSONDecodeError) as error:
            raise AnchorError(f"bitcoind at {self.url} did not answer {method}: {error}.") from None
        if payload.get("error"):
            raise AnchorError(f"bitcoind refused {method}: {payload['error'].get('message')}.")
        return payload["result"]

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def broadcast_bitcoin_anchor(rpc: BitcoinWalletRPC, digest: bytes) -> str:
    """Fund, sign and broadcast a transaction with the digest's OP_RETURN output; return its txid."""
    raw = rpc.call("createrawtransaction", [], [{"data": anchor_payload(digest).hex()}])
    funded = rpc.call("fundrawtransaction", raw)
    signed = rpc.call("signrawtransactionwithwallet", funded["hex"])
    if not signed.get("complete"):
        raise AnchorError("The anchoring wallet could not sign the OP_RETURN transaction.")
    txid: str = rpc.call("sendrawtransaction", signed["hex"])
    return txid


def locate_bitcoin_anchor(rpc: BitcoinWalletRPC, txid: str, digest: bytes) -> BitcoinAnchor:
    """Find the confirmed anchor transaction's block and output (refusing an unconfirmed one)."""
    found = rpc.call("gettransaction", txid, True, True)
    if int(found.get("confirmations", 0)) < 1:
        raise AnchorError(f"The anchor transaction {txid} is not confirmed yet.")
    script = anchor_script(digest).hex()
    for output in found["decoded"]["vout"]:
        if output["scriptPubKey"]["hex"] == script:
            return BitcoinAnchor(
                txid=txid,
                vout=int(output["n"]),
                block_hash=found["blockhash"],
                height=int(found["blockheight"]),
            )
    raise AnchorError(f"The transaction {txid} has no OP_RETURN output carrying this digest.")


@cache
def registry_artifact() -> Mapping[str, Any]:
    """The committed compiled registry."""
    artifact: Mapping[str, Any] = json.loads(ARTIFACT_PATH.read_text(encoding="utf-8"))
    return artifact


def registry_contract(w3: Web3, address: str) -> Contract:
    """A web3 handle on the registry at ``address``."""
    return w3.eth.contract(address=to_checksum_address(address), abi=registry_artifact()["abi"])


def _send(w3: Web3, account: LocalAccount, transaction: dict[str, Any]) -> Any:
    """Sign ``transaction`` with ``account``, send it, and wait for a successful receipt."""
    transaction = {**transaction, "from": account.address}
    estimate = w3.eth.estimate_gas(transaction)  # type: ignore[arg-type]
    transaction = {
        **transaction,
        "nonce": w3.eth.get_transaction_count(account.address),
        "chainId": w3.eth.chain_id,
        "gas": estimate * (100 + GAS_MARGIN_PERCENT) // 100,
        "gasPrice": w3.eth.gas_price,
    }
    signed = account.sign_transaction(transaction)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
    if receipt["status"] != 1:
        raise AnchorError(f"The services-chain transaction {tx_hash.hex()} reverted.")
    return receipt


def deploy_registry(w3: Web3, deployer: LocalAccount, publisher: str) -> str:
    """Deploy the registry with ``publisher`` as the only address allowed to publish."""
    factory = w3.eth.contract(
        abi=registry_artifact()["abi"], bytecode=registry_artifact()["bytecode"]
    )
    data = factory.constructor(to_checksum_address(publisher)).data_in_transaction
    receipt = _send(w3, deployer, {"data": data})
    return to_checksum_address(receipt["contractAddress"])


def _registry_call(
    w3: Web3,
    registry: str,
    publisher: LocalAccount,
    function: str,
    event: str,
    digest: bytes,
    what: str,
) -> Any:
    """Call ``function(digest)`` as the publisher (dry run first, so a refusal sends nothing)
    and return the one ``event`` it logged for ``digest``."""
    contract = registry_contract(w3, registry)
    try:
        contract.functions[function](digest).call({"from": publisher.address})
    except ContractLogicError as error:
        raise AnchorError(f"The registry refuses this {what}: {error}.") from None
    data = contract.encode_abi(function, args=[digest])
    receipt = _send(w3, publisher, {"to": contract.address, "data": data})
    events = contract.events[event]().process_receipt(receipt)
    if len(events) != 1 or bytes(events[0]["args"]["digest"]) != digest:
        raise AnchorError(f"The {function} transaction did not log exactly one {event} event.")
    return events[0]


def publish_digest(
    w3: Web3, registry: str, publisher: LocalAccount, digest: bytes
) -> ServicesAnchor:
    """Call ``publish(digest)`` and return where the ``Published`` event landed."""
    event = _registry_call(w3, registry, publisher, "publish", "Published", digest, "publication")
    return ServicesAnchor(
        chain_id=w3.eth.chain_id,
        registry=to_checksum_address(registry),
        tx_hash="0x" + bytes(event["transactionHash"]).hex(),
        block_number=int(event["blockNumber"]),
        block_hash="0x" + bytes(event["blockHash"]).hex(),
        log_index=int(event["logIndex"]),
        sequence=int(event["args"]["sequence"]),
    )


def announce_digest(
    w3: Web3, registry: str, publisher: LocalAccount, digest: bytes
) -> ServicesAnnouncement:
    """Call ``announce(digest)`` and return where the ``Announced`` event landed.

    The registry refuses (and nothing is sent) a caller other than its publisher, a zero digest
    and a digest announced before; its message is in the :class:`AnchorError`.
    """
    if len(digest) != DIGEST_BYTES:
        raise AnchorError(f"The statement digest to announce must be {DIGEST_BYTES} bytes.")
    event = _registry_call(w3, registry, publisher, "announce", "Announced", digest, "announcement")
    return ServicesAnnouncement(
        chain_id=w3.eth.chain_id,
        registry=to_checksum_address(registry),
        tx_hash="0x" + bytes(event["transactionHash"]).hex(),
        block_number=int(event["blockNumber"]),
        log_index=int(event["logIndex"]),
        before_sequence=int(event["args"]["before_sequence"]),
    )


def set_publisher(w3: Web3, registry: str, publisher: LocalAccount, new_publisher: str) -> str:
    """Call ``set_publisher(new_publisher)`` as the registry's publisher; the transaction hash.

    A dry run first, so a caller the registry refuses (not its publisher, the zero address) sends
    nothing; its message is in the :class:`AnchorError`.
    """
    contract = registry_contract(w3, registry)
    new = to_checksum_address(new_publisher)
    try:
        contract.functions.set_publisher(new).call({"from": publisher.address})
    except ContractLogicError as error:
        raise AnchorError(f"The registry refuses the publisher hand-over: {error}.") from None
    data = contract.encode_abi("set_publisher", args=[new])
    receipt = _send(w3, publisher, {"to": contract.address, "data": data})
    return "0x" + bytes(receipt["transactionHash"]).hex()


def _check_publishable(bundle: Bundle, w3: Web3, registry: str, publisher: LocalAccount) -> None:
    """Refuse a bundle the registry would record out of order, or a wrong registry or key."""
    for role in ("treasury", "auditor"):
        if role not in bundle.signatures:
            raise AnchorError(f"The bundle lacks the {role} signature; sign before anchoring.")
    stated = bundle.body["registry"]
    if (
        stated["chain_id"] != w3.eth.chain_id
        or to_checksum_address(stated["address"]) != to_checksum_address(registry)
        or to_checksum_address(stated["publisher"]) != publisher.address
    ):
        raise AnchorError(
            "The bundle names another registry, chain or publisher than the one given to anchor it."
        )
    contract = registry_contract(w3, registry)
    count = int(contract.functions.count().call())
    latest = bytes(contract.functions.latest().call()).hex()
    if bundle.sequence != count + 1 or bundle.body["previous_digest"] != latest:
        raise AnchorError(
            f"The bundle is attestation {bundle.sequence} after {bundle.body['previous_digest']}, "
            f"but the registry's next is {count + 1} after {latest}: publishing would break the chain."
        )


def anchor(
    bundle: Bundle,
    bitcoin: BitcoinWalletRPC,
    w3: Web3,
    registry: str,
    publisher: LocalAccount,
    *,
    await_bitcoin_confirmation: Callable[[str], None],
) -> Bundle:
    """Anchor a signed bundle on both chains and return it with both anchors recorded.

    ``await_bitcoin_confirmation(txid)`` returns once the OP_RETURN transaction is mined (on
    regtest the caller mines a block; elsewhere it waits). Nothing is sent if the bundle is
    unsigned or out of sequence with the registry.
    """
    _check_publishable(bundle, w3, registry, publisher)
    digest = bundle.digest
    txid = broadcast_bitcoin_anchor(bitcoin, digest)
    await_bitcoin_confirmation(txid)
    on_bitcoin = locate_bitcoin_anchor(bitcoin, txid, digest)
    on_services = publish_digest(w3, registry, publisher, digest)
    return bundle.with_anchor("bitcoin", asdict(on_bitcoin)).with_anchor(
        "services", asdict(on_services)
    )
